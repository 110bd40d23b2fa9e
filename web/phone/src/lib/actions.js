/**
 * What the app does, apart from drawing screens: start a pairing or an unlock
 * from a scanned code, answer a request, keep the pending list, subscribe to
 * Web Push. Screens call these with the shared app context `ctx`.
 */

import {
  AlreadyAnswered,
  MessageType,
  ModeNotAllowed,
  PairingOffer,
  PhonePairing,
  PhoneUnlock,
  ProtocolError,
  UnknownPairing,
  RequestExpired,
  b64d,
  b64e,
  equalBytes,
  parseLink,
  peekType,
} from "../protocol/index.js";
import { RELAY_URL_KEY, RelayError, relayErrorMessage, servedByARelay } from "./relay.js";
import { nowSeconds } from "./dom.js";
import {
  loadPairings,
  loadReplayGuard,
  recordWithShare,
  rememberAnswer,
  savePairings,
  shareKeyFromPrf,
  shareProtection,
  kvGet,
  kvSet,
} from "./store.js";
import { verifyUser } from "./webauthn.js";
import { AnswerSession, AnswerState, fill } from "./session.js";

/** Seconds the relay may take to say whether a desktop still waiting took the reply. */
export const REPLY_WAIT = 5;

/** A failure the app explains to the user: a title and a sentence. */
export class UserFacingError extends Error {
  constructor(title, message, { kind = "error" } = {}) {
    super(message);
    this.title = title;
    this.kind = kind;
  }
}

/** Turn any failure into a UserFacingError with words a person understands. */
export function explain(err) {
  if (err instanceof UserFacingError) return err;
  if (err instanceof UnknownPairing) {
    return new UserFacingError("Not from your paired desktop", capitalize(err.message), { kind: "danger" });
  }
  if (err instanceof AlreadyAnswered) return new UserFacingError("Already answered", capitalize(err.message));
  if (err instanceof ModeNotAllowed) {
    return new UserFacingError("Not allowed for this desktop", capitalize(err.message), { kind: "danger" });
  }
  if (err instanceof RequestExpired) return new UserFacingError("Expired", capitalize(err.message));
  if (err instanceof ProtocolError) {
    if (err.code === "authentication_failed") {
      return new UserFacingError(
        "This code was tampered with",
        "It does not verify as coming from your paired desktop, so nothing was sent.",
        { kind: "danger" },
      );
    }
    return new UserFacingError("Not an unlatch code", capitalize(err.message));
  }
  if (err instanceof RelayError && err.code === "rejected") {
    // the desktop's user said the six digits differ (registry code "rejected")
    return new UserFacingError("The codes did not match", relayErrorMessage("rejected"), { kind: "danger" });
  }
  if (err instanceof RelayError) {
    // the registry's message says what to do next (unlatch/relay/errors.json)
    return new UserFacingError("The relay said no", relayErrorMessage(err.code) || capitalize(err.message));
  }
  return new UserFacingError("Something went wrong", err?.message || String(err));
}

function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".") : text;
}

export function labelOf(entry) {
  return entry?.label || entry?.record?.desktopName || "your desktop";
}

export function entryFor(ctx, record) {
  return ctx.state.pairings.find((p) => equalBytes(p.record.pairingId, record.pairingId));
}

/**
 * A scanned or pasted code, or an opened #m= link: start the right flow.
 * Pairing offers go to the Pair screen; unlock QR codes to the Approve screen.
 */
export async function handleCode(ctx, text) {
  let bytes;
  let type;
  try {
    bytes = parseLink(text);
    type = peekType(bytes);
  } catch (err) {
    if (err instanceof ProtocolError) {
      throw new UserFacingError(
        "Not an unlatch code",
        "This QR code or link is not from unlatch. Scan the code shown by unlatch on your desktop.",
      );
    }
    throw err;
  }
  if (type === MessageType.PAIRING_OFFER) return startPairing(ctx, bytes);
  if (type === MessageType.UNLOCK_QR) return startUnlockFromQr(ctx, bytes);
  throw new UserFacingError("Not a code to scan", "This is an unlatch message, but not a QR code for the phone.");
}

// ------------------------------------------------------------------ pairing

/** Check an offer and open the Pair screen (nothing is sent until the user says so). */
export async function startPairing(ctx, offerBytes) {
  const offer = PairingOffer.decode(offerBytes);
  if (nowSeconds() > offer.expiresAt) {
    throw new UserFacingError("Pairing code expired", "Ask the desktop for a new pairing code.");
  }
  if (offer.relayUrl !== ctx.relay.baseUrl && ctx.state.pairings.length === 0 && !(await servedByARelay())) {
    // The app has an origin of its own (the operator's --app-url, docs/deploy.md): its
    // relay is the one its first pairing names, remembered for the next starts.
    ctx.relay.use(offer.relayUrl);
    await kvSet(RELAY_URL_KEY, offer.relayUrl);
  }
  if (offer.relayUrl !== ctx.relay.baseUrl) {
    throw new UserFacingError(
      "Another relay",
      `This pairing code is for the relay at ${offer.relayUrl}, but this app belongs to ${ctx.relay.baseUrl}. ` +
        "Open the code with the phone's camera app instead: it opens the right app.",
    );
  }
  ctx.state.flow = { kind: "pair", offerBytes, offer, step: "confirm" };
  ctx.go("#/pair");
}

/** Post the hello and return the verification code; the Pair screen then waits for the accept. */
export async function sendHello(ctx, phoneName) {
  const flow = ctx.state.flow;
  await ctx.relay.login();
  const pp = await PhonePairing.create(flow.offerBytes, ctx.state.identity, phoneName, ctx.relay.deviceId, {
    now: nowSeconds(),
  });
  await ctx.relay.postHello(pp.channelId, pp.helloBytes);
  flow.pp = pp;
  flow.step = "code";
  return pp.verificationCode;
}

/** Wait for the desktop's accept, then make and store the record; returns the new entry. */
export async function awaitAccept(ctx, signal) {
  const flow = ctx.state.flow;
  const pp = flow.pp;
  const accept = await ctx.relay.waitAccept(pp.channelId, { signal, deadline: pp.offer.expiresAt });
  const record = await pp.receiveAccept(accept.data, { now: nowSeconds() });
  if (record.desktopDeviceId !== accept.sender) {
    throw new UserFacingError(
      "Pairing refused",
      "The relay delivered the desktop's answer from another device than the desktop named. Nothing was saved.",
      { kind: "danger" },
    );
  }
  await ctx.relay.closePairingChannel(pp.channelId);
  await ctx.relay.registerPairing(record.keys.routing_id, record.desktopDeviceId);
  // Pairing the same desktop again (after it removed this phone) replaces its old entry.
  const pairings = (await loadPairings()).filter((p) => p.record.desktopDeviceId !== record.desktopDeviceId);
  pairings.push({ record, label: record.desktopName, addedAt: nowSeconds() });
  // With the PRF protection, the new K_P goes under the authenticator now if the
  // user verifies; if not, it waits under the device key for the next approval.
  const shareKey = await protectionKey().catch(() => null);
  ctx.state.pairings = await savePairings(pairings, { shareKey });
  const entry = ctx.state.pairings[ctx.state.pairings.length - 1];
  flow.entry = entry;
  flow.step = "name";
  return entry;
}

/** The key the shares are sealed under (asks the authenticator), or null without the PRF protection. */
async function protectionKey() {
  const protection = await shareProtection();
  if (protection.kind !== "prf") return null;
  const prf = await verifyUser(protection.credentialId, { prfSalt: protection.salt });
  return shareKeyFromPrf(prf, protection.salt);
}

/**
 * Before an approval the user verifies. With the PRF protection that same
 * assertion gives the key of the stored K_P: the request's record gets its
 * share for this one reply (and a pairing made since is sealed too); without
 * the authenticator there is no K_P to send.
 */
async function verifyForApproval(ctx, pu) {
  const shareKey = await protectionKey();
  if (shareKey) {
    pu.pairing = await recordWithShare(pu.pairing, shareKey);
    ctx.state.pairings = await savePairings(await loadPairings(), { shareKey });
  } else if (ctx.state.settings.uvCredentialId) {
    await verifyUser(ctx.state.settings.uvCredentialId);
  }
}

export async function renamePairing(ctx, entry, label) {
  const pairings = await loadPairings();
  for (const p of pairings) if (equalBytes(p.record.pairingId, entry.record.pairingId)) p.label = label;
  await savePairings(pairings);
  ctx.state.pairings = pairings;
}

/**
 * Allow (or stop allowing) a desktop to be approved from the notification: the
 * pairing's unlock policy, which only this phone holds and changes (protocol.md
 * 6.8). The desktop learns it from this phone's next answer.
 */
export async function setNumberMatching(ctx, entry, allowed) {
  const pairings = await loadPairings();
  for (const p of pairings) {
    if (equalBytes(p.record.pairingId, entry.record.pairingId)) p.record = p.record.withNumberMatching(allowed);
  }
  await savePairings(pairings);
  ctx.state.pairings = pairings;
}

export async function unpair(ctx, entry) {
  try {
    await ctx.relay.deletePairing(entry.record.keys.routing_id);
  } catch (err) {
    if (!(err instanceof RelayError && err.status === 404)) throw err;
  }
  const pairings = (await loadPairings()).filter((p) => !equalBytes(p.record.pairingId, entry.record.pairingId));
  await savePairings(pairings);
  ctx.state.pairings = pairings;
}

// ------------------------------------------------------------------ unlock

/** A scanned unlock QR: verify it, tell the desktop it was scanned, open the Approve screen. */
export async function startUnlockFromQr(ctx, qrBytes) {
  if (!ctx.state.pairings.length) {
    // Not the phishing case: nothing here could have made this request. On an
    // iPhone, a QR opened by the Camera app lands in Safari, whose storage is
    // not the Home Screen app's, so the pairings are simply not in this browser.
    throw new UserFacingError(
      "No paired desktops here",
      "This browser has no paired desktops: open the unlatch app from your Home Screen and scan there, or pair first. Nothing was sent.",
      { kind: "warning" },
    );
  }
  const records = ctx.state.pairings.map((p) => p.record);
  const pu = await PhoneUnlock.fromQr(qrBytes, records, ctx.state.identity, { now: nowSeconds() });
  ctx.state.replay = await loadReplayGuard(); // another open copy of the app may have answered it
  ctx.state.replay.check(pu.requestId);
  let notification;
  try {
    notification = await ctx.relay.getUnlock(pu.requestId);
  } catch (err) {
    if (!(err instanceof RelayError && [404, 410].includes(err.status))) throw err;
    throw await endedError(ctx, pu, err);
  }
  if (notification.routing_id !== b64e(pu.pairing.keys.routing_id)) {
    throw new UserFacingError(
      "Request refused",
      "The relay filed this request under another pairing than the QR code names. Nothing was sent.",
      { kind: "danger" },
    );
  }
  ctx.relay.postSeen(pu.requestId, await pu.seen()).catch(() => null); // status only
  openApprove(ctx, pu, notification);
}

/**
 * A scanned request the relay no longer keeps open: ask the relay why (the
 * AnswerSession's words: cancelled, renewed, expired, closed, answered) and
 * whether the pairing itself was removed.
 */
async function endedError(ctx, pu, err) {
  const entry = entryFor(ctx, pu.pairing);
  const session = new AnswerSession(b64e(pu.requestId));
  session.handle({ type: "open", now: nowSeconds(), expires_at: Number(pu.params.expiresAt) });
  let state = err.code === "expired" ? "expired" : "closed";
  state = (await ctx.relay.unlockState(pu.requestId).catch(() => null))?.state || state;
  if (state === "closed" && !(await pairingOnRelay(ctx, entry))) {
    await markRemoved(ctx, entry.record.keys.routing_id);
    session.handle({ type: "revoke", now: nowSeconds() });
  } else {
    session.handle({ type: "channel", now: nowSeconds(), state: state === "open" ? "closed" : state });
  }
  const view = session.view;
  return new UserFacingError(fill(view.title, labelOf(entry)), fill(view.message, labelOf(entry)), {
    kind: view.kind === "bad" ? "danger" : "warning",
  });
}

async function pairingOnRelay(ctx, entry) {
  const rid = b64e(entry.record.keys.routing_id);
  const list = await ctx.relay.listPairings().catch(() => null);
  return list === null || list.some((p) => p.routing_id === rid);
}

/** A number-matching request answered from its notification (no QR): set up the approval. */
export function prepareUnlockFromPush(ctx, pending) {
  const pu = PhoneUnlock.fromPush(pending.pushed, ctx.state.identity);
  ctx.state.replay.check(pu.requestId);
  const session = pending.session;
  session.handle({ type: "open", now: nowSeconds(), expires_at: Number(pu.params.expiresAt) });
  ctx.state.flow = {
    kind: "approve",
    pu,
    notification: pending.notification,
    entry: entryFor(ctx, pu.pairing),
    result: null,
    session,
  };
}

/** The same, then open the Approve screen. */
export function startUnlockFromPush(ctx, pending) {
  prepareUnlockFromPush(ctx, pending);
  ctx.go("#/approve");
}

function openApprove(ctx, pu, notification) {
  const entry = entryFor(ctx, pu.pairing);
  const rid = b64e(pu.requestId);
  const session = ctx.state.pending.get(rid)?.session || new AnswerSession(rid);
  session.handle({ type: "open", now: nowSeconds(), expires_at: Number(pu.params.expiresAt) });
  if (entry?.removed) session.handle({ type: "revoke", now: nowSeconds() });
  ctx.state.flow = { kind: "approve", pu, notification, entry, result: null, session };
  ctx.go("#/approve");
}

/**
 * Answer the request on the Approve screen: "approve" (with `choice` for
 * number matching), "deny" or "not_me" (deny, then block the desktop on the relay).
 *
 * The request id goes into the stored replay guard first (one IndexedDB
 * transaction, see rememberAnswer), so a crash or a second open copy of the
 * app cannot answer twice; then the reply is made ONCE and kept in
 * `flow.outbox`. If sending fails (no network, relay down), the Approve
 * screen offers "Send again", which calls sendAnswer: the same bytes again,
 * never a second reply.
 */
export async function answer(ctx, verdict, choice = null) {
  const flow = ctx.state.flow;
  if (flow.outbox) return sendAnswer(ctx, flow); // made already: only the sending is left
  const { pu } = flow;
  if (verdict === "approve") await verifyForApproval(ctx, pu);
  const now = nowSeconds();
  ctx.state.replay = await rememberAnswer(pu.requestId, pu.params.expiresAt, { now });
  let reply;
  if (verdict === "approve") reply = await pu.approve({ now, choice });
  else reply = await pu.deny({ now, notMe: verdict === "not_me" });
  flow.outbox = { verdict, reply, shareSent: pu.approvedShareSent, sent: false, attempts: 0 };
  const said = verdict === "approve" && !pu.approvedShareSent ? "wrong_number" : verdict;
  flow.session.handle({ type: "answer", now, verdict: said });
  return sendAnswer(ctx, flow);
}

/**
 * Send the reply kept in `flow.outbox` (again, after a failure), then block
 * the desktop for "not_me". The relay keeps the first reply of a request and
 * answers a repeat with 409 already_answered; only this phone can post a
 * reply to its request and it made exactly one, so on a repeat that means the
 * earlier attempt arrived (its answer was lost on the way back) and counts as sent.
 * `flow` is the approval this reply belongs to, passed in rather than read from
 * ctx.state.flow: another request may have opened while the answer was being
 * made (a notification tapped during the user-verification prompt).
 */
export async function sendAnswer(ctx, flow) {
  const { pu, outbox, session } = flow;
  if (session.state === AnswerState.RETRY) session.handle({ type: "retry", now: nowSeconds() });
  if (!outbox.sent) {
    outbox.attempts += 1;
    let outcome;
    try {
      const res = await ctx.relay.postReply(pu.requestId, outbox.reply, { wait: REPLY_WAIT });
      outcome = res?.delivery || "undelivered";
    } catch (err) {
      outcome = replyOutcome(err, outbox.attempts);
      if (outcome === "failed") {
        session.handle({ type: "reply", now: nowSeconds(), outcome });
        throw err; // kept: "Send again" sends the same bytes
      }
      if (outcome === "posted") {
        // an earlier try arrived (its answer was lost): did a desktop read it?
        const heard = await ctx.relay.unlockState(pu.requestId).catch(() => null);
        outcome = heard?.acknowledged ? "delivered" : "undelivered";
      }
    }
    session.handle({ type: "reply", now: nowSeconds(), outcome });
    outbox.sent = true;
  }
  ctx.state.pending.delete(b64e(pu.requestId));
  let blocked = false;
  if (outbox.verdict === "not_me") {
    await ctx.relay.block(pu.pairing.keys.routing_id);
    blocked = true;
  }
  flow.result = { verdict: outbox.verdict, shareSent: outbox.shareSent, blocked, view: session.view };
  return flow.result;
}

/** What a failed reply POST means for the AnswerSession ("posted": a retry found it there). */
function replyOutcome(err, attempts) {
  if (!(err instanceof RelayError)) return "failed";
  if (err.code === "already_answered") return attempts > 1 ? "posted" : "answered";
  if (err.code === "expired") return "expired";
  if (err.code === "closed" || err.code === "unknown_channel") return "closed";
  return "failed";
}

/**
 * "I did not ask for this" from a request card, before any scan. A scan-mode
 * push has no QR secret, so no reply can be made; the phone sends an
 * UnlockRefusal (a MAC under the pairing's seen-MAC key: the desktop shows
 * that the phone refused, and the relay cannot forge one), then blocks the
 * pairing on the relay. The request id goes into the stored replay guard
 * first, and the refusal is made once and kept on the pending entry, so a
 * second try after a network failure sends the same bytes. A request the
 * desktop no longer waits for still gets the block.
 */
export async function refuseFromPush(ctx, pending) {
  if (!pending.refusal) {
    const pu = PhoneUnlock.forRefusal(pending.pushed, ctx.state.identity);
    const now = nowSeconds();
    ctx.state.replay = await rememberAnswer(pu.requestId, pu.params.expiresAt, { now });
    pending.refusal = { requestId: pu.requestId, bytes: await pu.refuse({ now }), sent: false, attempts: 0 };
  }
  const out = pending.refusal;
  let delivered = true;
  if (!out.sent) {
    out.attempts += 1;
    try {
      await ctx.relay.postReply(out.requestId, out.bytes);
    } catch (err) {
      const code = err instanceof RelayError ? err.code : null;
      const arrivedBefore = out.attempts > 1 && code === "already_answered";
      const tooLate = ["closed", "expired", "unknown_channel"].includes(code);
      if (!arrivedBefore && !tooLate) throw err;
      delivered = !tooLate;
    }
    out.sent = true;
  }
  await ctx.relay.block(pending.pushed.pairing.keys.routing_id);
  ctx.state.pending.delete(pending.requestId);
  ctx.emit();
  return { delivered, blocked: true };
}

// ------------------------------------------------------------------ pending requests

/**
 * Add a relay notification to the pending list if it opens with one of our
 * pairings and is still fresh. Returns the pending entry or null.
 */
export async function addNotification(ctx, notification) {
  if (notification?.type !== "unlock" || typeof notification.push !== "string") return null;
  try {
    const records = ctx.state.pairings.map((p) => p.record);
    const pushed = await PhoneUnlock.openPush(b64d(notification.push, "push", 2048), records, { now: nowSeconds() });
    const rid = b64e(pushed.params.requestId);
    if (rid !== notification.request_id) return null;
    try {
      ctx.state.replay.check(pushed.params.requestId);
    } catch {
      return null;
    }
    const session = new AnswerSession(rid);
    session.handle({ type: "notice", now: nowSeconds(), expires_at: Number(pushed.params.expiresAt) });
    if (session.state !== AnswerState.LISTED) return null;
    const entry = { notification, pushed, requestId: rid, pairingEntry: entryFor(ctx, pushed.pairing), session };
    ctx.state.pending.set(rid, entry);
    return entry;
  } catch (err) {
    if (err instanceof ProtocolError) return null;
    throw err;
  }
}

/**
 * The relay's word on a request or a pairing (listener frames): each request's
 * AnswerSession decides. A card that ended is forgotten; the open approval
 * shows what happened and what to do; a removed pairing is marked removed.
 * Returns true when something changed.
 */
export async function onRelayFrame(ctx, frame) {
  const now = nowSeconds();
  if (frame.type === "pairing" && frame.state === "removed") {
    const routing = b64d(frame.routing_id, "routing id", 24);
    return markRemoved(ctx, routing);
  }
  if (frame.type !== "request") return false;
  const event = { type: "channel", now, state: frame.state, acknowledged: Boolean(frame.acknowledged) };
  let changed = false;
  const pending = ctx.state.pending.get(frame.request_id);
  const flow = ctx.state.flow;
  const flowSession = flow?.kind === "approve" ? flow.session : null;
  if (pending && pending.session !== flowSession) {
    for (const c of pending.session.handle(event)) if (c.type === "forget") ctx.state.pending.delete(frame.request_id);
    changed = true;
  }
  if (flowSession && flowSession.requestId === frame.request_id && flowSession.handle(event).length) {
    if (flowSession.final) ctx.state.pending.delete(frame.request_id);
    changed = true;
  }
  return changed;
}

/** Mark the pairing with this routing id removed (the desktop revoked this phone); ends its requests. */
export async function markRemoved(ctx, routingId) {
  const pairings = await loadPairings();
  let hit = false;
  for (const p of pairings) {
    if (equalBytes(p.record.keys.routing_id, routingId) && !p.removed) {
      p.removed = true;
      hit = true;
    }
  }
  if (!hit) return false;
  await savePairings(pairings);
  ctx.state.pairings = pairings;
  const now = nowSeconds();
  for (const [rid, p] of ctx.state.pending) {
    if (equalBytes(p.pushed.pairing.keys.routing_id, routingId)) {
      p.session.handle({ type: "revoke", now });
      ctx.state.pending.delete(rid);
    }
  }
  const flow = ctx.state.flow;
  if (flow?.kind === "approve" && equalBytes(flow.pu.pairing.keys.routing_id, routingId)) {
    flow.entry = entryFor(ctx, flow.pu.pairing);
    flow.session.handle({ type: "revoke", now });
  }
  return true;
}

/** At start: pairings this phone keeps that the relay no longer has were removed meanwhile. */
export async function checkRemovedPairings(ctx) {
  if (!ctx.state.pairings.length) return false;
  const onRelay = new Set((await ctx.relay.listPairings()).map((p) => p.routing_id));
  let changed = false;
  for (const p of ctx.state.pairings) {
    if (!p.removed && !onRelay.has(b64e(p.record.keys.routing_id))) {
      changed = (await markRemoved(ctx, p.record.keys.routing_id)) || changed;
    }
  }
  return changed;
}

export async function refreshPending(ctx) {
  const now = nowSeconds();
  for (const [rid, p] of ctx.state.pending) {
    for (const c of p.session.handle({ type: "tick", now })) if (c.type === "forget") ctx.state.pending.delete(rid);
  }
  if (!ctx.state.pairings.length) return;
  const requests = await ctx.relay.pendingUnlocks();
  const seen = new Set();
  for (const n of requests) {
    seen.add(n.request_id);
    if (!ctx.state.pending.has(n.request_id)) await addNotification(ctx, n);
  }
  for (const rid of ctx.state.pending.keys()) if (!seen.has(rid)) ctx.state.pending.delete(rid);
}

// ------------------------------------------------------------------ push

/**
 * Subscribe to Web Push with the relay's VAPID key and register the target.
 * Returns {enabled, reason}; never throws (a browser without a push service,
 * like headless Chromium, simply gets enabled=false and a reason to show).
 */
export async function enablePush(ctx, { ask = true } = {}) {
  const status = await (async () => {
    if (!("serviceWorker" in navigator) || !("PushManager" in globalThis) || !("Notification" in globalThis)) {
      return {
        enabled: false,
        reason: "This browser cannot show notifications for web apps. On an iPhone, add unlatch to the Home Screen first.",
      };
    }
    let permission = Notification.permission;
    if (permission === "default" && ask) {
      try {
        permission = await Notification.requestPermission();
      } catch {
        permission = "denied";
      }
    }
    if (permission !== "granted") {
      return { enabled: false, reason: "Notifications are not allowed for this app. Keep the app open to see requests." };
    }
    let vapid;
    try {
      vapid = await ctx.relay.vapidPublicKey();
    } catch {
      return { enabled: false, reason: "This relay does not send notifications. Keep the app open to see requests." };
    }
    let reg;
    try {
      reg = await serviceWorkerReady();
    } catch {
      return {
        enabled: false,
        reason:
          "The app's service worker did not start, so requests show only while the app is open. Reload the app and turn notifications on in Settings.",
      };
    }
    try {
      let sub = await reg.pushManager.getSubscription();
      if (sub && !sameKey(sub, vapid)) {
        await sub.unsubscribe();
        sub = null;
      }
      if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64d(vapid, "key", 200) });
      await ctx.relay.setPushTarget(sub);
      return { enabled: true, reason: "" };
    } catch {
      return {
        enabled: false,
        reason: "This browser could not reach its push service, so requests show only while the app is open.",
      };
    }
  })();
  await kvSet("push", { ...status, at: nowSeconds() });
  ctx.state.push = status;
  return status;
}

/** How long to wait for the service worker to be installed and active (it caches a few files). */
const SERVICE_WORKER_READY_MS = 20000;

/**
 * navigator.serviceWorker.ready, but failing after SERVICE_WORKER_READY_MS: a
 * worker whose install failed (a file of the app could not be fetched) never
 * becomes ready, and the pairing's last step must not wait for it for ever.
 */
function serviceWorkerReady() {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("the service worker did not become active")), SERVICE_WORKER_READY_MS);
  });
  return Promise.race([navigator.serviceWorker.ready, timeout]).finally(() => clearTimeout(timer));
}

function sameKey(sub, vapid) {
  const key = sub.options?.applicationServerKey;
  return !key || b64e(new Uint8Array(key)) === vapid;
}

export async function loadPushStatus() {
  return (await kvGet("push")) || { enabled: false, reason: "Notifications have not been set up yet." };
}

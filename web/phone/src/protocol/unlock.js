/**
 * Phone unlock: the desktop's request and the phone's reply, as sans-IO state
 * machines (mirror of unlatch/protocol/unlock.py).
 *
 *     desktop                         relay                    phone
 *     DesktopUnlock.create(pairing)
 *       UnlockPush  ---------------->  push / listener ----->  PhoneUnlock.openPush
 *       UnlockQR    ======== QR code on the desktop's screen =====>  PhoneUnlock.fromQr
 *                   <----------------  UnlockSeen  <---------  .seen()
 *                   <----------------  UnlockReply <---------  .approve() / .deny()
 *                   <----------------  UnlockRefusal <-------  .refuse()   (from the push, no QR)
 *     .receiveReply -> {approved: true, phoneShare, policy} | {approved: false, verdict, notMe, wrongNumber, policy}
 *                    (a refusal carries no policy: policy null)
 *
 * The reply is HPKE mode_auth_psk: encrypted to the request's ephemeral key,
 * authenticated by the phone's static key, keyed by the QR's fresh secret and
 * bound to the pairing, request id, ephemeral key, times and mode.
 */

import {
  CLOCK_SKEW_SECONDS,
  MessageType,
  DEFAULT_UNLOCK_TTL,
  ID_LEN,
  KEY_LEN,
  NONCE_LEN,
  NUMBER_CHOICES,
  NUMBER_MAX,
  NUMBER_MIN,
  QR_SECRET_LEN,
  REPLY_PLAINTEXT_LEN,
  Label,
  UnlockMode,
  UnlockPolicy,
  Verdict,
} from "./constants.js";
import { concat, equalBytes, header, peekType, u8 } from "./encoding.js";
import {
  AlreadyAnswered,
  InvalidState,
  MalformedMessage,
  ModeNotAllowed,
  ProtocolError,
  RequestExpired,
  UnknownPairing,
  WrongRequest,
} from "./errors.js";
import { pushAad, qrMacInput, refusalMacInput, replyInfo, seenMacInput, unlockPsk } from "./keyschedule.js";
import { parseLink } from "./links.js";
import {
  PushPlaintext,
  UnlockPush,
  UnlockQR,
  UnlockRefusal,
  UnlockReply,
  UnlockSeen,
  checkTtl,
  requestParams,
} from "./messages.js";
import {
  KeyPair,
  aeadOpen,
  aeadSeal,
  checkPublicKey,
  hpkeOpen,
  hpkeSeal,
  mac,
  systemRandom,
  verifyMac,
} from "./primitives.js";

const EPHEMERAL_KEY = "the request's ephemeral key";

export const UnlockState = Object.freeze({
  WAITING: "waiting",
  SEEN: "seen",
  APPROVED: "approved",
  DENIED: "denied",
  FAILED: "failed",
  EXPIRED: "expired",
  CANCELLED: "cancelled",
});

const FINAL = new Set(["approved", "denied", "failed", "expired", "cancelled"]);

/**
 * States of the phone's answer to one request (protocol.md 6.7): only
 * VERIFIED can send; the other three are final and drop the QR secret.
 */
export const PhoneUnlockState = Object.freeze({
  VERIFIED: "verified",
  ANSWERED: "answered",
  EXPIRED: "expired",
  FAILED: "failed",
});

/** Name of a verdict, lower case as in the vectors ("approve", "deny_not_me", ...). */
export function verdictName(verdict) {
  return Object.entries(Verdict).find(([, v]) => v === verdict)[0].toLowerCase();
}

/** A uniform integer in [low, high] by rejection sampling one byte at a time. */
function uniform(rng, low, high) {
  const span = high - low + 1;
  const limit = 256 - (256 % span);
  for (;;) {
    const b = rng(1)[0];
    if (b < limit) return low + (b % span);
  }
}

/** The number to show and the shuffled distinct choices the phone offers. */
function numberChoices(rng) {
  const choices = [];
  while (choices.length < NUMBER_CHOICES) {
    const n = uniform(rng, NUMBER_MIN, NUMBER_MAX);
    if (!choices.includes(n)) choices.push(n);
  }
  const correct = choices[0];
  for (let i = choices.length - 1; i > 0; i--) {
    const j = uniform(rng, 0, i);
    [choices[i], choices[j]] = [choices[j], choices[i]];
  }
  return { correct, choices };
}

/** One unlock request made by the desktop (the app uses it to check vectors and in tests). */
export class DesktopUnlock {
  static async create(pairing, { now, ttl = DEFAULT_UNLOCK_TTL, mode = UnlockMode.SCAN, rng = systemRandom }) {
    checkTtl(ttl);
    const self = new DesktopUnlock();
    self.pairing = pairing;
    self._ephemeral = await KeyPair.generate(rng);
    self.params = requestParams(rng(ID_LEN), self._ephemeral.public, now, ttl, mode);
    self._qrSecret = rng(QR_SECRET_LEN);
    const keys = pairing.keys;
    self.number = null;
    let choices = [];
    if (mode === UnlockMode.NUMBER_MATCH) {
      const picked = numberChoices(rng);
      self.number = picked.correct;
      choices = picked.choices;
    }
    // A QR only in scan mode: its MAC does not cover the mode, and a scanned QR is
    // answered in scan mode, which a number-matching request refuses (protocol.md 6.2).
    self.qrBytes = null;
    if (mode === UnlockMode.SCAN) {
      const tag = await mac(keys.request_mac_key, qrMacInput(keys.pairing_id, self._qrSecret, self.params));
      self.qrBytes = UnlockQR.encode({
        pairingId: keys.pairing_id,
        requestId: self.params.requestId,
        qrSecret: self._qrSecret,
        ephemeralPk: self.params.ephemeralPk,
        createdAt: now,
        ttl,
        mac: tag,
      });
    }
    const pushSecret = mode === UnlockMode.NUMBER_MATCH ? self._qrSecret : new Uint8Array(0);
    const plaintext = PushPlaintext.encode({ params: self.params, qrSecret: pushSecret, number: self.number, choices });
    const nonce = rng(NONCE_LEN);
    const aad = pushAad(header(UnlockPush.TYPE), keys.routing_id);
    self.pushBytes = UnlockPush.encode({
      routingId: keys.routing_id,
      nonce,
      ciphertext: await aeadSeal(keys.push_key, nonce, plaintext, aad),
    });
    self.state = UnlockState.WAITING;
    return self;
  }

  get requestId() {
    return this.params.requestId;
  }

  get expiresAt() {
    return this.params.expiresAt;
  }

  /** Enter a final state and drop the request's secrets: the ephemeral key (its only copy), Q and the QR. */
  _finish(state) {
    this._ephemeral = null;
    this._qrSecret = null;
    this.qrBytes = null;
    this.state = state;
  }

  _checkOpen(now) {
    if (FINAL.has(this.state)) throw new AlreadyAnswered(`this unlock request is already ${this.state}`);
    if (now > this.params.expiresAt) {
      this._finish(UnlockState.EXPIRED);
      throw new RequestExpired("the unlock request expired: make a new one");
    }
  }

  checkExpiry({ now }) {
    if (!FINAL.has(this.state) && now > this.params.expiresAt) this._finish(UnlockState.EXPIRED);
    return this.state === UnlockState.EXPIRED;
  }

  cancel() {
    if (!FINAL.has(this.state)) this._finish(UnlockState.CANCELLED);
  }

  /** The phone reports a scan. Only a status: it changes nothing else. */
  async receiveSeen(data, { now }) {
    const seen = UnlockSeen.decode(data);
    if (!equalBytes(seen.requestId, this.requestId)) throw new WrongRequest("scan notice is for another request");
    this._checkOpen(now);
    const keys = this.pairing.keys;
    await verifyMac(
      keys.seen_mac_key,
      seenMacInput(keys.pairing_id, this.requestId, this._qrSecret),
      seen.mac,
      "scan notice",
    );
    this.state = UnlockState.SEEN;
  }

  /**
   * Decrypt the phone's reply (an UnlockReply, or an UnlockRefusal made from the
   * notification without scanning); the first one for this request ends it, whatever it says.
   */
  async receiveReply(data, { now }) {
    if (peekType(data) === MessageType.UNLOCK_REFUSAL) return this._receiveRefusal(data, { now });
    const reply = UnlockReply.decode(data);
    if (!equalBytes(reply.requestId, this.requestId)) throw new WrongRequest("reply is for another request");
    this._checkOpen(now);
    const keys = this.pairing.keys;
    let outcome;
    try {
      const { plaintext } = await hpkeOpen({
        recipient: this._ephemeral,
        enc: reply.enc,
        info: replyInfo(keys.pairing_id, this.params),
        aad: concat(header(UnlockReply.TYPE), reply.requestId),
        ciphertext: reply.ciphertext,
        psk: await unlockPsk(keys, this.requestId, this._qrSecret),
        pskId: Label.UNLOCK_PSK_ID,
        senderPk: this.pairing.phonePk,
        what: "unlock reply",
      });
      outcome = parseReplyPlaintext(plaintext);
    } catch (err) {
      if (err instanceof ProtocolError) this._finish(UnlockState.FAILED);
      throw err;
    }
    this._finish(outcome.approved ? UnlockState.APPROVED : UnlockState.DENIED);
    return outcome;
  }

  /** "I did not ask for this" made from the push: a MAC under the seen-MAC key (only the two ends hold it). */
  async _receiveRefusal(data, { now }) {
    const refusal = UnlockRefusal.decode(data);
    if (!equalBytes(refusal.requestId, this.requestId)) throw new WrongRequest("refusal is for another request");
    this._checkOpen(now);
    const keys = this.pairing.keys;
    try {
      await verifyMac(keys.seen_mac_key, refusalMacInput(keys.pairing_id, this.params), refusal.mac, "refusal");
    } catch (err) {
      if (err instanceof ProtocolError) this._finish(UnlockState.FAILED);
      throw err;
    }
    this._finish(UnlockState.DENIED);
    return Object.freeze({ approved: false, verdict: Verdict.DENY_NOT_ME, notMe: true, wrongNumber: false, policy: null });
  }
}

const POLICY_AT = 1 + KEY_LEN; // verdict | share | policy | padding

function parseReplyPlaintext(plaintext) {
  if (plaintext.length !== REPLY_PLAINTEXT_LEN) throw new MalformedMessage("unlock reply contents have the wrong size");
  const verdict = plaintext[0];
  const share = plaintext.slice(1, POLICY_AT);
  const policy = plaintext[POLICY_AT];
  const padding = plaintext.slice(POLICY_AT + 1);
  if (padding.some((b) => b !== 0)) throw new MalformedMessage("unlock reply padding is not zero");
  if (!Object.values(UnlockPolicy).includes(policy)) throw new MalformedMessage(`unknown unlock policy ${policy}`);
  if (verdict === Verdict.APPROVE) return Object.freeze({ approved: true, verdict, phoneShare: share, policy });
  if ([Verdict.DENY, Verdict.DENY_NOT_ME, Verdict.WRONG_NUMBER].includes(verdict)) {
    if (share.some((b) => b !== 0)) throw new MalformedMessage("a denial must not carry a share");
    return Object.freeze({
      approved: false,
      verdict,
      notMe: verdict === Verdict.DENY_NOT_ME,
      wrongNumber: verdict === Verdict.WRONG_NUMBER,
      policy,
    });
  }
  throw new MalformedMessage(`unknown verdict ${verdict}`);
}

function replyPlaintext(verdict, share, policy) {
  const out = new Uint8Array(REPLY_PLAINTEXT_LEN);
  out[0] = verdict;
  out.set(share, 1);
  out[POLICY_AT] = policy;
  return out;
}

export const MODE_NOT_ALLOWED =
  "this desktop asked for approve-from-notification, which you did not allow for it: " +
  "nothing was released. If you did not change this, someone may have copied the " +
  "desktop's files: revoke it (unpair it on this phone)";

function findPairing(pairings, { pairingId = null, routingId = null }) {
  for (const record of pairings) {
    if (pairingId !== null && equalBytes(record.pairingId, pairingId)) return record;
    if (routingId !== null && equalBytes(record.keys.routing_id, routingId)) return record;
  }
  throw new UnknownPairing(
    "this QR code was not made by a desktop paired with this phone: " +
      "nothing was sent (if you did not expect it, someone may be trying to trick you)",
  );
}

function checkTime(params, now) {
  if (params.createdAt > now + CLOCK_SKEW_SECONDS) {
    throw new RequestExpired("the request's time is in the future: check the clocks");
  }
  if (now > Number(params.expiresAt) + CLOCK_SKEW_SECONDS) {
    throw new RequestExpired("this unlock request has expired: ask the desktop for a new one");
  }
}

/** The phone's answer to one request (from a scanned QR, or a number-matching push). */
export class PhoneUnlock {
  constructor(pairing, identity, params, qrSecret, { number = null, choices = [] } = {}) {
    this.pairing = pairing;
    this._identity = identity;
    this.params = params;
    this._qrSecret = qrSecret;
    this._number = number;
    this.choices = choices;
    this.approvedShareSent = false;
    this.state = PhoneUnlockState.VERIFIED;
  }

  /** True once a reply was made (the state ANSWERED). */
  get answered() {
    return this.state === PhoneUnlockState.ANSWERED;
  }

  _end(state) {
    this._qrSecret = null; // the request's one fresh secret: no further use
    this.state = state;
  }

  /** The typed refusal of a step after a final state. */
  _checkVerified() {
    if (this.state === PhoneUnlockState.ANSWERED) throw new AlreadyAnswered("this request was already answered");
    if (this.state !== PhoneUnlockState.VERIFIED) {
      throw new InvalidState(`this request is ${this.state}: nothing more can be sent`);
    }
  }

  /** The QR secret, or the typed refusal of a step after a final state or without it. */
  _verifiedSecret() {
    this._checkVerified();
    if (this._qrSecret === null) {
      // made from a scan-mode push: only refuse() can answer
      throw new InvalidState("this request must be answered by scanning the desktop's QR code");
    }
    return this._qrSecret;
  }

  /** Check a scanned QR: a paired desktop made it, untampered, and it is fresh. */
  static async fromQr(qr, pairings, identity, { now }) {
    const raw = typeof qr === "string" ? parseLink(qr) : qr;
    const msg = UnlockQR.decode(raw);
    const pairing = findPairing(pairings, { pairingId: msg.pairingId });
    const params = requestParams(msg.requestId, msg.ephemeralPk, msg.createdAt, msg.ttl, UnlockMode.SCAN);
    await verifyMac(
      pairing.keys.request_mac_key,
      qrMacInput(pairing.pairingId, msg.qrSecret, params),
      msg.mac,
      "unlock QR code (it was not made by your paired desktop)",
    );
    await checkPublicKey(params.ephemeralPk, EPHEMERAL_KEY);
    checkTime(params, now);
    return new PhoneUnlock(pairing, identity, params, msg.qrSecret);
  }

  /**
   * Decrypt a notification from the relay (it can neither read nor forge one).
   * Returns {pairing, params, qrSecret, number, choices}.
   */
  static async openPush(data, pairings, { now }) {
    const push = UnlockPush.decode(data);
    const pairing = findPairing(pairings, { routingId: push.routingId });
    const aad = pushAad(header(UnlockPush.TYPE), push.routingId);
    const plaintext = await aeadOpen(pairing.keys.push_key, push.nonce, push.ciphertext, aad, "unlock notification");
    const c = PushPlaintext.decode(plaintext);
    await checkPublicKey(c.params.ephemeralPk, EPHEMERAL_KEY);
    checkTime(c.params, now);
    return Object.freeze({ pairing, params: c.params, qrSecret: c.qrSecret, number: c.number, choices: c.choices });
  }

  /**
   * Answer a number-matching request straight from its notification. Made also
   * for a pairing whose policy does not allow it, so the user can deny it:
   * approve() then refuses (ModeNotAllowed) and `modeAllowed` tells the UI.
   */
  static fromPush(pushed, identity) {
    if (pushed.params.mode !== UnlockMode.NUMBER_MATCH) {
      throw new InvalidState("this request must be approved by scanning the desktop's QR code");
    }
    return new PhoneUnlock(pushed.pairing, identity, pushed.params, pushed.qrSecret, {
      number: pushed.number,
      choices: pushed.choices,
    });
  }

  /**
   * A request known from its notification only, which the user may refuse. In
   * scan mode the push has no QR secret, so the only answer is refuse() ("I did
   * not ask for this"); approve, deny and seen are InvalidState until the QR is scanned.
   */
  static forRefusal(pushed, identity) {
    if (pushed.params.mode === UnlockMode.NUMBER_MATCH) return PhoneUnlock.fromPush(pushed, identity);
    return new PhoneUnlock(pushed.pairing, identity, pushed.params, null);
  }

  get requestId() {
    return this.params.requestId;
  }

  /** False for a request known only from a scan-mode push: it can only be refused. */
  get canReply() {
    return this._qrSecret !== null || this.state !== PhoneUnlockState.VERIFIED;
  }

  get needsNumber() {
    return this.params.mode === UnlockMode.NUMBER_MATCH;
  }

  /**
   * Whether this pairing's policy allows the request's mode: scanning always,
   * number matching only when the phone's user allowed it for this desktop
   * (protocol.md 6.8). Whoever holds the desktop's files can make a request,
   * so the phone's record decides.
   */
  get modeAllowed() {
    return !this.needsNumber || this.pairing.allowNumberMatching === true;
  }

  /** Refuse, before anything is shown or sent, a mode the pairing did not agree to. */
  checkMode() {
    if (!this.modeAllowed) throw new ModeNotAllowed(MODE_NOT_ALLOWED);
  }

  /** Seconds left before the request expires (never negative). */
  remaining({ now }) {
    return Math.max(0, Number(this.params.expiresAt) - now);
  }

  /** The optional "QR scanned" notice for the desktop's live status. */
  async seen() {
    const qrSecret = this._verifiedSecret();
    const keys = this.pairing.keys;
    const tag = await mac(keys.seen_mac_key, seenMacInput(keys.pairing_id, this.requestId, qrSecret));
    return UnlockSeen.encode({ requestId: this.requestId, mac: tag });
  }

  /**
   * Release K_P to the desktop. With number matching, `choice` is the user's
   * pick; a wrong pick releases nothing (the reply says WRONG_NUMBER): check
   * `approvedShareSent` afterwards to tell the user which happened.
   */
  async approve({ now, choice = null, rng = systemRandom }) {
    this._verifiedSecret(); // answered or over: refused before looking at the choice
    this.checkMode(); // refused, still unanswered: the user may deny
    if (this.needsNumber) {
      if (choice === null || !this.choices.includes(choice)) throw new InvalidState("pick one of the numbers offered");
      if (!equalBytes(u8(choice), u8(this._number ?? 0))) {
        return this._reply(Verdict.WRONG_NUMBER, new Uint8Array(KEY_LEN), now, rng);
      }
    } else if (choice !== null) {
      throw new InvalidState("scan-mode requests take no number");
    }
    const reply = await this._reply(Verdict.APPROVE, this.pairing.phoneShare, now, rng);
    this.approvedShareSent = true;
    return reply;
  }

  /** Refuse; `notMe`: the user did not ask for this (the app also blocks the pairing on the relay). */
  async deny({ now, notMe = false, rng = systemRandom }) {
    return this._reply(notMe ? Verdict.DENY_NOT_ME : Verdict.DENY, new Uint8Array(KEY_LEN), now, rng);
  }

  /**
   * "I did not ask for this" without the QR secret: an UnlockRefusal. The answer
   * of a request seen only in its notification; it releases nothing (the app
   * also blocks the pairing on the relay).
   */
  async refuse({ now }) {
    this._checkVerified();
    this._checkFresh(now);
    this.state = PhoneUnlockState.ANSWERED; // claimed before the first await
    const keys = this.pairing.keys;
    const tag = await mac(keys.seen_mac_key, refusalMacInput(keys.pairing_id, this.params));
    this._end(PhoneUnlockState.ANSWERED);
    return UnlockRefusal.encode({ requestId: this.requestId, mac: tag });
  }

  /** Decided too late: nothing is sent and the request ends EXPIRED. */
  _checkFresh(now) {
    try {
      checkTime(this.params, now);
    } catch (err) {
      this._end(PhoneUnlockState.EXPIRED);
      throw err;
    }
  }

  /** Make the one reply: VERIFIED -> ANSWERED (or EXPIRED / FAILED). */
  async _reply(verdict, share, now, rng) {
    const qrSecret = this._verifiedSecret();
    this._checkFresh(now);
    // Claimed before the first await, so two concurrent answers cannot both proceed.
    this.state = PhoneUnlockState.ANSWERED;
    const keys = this.pairing.keys;
    let sealed;
    try {
      sealed = await hpkeSeal({
        recipientPk: this.params.ephemeralPk,
        info: replyInfo(keys.pairing_id, this.params),
        aad: concat(header(UnlockReply.TYPE), this.requestId),
        plaintext: replyPlaintext(verdict, share, this.pairing.policy),
        psk: await unlockPsk(keys, this.requestId, qrSecret),
        pskId: Label.UNLOCK_PSK_ID,
        ephemeralSeed: rng(KEY_LEN),
        sender: this._identity,
        recipient: EPHEMERAL_KEY,
      });
    } catch (err) {
      this._end(PhoneUnlockState.FAILED);
      throw err;
    }
    this._end(PhoneUnlockState.ANSWERED);
    return UnlockReply.encode({ requestId: this.requestId, enc: sealed.enc, ciphertext: sealed.ciphertext });
  }
}

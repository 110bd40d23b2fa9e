/** Replays tests/vectors/unlock.json (every request, push, seen, reply and outcome) and slots.json. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DesktopPairingRecord,
  DesktopUnlock,
  KeyPair,
  Label,
  PhonePairingRecord,
  PhoneUnlock,
  PushPlaintext,
  ReplayGuard,
  UnlockPush,
  UnlockReply,
  AlreadyAnswered,
  ModeNotAllowed,
  PhoneUnlockState,
  UnlockMode,
  UnlockPolicy,
  UnlockState,
  InvalidState,
  refusalMacInput,
  appLink,
  bareLink,
  concat,
  hex,
  header,
  phoneSlotKek,
  pushAad,
  qrMacInput,
  replyInfo,
  seenMacInput,
  unhex,
  unlockPsk,
  verdictName,
  MessageType,
} from "../src/protocol/index.js";
import { aesGcmOpen, assertBytes, checkHpkeContext, loadVector, replayRng } from "./helpers.js";

const U = loadVector("unlock.json");
const P = loadVector("pairing.json");
const S = loadVector("slots.json");
const APP_URL = P.inputs.app_url;

async function fixtures(v = null) {
  const drec = DesktopPairingRecord.fromDict(U.pairing_records.desktop);
  // The vector says whether the phone's user allowed number matching for this desktop.
  const allowed = v?.inputs.phone_allows_number_matching ?? false;
  const prec = PhonePairingRecord.fromDict({ ...U.pairing_records.phone, allow_number_matching: allowed });
  const phone = await KeyPair.fromPrivateBytes(unhex(P.intermediate.phone_sk));
  return { drec, prec, phone };
}

function answer(v, pu, du, rng) {
  const now = v.inputs.now_reply;
  switch (v.name) {
    case "scan_approve":
      return pu.approve({ now, rng });
    case "scan_deny":
      return pu.deny({ now, rng });
    case "scan_not_me":
      return pu.deny({ now, notMe: true, rng });
    case "number_match_approve":
      return pu.approve({ now, choice: du.number, rng });
    case "number_match_wrong":
      return pu.approve({ now, choice: pu.choices.find((c) => c !== du.number), rng });
    case "number_match_not_allowed":
      return refuseThenDeny(pu, du, now, rng);
    default:
      throw new Error(`unknown vector ${v.name}`);
  }
}

/** Even the right number is refused, before any draw; the request stays open and the user denies. */
async function refuseThenDeny(pu, du, now, rng) {
  assert.equal(pu.modeAllowed, false);
  await assert.rejects(pu.approve({ now, choice: du.number, rng }), (err) => err instanceof ModeNotAllowed && err.code === "mode_not_allowed");
  assert.equal(pu.state, PhoneUnlockState.VERIFIED);
  assert.equal(pu.approvedShareSent, false);
  return pu.deny({ now, rng });
}

assert.equal(U.vectors.length, 6);

for (const v of U.vectors) {
  test(`unlock vector ${v.name}: every message and outcome byte for byte`, async () => {
    const { drec, prec, phone } = await fixtures(v);
    const I = v.inputs;
    const X = v.intermediate;
    const requestRng = replayRng(v.draws.request);
    const du = await DesktopUnlock.create(drec, { now: I.now_request, ttl: I.ttl, mode: I.mode, rng: requestRng });
    requestRng.done();
    assertBytes(du.requestId, X.request_id, "request_id");
    assertBytes(du.params.ephemeralPk, X.ephemeral_pk, "ephemeral_pk");
    assertBytes(await du._ephemeral.privateBytes(), X.ephemeral_sk, "ephemeral_sk");
    assertBytes(du._qrSecret, X.qr_secret, "qr_secret");
    assert.equal(du.number, X.number);
    if (I.mode === UnlockMode.SCAN) {
      assertBytes(du.qrBytes, v.messages.qr, "qr");
      assert.equal(appLink(APP_URL, du.qrBytes), v.messages.qr_link);
      assert.equal(bareLink(du.qrBytes), v.messages.qr_bare);
    } else {
      // Number matching makes no QR (a scanned one could only fail).
      assert.equal(du.qrBytes, null);
      assert.equal(v.messages.qr, null);
    }
    assertBytes(du.pushBytes, v.messages.push, "push");

    const keys = drec.keys;
    if (I.mode === UnlockMode.SCAN) {
      assertBytes(qrMacInput(keys.pairing_id, du._qrSecret, du.params), X.qr_mac_input, "qr_mac_input");
    } else {
      assert.equal(X.qr_mac_input, null);
    }
    assertBytes(pushAad(header(MessageType.UNLOCK_PUSH), keys.routing_id), X.push_aad, "push_aad");
    assertBytes(seenMacInput(keys.pairing_id, du.requestId, du._qrSecret), X.seen_mac_input, "seen_mac_input");
    assertBytes(await unlockPsk(keys, du.requestId, du._qrSecret), X.unlock_psk, "unlock_psk");
    assertBytes(Label.UNLOCK_PSK_ID, X.unlock_psk_id, "unlock_psk_id");
    assertBytes(replyInfo(keys.pairing_id, du.params), X.reply_info, "reply_info");
    assertBytes(concat(header(MessageType.UNLOCK_REPLY), du.requestId), X.reply_aad, "reply_aad");

    // The phone opens the vector's push (not our own re-encoding of it).
    const pushed = await PhoneUnlock.openPush(unhex(v.messages.push), [prec], { now: I.now_push });
    assert.deepEqual(pushed.choices, X.choices);
    assert.equal(pushed.params.mode, I.mode);
    assert.equal(pushed.params.createdAt, I.now_request);
    assert.equal(pushed.params.ttl, I.ttl);
    assertBytes(pushed.params.requestId, X.request_id, "pushed request_id");
    assert.equal(pushed.pairing.desktopName, P.inputs.desktop_name);
    const pu =
      I.mode === UnlockMode.SCAN
        ? await PhoneUnlock.fromQr(v.messages.qr_link, [prec], phone, { now: I.now_scan })
        : PhoneUnlock.fromPush(pushed, phone);
    assert.equal(pu.remaining({ now: I.now_scan }), I.now_request + I.ttl - I.now_scan);
    const seen = await pu.seen();
    assertBytes(seen, v.messages.seen, "seen");
    await du.receiveSeen(unhex(v.messages.seen), { now: I.now_scan + 1 });
    assert.equal(du.state, UnlockState.SEEN);

    const replyRng = replayRng(v.draws.reply);
    const reply = await answer(v, pu, du, replyRng);
    replyRng.done();
    assertBytes(reply, v.messages.reply, "reply");

    const outcome = await du.receiveReply(unhex(v.messages.reply), { now: I.now_receive });
    assert.equal(du.state, v.outcome.state);
    assert.equal(verdictName(outcome.verdict), v.outcome.verdict);
    assert.equal(outcome.policy, v.outcome.policy); // the desktop learns the phone's policy
    assert.equal(prec.policy, v.outcome.policy);
    if (v.outcome.phone_share === null) {
      assert.equal(outcome.approved, false);
      assert.equal(pu.approvedShareSent, false);
    } else {
      assert.equal(outcome.approved, true);
      assertBytes(outcome.phoneShare, v.outcome.phone_share, "released phone share");
      assert.equal(pu.approvedShareSent, true);
    }
    // Single use on both sides.
    await assert.rejects(du.receiveReply(unhex(v.messages.reply), { now: I.now_receive }), AlreadyAnswered);
    await assert.rejects(pu.deny({ now: I.now_reply }), AlreadyAnswered);
  });
}

for (const v of U.vectors) {
  test(`unlock vector ${v.name}: push and reply plaintexts, reply HPKE context (RFC 9180, mode_auth_psk)`, async () => {
    const { drec } = await fixtures();
    const X = v.intermediate;
    const keys = drec.keys;

    // The push: our encoder gives the recorded plaintext, which the push key opens to.
    const push = UnlockPush.decode(unhex(v.messages.push));
    const pushPt = await aesGcmOpen(keys.push_key, push.nonce, push.ciphertext, unhex(X.push_aad));
    assertBytes(pushPt, X.push_plaintext, "push_plaintext");
    assert.equal(pushPt.length, X.push_plaintext_len);
    const contents = PushPlaintext.decode(pushPt);
    assertBytes(PushPlaintext.encode(contents), X.push_plaintext, "push_plaintext re-encoded");
    assertBytes(contents.params.requestId, X.request_id, "push request_id");
    assert.equal(contents.number, X.number);
    assert.deepEqual(contents.choices, X.choices);

    // The reply: the request's ephemeral key and the phone's key give the recorded context.
    const ephemeral = await KeyPair.fromPrivateBytes(unhex(X.ephemeral_sk));
    assertBytes(ephemeral.public, X.ephemeral_pk, "ephemeral_pk from ephemeral_sk");
    const ctx = X.reply_hpke;
    assert.equal(ctx.mode, 3);
    const reply = UnlockReply.decode(unhex(v.messages.reply));
    await checkHpkeContext(ctx, {
      recipient: ephemeral,
      enc: reply.enc,
      senderPk: drec.phonePk,
      info: unhex(X.reply_info),
      psk: unhex(X.unlock_psk),
      pskId: unhex(X.unlock_psk_id),
      aad: unhex(X.reply_aad),
      ciphertext: reply.ciphertext,
      plaintext: X.reply_plaintext,
    });
    const pt = unhex(X.reply_plaintext);
    assert.equal(pt.length, 64);
    assert.equal(verdictName(pt[0]), v.outcome.verdict);
    assert.equal(hex(pt.slice(1, 33)), v.outcome.phone_share ?? "00".repeat(32));
    assert.equal(pt[33], v.outcome.policy, "reply policy byte");
    assert.equal(pt[33], v.inputs.phone_allows_number_matching ? UnlockPolicy.NUMBER_MATCHING : UnlockPolicy.SCAN_ONLY);
    assert.ok(pt.slice(34).every((b) => b === 0), "reply padding is zero");
  });
}

test("phone records: the policy round-trips, an old record without it allows scanning only", () => {
  const old = { ...U.pairing_records.phone };
  delete old.allow_number_matching;
  const rec = PhonePairingRecord.fromDict(old);
  assert.equal(rec.allowNumberMatching, false);
  assert.equal(rec.policy, UnlockPolicy.SCAN_ONLY);
  const allowing = rec.withNumberMatching(true);
  assert.equal(PhonePairingRecord.fromDict(allowing.toDict()).allowNumberMatching, true);
  assert.deepEqual(PhonePairingRecord.fromDict(allowing.toDict()).toDict(), allowing.toDict());
  assert.throws(() => PhonePairingRecord.fromDict({ ...old, allow_number_matching: 1 }), /true or false/);
});

assert.equal(U.refusals.length, 2);

for (const v of U.refusals) {
  test(`refusal vector ${v.name}: "I did not ask for this" from the push alone, byte for byte`, async () => {
    const { drec, prec, phone } = await fixtures();
    const I = v.inputs;
    const requestRng = replayRng(v.draws.request);
    const du = await DesktopUnlock.create(drec, { now: I.now_request, ttl: I.ttl, mode: I.mode, rng: requestRng });
    requestRng.done();
    assertBytes(du.pushBytes, v.messages.push, "push");
    assertBytes(refusalMacInput(drec.keys.pairing_id, du.params), v.intermediate.refusal_mac_input, "refusal_mac_input");
    const pushed = await PhoneUnlock.openPush(unhex(v.messages.push), [prec], { now: I.now_push });
    const pu = PhoneUnlock.forRefusal(pushed, phone);
    if (I.mode === UnlockMode.SCAN) {
      assert.equal(pu.canReply, false); // no QR secret: approve, deny and seen are impossible
      await assert.rejects(pu.approve({ now: I.now_refuse }), InvalidState);
      await assert.rejects(pu.seen(), InvalidState);
    }
    const refusal = await pu.refuse({ now: I.now_refuse });
    assertBytes(refusal, v.messages.refusal, "refusal");
    await assert.rejects(pu.refuse({ now: I.now_refuse }), AlreadyAnswered);
    const outcome = await du.receiveReply(unhex(v.messages.refusal), { now: I.now_receive });
    assert.equal(du.state, v.outcome.state);
    assert.equal(verdictName(outcome.verdict), v.outcome.verdict);
    assert.equal(outcome.notMe, true);
    assert.equal(outcome.approved, false);
    await assert.rejects(du.receiveReply(unhex(v.messages.refusal), { now: I.now_receive }), AlreadyAnswered);
  });
}

test("a refusal with a wrong MAC burns the request and says nothing about the phone", async () => {
  const { drec, prec, phone } = await fixtures();
  const v = U.refusals[0];
  const du = await DesktopUnlock.create(drec, { now: v.inputs.now_request, ttl: 120, mode: UnlockMode.SCAN });
  const pushed = await PhoneUnlock.openPush(du.pushBytes, [prec], { now: v.inputs.now_push });
  const forged = await PhoneUnlock.forRefusal(pushed, phone).refuse({ now: v.inputs.now_refuse });
  forged[forged.length - 1] ^= 1;
  await assert.rejects(du.receiveReply(forged, { now: v.inputs.now_receive }), /authentication|refusal/);
  assert.equal(du.state, UnlockState.FAILED);
});

test("phone slot KEK matches slots.json", async () => {
  const s = S.phone_slot;
  const kek = await phoneSlotKek(unhex(s.phone_share), unhex(s.local_secret), unhex(s.pairing_id));
  assertBytes(kek, s.kek, "kek");
});

test("the replay guard refuses a second answer and survives a round trip", () => {
  const guard = new ReplayGuard();
  const rid = unhex(U.vectors[0].intermediate.request_id);
  guard.check(rid);
  guard.remember(rid, 1000, { now: 900 });
  assert.throws(() => guard.check(rid), AlreadyAnswered);
  const again = ReplayGuard.fromDict(JSON.parse(JSON.stringify(guard.toDict())));
  assert.throws(() => again.check(rid), AlreadyAnswered);
  again.prune({ now: 1000 + 31 });
  again.check(rid);
  assert.equal(again.size, 0);
  assert.equal(hex(rid), U.vectors[0].intermediate.request_id);
});

/** Replays tests/vectors/pairing.json through both pairing roles, byte for byte. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AcceptPlaintext,
  DesktopPairing,
  InvalidState,
  HelloPlaintext,
  KeyPair,
  MessageType,
  PairingAccept,
  Label,
  PairingHello,
  PairingState,
  PhonePairing,
  PhonePairingRecord,
  DesktopPairingRecord,
  appLink,
  bareLink,
  hex,
  parseLink,
  unhex,
  acceptAad,
  acceptKey,
  helloInfo,
  pairingPsk,
  pairingTranscriptHash,
  rootExportContext,
  pairingKeysFromRoot,
  verificationCode,
  header,
} from "../src/protocol/index.js";
import { aesGcmOpen, assertBytes, checkHpkeContext, hpkeExport, loadVector, replayRng } from "./helpers.js";

const V = loadVector("pairing.json");
const I = V.inputs;
const X = V.intermediate;

async function run() {
  const ids = replayRng(V.draws.identities);
  const desktop = await KeyPair.derive(ids(32));
  const phone = await KeyPair.derive(ids(32));
  ids.done();
  const offerRng = replayRng(V.draws.offer);
  const dp = await DesktopPairing.create(desktop, I.relay_url, { now: I.now_offer, ttl: I.pairing_ttl, rng: offerRng });
  offerRng.done();
  const { offer, offerBytes } = dp; // the desktop forgets S (and the offer bytes) once paired
  const helloRng = replayRng(V.draws.hello);
  const pp = await PhonePairing.create(appLink(I.app_url, dp.offerBytes), phone, I.phone_name, I.phone_device_id, {
    now: I.now_hello,
    rng: helloRng,
  });
  helloRng.done();
  const pending = await dp.receiveHello(pp.helloBytes, { now: I.now_hello + 1 });
  const acceptRng = replayRng(V.draws.accept);
  const confirmed = await dp.confirm(I.desktop_name, I.desktop_device_id, { now: I.now_confirm, rng: acceptRng });
  acceptRng.done();
  const prec = await pp.receiveAccept(confirmed.accept, { now: I.now_accept });
  return { desktop, phone, dp, pp, pending, confirmed, prec, offer, offerBytes };
}

test("identities derive to the vector keys (RFC 9180 DeriveKeyPair)", async () => {
  const { desktop, phone } = await run();
  assertBytes(desktop.public, X.desktop_pk, "desktop_pk");
  assertBytes(await desktop.privateBytes(), X.desktop_sk, "desktop_sk");
  assertBytes(phone.public, X.phone_pk, "phone_pk");
  assertBytes(await phone.privateBytes(), X.phone_sk, "phone_sk");
  const again = await KeyPair.fromPrivateBytes(unhex(X.phone_sk));
  assertBytes(again.public, X.phone_pk, "phone_pk from private bytes");
});

test("offer, links, hello and accept match byte for byte", async () => {
  const { pp, confirmed, offerBytes } = await run();
  assertBytes(offerBytes, V.messages.offer, "offer");
  assert.equal(appLink(I.app_url, offerBytes), V.messages.offer_link);
  assert.equal(bareLink(offerBytes), V.messages.offer_bare);
  assertBytes(parseLink(V.messages.offer_link), V.messages.offer, "offer parsed from the app link");
  assertBytes(parseLink(V.messages.offer_bare), V.messages.offer, "offer parsed from the bare link");
  assertBytes(pp.helloBytes, V.messages.hello, "hello");
  assertBytes(confirmed.accept, V.messages.accept, "accept");
  assertBytes(confirmed.phoneShare, X.phone_share, "phone_share");
});

test("key schedule intermediates match", async () => {
  const { pp, offer: o } = await run();
  assertBytes(await pairingPsk(o.pairingSecret, o.channelId), X.pairing_psk, "pairing_psk");
  assertBytes(Label.PAIR_PSK_ID, X.pairing_psk_id, "pairing_psk_id");
  assertBytes(helloInfo(o.channelId, o.desktopPk, o.relayUrl, o.expiresAt), X.hello_info, "hello_info");
  const th = await pairingTranscriptHash(o.channelId, o.desktopPk, o.relayUrl, o.expiresAt, pp.helloBytes);
  assertBytes(th, X.transcript_hash, "transcript_hash");
  assertBytes(rootExportContext(th), X.root_export_context, "root_export_context");
  assertBytes(acceptAad(th), X.accept_aad, "accept_aad");
  const root = unhex(X.pairing_root);
  assertBytes(await acceptKey(root), X.accept_key, "accept_key");
  assert.equal(await verificationCode(root), X.verification_code);
  const keys = await pairingKeysFromRoot(root);
  for (const [name, value] of Object.entries(X.pairing_keys)) assertBytes(keys[name], value, `pairing key ${name}`);
});

test("both sides show the vector's verification code and end with the vector's records", async () => {
  const { dp, pp, pending, confirmed, prec } = await run();
  assert.equal(pp.verificationCode, X.verification_code);
  assert.equal(pending.verificationCode, X.verification_code);
  assert.equal(pending.phoneName, I.phone_name);
  assert.equal(pending.phoneDeviceId, I.phone_device_id);
  assert.deepEqual(confirmed.record.toDict(), V.records.desktop);
  assert.deepEqual(prec.toDict(), V.records.phone);
  assert.equal(pp.state, PairingState.DONE);
  assert.equal(dp.state, PairingState.DONE);
  // Both ends dropped the attempt's secrets.
  assert.equal(dp.offer.pairingSecret.length, 0);
  assert.equal(pp.offer.pairingSecret.length, 0);
  assert.equal(dp._root, null);
  assert.equal(dp._th, null);
  assert.equal(dp._hello, null);
  assert.equal(pp._root, null);
  assert.throws(() => dp.offerBytes, InvalidState);
  assert.deepEqual(PhonePairingRecord.fromDict(V.records.phone).toDict(), V.records.phone);
  assert.deepEqual(DesktopPairingRecord.fromDict(V.records.desktop).toDict(), V.records.desktop);
});

test("hello and accept plaintexts match, and the hello's HPKE context (RFC 9180, mode_psk)", async () => {
  const helloPt = HelloPlaintext.encode({
    phonePk: unhex(X.phone_pk),
    phoneName: I.phone_name,
    phoneDeviceId: I.phone_device_id,
  });
  assertBytes(helloPt, X.hello_plaintext, "hello_plaintext");
  assert.deepEqual(HelloPlaintext.decode(unhex(X.hello_plaintext)).phoneName, I.phone_name);
  const acceptPt = AcceptPlaintext.encode({
    phoneShare: unhex(X.phone_share),
    desktopName: I.desktop_name,
    desktopDeviceId: I.desktop_device_id,
  });
  assertBytes(acceptPt, X.accept_plaintext, "accept_plaintext");

  assertBytes(header(MessageType.PAIRING_HELLO), X.hello_aad, "hello_aad");
  const ctx = X.hello_hpke;
  assert.equal(ctx.mode, 1);
  const hello = PairingHello.decode(unhex(V.messages.hello));
  const s = await checkHpkeContext(ctx, {
    recipient: await KeyPair.fromPrivateBytes(unhex(X.desktop_sk)),
    enc: hello.enc,
    info: unhex(X.hello_info),
    psk: unhex(X.pairing_psk),
    pskId: unhex(X.pairing_psk_id),
    aad: unhex(X.hello_aad),
    ciphertext: hello.ciphertext,
    plaintext: X.hello_plaintext,
  });
  // The pairing root is the exporter's output for the transcript's context.
  assertBytes(await hpkeExport(s.exporterSecret, unhex(X.root_export_context), 32), X.pairing_root, "pairing_root");
  // The accept opens under the accept key with a zero nonce.
  const accept = PairingAccept.decode(unhex(V.messages.accept));
  const opened = await aesGcmOpen(unhex(X.accept_key), new Uint8Array(12), accept.ciphertext, unhex(X.accept_aad));
  assertBytes(opened, X.accept_plaintext, "accept opened");
});

test("the hello decodes into its two fields", async () => {
  const hello = PairingHello.decode(unhex(V.messages.hello));
  assert.equal(hello.enc.length, 32);
  assert.equal(hex(PairingHello.encode(hello)), V.messages.hello);
});

test("a non-extractable phone identity pairs with the desktop (what the app does)", async () => {
  const ids = replayRng(V.draws.identities);
  const desktop = await KeyPair.derive(ids(32));
  const phone = await KeyPair.generateNonExtractable();
  assert.equal(phone.extractable, false);
  const dp = await DesktopPairing.create(desktop, I.relay_url, { now: I.now_offer });
  const pp = await PhonePairing.create(dp.offerBytes, phone, "Phone", "dev-2", { now: I.now_hello });
  const pending = await dp.receiveHello(pp.helloBytes, { now: I.now_hello });
  assert.equal(pending.verificationCode, pp.verificationCode);
  const { accept, record, phoneShare } = await dp.confirm("Desk", "desk-2", { now: I.now_confirm });
  const prec = await pp.receiveAccept(accept, { now: I.now_accept });
  assert.deepEqual(prec.keys, record.keys);
  assert.equal(hex(prec.phoneShare), hex(phoneShare));
  assert.equal(hex(record.phonePk), hex(phone.public));
});

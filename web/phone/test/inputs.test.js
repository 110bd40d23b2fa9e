/** Input checks: names, device ids, the relay URL and stored state (mirror of tests/test_protocol_inputs.py). */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DesktopPairing,
  KeyPair,
  MalformedMessage,
  PairingOffer,
  PairingState,
  PhonePairing,
  ReplayGuard,
  b64e,
  checkDeviceId,
  checkName,
} from "../src/protocol/index.js";
import { utf8 } from "../src/protocol/encoding.js";

const NOW = 1_800_000_000;
const RELAY = "https://relay.test";
const BAD_NAMES = [
  "",
  "x".repeat(65),
  "é".repeat(33),
  "Desk\x00top",
  "Desk\ntop",
  "Desk\x1b[31mtop",
  "Desk\x85top",
  "Desk\u202etop",
  "Desk\u202atop",
  "Desk\u2066top",
  "Desk\u2069top",
  "Desk\u200btop",
  "Desk\u200ftop",
  "Desk\u2028top",
  "Desk\ufefftop",
  "Desk\u{e0041}top",
  "Desk\ud800top",
];
const GOOD_NAMES = ["D", "Ada's laptop", "x".repeat(64), "é".repeat(32), "工作站", "👩\u200d💻 dev box", "کار\u200cگاه"];
const BAD_IDS = ["", "a b", "x".repeat(65), "dévice", "tab\there", "\x7f"];
const malformed = (pattern) => (err) => err instanceof MalformedMessage && pattern.test(err.message);

async function awaitingConfirm() {
  const dp = await DesktopPairing.create(await KeyPair.generate(), RELAY, { now: NOW });
  const pp = await PhonePairing.create(dp.offerBytes, await KeyPair.generate(), "P", "p", { now: NOW });
  await dp.receiveHello(pp.helloBytes, { now: NOW });
  return { dp, pp };
}

test("names: the same rule as Python's check_name", () => {
  for (const name of BAD_NAMES) assert.throws(() => checkName(name, "device name"), MalformedMessage, JSON.stringify(name));
  for (const name of GOOD_NAMES) assert.equal(utf8(checkName(name, "device name"), "device name"), name);
  for (const id of BAD_IDS) assert.throws(() => checkDeviceId(id, "id"), MalformedMessage, JSON.stringify(id));
});

test("the desktop refuses to send a name the phone would refuse, and the attempt stays open", async () => {
  const { dp, pp } = await awaitingConfirm();
  for (const name of BAD_NAMES) {
    await assert.rejects(dp.confirm(name, "desk-1", { now: NOW }), malformed(/desktop name/));
  }
  for (const id of BAD_IDS) {
    await assert.rejects(dp.confirm("Desktop", id, { now: NOW }), malformed(/desktop device id/));
  }
  assert.equal(dp.state, PairingState.AWAITING_CONFIRM);
  const { accept } = await dp.confirm("Desktop", "desk-1", { now: NOW });
  assert.equal((await pp.receiveAccept(accept, { now: NOW })).desktopName, "Desktop");
});

test("the phone refuses to send a name or device id the desktop would refuse", async () => {
  const dp = await DesktopPairing.create(await KeyPair.generate(), RELAY, { now: NOW });
  const phone = await KeyPair.generate();
  for (const name of BAD_NAMES) {
    await assert.rejects(PhonePairing.create(dp.offerBytes, phone, name, "p", { now: NOW }), malformed(/phone name/));
  }
  for (const id of BAD_IDS) {
    await assert.rejects(PhonePairing.create(dp.offerBytes, phone, "P", id, { now: NOW }), malformed(/phone device id/));
  }
});

test("a relay URL with a trailing slash is refused, not rewritten", async () => {
  const offer = (relayUrl) => ({
    channelId: new Uint8Array(16),
    pairingSecret: new Uint8Array(32),
    desktopPk: new Uint8Array(32).fill(9),
    relayUrl,
    expiresAt: NOW + 60,
  });
  assert.equal(PairingOffer.decode(PairingOffer.encode(offer("https://r.test/relay"))).relayUrl, "https://r.test/relay");
  assert.throws(() => PairingOffer.encode(offer("https://r.test/")), malformed(/must not end with/));
  // Bytes the encoder refuses: swap the URL field of a good offer.
  const good = PairingOffer.encode(offer("https://r.test"));
  const head = good.slice(0, 4 + 2 + 16 + 2 + 32 + 2 + 32);
  const tail = good.slice(head.length + 2 + "https://r.test".length);
  for (const bad of ["https://r.test/", "https://"]) {
    const url = new TextEncoder().encode(bad);
    const data = new Uint8Array([...head, 0, url.length, ...url, ...tail]);
    assert.throws(() => PairingOffer.decode(data), malformed(/must not end with/));
  }
  const dp = await DesktopPairing.create(await KeyPair.generate(), RELAY + "/", { now: NOW });
  assert.equal(dp.offer.relayUrl, RELAY);
});

test("the replay guard refuses an expiry that is not a time", () => {
  const rid = b64e(new Uint8Array(16).fill(1));
  for (const exp of [true, false, -1, 1.5, "1", null]) {
    assert.throws(() => ReplayGuard.fromDict({ [rid]: exp }), MalformedMessage, String(exp));
  }
  assert.equal(ReplayGuard.fromDict({ [rid]: NOW }).size, 1);
});

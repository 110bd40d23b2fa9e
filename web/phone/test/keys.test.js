/** Small-order X25519 keys from a peer are MalformedMessage at every step that takes one. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DesktopPairing,
  KeyPair,
  MalformedMessage,
  PairingOffer,
  PairingState,
  PhonePairing,
  PhonePairingRecord,
  PhoneUnlock,
  PhoneUnlockState,
  UnlockMode,
  UnlockQR,
  bareLink,
  qrMacInput,
  requestParams,
  unhex,
} from "../src/protocol/index.js";
import { mac } from "../src/protocol/primitives.js";
import { loadVector } from "./helpers.js";

// RFC 7748 section 6.1's small-order points (and the non-canonical p, p+1),
// each also with the top bit set, which X25519 ignores. Same list as tests/test_attack_relay.py.
const BASE = [
  "00".repeat(32),
  "01" + "00".repeat(31),
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ec" + "ff".repeat(30) + "7f",
  "ed" + "ff".repeat(30) + "7f",
  "ee" + "ff".repeat(30) + "7f",
].map(unhex);
const SMALL_ORDER = [
  ...BASE,
  ...BASE.map((k) => {
    const high = k.slice();
    high[31] |= 0x80;
    return high;
  }),
];
const NOW = 1_800_000_000;
const U = loadVector("unlock.json");

const malformed = (pattern) => (err) => err instanceof MalformedMessage && pattern.test(err.message);

test("an offer naming a small-order desktop key is malformed", async () => {
  const phone = await KeyPair.generate();
  for (const desktopPk of SMALL_ORDER) {
    const offer = PairingOffer.encode({
      channelId: new Uint8Array(16),
      pairingSecret: new Uint8Array(32),
      desktopPk,
      relayUrl: "https://relay.test",
      expiresAt: NOW + 600,
    });
    await assert.rejects(PhonePairing.create(offer, phone, "P", "p", { now: NOW }), malformed(/desktop's key is not usable/));
    await assert.rejects(
      PhonePairing.create(bareLink(offer), phone, "P", "p", { now: NOW }),
      malformed(/desktop's key is not usable/),
    );
  }
});

test("a hello carrying a small-order phone key is malformed and changes nothing", async () => {
  const real = await KeyPair.generate();
  for (const pk of SMALL_ORDER.slice(0, 3)) {
    const dp = await DesktopPairing.create(await KeyPair.generate(), "https://relay.test", { now: NOW });
    const fake = new KeyPair(pk, real.pair);
    const pp = await PhonePairing.create(dp.offerBytes, fake, "P", "p", { now: NOW });
    await assert.rejects(dp.receiveHello(pp.helloBytes, { now: NOW }), malformed(/phone's key is not usable/));
    assert.equal(dp.state, PairingState.WAITING_HELLO);
  }
});

test("a request with a small-order ephemeral key is refused at the scan and cannot be answered", async () => {
  const prec = PhonePairingRecord.fromDict(U.pairing_records.phone);
  const phone = await KeyPair.generate();
  const keys = prec.keys;
  for (const epk of SMALL_ORDER) {
    const params = requestParams(new Uint8Array(16).fill(7), epk, NOW, 120, UnlockMode.SCAN);
    const qrSecret = new Uint8Array(16).fill(9);
    const qr = UnlockQR.encode({
      pairingId: keys.pairing_id,
      requestId: params.requestId,
      qrSecret,
      ephemeralPk: epk,
      createdAt: NOW,
      ttl: 120,
      mac: await mac(keys.request_mac_key, qrMacInput(keys.pairing_id, qrSecret, params)),
    });
    await assert.rejects(PhoneUnlock.fromQr(qr, [prec], phone, { now: NOW }), malformed(/ephemeral key is not usable/));
    for (const answer of ["approve", "deny"]) {
      const pu = new PhoneUnlock(prec, phone, params, qrSecret);
      await assert.rejects(pu[answer]({ now: NOW }), malformed(/ephemeral key is not usable/));
      assert.equal(pu.state, PhoneUnlockState.FAILED);
      assert.equal(pu.approvedShareSent, false);
    }
  }
});

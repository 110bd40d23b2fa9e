/** State machines: the phone's answer (verified -> answered/expired/failed) and secrets dropped at the end. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AlreadyAnswered,
  DesktopPairingRecord,
  DesktopUnlock,
  InvalidState,
  KeyPair,
  PhonePairingRecord,
  PhoneUnlock,
  PhoneUnlockState,
  RequestExpired,
  UnlockState,
  unhex,
} from "../src/protocol/index.js";
import { loadVector } from "./helpers.js";

const U = loadVector("unlock.json");
const P = loadVector("pairing.json");
const NOW = 1_800_000_000;

async function request({ ttl = 120 } = {}) {
  const drec = DesktopPairingRecord.fromDict(U.pairing_records.desktop);
  const prec = PhonePairingRecord.fromDict(U.pairing_records.phone);
  const phone = await KeyPair.fromPrivateBytes(unhex(P.intermediate.phone_sk));
  const du = await DesktopUnlock.create(drec, { now: NOW, ttl });
  const pu = await PhoneUnlock.fromQr(du.qrBytes, [prec], phone, { now: NOW });
  return { du, pu };
}

test("the phone answers once: verified -> answered, then every step is AlreadyAnswered", async () => {
  const { du, pu } = await request();
  assert.equal(pu.state, PhoneUnlockState.VERIFIED);
  assert.equal(pu.answered, false);
  const seen = await pu.seen();
  const reply = await pu.approve({ now: NOW });
  assert.equal(pu.state, PhoneUnlockState.ANSWERED);
  assert.equal(pu.answered, true);
  assert.equal(pu._qrSecret, null);
  await assert.rejects(pu.approve({ now: NOW }), AlreadyAnswered);
  await assert.rejects(pu.deny({ now: NOW }), AlreadyAnswered);
  await assert.rejects(pu.seen(), AlreadyAnswered);
  await du.receiveSeen(seen, { now: NOW });
  const outcome = await du.receiveReply(reply, { now: NOW });
  assert.equal(outcome.approved, true);
  assert.equal(du.state, UnlockState.APPROVED);
  assert.equal(du._ephemeral, null);
  assert.equal(du._qrSecret, null);
  assert.equal(du.qrBytes, null);
});

test("two concurrent answers: only one reply is made", async () => {
  const { pu } = await request();
  const results = await Promise.allSettled([pu.approve({ now: NOW }), pu.deny({ now: NOW })]);
  assert.deepEqual(
    results.map((r) => r.status),
    ["fulfilled", "rejected"],
  );
  assert.ok(results[1].reason instanceof AlreadyAnswered);
});

test("an answer after the lifetime: expired, nothing sent, and no later answer", async () => {
  const { pu } = await request({ ttl: 30 });
  await assert.rejects(pu.approve({ now: NOW + 100 }), RequestExpired);
  assert.equal(pu.state, PhoneUnlockState.EXPIRED);
  assert.equal(pu.approvedShareSent, false);
  assert.equal(pu._qrSecret, null);
  await assert.rejects(pu.deny({ now: NOW }), InvalidState);
});

test("the desktop drops its secrets when a request is cancelled or expires", async () => {
  for (const end of ["cancelled", "expired"]) {
    const { du } = await request();
    if (end === "cancelled") du.cancel();
    else assert.equal(du.checkExpiry({ now: NOW + 1000 }), true);
    assert.equal(du.state, end);
    assert.equal(du._ephemeral, null);
    assert.equal(du._qrSecret, null);
    assert.equal(du.qrBytes, null);
  }
});

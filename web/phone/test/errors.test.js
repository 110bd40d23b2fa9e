/** Truncated, oversized and bit-flipped messages raise the right error class, never anything else. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthenticationFailed,
  MalformedMessage,
  MessageType,
  ProtocolError,
  UnexpectedMessage,
  UnknownPairing,
  UnsupportedVersion,
  WrongRequest,
  b64d,
  parseLink,
  unhex,
} from "../src/protocol/index.js";
import { CONSUMERS, mutations, outcome } from "./consumers.js";

const CODES = {
  malformed: MalformedMessage.code,
  version: UnsupportedVersion.code,
  unexpected: UnexpectedMessage.code,
  auth: AuthenticationFailed.code,
  unknown: UnknownPairing.code,
  wrong: WrongRequest.code,
};

test("error classes share one base and carry the Python codes", () => {
  const err = new UnknownPairing("x");
  assert.ok(err instanceof ProtocolError);
  assert.ok(err instanceof Error);
  assert.equal(err.code, "unknown_pairing");
  assert.equal(err.name, "UnknownPairing");
  assert.deepEqual(Object.values(CODES), [
    "malformed",
    "unsupported_version",
    "unexpected",
    "authentication_failed",
    "unknown_pairing",
    "wrong_request",
  ]);
});

for (const [name, { bytes }] of Object.entries(CONSUMERS)) {
  test(`${name}: the vector bytes are accepted`, async () => {
    assert.equal(await outcome(name, unhex(bytes)), "ok");
  });

  test(`${name}: every truncation, extra byte and oversize is malformed`, async () => {
    for (const [label, data] of mutations(unhex(bytes))) {
      if (label.startsWith("flip:")) continue;
      assert.equal(await outcome(name, data), CODES.malformed, `${name} ${label}`);
    }
  });

  test(`${name}: header bit flips are refused as malformed, wrong version or wrong type`, async () => {
    const original = unhex(bytes);
    const flip = (i) => {
      const m = original.slice();
      m[i] ^= 0x01;
      return m;
    };
    assert.equal(await outcome(name, flip(0)), CODES.malformed);
    assert.equal(await outcome(name, flip(1)), CODES.malformed);
    assert.equal(await outcome(name, flip(2)), CODES.version);
    const known = Object.values(MessageType).includes(original[3] ^ 0x01);
    assert.equal(await outcome(name, flip(3)), known ? CODES.unexpected : CODES.malformed);
  });
}

const AUTHENTICATED = { hello: "auth", accept: "auth", qr: "auth", push: "auth", seen: "auth", reply: "auth" };

for (const [name, kind] of Object.entries(AUTHENTICATED)) {
  test(`${name}: a bit flip in its tag or ciphertext fails authentication`, async () => {
    const original = unhex(CONSUMERS[name].bytes);
    for (const i of [original.length - 1, original.length - 16]) {
      const m = original.slice();
      m[i] ^= 0x80;
      assert.equal(await outcome(name, m), CODES[kind], `${name} flip at ${i}`);
    }
  });
}

test("a QR naming another pairing is UnknownPairing; a reply for another request is WrongRequest", async () => {
  const qr = unhex(CONSUMERS.qr.bytes);
  qr[4 + 2] ^= 0x01; // first byte of pairing_id
  assert.equal(await outcome("qr", qr), CODES.unknown);
  const push = unhex(CONSUMERS.push.bytes);
  push[4 + 2] ^= 0x01; // first byte of routing_id
  assert.equal(await outcome("push", push), CODES.unknown);
  const reply = unhex(CONSUMERS.reply.bytes);
  reply[4 + 2] ^= 0x01; // first byte of request_id
  assert.equal(await outcome("reply", reply), CODES.wrong);
});

test("links and base64url are parsed strictly", () => {
  assert.throws(() => parseLink("https://relay.example/app/"), MalformedMessage);
  assert.throws(() => parseLink("https://relay.example/app/#x=abc"), MalformedMessage);
  assert.throws(() => parseLink("unlatch:"), MalformedMessage);
  assert.throws(() => parseLink("x".repeat(4097)), MalformedMessage);
  assert.throws(() => b64d("AB=="), MalformedMessage);
  assert.throws(() => b64d("A"), MalformedMessage);
  assert.throws(() => b64d("AB"), MalformedMessage); // non-canonical: low bits set
  assert.throws(() => b64d("a+b/"), MalformedMessage);
  assert.deepEqual(Array.from(b64d("AA")), [0]);
  assert.throws(() => parseLink(42), MalformedMessage);
});

/** Shared helpers of the node tests: vector loading, the recorded-draws rng, RFC 9180 context checks. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

import { HkdfSha256 } from "@hpke/core";

import { KeyPair, SUITE, concat, hex, unhex } from "../src/protocol/index.js";
import { u16, utf8Bytes } from "../src/protocol/encoding.js";

const HERE = dirname(fileURLToPath(import.meta.url));
export const VECTOR_DIR = join(HERE, "..", "..", "..", "tests", "vectors");

export function loadVector(name) {
  return JSON.parse(readFileSync(join(VECTOR_DIR, name), "utf-8"));
}

/**
 * An rng that hands out a step's recorded draws in order, checking each
 * request's size, so the JavaScript consumes randomness exactly as Python did.
 */
export function replayRng(draws) {
  const queue = draws.map(unhex);
  const rng = (n) => {
    assert.ok(queue.length > 0, `rng asked for ${n} bytes after the recorded draws ran out`);
    const next = queue.shift();
    assert.equal(next.length, n, `rng asked for ${n} bytes, the recorded draw has ${next.length}`);
    return next;
  };
  rng.done = () => assert.equal(queue.length, 0, `${queue.length} recorded draws were not used`);
  return rng;
}

/** assert.equal on hex, so a mismatch shows which bytes differ. */
export function assertBytes(actual, expectedHex, what) {
  assert.equal(hex(actual), expectedHex, `${what} differs from the vector`);
}

/*
 * RFC 9180 context values, recomputed with @hpke/core's own pieces.
 *
 * The vectors record, for every HPKE use, the values RFC 9180's appendix
 * lists (shared_secret, key_schedule_context, secret, key, base_nonce,
 * exporter_secret). These helpers recompute them independently of the
 * Python generator: the shared secret by @hpke/core's DHKEM Decap, the rest
 * by the key schedule of RFC 9180 section 5.1 over @hpke/core's labelled
 * HKDF-SHA256, and then open the message's ciphertext with WebCrypto's
 * AES-256-GCM under that key and base nonce.
 */
const HPKE_SUITE_ID = concat(utf8Bytes("HPKE"), u16(0x0020), u16(0x0001), u16(0x0002));
const EMPTY = new Uint8Array(0);

function labelledKdf() {
  const kdf = new HkdfSha256();
  kdf.init(HPKE_SUITE_ID);
  return kdf;
}

/** RFC 9180 section 5.1 KeySchedule for our suite. */
export async function hpkeKeySchedule({ mode, sharedSecret, info, psk, pskId }) {
  const kdf = labelledKdf();
  const extract = async (salt, label, ikm) =>
    new Uint8Array(await kdf.labeledExtract(salt, utf8Bytes(label), ikm));
  const expand = async (prk, label, ctx, len) =>
    new Uint8Array(await kdf.labeledExpand(prk, utf8Bytes(label), ctx, len));
  const keyScheduleContext = concat(
    new Uint8Array([mode]),
    await extract(EMPTY, "psk_id_hash", pskId),
    await extract(EMPTY, "info_hash", info),
  );
  const secret = await extract(sharedSecret, "secret", psk);
  return {
    keyScheduleContext,
    secret,
    key: await expand(secret, "key", keyScheduleContext, 32),
    baseNonce: await expand(secret, "base_nonce", keyScheduleContext, 12),
    exporterSecret: await expand(secret, "exp", keyScheduleContext, 32),
  };
}

/** RFC 9180 section 5.3 Export from a recorded exporter secret. */
export async function hpkeExport(exporterSecret, exporterContext, length) {
  return new Uint8Array(await labelledKdf().labeledExpand(exporterSecret, utf8Bytes("sec"), exporterContext, length));
}

/** AES-256-GCM open with WebCrypto (the tag is the last 16 bytes). */
export async function aesGcmOpen(key, nonce, ciphertext, aad) {
  const k = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, k, ciphertext));
}

/**
 * Check one recorded HPKE context (`ctx`, as in the JSON) against its message:
 * Decap gives the shared secret, the key schedule gives every other value, and
 * the key and base nonce open the ciphertext to the recorded plaintext.
 */
export async function checkHpkeContext(ctx, { recipient, enc, senderPk, info, psk, pskId, aad, ciphertext, plaintext }) {
  const ephemeral = await KeyPair.fromPrivateBytes(unhex(ctx.skEm));
  assertBytes(ephemeral.public, hex(enc), "HPKE enc from skEm");
  const senderPublicKey = senderPk ? await SUITE.kem.deserializePublicKey(senderPk) : undefined;
  const shared = new Uint8Array(await SUITE.kem.decap({ recipientKey: recipient.pair, enc, senderPublicKey }));
  assertBytes(shared, ctx.shared_secret, "HPKE shared_secret");
  const s = await hpkeKeySchedule({ mode: ctx.mode, sharedSecret: shared, info, psk, pskId });
  assertBytes(s.keyScheduleContext, ctx.key_schedule_context, "HPKE key_schedule_context");
  assertBytes(s.secret, ctx.secret, "HPKE secret");
  assertBytes(s.key, ctx.key, "HPKE key");
  assertBytes(s.baseNonce, ctx.base_nonce, "HPKE base_nonce");
  assertBytes(s.exporterSecret, ctx.exporter_secret, "HPKE exporter_secret");
  assertBytes(await aesGcmOpen(s.key, s.baseNonce, ciphertext, aad), plaintext, "plaintext opened with key/base_nonce");
  return s;
}

/**
 * Thin, labelled wrappers over the standard primitives (mirror of unlatch/protocol/primitives.py).
 *
 * HKDF-SHA256, HMAC-SHA256, SHA-256 and AES-256-GCM come from WebCrypto
 * (`crypto.subtle`, native in browsers and Node 20); HPKE (RFC 9180) from the
 * maintained `@hpke/core`, whose DHKEM(X25519) is itself WebCrypto's X25519.
 * Nothing here invents a mode: this module fixes parameters and turns library
 * failures into ProtocolError subclasses.
 */

import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { KEY_LEN, MAC_LEN } from "./constants.js";
import { equalBytes } from "./encoding.js";
import { AuthenticationFailed, MalformedMessage } from "./errors.js";

const subtle = globalThis.crypto.subtle;

/** The one HPKE suite of v1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. */
export const SUITE = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** The production source of random bytes; tests inject a replay of recorded draws. */
export function systemRandom(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** HKDF-SHA256 (RFC 5869) with an explicit salt and a labelled info. */
export async function hkdf(ikm, { salt, info, length = KEY_LEN }) {
  const key = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, key, length * 8);
  return new Uint8Array(bits);
}

export async function sha256(data) {
  return new Uint8Array(await subtle.digest("SHA-256", data));
}

/** HMAC-SHA256 truncated to MAC_LEN bytes (128-bit tags). */
export async function mac(key, data) {
  const k = await subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", k, data)).slice(0, MAC_LEN);
}

/** Check a `mac` tag; the comparison's time depends only on the lengths. */
export async function verifyMac(key, data, tag, what) {
  if (!equalBytes(await mac(key, data), tag)) {
    throw new AuthenticationFailed(`${what} failed authentication (forged or altered)`);
  }
}

export async function aeadSeal(key, nonce, plaintext, aad) {
  const k = await subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
  return new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 }, k, plaintext),
  );
}

export async function aeadOpen(key, nonce, ciphertext, aad, what) {
  const k = await subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(
      await subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 }, k, ciphertext),
    );
  } catch {
    throw new AuthenticationFailed(`${what} failed authentication (forged or altered)`);
  }
}

/**
 * An X25519 key pair in HPKE form.
 *
 * `derive(seed)` is RFC 9180 DeriveKeyPair, so the vectors' keys come out
 * the same as in Python. The phone's own identity is instead made by
 * `generateNonExtractable()`: a WebCrypto key whose private half no script
 * can ever read (it can only be used, through deriveBits).
 */
export class KeyPair {
  constructor(publicBytes, cryptoPair) {
    this.public = publicBytes;
    this.pair = cryptoPair;
  }

  static async derive(seed) {
    if (!(seed instanceof Uint8Array) || seed.length !== KEY_LEN) throw new RangeError("a key seed is 32 bytes");
    const pair = await SUITE.kem.deriveKeyPair(seed);
    return KeyPair.fromCryptoKeyPair(pair);
  }

  static async generate(rng = systemRandom) {
    return KeyPair.derive(rng(KEY_LEN));
  }

  /** A fresh identity whose private key is not extractable (kept in IndexedDB as a CryptoKey). */
  static async generateNonExtractable() {
    const pair = await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
    return KeyPair.fromCryptoKeyPair(pair);
  }

  static async fromCryptoKeyPair(pair) {
    const pub = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
    return new KeyPair(pub, pair);
  }

  static async fromPrivateBytes(privateBytes) {
    if (!(privateBytes instanceof Uint8Array) || privateBytes.length !== KEY_LEN) {
      throw new RangeError("an X25519 private key is 32 bytes");
    }
    const sk = await SUITE.kem.deserializePrivateKey(privateBytes);
    const pk = await derivePublic(sk);
    return KeyPair.fromCryptoKeyPair({ privateKey: sk, publicKey: pk });
  }

  get extractable() {
    return this.pair.privateKey.extractable;
  }

  /** The raw private scalar; only for extractable keys (desktop side, vectors). */
  async privateBytes() {
    return new Uint8Array(await SUITE.kem.serializePrivateKey(this.pair.privateKey));
  }
}

async function derivePublic(sk) {
  const jwk = await subtle.exportKey("jwk", sk);
  delete jwk.d;
  delete jwk.key_ops;
  return subtle.importKey("jwk", jwk, { name: "X25519" }, true, []);
}

// A WebCrypto X25519 key used only to test peer points: deriveBits refuses an
// all-zero shared secret, which is what every small-order point gives.
let probeKey = null;

/**
 * Refuse a peer X25519 key that is not usable: wrong size, or of small order
 * (all zeros, 01 00.., e0eb7a.. and the rest of RFC 7748's list). Mirrors
 * check_public_key in Python: a MalformedMessage that names the key.
 */
export async function checkPublicKey(pk, what) {
  if (!(pk instanceof Uint8Array) || pk.length !== KEY_LEN) {
    throw new MalformedMessage(`${what} is not usable: an X25519 key is ${KEY_LEN} bytes`);
  }
  probeKey ??= await subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  try {
    const peer = await subtle.importKey("raw", pk, { name: "X25519" }, false, []);
    await subtle.deriveBits({ name: "X25519", public: peer }, probeKey.privateKey, 256);
  } catch {
    throw new MalformedMessage(`${what} is not usable (a small-order X25519 point)`);
  }
}

async function publicKey(pk, what) {
  await checkPublicKey(pk, what);
  try {
    return await SUITE.kem.deserializePublicKey(pk);
  } catch {
    throw new MalformedMessage(`${what} is not a valid X25519 public key`);
  }
}

/**
 * HPKE single-shot seal in mode_psk (no `sender`) or mode_auth_psk.
 *
 * Returns `{enc, ciphertext, exported}`; `exported` is the exporter output
 * for `await exportContext(enc, ciphertext)` (empty if none was asked for):
 * a (possibly async) function, because the pairing binds the exported secret to a transcript
 * that includes the ciphertext itself. `recipient` names the peer key in the
 * error if it is not usable (it came from a message: MalformedMessage).
 */
export async function hpkeSeal({
  recipientPk,
  info,
  aad,
  plaintext,
  psk,
  pskId,
  ephemeralSeed,
  sender = null,
  exportContext = null,
  exportLen = KEY_LEN,
  recipient = "the recipient's key",
}) {
  const recipientPublicKey = await publicKey(recipientPk, recipient);
  let ctx;
  try {
    ctx = await SUITE.createSenderContext({
      recipientPublicKey,
      info,
      psk: { id: pskId, key: psk },
      senderKey: sender ? sender.pair : undefined,
      ekm: ephemeralSeed,
    });
  } catch {
    throw new MalformedMessage(`${recipient} is not usable for HPKE`);
  }
  const enc = new Uint8Array(ctx.enc);
  const ciphertext = new Uint8Array(await ctx.seal(plaintext, aad));
  const exported = exportContext
    ? new Uint8Array(await ctx.export(await exportContext(enc, ciphertext), exportLen))
    : new Uint8Array(0);
  return { enc, ciphertext, exported };
}

/** Open an `hpkeSeal` ciphertext; any failure is AuthenticationFailed. */
export async function hpkeOpen({
  recipient,
  enc,
  info,
  aad,
  ciphertext,
  psk,
  pskId,
  senderPk = null,
  exportContext = null,
  exportLen = KEY_LEN,
  what,
}) {
  const senderPublicKey = senderPk ? await publicKey(senderPk, "sender key") : undefined;
  let ctx;
  let plaintext;
  try {
    ctx = await SUITE.createRecipientContext({
      recipientKey: recipient.pair,
      enc,
      info,
      psk: { id: pskId, key: psk },
      senderPublicKey,
    });
    plaintext = new Uint8Array(await ctx.open(ciphertext, aad));
  } catch {
    throw new AuthenticationFailed(`${what} failed authentication (forged or altered)`);
  }
  const exported = exportContext ? new Uint8Array(await ctx.export(exportContext, exportLen)) : new Uint8Array(0);
  return { plaintext, exported };
}

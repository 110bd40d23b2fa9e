/**
 * The app's own integrity: the build manifest, its release signature, and the
 * rule that decides whether a new build may replace the installed one.
 *
 * Why: the app holds K_P and every pairing key, and its code comes from a
 * server (the relay, or the origin the operator chose) that the threat model
 * does not trust. Once installed, the service worker serves only the files it
 * installed (their SHA-256 are compiled into sw.js by build.mjs), and a new
 * build is pinned only when app-manifest.json is signed by the release key
 * this phone pinned at its first install, or when the user approves it with
 * the version shown (docs/phone-app.md, "Pinned code").
 *
 * Pure logic, no DOM: used by the service worker, by build.mjs (to write the
 * manifest) and by the node tests. The desktop reads the same manifest
 * (unlatch/desktop/appcheck.py).
 */

import { b64d, concat, hex } from "../protocol/encoding.js";

export const MANIFEST_FILE = "app-manifest.json";
export const SIGNATURE_FILE = "app-manifest.sig";
export const MANIFEST_FORMAT = "unlatch-phone-app/1";
export const MAX_MANIFEST_BYTES = 16 * 1024;
export const MAX_MANIFEST_FILES = 64;
export const SIGNATURE_BYTES = 64; // ECDSA P-256, r || s (WebCrypto's format)

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DIGEST = /^[0-9a-f]{64}$/;
const VERSION = /^\d{1,6}\.\d{1,6}\.\d{1,6}$/;
const BUILD_ID = /^[0-9a-f]{12}$/;
const KEY_KINDS = ["release", "development"];

/** A manifest, signature or served file that is not what it must be; `message` is for the user. */
export class IntegrityError extends Error {
  constructor(message) {
    super(message);
    this.name = "IntegrityError";
  }
}

export async function sha256Hex(bytes) {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** The id of a release key: the first 16 hex digits of SHA-256 of its uncompressed point. */
export async function keyId(jwk) {
  const point = concat(new Uint8Array([4]), b64d(jwk.x, "key x", 64), b64d(jwk.y, "key y", 64));
  return (await sha256Hex(point)).slice(0, 16);
}

/** The manifest's bytes: one canonical JSON text (sorted names), so a signature is over exact bytes. */
export function encodeManifest({ version, build, key, keyId: id, files }) {
  const sorted = {};
  for (const name of Object.keys(files).sort()) sorted[name] = files[name];
  const data = { format: MANIFEST_FORMAT, version, build, key, key_id: id, files: sorted };
  return new TextEncoder().encode(JSON.stringify(data, null, 2) + "\n");
}

/** Parse and check a manifest (bounded): {version, build, key, keyId, files}. */
export function parseManifest(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_MANIFEST_BYTES) {
    throw new IntegrityError("the app manifest is missing or too large");
  }
  let data;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new IntegrityError("the app manifest is not JSON");
  }
  const ok =
    data &&
    typeof data === "object" &&
    data.format === MANIFEST_FORMAT &&
    typeof data.version === "string" &&
    VERSION.test(data.version) &&
    typeof data.build === "string" &&
    BUILD_ID.test(data.build) &&
    KEY_KINDS.includes(data.key) &&
    typeof data.key_id === "string" &&
    /^[0-9a-f]{16}$/.test(data.key_id) &&
    data.files &&
    typeof data.files === "object" &&
    !Array.isArray(data.files);
  if (!ok) throw new IntegrityError("the app manifest does not have the expected fields");
  const names = Object.keys(data.files);
  if (names.length === 0 || names.length > MAX_MANIFEST_FILES) {
    throw new IntegrityError("the app manifest lists no files or too many");
  }
  for (const name of names) {
    if (!FILE_NAME.test(name) || typeof data.files[name] !== "string" || !DIGEST.test(data.files[name])) {
      throw new IntegrityError("the app manifest lists a file with a bad name or digest");
    }
  }
  return { version: data.version, build: data.build, key: data.key, keyId: data.key_id, files: { ...data.files } };
}

/** True when `signature` (64 bytes, r||s) is the release key's ECDSA P-256/SHA-256 signature of `bytes`. */
export async function verifySignature(bytes, signature, jwk) {
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_BYTES) return false;
  let key;
  try {
    key = await crypto.subtle.importKey(
      "jwk",
      { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, ext: true },
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["verify"],
    );
  } catch {
    return false;
  }
  return crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, bytes);
}

/** -1, 0 or 1: numeric comparison of "major.minor.patch". */
export function compareVersions(a, b) {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  return 0;
}

/** Names whose digest in `actual` differs from `expected` (or is missing), sorted. */
export function changedFiles(expected, actual) {
  return Object.keys(expected)
    .filter((name) => actual[name] !== expected[name])
    .sort();
}

/** What the phone pins for a build: its files and the release key that later updates must be signed by. */
export function pinOf(build, releaseKey = build.releaseKey) {
  return {
    version: build.version,
    build: build.build,
    keyKind: build.keyKind,
    files: { ...build.files },
    releaseKey: { kty: "EC", crv: "P-256", x: releaseKey.x, y: releaseKey.y },
  };
}

/**
 * May `build` (the service worker being installed) replace `pin` (what this
 * phone runs)? `manifestBytes`/`signature` are the server's app-manifest.json
 * and .sig (null when they could not be fetched).
 *
 * Returns {accept, pin, reason}: `pin` is what to store when accepted. The
 * first install is trusted (nothing is pinned yet: the first server is
 * believed); after that only a manifest signed by the PINNED key (not the
 * key the new build carries: the server chose that) that describes exactly
 * this build and is not an older version is accepted. Anything else waits
 * for the user (approveUpdate).
 */
export async function decideUpdate({ pin, build, manifestBytes, signature }) {
  if (!pin) return { accept: true, pin: pinOf(build), reason: "first install" };
  if (pin.build === build.build) return { accept: true, pin, reason: "the installed build" };
  const waiting = (reason) => ({ accept: false, pin: null, reason });
  if (!manifestBytes || !signature) return waiting("the server has no signed manifest for it");
  if (!(await verifySignature(manifestBytes, signature, pin.releaseKey))) {
    return waiting("it is not signed by the release key this app pinned");
  }
  let manifest;
  try {
    manifest = parseManifest(manifestBytes);
  } catch (err) {
    return waiting(err.message);
  }
  const described = { ...manifest.files };
  delete described["sw.js"];
  if (manifest.build !== build.build || changedFiles(build.files, described).length || changedFiles(described, build.files).length) {
    return waiting("the signed manifest describes another build");
  }
  if (compareVersions(manifest.version, pin.version) < 0) {
    return waiting(`it is older than the installed version ${pin.version}`);
  }
  return { accept: true, pin: pinOf(build, pin.releaseKey), reason: "signed by the pinned release key" };
}

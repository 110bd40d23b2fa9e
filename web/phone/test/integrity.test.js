/** The app's own integrity (src/lib/integrity.js): manifest, release signature, update decision. */

import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  IntegrityError,
  MAX_MANIFEST_BYTES,
  changedFiles,
  compareVersions,
  decideUpdate,
  encodeManifest,
  keyId,
  parseManifest,
  pinOf,
  sha256Hex,
  verifySignature,
} from "../src/lib/integrity.js";

const DIST = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
const D = (c) => c.repeat(64);

function releaseKey() {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  return { privateKey, jwk: { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y } };
}

const signBytes = (bytes, privateKey) => new Uint8Array(sign("sha256", bytes, { key: privateKey, dsaEncoding: "ieee-p1363" }));

function makeBuild(key, { version = "0.2.0", build = "bbbbbbbbbbbb", files = { "app.js": D("1"), "index.html": D("2") } } = {}) {
  return { version, build, files, releaseKey: key.jwk, keyKind: "release" };
}

async function signedManifest(build, key, extra = {}) {
  const bytes = encodeManifest({
    version: build.version,
    build: build.build,
    key: "release",
    keyId: await keyId(key.jwk),
    files: { ...build.files, "sw.js": D("9") },
    ...extra,
  });
  return { manifestBytes: bytes, signature: signBytes(bytes, key.privateKey) };
}

test("the built dist: its manifest lists every file with its SHA-256 and is signed by the key compiled into sw.js", async () => {
  const bytes = new Uint8Array(readFileSync(join(DIST, "app-manifest.json")));
  const manifest = parseManifest(bytes);
  for (const [name, digest] of Object.entries(manifest.files)) {
    assert.equal(await sha256Hex(readFileSync(join(DIST, name))), digest, name);
  }
  const sw = readFileSync(join(DIST, "sw.js"), "utf-8");
  const jwk = JSON.parse(sw.match(/releaseKey:(\{[^}]*\})/)[1].replace(/(\w+):/g, '"$1":'));
  assert.equal(await keyId(jwk), manifest.keyId);
  const sig = new Uint8Array(readFileSync(join(DIST, "app-manifest.sig")));
  assert.equal(await verifySignature(bytes, sig, jwk), true);
  const tampered = bytes.slice();
  tampered[tampered.length - 3] ^= 1;
  assert.equal(await verifySignature(tampered, sig, jwk), false);
});

test("parseManifest refuses what is not a bounded, well-formed manifest", () => {
  const good = encodeManifest({ version: "1.2.3", build: "abcdefabcdef", key: "release", keyId: "0123456789abcdef", files: { "app.js": D("a") } });
  assert.deepEqual(parseManifest(good).files, { "app.js": D("a") });
  const bad = (obj) => new TextEncoder().encode(JSON.stringify(obj));
  const base = JSON.parse(new TextDecoder().decode(good));
  for (const broken of [
    { ...base, format: "other/1" },
    { ...base, version: "1.2" },
    { ...base, build: "xyz" },
    { ...base, key: "mine" },
    { ...base, files: {} },
    { ...base, files: { "../etc/passwd": D("a") } },
    { ...base, files: { "app.js": "00" } },
    { ...base, files: ["app.js"] },
  ]) {
    assert.throws(() => parseManifest(bad(broken)), IntegrityError);
  }
  assert.throws(() => parseManifest(new Uint8Array(MAX_MANIFEST_BYTES + 1)), IntegrityError);
  assert.throws(() => parseManifest(new Uint8Array([0xff, 0xfe])), IntegrityError);
});

test("a signature is checked against the given key only, in the 64-byte r||s form", async () => {
  const a = releaseKey();
  const b = releaseKey();
  const bytes = new TextEncoder().encode("manifest");
  const sig = signBytes(bytes, a.privateKey);
  assert.equal(await verifySignature(bytes, sig, a.jwk), true);
  assert.equal(await verifySignature(bytes, sig, b.jwk), false);
  assert.equal(await verifySignature(bytes, sig.slice(0, 63), a.jwk), false);
  assert.equal(await verifySignature(bytes, sig, { x: "AA", y: "AA" }), false);
});

test("versions compare numerically, files by digest", () => {
  assert.equal(compareVersions("0.10.0", "0.9.9"), 1);
  assert.equal(compareVersions("1.0.0", "1.0.0"), 0);
  assert.equal(compareVersions("1.0.0", "1.0.1"), -1);
  assert.deepEqual(changedFiles({ "a.js": D("1"), "b.js": D("2") }, { "a.js": D("1"), "b.js": D("3") }), ["b.js"]);
  assert.deepEqual(changedFiles({ "a.js": D("1") }, {}), ["a.js"]);
});

test("the first install is pinned; the same build stays pinned", async () => {
  const key = releaseKey();
  const build = makeBuild(key);
  const first = await decideUpdate({ pin: null, build, manifestBytes: null, signature: null });
  assert.equal(first.accept, true);
  assert.deepEqual(first.pin, pinOf(build));
  const again = await decideUpdate({ pin: first.pin, build, manifestBytes: null, signature: null });
  assert.equal(again.accept, true);
});

test("an update signed by the pinned key is accepted and keeps the pinned key", async () => {
  const key = releaseKey();
  const pin = pinOf(makeBuild(key, { version: "0.1.0", build: "aaaaaaaaaaaa" }));
  const other = releaseKey();
  const build = { ...makeBuild(key), releaseKey: other.jwk }; // the new build names another key: not trusted by itself
  const got = await decideUpdate({ pin, build, ...(await signedManifest(build, key)) });
  assert.equal(got.accept, true, got.reason);
  assert.deepEqual(got.pin.releaseKey, pin.releaseKey);
  assert.equal(got.pin.build, build.build);
});

test("an update not signed by the pinned key waits for the user, whatever key it carries", async () => {
  const pinned = releaseKey();
  const attacker = releaseKey();
  const pin = pinOf(makeBuild(pinned, { version: "0.1.0", build: "aaaaaaaaaaaa" }));
  const build = makeBuild(attacker);
  const signedByAttacker = await signedManifest(build, attacker);
  const got = await decideUpdate({ pin, build, ...signedByAttacker });
  assert.equal(got.accept, false);
  assert.match(got.reason, /not signed by the release key this app pinned/);
  const unsigned = await decideUpdate({ pin, build, manifestBytes: signedByAttacker.manifestBytes, signature: null });
  assert.equal(unsigned.accept, false);
});

test("a signed manifest of another build, or of an older version, does not let an update in", async () => {
  const key = releaseKey();
  const pin = pinOf(makeBuild(key, { version: "0.3.0", build: "aaaaaaaaaaaa" }));
  const build = makeBuild(key);
  // a genuine signed manifest, but of a build whose app.js differs from this worker's
  const otherFiles = await signedManifest({ ...build, files: { ...build.files, "app.js": D("7") } }, key);
  const mismatch = await decideUpdate({ pin, build, ...otherFiles });
  assert.equal(mismatch.accept, false);
  assert.match(mismatch.reason, /another build/);
  // a genuine older release (rollback): 0.2.0 after 0.3.0
  const older = await decideUpdate({ pin, build, ...(await signedManifest(build, key)) });
  assert.equal(older.accept, false);
  assert.match(older.reason, /older than the installed version 0\.3\.0/);
});

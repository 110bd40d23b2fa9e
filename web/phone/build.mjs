/**
 * `npm run build`: web/phone/src -> web/phone/dist (what the relay serves under /app/).
 *
 *   app.js, sw.js        esbuild bundles (IIFE, minified, no runtime loader)
 *   qr-decoder.js        jsQR alone, loaded only where BarcodeDetector is missing
 *   index.html, styles.css   copied
 *   manifest.webmanifest generated
 *   icon*.png, icon.svg  drawn by scripts/icons.mjs
 *   app-manifest.json    every file above with its SHA-256 (lib/integrity.js)
 *   app-manifest.sig     ECDSA P-256 signature of app-manifest.json by the release key
 *
 * The service worker gets the build (version, build id, the SHA-256 of every
 * other file, the release public key) compiled in: it installs only files
 * with those digests, and serves only the code it installed (docs/phone-app.md,
 * "Pinned code"). The desktop compares the files an app origin serves with
 * its own copy of app-manifest.json before it shows a pairing link.
 *
 * The release key: UNLATCH_RELEASE_KEY_FILE names a PKCS#8 PEM P-256 private
 * key (the release process, docs/deploy.md). Without it, a development key is
 * made once on this machine in web/phone/.release-key/ (ignored by git, never
 * packaged) and the manifest says `"key": "development"`.
 */

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

import { ICONS, iconPng, iconSvg } from "./scripts/icons.mjs";
import { MANIFEST_FILE, SIGNATURE_FILE, encodeManifest, keyId } from "./src/lib/integrity.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, "src");
const DIST = join(HERE, "dist");
// The browsers with WebCrypto X25519, which the app cannot do without (src/lib/support.js
// checks it at boot and names these versions).
const TARGET = ["es2022", "chrome133", "safari17", "firefox130"];
const DEV_KEY = join(HERE, ".release-key", "dev-signing-key.pem");
const PACKAGE = JSON.parse(readFileSync(join(HERE, "package.json"), "utf-8"));

/** The release signing key: UNLATCH_RELEASE_KEY_FILE, or this machine's development key. */
function signingKey() {
  const path = process.env.UNLATCH_RELEASE_KEY_FILE;
  if (path) return { key: createPrivateKey(readFileSync(path)), kind: "release" };
  if (!existsSync(DEV_KEY)) {
    mkdirSync(dirname(DEV_KEY), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeFileSync(DEV_KEY, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    chmodSync(DEV_KEY, 0o600);
  }
  return { key: createPrivateKey(readFileSync(DEV_KEY)), kind: "development" };
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

rmSync(DIST, { recursive: true, force: true });
mkdirSync(DIST, { recursive: true });

const common = { bundle: true, format: "iife", target: TARGET, minify: true, legalComments: "eof", logLevel: "warning" };

await esbuild.build({ ...common, entryPoints: [join(SRC, "app.js")], outfile: join(DIST, "app.js") });
await esbuild.build({ ...common, entryPoints: [join(SRC, "qr-decoder.js")], outfile: join(DIST, "qr-decoder.js") });
copyFileSync(join(SRC, "index.html"), join(DIST, "index.html"));
copyFileSync(join(SRC, "styles.css"), join(DIST, "styles.css"));
for (const [name, size, variant] of ICONS) writeFileSync(join(DIST, name), iconPng(size, variant));
writeFileSync(join(DIST, "icon.svg"), iconSvg());

const manifest = {
  id: "./",
  name: "unlatch",
  short_name: "unlatch",
  description: "Unlock your password vault on the desktop with your phone.",
  start_url: "./",
  scope: "./",
  display: "standalone",
  orientation: "portrait",
  background_color: "#f3f4f8",
  theme_color: "#1e1b4b",
  categories: ["security", "utilities"],
  icons: [
    { src: "icon-192.png", sizes: "192x192", type: "image/png", purpose: "any" },
    { src: "icon-512.png", sizes: "512x512", type: "image/png", purpose: "any" },
    { src: "icon-maskable-512.png", sizes: "512x512", type: "image/png", purpose: "maskable" },
    { src: "icon.svg", sizes: "any", type: "image/svg+xml", purpose: "any" },
  ],
};
writeFileSync(join(DIST, "manifest.webmanifest"), JSON.stringify(manifest, null, 2) + "\n");

const signer = signingKey();
const publicJwk = createPublicKey(signer.key).export({ format: "jwk" });
const releaseKey = { kty: "EC", crv: "P-256", x: publicJwk.x, y: publicJwk.y };
const files = {};
for (const f of readdirSync(DIST).sort()) files[f] = sha256(readFileSync(join(DIST, f)));
const hash = createHash("sha256");
for (const [f, digest] of Object.entries(files)) hash.update(f).update(digest);
hash.update(JSON.stringify(releaseKey));
const build = hash.digest("hex").slice(0, 12);
const appBuild = { version: PACKAGE.version, build, files, releaseKey, keyKind: signer.kind };

await esbuild.build({
  ...common,
  entryPoints: [join(SRC, "sw.js")],
  outfile: join(DIST, "sw.js"),
  define: { __APP_BUILD__: JSON.stringify(appBuild) },
});

const manifestBytes = encodeManifest({
  version: PACKAGE.version,
  build,
  key: signer.kind,
  keyId: await keyId(releaseKey),
  files: { ...files, "sw.js": sha256(readFileSync(join(DIST, "sw.js"))) },
});
writeFileSync(join(DIST, MANIFEST_FILE), manifestBytes);
writeFileSync(join(DIST, SIGNATURE_FILE), sign("sha256", manifestBytes, { key: signer.key, dsaEncoding: "ieee-p1363" }));

const sizes = readdirSync(DIST)
  .sort()
  .map((f) => `${f} ${readFileSync(join(DIST, f)).length}`);
console.log(`built web/phone/dist (${PACKAGE.version} build ${build}, ${signer.kind} key): ${sizes.join(", ")}`);

/**
 * `npm run build`: web/phone/src -> web/phone/dist (what the relay serves under /app/).
 *
 *   app.js, sw.js        esbuild bundles (IIFE, minified, no runtime loader)
 *   qr-decoder.js        jsQR alone, loaded only where BarcodeDetector is missing
 *   index.html, styles.css   copied
 *   manifest.webmanifest generated
 *   icon*.png, icon.svg  drawn by scripts/icons.mjs
 *
 * The service worker gets the list of shell files and a version (a hash of
 * their contents), so a new build replaces the offline cache.
 */

import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

import { ICONS, iconPng, iconSvg } from "./scripts/icons.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, "src");
const DIST = join(HERE, "dist");
// The browsers with WebCrypto X25519, which the app cannot do without (src/lib/support.js
// checks it at boot and names these versions).
const TARGET = ["es2022", "chrome133", "safari17", "firefox130"];

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

const shell = ["./", ...readdirSync(DIST).sort()];
const hash = createHash("sha256");
for (const f of shell.slice(1)) hash.update(f).update(readFileSync(join(DIST, f)));
const version = hash.digest("hex").slice(0, 12);

await esbuild.build({
  ...common,
  entryPoints: [join(SRC, "sw.js")],
  outfile: join(DIST, "sw.js"),
  define: { __SHELL_VERSION__: JSON.stringify(version), __SHELL_FILES__: JSON.stringify(shell) },
});

const sizes = readdirSync(DIST)
  .sort()
  .map((f) => `${f} ${readFileSync(join(DIST, f)).length}`);
console.log(`built web/phone/dist (shell ${version}): ${sizes.join(", ")}`);

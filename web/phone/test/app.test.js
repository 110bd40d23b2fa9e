/** The app's pure helpers: relay URL, sign-in message, formatting, and the generated icons. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { inflateSync } from "node:zlib";

import { ICONS, iconPng, iconSvg } from "../scripts/icons.mjs";
import { describeUserAgent, formatAgo, formatRemaining, groupCode } from "../src/lib/dom.js";
import { authMessage, deviceIdFor, relayBaseFromLocation } from "../src/lib/relay.js";
import { hex } from "../src/protocol/index.js";

test("the relay base is the app's origin and path prefix, without /app/", () => {
  const at = (href) => {
    const u = new URL(href);
    return relayBaseFromLocation({ origin: u.origin, pathname: u.pathname });
  };
  assert.equal(at("https://relay.example/app/"), "https://relay.example");
  assert.equal(at("https://relay.example/app/index.html"), "https://relay.example");
  assert.equal(at("http://localhost:8470/app"), "http://localhost:8470");
  assert.equal(at("https://example.org/unlatch/app/"), "https://example.org/unlatch");
});

test("the sign-in message length-prefixes label, origin, challenge and key (uint16)", async () => {
  const msg = authMessage("https://r.example", new Uint8Array([1, 2]), new Uint8Array([4]));
  assert.equal(
    hex(msg),
    "0015" + Buffer.from("unlatch relay auth v1").toString("hex") +
      "0011" + Buffer.from("https://r.example").toString("hex") + "00020102" + "000104",
  );
  const id = await deviceIdFor(new Uint8Array(65).fill(4));
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
});

test("formatting helpers", () => {
  assert.equal(formatRemaining(95), "1:35");
  assert.equal(formatRemaining(-3), "0:00");
  assert.equal(formatAgo(2), "just now");
  assert.equal(formatAgo(30), "30 s ago");
  assert.equal(formatAgo(300), "5 min ago");
  assert.equal(groupCode("655360"), "655 360");
  assert.equal(describeUserAgent("unlatch-desktop/0.1.0"), "unlatch desktop 0.1.0");
  assert.equal(describeUserAgent(""), "unknown");
});

test("every icon is a valid RGBA PNG of its size, drawn (not empty)", () => {
  for (const [name, size, variant] of ICONS) {
    const png = iconPng(size, variant);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], name);
    assert.equal(png.readUInt32BE(16), size);
    assert.equal(png.readUInt32BE(20), size);
    const idatLen = png.readUInt32BE(33);
    assert.equal(png.subarray(37, 41).toString("ascii"), "IDAT");
    const raw = inflateSync(png.subarray(41, 41 + idatLen));
    assert.equal(raw.length, size * (size * 4 + 1));
    let opaque = 0;
    let white = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const o = y * (size * 4 + 1) + 1 + x * 4;
        if (raw[o + 3] === 255) opaque++;
        if (raw[o] === 255 && raw[o + 1] === 255 && raw[o + 2] === 255 && raw[o + 3] === 255) white++;
      }
    }
    assert.ok(white > size * size * 0.05, `${name}: the white padlock is drawn`);
    if (variant === "maskable" || variant === "opaque") assert.equal(opaque, size * size, `${name} is full bleed`);
    if (variant === "badge") assert.ok(opaque < size * size * 0.6, `${name} is mostly transparent`);
  }
  assert.match(iconSvg(), /^<svg [^>]*viewBox="0 0 100 100">/);
});

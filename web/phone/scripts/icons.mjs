/**
 * The app icon, drawn from its geometry (an open padlock on an indigo tile)
 * into PNGs at every size the manifest and iOS want, and into an SVG favicon.
 * No image tools needed: shapes are sampled 4x4 per pixel and encoded with
 * node:zlib. Run by build.mjs; nothing here is hand-edited output.
 */

import { deflateSync } from "node:zlib";

const BG_A = [49, 46, 129]; // #312e81, top left
const BG_B = [79, 70, 229]; // #4f46e5, bottom right
const LOCK = [255, 255, 255];
const KEYHOLE = [67, 56, 202]; // #4338ca

// Geometry in unit coordinates (0..1), for the full-bleed "safe" content.
const BODY = { x0: 0.27, y0: 0.46, x1: 0.73, y1: 0.8, r: 0.07 };
const SHACKLE = { cx: 0.5, cy: 0.36, r: 0.145, w: 0.065, rightLegTo: 0.47, leftLegTo: 0.4 };
const KEY = { cx: 0.5, cy: 0.6, r: 0.045, x0: 0.483, x1: 0.517, y1: 0.7 };

function inRoundRect(x, y, { x0, y0, x1, y1, r }) {
  if (x < x0 || x > x1 || y < y0 || y > y1) return false;
  const cx = Math.min(Math.max(x, x0 + r), x1 - r);
  const cy = Math.min(Math.max(y, y0 + r), y1 - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
}

function inShackle(x, y) {
  const { cx, cy, r, w, rightLegTo, leftLegTo } = SHACKLE;
  const half = w / 2;
  if (y <= cy) {
    const d = Math.hypot(x - cx, y - cy);
    return Math.abs(d - r) <= half;
  }
  if (Math.abs(x - (cx + r)) <= half && y <= rightLegTo) return true;
  if (Math.abs(x - (cx - r)) <= half && y <= leftLegTo) return true;
  return false;
}

function inKeyhole(x, y) {
  if ((x - KEY.cx) ** 2 + (y - KEY.cy) ** 2 <= KEY.r ** 2) return true;
  return x >= KEY.x0 && x <= KEY.x1 && y >= KEY.cy && y <= KEY.y1;
}

/**
 * Colour at (u, v) in 0..1 of the whole image, or null (transparent).
 * `variant`: "any" (rounded tile with margin), "maskable"/"opaque" (full bleed),
 * "badge" (white lock only, on transparent).
 */
function sample(u, v, variant) {
  let inTile;
  let scale;
  if (variant === "any") {
    inTile = inRoundRect(u, v, { x0: 0.04, y0: 0.04, x1: 0.96, y1: 0.96, r: 0.22 });
    scale = 0.92;
  } else if (variant === "badge") {
    inTile = false;
    scale = 1.15;
  } else {
    inTile = true;
    scale = variant === "maskable" ? 0.78 : 0.9;
  }
  const x = (u - 0.5) / scale + 0.5;
  const y = (v - 0.5) / scale + 0.5 + 0.02;
  const lock = inShackle(x, y) || inRoundRect(x, y, BODY);
  if (lock && !(inRoundRect(x, y, BODY) && inKeyhole(x, y))) return LOCK;
  if (variant === "badge") return null;
  if (!inTile) return null;
  if (lock) return KEYHOLE;
  const t = Math.min(1, Math.max(0, (u + v) / 2));
  return BG_A.map((a, i) => Math.round(a + (BG_B[i] - a) * t));
}

function rasterize(size, variant) {
  const out = new Uint8Array(size * size * 4);
  const n = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0;
      let g = 0;
      let b = 0;
      let a = 0;
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const c = sample((px + (sx + 0.5) / n) / size, (py + (sy + 0.5) / n) / size, variant);
          if (c) {
            r += c[0];
            g += c[1];
            b += c[2];
            a += 1;
          }
        }
      }
      const o = (py * size + px) * 4;
      if (a) {
        out[o] = Math.round(r / a);
        out[o + 1] = Math.round(g / a);
        out[o + 2] = Math.round(b / a);
      }
      out[o + 3] = Math.round((a / (n * n)) * 255);
    }
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "ascii");
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An RGBA PNG of `size` x `size`. */
export function iconPng(size, variant) {
  const rgba = rasterize(size, variant);
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    Buffer.from(rgba.buffer, y * size * 4, size * 4).copy(raw, y * (size * 4 + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** The same icon as SVG (the "any" variant), for the favicon. */
export function iconSvg() {
  const s = 0.92;
  const T = (x, y) => [((x - 0.5) * s + 0.5) * 100, ((y - 0.5 - 0.02) * s + 0.5) * 100].map((v) => v.toFixed(2));
  const { cx, cy, r, w, rightLegTo, leftLegTo } = SHACKLE;
  const [lx, ly] = T(cx - r, leftLegTo);
  const [ax, ay] = T(cx - r, cy);
  const [bx, by] = T(cx + r, cy);
  const [rx, ry] = T(cx + r, rightLegTo);
  const rr = (r * s * 100).toFixed(2);
  const [x0, y0] = T(BODY.x0, BODY.y0);
  const [x1, y1] = T(BODY.x1, BODY.y1);
  const [kx, ky] = T(KEY.cx, KEY.cy);
  const [kx0] = T(KEY.x0, 0);
  const [kx1, ky1] = T(KEY.x1, KEY.y1);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#312e81"/><stop offset="1" stop-color="#4f46e5"/></linearGradient></defs>
<rect x="4" y="4" width="92" height="92" rx="22" fill="url(#g)"/>
<path d="M${lx} ${ly}V${ay}A${rr} ${rr} 0 0 1 ${bx} ${by}V${ry}" fill="none" stroke="#fff" stroke-width="${(w * s * 100).toFixed(2)}"/>
<rect x="${x0}" y="${y0}" width="${(x1 - x0).toFixed(2)}" height="${(y1 - y0).toFixed(2)}" rx="${(BODY.r * s * 100).toFixed(2)}" fill="#fff"/>
<circle cx="${kx}" cy="${ky}" r="${(KEY.r * s * 100).toFixed(2)}" fill="#4338ca"/>
<rect x="${kx0}" y="${ky}" width="${(kx1 - kx0).toFixed(2)}" height="${(ky1 - ky).toFixed(2)}" fill="#4338ca"/>
</svg>
`;
}

export const ICONS = [
  ["icon-192.png", 192, "any"],
  ["icon-512.png", 512, "any"],
  ["icon-maskable-512.png", 512, "maskable"],
  ["apple-touch-icon.png", 180, "opaque"],
  ["icon-32.png", 32, "any"],
  ["badge-96.png", 96, "badge"],
];

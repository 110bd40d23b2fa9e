/**
 * The v1 messages: encode/decode made from the layouts of
 * unlatch/protocol/messages.py, which layouts.json carries (generated from
 * Python, checked by a test), so each message's field order, sizes and value
 * kinds are written once for both languages.
 *
 * Decoding checks structure only; authenticity is checked by the state
 * machines, which hold the keys. Objects use camelCase names for the
 * Python dataclass fields.
 */

import {
  MAX_DEVICE_ID_BYTES,
  MAX_NAME_BYTES,
  MAX_TTL_SECONDS,
  NUMBER_CHOICES,
  QR_SECRET_LEN,
  UnlockMode,
} from "./constants.js";
import {
  decodeFields,
  decodeMessage,
  encodeFields,
  encodeMessage,
  field,
  readU8,
  readU16,
  readU64,
  u8,
  u16,
  u64,
  utf8,
  utf8Bytes,
} from "./encoding.js";
import { MalformedMessage } from "./errors.js";
import LAYOUTS from "./layouts.json" with { type: "json" };

const EMPTY = new Uint8Array(0);

/**
 * The offer's relay URL, exactly as encoded: the hello binds its bytes, so a
 * trailing "/" is refused rather than stripped (docs/protocol.md 5.1).
 */
export function checkUrl(url) {
  if (!(url.startsWith("https://") || url.startsWith("http://"))) {
    throw new MalformedMessage("relay URL must start with https:// or http://");
  }
  if (/[#?@ \\]/.test(url)) throw new MalformedMessage("relay URL must be a plain origin and path");
  if (url.endsWith("/")) throw new MalformedMessage("relay URL must not end with /");
  return url;
}

/**
 * A device name as it goes on the wire: 1-64 bytes of UTF-8, nothing that
 * hides text; the decoder's rule, so the peer never refuses what we send.
 */
export function checkName(name, what) {
  if (typeof name !== "string") throw new MalformedMessage(`${what} must be text`);
  if (typeof name.isWellFormed === "function" && !name.isWellFormed()) {
    throw new MalformedMessage(`${what} is not valid Unicode`);
  }
  const data = utf8Bytes(name);
  if (data.length < 1 || data.length > MAX_NAME_BYTES) {
    throw new MalformedMessage(`${what} must be 1..${MAX_NAME_BYTES} bytes of UTF-8, got ${data.length}`);
  }
  utf8(data, what);
  return data;
}

/** A relay device id as it goes on the wire: 1-64 printable ASCII characters. */
export function checkDeviceId(deviceId, what) {
  if (typeof deviceId !== "string" || !/^[\x00-\x7f]*$/.test(deviceId)) {
    throw new MalformedMessage(`${what} must be printable ASCII`);
  }
  if (deviceId.length < 1 || deviceId.length > MAX_DEVICE_ID_BYTES) {
    throw new MalformedMessage(`${what} must be 1..${MAX_DEVICE_ID_BYTES} characters, got ${deviceId.length}`);
  }
  const data = utf8Bytes(deviceId);
  ascii(data, what);
  return data;
}

export function checkTtl(ttl) {
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
    throw new MalformedMessage(`lifetime must be 1..${MAX_TTL_SECONDS} seconds, got ${ttl}`);
  }
  return ttl;
}

function mode(value) {
  if (!Object.values(UnlockMode).includes(value)) throw new MalformedMessage(`unknown unlock mode ${value}`);
  return value;
}

function ascii(data, what) {
  if (!data.every((b) => b >= 0x21 && b <= 0x7e)) throw new MalformedMessage(`${what} must be printable ASCII`);
  return String.fromCharCode(...data);
}

// ------------------------------------------------------------------ layouts

/** Encode refuses what decode would refuse. */
function offerUrlBytes(url, what) {
  const data = utf8Bytes(checkUrl(url));
  utf8(data, what);
  return data;
}

const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const whatOf = (f) => (f.kind === "url" ? "relay URL" : f.name.replaceAll("_", " "));

/** kind -> value to bytes (unlatch/protocol/messages.py _ENCODE). */
const ENCODE = {
  bytes: (v) => v,
  u64: (v) => u64(v),
  ttl: (v) => u16(v),
  mode: (v) => u8(v),
  url: offerUrlBytes,
  name: checkName,
  device_id: checkDeviceId,
  opt_u8: (v) => (v === null || v === undefined ? EMPTY : u8(v)),
  u8s: (v) => new Uint8Array(v),
};

/** kind -> bytes to value (unlatch/protocol/messages.py _DECODE). */
const DECODE = {
  bytes: (d) => d,
  u64: (d, w) => readU64(d, w.replaceAll(" ", "_")),
  ttl: (d) => checkTtl(readU16(d, "ttl")),
  mode: (d) => mode(readU8(d, "mode")),
  url: (d, w) => checkUrl(utf8(d, w)),
  name: (d, w) => utf8(d, w),
  device_id: (d, w) => ascii(d, w),
  opt_u8: (d) => (d.length ? d[0] : null),
  u8s: (d) => Array.from(d),
  padding: (d) => d,
};

/**
 * A message's codec from its layout: `encode(object)` and `decode(bytes)` with
 * camelCase keys; `toValues`/`fromValues` adapt a message whose object is not
 * flat (PushPlaintext keeps its request's fields under `params`).
 */
function message(name, { toValues = (o) => o, fromValues = (v) => v } = {}) {
  const spec = LAYOUTS[name];
  if (!spec) throw new Error(`no layout ${name} in layouts.json`);
  const layout = Object.freeze(spec.fields.map((f) => Object.freeze({ ...field(f.name, f.min, f.max), kind: f.kind })));
  return Object.freeze({
    TYPE: spec.type,
    LAYOUT: layout,
    encode(obj) {
      const values = toValues(obj);
      const parts = layout
        .filter((f) => f.kind !== "padding")
        .map((f) => ENCODE[f.kind](values[camel(f.name)], whatOf(f)));
      if (layout.some((f) => f.kind === "padding")) {
        const used = parts.reduce((n, p) => n + 2 + p.length, 0) + 2;
        if (used > spec.size) throw new RangeError(`${spec.what} too large`);
        parts.push(new Uint8Array(spec.size - used));
      }
      return spec.type === null ? encodeFields(parts, layout) : encodeMessage(spec.type, parts, layout);
    },
    decode(data) {
      if (spec.size !== null && data.length !== spec.size) {
        throw new MalformedMessage(`${spec.what} have the wrong size`);
      }
      const raw =
        spec.type === null ? decodeFields(data, layout, spec.what) : decodeMessage(data, spec.type, layout, spec.what);
      const values = {};
      layout.forEach((f, i) => {
        values[camel(f.name)] = DECODE[f.kind](raw[i], whatOf(f));
      });
      return fromValues(values);
    },
  });
}

// ------------------------------------------------------------------ pairing

/** {channelId, pairingSecret, desktopPk, relayUrl, expiresAt} <-> bytes */
export const PairingOffer = message("PairingOffer");
export const PairingHello = message("PairingHello");
export const HelloPlaintext = message("HelloPlaintext");
export const PairingAccept = message("PairingAccept");
export const AcceptPlaintext = message("AcceptPlaintext");

// ------------------------------------------------------------------ unlock

/** What identifies one unlock request; bound into every MAC and the reply's info. */
export function requestParams(requestId, ephemeralPk, createdAt, ttl, unlockMode) {
  return Object.freeze({
    requestId,
    ephemeralPk,
    createdAt,
    ttl,
    mode: unlockMode,
    expiresAt: typeof createdAt === "bigint" ? createdAt + BigInt(ttl) : createdAt + ttl,
  });
}

/** {pairingId, requestId, qrSecret, ephemeralPk, createdAt, ttl, mac} <-> bytes */
export const UnlockQR = message("UnlockQR");
export const UnlockPush = message("UnlockPush");

/**
 * Inside the push. `qrSecret`, `number` and `choices` are empty unless number matching.
 * The app checks the user's pick against `number` itself and never shows which is right.
 * {params, qrSecret, number (or null), choices (array)} <-> 128 bytes
 */
export const PushPlaintext = message("PushPlaintext", {
  toValues: ({ params, qrSecret, number, choices }) => ({ ...params, qrSecret, number, choices }),
  fromValues(v) {
    if (v.padding.some((b) => b !== 0)) throw new MalformedMessage("unlock notification padding is not zero");
    if (v.mode === UnlockMode.NUMBER_MATCH) {
      if (v.qrSecret.length !== QR_SECRET_LEN || v.number === null || v.choices.length !== NUMBER_CHOICES) {
        throw new MalformedMessage("number-matching notification lacks its secret or numbers");
      }
      if (new Set(v.choices).size !== NUMBER_CHOICES || !v.choices.includes(v.number)) {
        throw new MalformedMessage("number-matching notification has inconsistent numbers");
      }
    } else if (v.qrSecret.length || v.number !== null || v.choices.length) {
      throw new MalformedMessage("scan-mode notification must not carry a secret or numbers");
    }
    const params = requestParams(v.requestId, v.ephemeralPk, v.createdAt, v.ttl, v.mode);
    return { params, qrSecret: v.qrSecret, number: v.number, choices: v.choices };
  },
});

export const UnlockSeen = message("UnlockSeen");
export const UnlockReply = message("UnlockReply");

/**
 * Phone to desktop: "I did not ask for this", from the notification, before any
 * scan (a scan-mode push has no QR secret, so no UnlockReply can be made). A MAC
 * under the pairing's seen-MAC key; it releases nothing and ends the request.
 */
export const UnlockRefusal = message("UnlockRefusal");

export const ALL_MESSAGES = Object.freeze([
  PairingOffer,
  PairingHello,
  PairingAccept,
  UnlockQR,
  UnlockPush,
  UnlockSeen,
  UnlockReply,
  UnlockRefusal,
]);

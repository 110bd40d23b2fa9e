/**
 * Byte-level encoding: message framing, bounded fields, transcripts, base64url
 * (mirror of unlatch/protocol/encoding.py).
 *
 * A v1 message is `"UL" | version u8 | type u8` followed by its fields, each
 * `u16be length | bytes`. Every message type declares its exact field list
 * with min/max lengths, so a parser never reads past MAX_MESSAGE_BYTES and
 * refuses trailing bytes. MACs, AADs and HKDF infos bind `transcript(...)`,
 * a sequence of `u32be length | bytes`, never this framing or JSON text.
 */

import { HEADER_LEN, MAGIC, MAX_MESSAGE_BYTES, VERSION, messageTypeName, MessageType } from "./constants.js";
import { MalformedMessage, UnexpectedMessage, UnsupportedVersion } from "./errors.js";

const te = new TextEncoder();

/** Concatenate byte arrays into a new Uint8Array. */
export function concat(...parts) {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** Equality of two byte strings in time that depends only on their lengths. */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** UTF-8 bytes of a string; refuses lone surrogates (Python's str.encode does too). */
export function utf8Bytes(text) {
  if (typeof text !== "string") throw new TypeError("expected a string");
  if (typeof text.isWellFormed === "function" && !text.isWellFormed()) {
    throw new MalformedMessage("text contains invalid Unicode (lone surrogate)");
  }
  return te.encode(text);
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function unhex(text) {
  if (typeof text !== "string" || text.length % 2 || /[^0-9a-fA-F]/.test(text)) {
    throw new TypeError("not a hex string");
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Length-prefix with a 4-byte big-endian length. */
export function lp(data) {
  const out = new Uint8Array(4 + data.length);
  new DataView(out.buffer).setUint32(0, data.length);
  out.set(data, 4);
  return out;
}

/** `LP(label) | LP(part_1) | ... | LP(part_n)`: unambiguous, unlike concatenation. */
export function transcript(label, ...parts) {
  return concat(lp(label), ...parts.map(lp));
}

export function u8(value) {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new RangeError("u8 out of range");
  return new Uint8Array([value]);
}

export function u16(value) {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError("u16 out of range");
  const out = new Uint8Array(2);
  new DataView(out.buffer).setUint16(0, value);
  return out;
}

/** A u64 from a safe integer Number or a BigInt (times beyond 2^53 arrive as BigInt, see readU64). */
export function u64(value) {
  const big = typeof value === "bigint" ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (big < 0n || big > 0xffffffffffffffffn) throw new RangeError("u64 out of range");
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, big);
  return out;
}

function exact(data, size, name) {
  if (data.length !== size) {
    throw new MalformedMessage(`field ${name} must be ${size} bytes, got ${data.length}`);
  }
}

export function readU8(data, name) {
  exact(data, 1, name);
  return data[0];
}

export function readU16(data, name) {
  exact(data, 2, name);
  return new DataView(data.buffer, data.byteOffset, 2).getUint16(0);
}

/**
 * A u64 time: a Number, or a BigInt when it is beyond 2^53 (absurd, but the
 * Python reference accepts any u64, so the value must survive re-encoding
 * exactly; `<` and `>` compare a BigInt with a Number correctly).
 */
export function readU64(data, name) {
  exact(data, 8, name);
  const value = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? value : Number(value);
}

/** One field of a message layout: a name (for errors) and its length bounds. */
export function field(name, minLen, maxLen) {
  return Object.freeze({ name, minLen, maxLen });
}

export function fixed(name, size) {
  return field(name, size, size);
}

/** The 4-byte header of a message of `type`. */
export function header(type) {
  return new Uint8Array([MAGIC[0], MAGIC[1], VERSION, type]);
}

/** Encode field values after checking them against `layout` (a programming check). */
export function encodeFields(values, layout) {
  if (values.length !== layout.length) throw new RangeError("field count does not match layout");
  const parts = [];
  values.forEach((value, i) => {
    const spec = layout[i];
    if (!(value instanceof Uint8Array)) throw new TypeError(`field ${spec.name} must be bytes`);
    if (value.length < spec.minLen || value.length > spec.maxLen) {
      throw new RangeError(
        `field ${spec.name} is ${value.length} bytes, allowed ${spec.minLen}..${spec.maxLen}`,
      );
    }
    parts.push(u16(value.length), value);
  });
  return concat(...parts);
}

/** Split `data` into exactly the fields of `layout`, enforcing every bound. */
export function decodeFields(data, layout, what) {
  const values = [];
  let pos = 0;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const spec of layout) {
    if (pos + 2 > data.length) throw new MalformedMessage(`${what}: truncated before field ${spec.name}`);
    const length = view.getUint16(pos);
    pos += 2;
    if (length < spec.minLen || length > spec.maxLen) {
      throw new MalformedMessage(
        `${what}: field ${spec.name} is ${length} bytes, allowed ${spec.minLen}..${spec.maxLen}`,
      );
    }
    if (pos + length > data.length) throw new MalformedMessage(`${what}: truncated inside field ${spec.name}`);
    values.push(data.slice(pos, pos + length));
    pos += length;
  }
  if (pos !== data.length) throw new MalformedMessage(`${what}: ${data.length - pos} unexpected trailing bytes`);
  return values;
}

export function encodeMessage(type, values, layout) {
  return concat(header(type), encodeFields(values, layout));
}

/** Check the header of `data` and return its message type byte. */
export function peekType(data) {
  if (!(data instanceof Uint8Array)) throw new MalformedMessage("a message must be bytes");
  if (data.length > MAX_MESSAGE_BYTES) {
    throw new MalformedMessage(
      `message is ${data.length} bytes, more than the ${MAX_MESSAGE_BYTES}-byte limit`,
    );
  }
  if (data.length < HEADER_LEN) throw new MalformedMessage("message is shorter than its 4-byte header");
  if (data[0] !== MAGIC[0] || data[1] !== MAGIC[1]) {
    throw new MalformedMessage("not an unlatch message (bad magic bytes)");
  }
  if (data[2] !== VERSION) {
    throw new UnsupportedVersion(
      `message is protocol version ${data[2]}, this implementation speaks ${VERSION}`,
    );
  }
  if (!Object.values(MessageType).includes(data[3])) {
    throw new MalformedMessage(`unknown message type 0x${data[3].toString(16).padStart(2, "0")}`);
  }
  return data[3];
}

/** Parse a whole message of type `expected`; any other type is refused. */
export function decodeMessage(data, expected, layout, what) {
  const type = peekType(data);
  if (type !== expected) throw new UnexpectedMessage(`expected ${what}, got a ${messageTypeName(type)} message`);
  return decodeFields(data.slice(HEADER_LEN), layout, what);
}

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64_INDEX = new Map(Array.from(B64_ALPHABET, (c, i) => [c, i]));

/** base64url without padding (RFC 4648 section 5). */
export function b64e(data) {
  let out = "";
  let i = 0;
  for (; i + 3 <= data.length; i += 3) {
    const n = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += B64_ALPHABET[n >> 18] + B64_ALPHABET[(n >> 12) & 63] + B64_ALPHABET[(n >> 6) & 63] + B64_ALPHABET[n & 63];
  }
  const rest = data.length - i;
  if (rest === 1) {
    const n = data[i] << 16;
    out += B64_ALPHABET[n >> 18] + B64_ALPHABET[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (data[i] << 16) | (data[i + 1] << 8);
    out += B64_ALPHABET[n >> 18] + B64_ALPHABET[(n >> 12) & 63] + B64_ALPHABET[(n >> 6) & 63];
  }
  return out;
}

/** Strict base64url decoding (no padding, no whitespace, canonical). */
export function b64d(text, what = "value", maxLen = MAX_MESSAGE_BYTES * 2) {
  if (typeof text !== "string") throw new MalformedMessage(`${what}: expected base64url text`);
  if (text.length > maxLen) throw new MalformedMessage(`${what}: too long (${text.length} characters)`);
  if (text.length % 4 === 1) throw new MalformedMessage(`${what}: not valid base64url (bad length)`);
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let pos = 0;
  for (const c of text) {
    const v = B64_INDEX.get(c);
    if (v === undefined) throw new MalformedMessage(`${what}: not valid base64url (bad characters)`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[pos++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) throw new MalformedMessage(`${what}: non-canonical base64url`);
  return out.slice(0, pos);
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Code points refused in device names and the relay URL (mirror of
 * REFUSED_CODE_POINTS in unlatch/protocol/encoding.py; docs/protocol.md 3.1):
 * C0/C1 controls and DEL, and the invisible format controls that can hide or
 * reorder text (bidi embeddings, overrides, isolates and marks, zero-width
 * space, separators, BOM, tags...). ZWNJ/ZWJ (U+200C/U+200D) stay allowed.
 * An explicit list, not \p{Cf}, so every engine refuses the same names.
 */
export const REFUSED_CODE_POINTS = Object.freeze([
  [0x0000, 0x001f],
  [0x007f, 0x009f],
  [0x00ad, 0x00ad],
  [0x061c, 0x061c],
  [0x180e, 0x180e],
  [0x200b, 0x200b],
  [0x200e, 0x200f],
  [0x2028, 0x202e],
  [0x2060, 0x206f],
  [0xfeff, 0xfeff],
  [0xfff9, 0xfffb],
  [0xe0000, 0xe007f],
]);

/** True for a code point that must not appear in a name shown to a person. */
export function refusedCodePoint(o) {
  return REFUSED_CODE_POINTS.some(([low, high]) => low <= o && o <= high);
}

/** Decode a UTF-8 name field, refusing control and invisible format characters. */
export function utf8(data, what) {
  let text;
  try {
    text = strictDecoder.decode(data);
  } catch {
    throw new MalformedMessage(`${what} is not valid UTF-8`);
  }
  for (const c of text) {
    if (refusedCodePoint(c.codePointAt(0))) {
      throw new MalformedMessage(`${what} contains control or invisible formatting characters`);
    }
  }
  return text;
}

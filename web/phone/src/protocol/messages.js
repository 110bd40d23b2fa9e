/**
 * The seven v1 messages: their field layouts and encode/decode for each
 * (mirror of unlatch/protocol/messages.py).
 *
 * Decoding checks structure only; authenticity is checked by the state
 * machines, which hold the keys. Objects use camelCase names for the
 * Python dataclass fields.
 */

import {
  ENC_LEN,
  ID_LEN,
  KEY_LEN,
  MAC_LEN,
  MAX_DEVICE_ID_BYTES,
  MAX_NAME_BYTES,
  MAX_TTL_SECONDS,
  MAX_URL_BYTES,
  NONCE_LEN,
  NUMBER_CHOICES,
  PAIRING_SECRET_LEN,
  PUSH_PLAINTEXT_LEN,
  QR_SECRET_LEN,
  REPLY_PLAINTEXT_LEN,
  TAG_LEN,
  MessageType,
  UnlockMode,
} from "./constants.js";
import {
  decodeFields,
  decodeMessage,
  encodeFields,
  encodeMessage,
  field,
  fixed,
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

// ------------------------------------------------------------------ pairing

/** Encode refuses what decode would refuse. */
function offerUrlBytes(url) {
  const data = utf8Bytes(checkUrl(url));
  utf8(data, "relay URL");
  return data;
}

export const PairingOffer = {
  TYPE: MessageType.PAIRING_OFFER,
  LAYOUT: [
    fixed("channel_id", ID_LEN),
    fixed("pairing_secret", PAIRING_SECRET_LEN),
    fixed("desktop_pk", KEY_LEN),
    field("relay_url", 8, MAX_URL_BYTES),
    fixed("expires_at", 8),
  ],
  /** {channelId, pairingSecret, desktopPk, relayUrl, expiresAt} -> bytes */
  encode(o) {
    return encodeMessage(
      this.TYPE,
      [o.channelId, o.pairingSecret, o.desktopPk, offerUrlBytes(o.relayUrl), u64(o.expiresAt)],
      this.LAYOUT,
    );
  },
  decode(data) {
    const [channelId, pairingSecret, desktopPk, url, exp] = decodeMessage(
      data,
      this.TYPE,
      this.LAYOUT,
      "pairing offer",
    );
    return {
      channelId,
      pairingSecret,
      desktopPk,
      relayUrl: checkUrl(utf8(url, "relay URL")),
      expiresAt: readU64(exp, "expires_at"),
    };
  },
};

export const PairingHello = {
  TYPE: MessageType.PAIRING_HELLO,
  LAYOUT: [fixed("enc", ENC_LEN), field("ciphertext", TAG_LEN + 1, 512)],
  encode({ enc, ciphertext }) {
    return encodeMessage(this.TYPE, [enc, ciphertext], this.LAYOUT);
  },
  decode(data) {
    const [enc, ciphertext] = decodeMessage(data, this.TYPE, this.LAYOUT, "pairing hello");
    return { enc, ciphertext };
  },
};

export const HelloPlaintext = {
  LAYOUT: [
    fixed("phone_pk", KEY_LEN),
    field("phone_name", 1, MAX_NAME_BYTES),
    field("phone_device_id", 1, MAX_DEVICE_ID_BYTES),
  ],
  encode({ phonePk, phoneName, phoneDeviceId }) {
    return encodeFields(
      [phonePk, checkName(phoneName, "phone name"), checkDeviceId(phoneDeviceId, "phone device id")],
      this.LAYOUT,
    );
  },
  decode(data) {
    const [pk, name, dev] = decodeFields(data, this.LAYOUT, "pairing hello contents");
    return { phonePk: pk, phoneName: utf8(name, "phone name"), phoneDeviceId: ascii(dev, "phone device id") };
  },
};

export const PairingAccept = {
  TYPE: MessageType.PAIRING_ACCEPT,
  LAYOUT: [field("ciphertext", TAG_LEN + 1, 512)],
  encode({ ciphertext }) {
    return encodeMessage(this.TYPE, [ciphertext], this.LAYOUT);
  },
  decode(data) {
    const [ciphertext] = decodeMessage(data, this.TYPE, this.LAYOUT, "pairing accept");
    return { ciphertext };
  },
};

export const AcceptPlaintext = {
  LAYOUT: [
    fixed("phone_share", KEY_LEN),
    field("desktop_name", 1, MAX_NAME_BYTES),
    field("desktop_device_id", 1, MAX_DEVICE_ID_BYTES),
  ],
  encode({ phoneShare, desktopName, desktopDeviceId }) {
    return encodeFields(
      [phoneShare, checkName(desktopName, "desktop name"), checkDeviceId(desktopDeviceId, "desktop device id")],
      this.LAYOUT,
    );
  },
  decode(data) {
    const [share, name, dev] = decodeFields(data, this.LAYOUT, "pairing accept contents");
    return {
      phoneShare: share,
      desktopName: utf8(name, "desktop name"),
      desktopDeviceId: ascii(dev, "desktop device id"),
    };
  },
};

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

export const UnlockQR = {
  TYPE: MessageType.UNLOCK_QR,
  LAYOUT: [
    fixed("pairing_id", ID_LEN),
    fixed("request_id", ID_LEN),
    fixed("qr_secret", QR_SECRET_LEN),
    fixed("ephemeral_pk", KEY_LEN),
    fixed("created_at", 8),
    fixed("ttl", 2),
    fixed("mac", MAC_LEN),
  ],
  /** {pairingId, requestId, qrSecret, ephemeralPk, createdAt, ttl, mac} -> bytes */
  encode(q) {
    return encodeMessage(
      this.TYPE,
      [q.pairingId, q.requestId, q.qrSecret, q.ephemeralPk, u64(q.createdAt), u16(q.ttl), q.mac],
      this.LAYOUT,
    );
  },
  decode(data) {
    const [pairingId, requestId, qrSecret, ephemeralPk, created, ttl, tag] = decodeMessage(
      data,
      this.TYPE,
      this.LAYOUT,
      "unlock QR code",
    );
    return {
      pairingId,
      requestId,
      qrSecret,
      ephemeralPk,
      createdAt: readU64(created, "created_at"),
      ttl: checkTtl(readU16(ttl, "ttl")),
      mac: tag,
    };
  },
};

export const UnlockPush = {
  TYPE: MessageType.UNLOCK_PUSH,
  LAYOUT: [
    fixed("routing_id", ID_LEN),
    fixed("nonce", NONCE_LEN),
    fixed("ciphertext", PUSH_PLAINTEXT_LEN + TAG_LEN),
  ],
  encode({ routingId, nonce, ciphertext }) {
    return encodeMessage(this.TYPE, [routingId, nonce, ciphertext], this.LAYOUT);
  },
  decode(data) {
    const [routingId, nonce, ciphertext] = decodeMessage(data, this.TYPE, this.LAYOUT, "unlock notification");
    return { routingId, nonce, ciphertext };
  },
};

/**
 * Inside the push. `qrSecret`, `number` and `choices` are empty unless number matching.
 * The app checks the user's pick against `number` itself and never shows which is right.
 */
export const PushPlaintext = {
  LAYOUT: [
    fixed("request_id", ID_LEN),
    fixed("ephemeral_pk", KEY_LEN),
    fixed("created_at", 8),
    fixed("ttl", 2),
    fixed("mode", 1),
    field("qr_secret", 0, QR_SECRET_LEN),
    field("number", 0, 1),
    field("choices", 0, NUMBER_CHOICES),
    field("padding", 0, PUSH_PLAINTEXT_LEN),
  ],
  /** {params, qrSecret, number (or null), choices (array)} -> 128 bytes */
  encode({ params, qrSecret, number, choices }) {
    const fields = [
      params.requestId,
      params.ephemeralPk,
      u64(params.createdAt),
      u16(params.ttl),
      u8(params.mode),
      qrSecret,
      number === null || number === undefined ? EMPTY : u8(number),
      new Uint8Array(choices),
    ];
    const used = fields.reduce((n, f) => n + 2 + f.length, 0) + 2;
    if (used > PUSH_PLAINTEXT_LEN) throw new RangeError("push plaintext too large");
    return encodeFields([...fields, new Uint8Array(PUSH_PLAINTEXT_LEN - used)], this.LAYOUT);
  },
  decode(data) {
    if (data.length !== PUSH_PLAINTEXT_LEN) {
      throw new MalformedMessage("unlock notification contents have the wrong size");
    }
    const [rid, epk, created, ttl, m, q, number, choices, padding] = decodeFields(
      data,
      this.LAYOUT,
      "unlock notification contents",
    );
    if (padding.some((b) => b !== 0)) throw new MalformedMessage("unlock notification padding is not zero");
    const unlockMode = mode(readU8(m, "mode"));
    if (unlockMode === UnlockMode.NUMBER_MATCH) {
      if (q.length !== QR_SECRET_LEN || number.length !== 1 || choices.length !== NUMBER_CHOICES) {
        throw new MalformedMessage("number-matching notification lacks its secret or numbers");
      }
      if (new Set(choices).size !== NUMBER_CHOICES || !choices.includes(number[0])) {
        throw new MalformedMessage("number-matching notification has inconsistent numbers");
      }
    } else if (q.length || number.length || choices.length) {
      throw new MalformedMessage("scan-mode notification must not carry a secret or numbers");
    }
    const params = requestParams(
      rid,
      epk,
      readU64(created, "created_at"),
      checkTtl(readU16(ttl, "ttl")),
      unlockMode,
    );
    return { params, qrSecret: q, number: number.length ? number[0] : null, choices: Array.from(choices) };
  },
};

export const UnlockSeen = {
  TYPE: MessageType.UNLOCK_SEEN,
  LAYOUT: [fixed("request_id", ID_LEN), fixed("mac", MAC_LEN)],
  encode({ requestId, mac }) {
    return encodeMessage(this.TYPE, [requestId, mac], this.LAYOUT);
  },
  decode(data) {
    const [requestId, mac] = decodeMessage(data, this.TYPE, this.LAYOUT, "scan notice");
    return { requestId, mac };
  },
};

export const UnlockReply = {
  TYPE: MessageType.UNLOCK_REPLY,
  LAYOUT: [
    fixed("request_id", ID_LEN),
    fixed("enc", ENC_LEN),
    fixed("ciphertext", REPLY_PLAINTEXT_LEN + TAG_LEN),
  ],
  encode({ requestId, enc, ciphertext }) {
    return encodeMessage(this.TYPE, [requestId, enc, ciphertext], this.LAYOUT);
  },
  decode(data) {
    const [requestId, enc, ciphertext] = decodeMessage(data, this.TYPE, this.LAYOUT, "unlock reply");
    return { requestId, enc, ciphertext };
  },
};

/**
 * Phone to desktop: "I did not ask for this", from the notification, before any
 * scan (a scan-mode push has no QR secret, so no UnlockReply can be made). A MAC
 * under the pairing's seen-MAC key; it releases nothing and ends the request.
 */
export const UnlockRefusal = {
  TYPE: MessageType.UNLOCK_REFUSAL,
  LAYOUT: [fixed("request_id", ID_LEN), fixed("mac", MAC_LEN)],
  encode({ requestId, mac }) {
    return encodeMessage(this.TYPE, [requestId, mac], this.LAYOUT);
  },
  decode(data) {
    const [requestId, mac] = decodeMessage(data, this.TYPE, this.LAYOUT, "refusal");
    return { requestId, mac };
  },
};

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

/**
 * Wire constants of unlatch protocol version 1 (mirror of unlatch/protocol/constants.py).
 *
 * Everything a compatible implementation must agree on byte for byte lives
 * here; the JSON vectors in tests/vectors/ pin them, so a drift from the
 * Python reference fails `npm test`.
 */

export const VERSION = 1;
export const MAGIC = new Uint8Array([0x55, 0x4c]); // "UL"
export const HEADER_LEN = 4; // MAGIC (2) | version (1) | type (1)

export const KEY_LEN = 32;
export const ENC_LEN = 32;
export const TAG_LEN = 16;
export const NONCE_LEN = 12;
export const ID_LEN = 16;
export const QR_SECRET_LEN = 16;
export const PAIRING_SECRET_LEN = 32;
export const MAC_LEN = 16;
export const SAS_DIGITS = 6;

export const MAX_NAME_BYTES = 64;
export const MAX_URL_BYTES = 200;
export const MAX_DEVICE_ID_BYTES = 64;
export const MAX_MESSAGE_BYTES = 2048;
export const MAX_LINK_CHARS = 4096;

export const REPLY_PLAINTEXT_LEN = 64;
export const PUSH_PLAINTEXT_LEN = 128;

export const MAX_TTL_SECONDS = 600;
export const DEFAULT_UNLOCK_TTL = 120;
export const DEFAULT_PAIRING_TTL = 600;
export const CLOCK_SKEW_SECONDS = 30;

export const NUMBER_CHOICES = 3;
export const NUMBER_MIN = 10;
export const NUMBER_MAX = 99;

/** The type byte of every v1 message. */
export const MessageType = Object.freeze({
  PAIRING_OFFER: 0x01,
  PAIRING_HELLO: 0x02,
  PAIRING_ACCEPT: 0x03,
  UNLOCK_QR: 0x10,
  UNLOCK_PUSH: 0x11,
  UNLOCK_SEEN: 0x12,
  UNLOCK_REPLY: 0x13,
  UNLOCK_REFUSAL: 0x14, // "I did not ask for this" from the notification, without the QR
});

/** Name of a message type, lower case as in the Python error messages. */
export function messageTypeName(type) {
  for (const [name, value] of Object.entries(MessageType)) {
    if (value === type) return name.toLowerCase();
  }
  return `type 0x${type.toString(16).padStart(2, "0")}`;
}

/** How the phone proves the user is at the desktop. */
export const UnlockMode = Object.freeze({
  SCAN: 1, // the phone scans the QR, whose secret keys the reply
  NUMBER_MATCH: 2, // approve from the notification, pick the shown number
});

/** The phone's answer, inside the encrypted reply. */
export const Verdict = Object.freeze({
  APPROVE: 1,
  DENY: 2,
  DENY_NOT_ME: 3,
  WRONG_NUMBER: 4,
});

/**
 * The unlock modes the phone allows for one pairing, inside every reply
 * (protocol.md 6.8): the phone's choice, held in its record.
 */
export const UnlockPolicy = Object.freeze({
  SCAN_ONLY: 0, // the default, and every record made before policies existed
  NUMBER_MATCHING: 1, // scan, or approve from the notification by picking the number
});

const te = new TextEncoder();

/** Domain-separation labels: each derivation and MAC has its own (bytes). */
export const Label = Object.freeze(
  Object.fromEntries(
    Object.entries({
      PAIR_PSK: "unlatch/v1/pair/psk",
      PAIR_PSK_ID: "unlatch/v1/pair/psk-id",
      PAIR_HELLO_INFO: "unlatch/v1/pair/hello",
      PAIR_TRANSCRIPT: "unlatch/v1/pair/transcript",
      PAIR_ROOT: "unlatch/v1/pair/root",
      PAIR_SAS: "unlatch/v1/pair/sas",
      PAIR_ACCEPT: "unlatch/v1/pair/accept",
      PAIRING_ID: "unlatch/v1/pairing-id",
      ROUTING_ID: "unlatch/v1/routing-id",
      KEY_ACCEPT: "unlatch/v1/key/pair-accept",
      KEY_REQUEST_MAC: "unlatch/v1/key/request-mac",
      KEY_PUSH: "unlatch/v1/key/push",
      KEY_SEEN_MAC: "unlatch/v1/key/seen-mac",
      KEY_UNLOCK_PSK: "unlatch/v1/key/unlock-psk",
      UNLOCK_QR_MAC: "unlatch/v1/unlock/qr",
      UNLOCK_PUSH_AAD: "unlatch/v1/unlock/push",
      UNLOCK_SEEN_MAC: "unlatch/v1/unlock/seen",
      UNLOCK_PSK: "unlatch/v1/unlock/psk",
      UNLOCK_PSK_ID: "unlatch/v1/unlock/psk-id",
      UNLOCK_REPLY_INFO: "unlatch/v1/unlock/reply",
      UNLOCK_REFUSAL_MAC: "unlatch/v1/unlock/refusal",
      SLOT_PHONE: "unlatch/v1/slot/phone",
      SLOT_PASSKEY: "unlatch/v1/slot/passkey",
    }).map(([k, v]) => [k, te.encode(v)]),
  ),
);

/**
 * Every key the protocol derives, each with its own label (mirror of unlatch/protocol/keyschedule.py).
 *
 * The pairing root comes from the HPKE exporter of the pairing hello, bound
 * to the transcript hash of the offer and the hello; everything a pairing
 * needs afterwards is expanded from that root with HKDF-SHA256 and a
 * distinct label. Unlock PSKs combine the QR's fresh secret with the
 * pairing's unlock-PSK key.
 */

import { ID_LEN, KEY_LEN, SAS_DIGITS, Label } from "./constants.js";
import { transcript, u8, u16, u64, utf8Bytes } from "./encoding.js";
import { hkdf, sha256 } from "./primitives.js";

const EMPTY = new Uint8Array(0);

/** HKDF-SHA256 with an empty salt and `info = transcript(label, ...context)`. */
export function expand(root, label, length = KEY_LEN, ...context) {
  return hkdf(root, { salt: EMPTY, info: transcript(label, ...context), length });
}

/** The HPKE PSK of the pairing hello: only holders of the QR's secret can make one. */
export function pairingPsk(pairingSecret, channelId) {
  return expand(pairingSecret, Label.PAIR_PSK, KEY_LEN, channelId);
}

/** HPKE `info` of the hello: binds every public field of the offer (not its secret). */
export function helloInfo(channelId, desktopPk, relayUrl, expiresAt) {
  return transcript(Label.PAIR_HELLO_INFO, channelId, desktopPk, utf8Bytes(relayUrl), u64(expiresAt));
}

/** SHA-256 over the public offer fields and the exact hello bytes. */
export function pairingTranscriptHash(channelId, desktopPk, relayUrl, expiresAt, hello) {
  return sha256(
    transcript(Label.PAIR_TRANSCRIPT, channelId, desktopPk, utf8Bytes(relayUrl), u64(expiresAt), hello),
  );
}

/** HPKE exporter context that yields the pairing root. */
export function rootExportContext(transcriptHash) {
  return transcript(Label.PAIR_ROOT, transcriptHash);
}

/** The 6-digit code both screens show (64 bits mod 10^6: bias < 2^-44). */
export async function verificationCode(root) {
  const bytes = await expand(root, Label.PAIR_SAS, 8);
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return (value % 10n ** BigInt(SAS_DIGITS)).toString().padStart(SAS_DIGITS, "0");
}

/** Names of the long-term symmetric values both ends of a pairing hold, in record order. */
export const PAIRING_KEY_FIELDS = Object.freeze([
  "pairing_id", // names the pairing inside QR codes; never sent to the relay
  "routing_id", // names the pairing to the relay
  "request_mac_key", // desktop authenticates unlock QR codes
  "push_key", // desktop encrypts push payloads
  "seen_mac_key", // phone authenticates "QR scanned" notices
  "unlock_psk_key", // salt of every unlock PSK
]);

/** The pairing keys (an object of Uint8Array by PAIRING_KEY_FIELDS name) from the root. */
export async function pairingKeysFromRoot(root) {
  return Object.freeze({
    pairing_id: await expand(root, Label.PAIRING_ID, ID_LEN),
    routing_id: await expand(root, Label.ROUTING_ID, ID_LEN),
    request_mac_key: await expand(root, Label.KEY_REQUEST_MAC),
    push_key: await expand(root, Label.KEY_PUSH),
    seen_mac_key: await expand(root, Label.KEY_SEEN_MAC),
    unlock_psk_key: await expand(root, Label.KEY_UNLOCK_PSK),
  });
}

/** Single-use AES-256-GCM key of the pairing accept (so a zero nonce is safe). */
export function acceptKey(root) {
  return expand(root, Label.KEY_ACCEPT);
}

export function acceptAad(transcriptHash) {
  return transcript(Label.PAIR_ACCEPT, transcriptHash);
}

export function qrMacInput(pairingId, qrSecret, params) {
  return transcript(
    Label.UNLOCK_QR_MAC,
    pairingId,
    params.requestId,
    qrSecret,
    params.ephemeralPk,
    u64(params.createdAt),
    u16(params.ttl),
  );
}

export function pushAad(headerBytes, routingId) {
  return transcript(Label.UNLOCK_PUSH_AAD, headerBytes, routingId);
}

export function seenMacInput(pairingId, requestId, qrSecret) {
  return transcript(Label.UNLOCK_SEEN_MAC, pairingId, requestId, qrSecret);
}

/** The reply's HPKE PSK: the fresh QR secret, salted with the pairing's unlock-PSK key. */
export function unlockPsk(keys, requestId, qrSecret) {
  return hkdf(qrSecret, {
    salt: keys.unlock_psk_key,
    info: transcript(Label.UNLOCK_PSK, keys.pairing_id, requestId),
  });
}

/** HPKE `info` of the reply: pairing, request id, ephemeral key, times and mode. */
export function replyInfo(pairingId, params) {
  return requestTranscript(Label.UNLOCK_REPLY_INFO, pairingId, params);
}

/** Every parameter of one request, under `label`. */
function requestTranscript(label, pairingId, params) {
  return transcript(
    label,
    pairingId,
    params.requestId,
    params.ephemeralPk,
    u64(params.createdAt),
    u16(params.ttl),
    u8(params.mode),
  );
}

/** MAC input of a refusal sent without the QR: the request as its push described it. */
export function refusalMacInput(pairingId, params) {
  return requestTranscript(Label.UNLOCK_REFUSAL_MAC, pairingId, params);
}

/** Key-encryption key of a phone's vault slot (the desktop computes it; here for the vectors). */
export function phoneSlotKek(phoneShare, localSecret, pairingId) {
  return hkdf(phoneShare, { salt: localSecret, info: transcript(Label.SLOT_PHONE, pairingId) });
}

/**
 * Remembering which requests were already answered, so each is answered once
 * (mirror of unlatch/protocol/replay.py).
 *
 * The app keeps one ReplayGuard in IndexedDB across restarts (`toDict()`); a
 * QR code re-scanned, or a request replayed by the relay, is refused even
 * after the app was closed. Entries are dropped once their request could no
 * longer be accepted anyway, and a hard cap bounds the guard regardless.
 */

import { CLOCK_SKEW_SECONDS, ID_LEN } from "./constants.js";
import { b64d, b64e } from "./encoding.js";
import { AlreadyAnswered, MalformedMessage } from "./errors.js";

export const MAX_ENTRIES = 4096;

export class ReplayGuard {
  constructor() {
    this._seen = new Map(); // base64url request id -> expires_at
  }

  /** Throw AlreadyAnswered if `requestId` was answered before. */
  check(requestId) {
    if (this._seen.has(b64e(requestId))) {
      throw new AlreadyAnswered(
        "this request was already answered on this phone: if the desktop is still locked, start a new unlock there and scan its new code",
      );
    }
  }

  /** Record an answer (call before sending it, so a crash cannot answer twice). */
  remember(requestId, expiresAt, { now }) {
    this.prune({ now });
    if (this._seen.size >= MAX_ENTRIES) {
      let oldest = null;
      for (const [rid, exp] of this._seen) if (oldest === null || exp < this._seen.get(oldest)) oldest = rid;
      this._seen.delete(oldest);
    }
    this._seen.set(b64e(requestId), expiresAt);
  }

  prune({ now }) {
    for (const [rid, exp] of this._seen) if (exp + CLOCK_SKEW_SECONDS < now) this._seen.delete(rid);
  }

  get size() {
    return this._seen.size;
  }

  toDict() {
    return Object.fromEntries(this._seen);
  }

  static fromDict(data) {
    const guard = new ReplayGuard();
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw new MalformedMessage("replay guard state is not a bounded mapping");
    }
    const entries = Object.entries(data);
    if (entries.length > MAX_ENTRIES) throw new MalformedMessage("replay guard state is not a bounded mapping");
    for (const [key, exp] of entries) {
      const rid = b64d(key, "request id");
      if (rid.length !== ID_LEN || !Number.isSafeInteger(exp) || exp < 0) {
        throw new MalformedMessage("replay guard state holds an invalid entry");
      }
      guard._seen.set(key, exp);
    }
    return guard;
  }
}

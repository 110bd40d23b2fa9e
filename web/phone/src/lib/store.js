/**
 * The phone's state in IndexedDB: keys, pairings, the replay guard, settings.
 *
 * What is extractable and what is not (see docs/phone-app.md, "Keys at rest"):
 *   - "identity": the X25519 protocol identity, a CryptoKeyPair whose private
 *     key is NOT extractable (WebCrypto generateKey with extractable=false).
 *   - "device-key": the ECDSA P-256 relay identity, private key NOT extractable.
 *   - "wrap-key": an AES-256-GCM key, NOT extractable, that encrypts the
 *     pairing records (which hold K_P and the pairing's MAC/push/PSK keys).
 *   - "pairings": {iv, ct}: the records, encrypted under "wrap-key".
 *   - "share-wrap" and "shares", where the WebAuthn credential has the PRF
 *     extension: the records' K_P are zeros in "pairings" and live in
 *     "shares" ({iv, ct}), encrypted under a key derived (HKDF, labelled)
 *     from the authenticator's PRF output, which nothing in storage holds.
 *   - "replay", "settings", "push": plain data (no secrets).
 * A script of this origin can still *use* these keys (that is how the app
 * works); what it cannot do is copy the raw key bytes elsewhere.
 *
 * The service worker uses this same module to read the pairings when a push
 * arrives, so it must not touch `window` or the DOM.
 */

import { PhonePairingRecord, ReplayGuard, KeyPair, b64d, b64e } from "../protocol/index.js";

const DB_NAME = "unlatch-phone";
const DB_VERSION = 1;
const STORE = "kv";
const te = new TextEncoder();
const RECORDS_AAD = te.encode("unlatch-phone/pairings/v1");
const SHARES_AAD = te.encode("unlatch-phone/shares/v1");
const SHARE_KEY_INFO = te.encode("unlatch-phone/share-key/v1");
const SHARE_LEN = 32;

let dbPromise = null;

function openDb() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => {
        const db = req.result;
        db.onversionchange = () => {
          db.close();
          dbPromise = null;
        };
        resolve(db);
      };
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error("the app's storage is busy in another tab"));
    });
  }
  return dbPromise;
}

async function tx(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = fn(t.objectStore(STORE));
    t.oncomplete = () => resolve(req ? req.result : undefined);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error || new Error("storage transaction aborted"));
  });
}

export async function kvGet(key) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const req = db.transaction(STORE, "readonly").objectStore(STORE).get(key);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export async function kvSet(key, value) {
  await tx("readwrite", (store) => store.put(value, key));
}

export async function kvDelete(key) {
  await tx("readwrite", (store) => store.delete(key));
}

/** Put (value) or delete (undefined) several keys in ONE transaction: all or nothing. */
async function kvWriteAll(entries) {
  await tx("readwrite", (store) => {
    for (const [key, value] of Object.entries(entries)) {
      if (value === undefined) store.delete(key);
      else store.put(value, key);
    }
    return null;
  });
}

/** Get `key`, or create it with `make()` (once, even if called concurrently in one context). */
const pending = new Map();
async function getOrCreate(key, make) {
  const existing = await kvGet(key);
  if (existing !== undefined) return existing;
  if (!pending.has(key)) {
    pending.set(
      key,
      (async () => {
        const value = await make();
        // add() fails if another context created it meanwhile: then use theirs.
        try {
          await tx("readwrite", (store) => store.add(value, key));
          return value;
        } catch {
          return kvGet(key);
        }
      })().finally(() => pending.delete(key)),
    );
  }
  return pending.get(key);
}

async function wrapKey() {
  return getOrCreate("wrap-key", () =>
    crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]),
  );
}

/** The phone's X25519 protocol identity (KeyPair with a non-extractable private key). */
export async function identity() {
  const pair = await getOrCreate("identity", async () => (await KeyPair.generateNonExtractable()).pair);
  return KeyPair.fromCryptoKeyPair(pair);
}

/** The phone's ECDSA P-256 relay key pair (non-extractable private key). */
export async function deviceKey() {
  return getOrCreate("device-key", () =>
    crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]),
  );
}

/**
 * The paired desktops: [{record: PhonePairingRecord, label, addedAt}], decrypted.
 * `label` is the user's name for the desktop (defaults to the desktop's own name).
 */
export async function loadPairings() {
  const stored = await kvGet("pairings");
  if (!stored) return [];
  const list = await openJson(await wrapKey(), RECORDS_AAD, stored);
  return list.map((entry) => ({
    record: PhonePairingRecord.fromDict(entry.record),
    label: entry.label,
    addedAt: entry.addedAt,
    removed: Boolean(entry.removed), // the relay said the desktop removed this phone
  }));
}

async function sealJson(key, aad, value) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const plain = te.encode(JSON.stringify(value));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, key, plain));
  return { iv, ct };
}

async function openJson(key, aad, stored) {
  const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: stored.iv, additionalData: aad }, key, stored.ct);
  return JSON.parse(new TextDecoder().decode(plain));
}

function pairingsJson(pairings) {
  return pairings.map((p) => ({ record: p.record.toDict(), label: p.label, addedAt: p.addedAt, removed: Boolean(p.removed) }));
}

/**
 * Store the paired desktops. With the PRF protection on and `shareKey` given
 * (the user just verified), a record that still carries its K_P (a pairing
 * made since) has it moved into "shares" and stored as zeros, and shares of
 * unpaired desktops are dropped. Without `shareKey` a new record keeps its K_P
 * under the device key until the next verification (a pairing is never lost
 * to a cancelled prompt). Returns the records as stored.
 */
export async function savePairings(pairings, { shareKey = null } = {}) {
  const writes = {};
  let stored = pairings;
  if (shareKey && (await kvGet("share-wrap"))) {
    const shares = await openShares(shareKey);
    const kept = {};
    for (const p of pairings) {
      const id = b64e(p.record.pairingId);
      if (hasShare(p.record)) kept[id] = b64e(p.record.phoneShare);
      else if (shares[id]) kept[id] = shares[id];
    }
    writes.shares = await sealJson(shareKey, SHARES_AAD, kept);
    stored = pairings.map((p) => ({ ...p, record: withShare(p.record, new Uint8Array(SHARE_LEN)) }));
  }
  writes.pairings = await sealJson(await wrapKey(), RECORDS_AAD, pairingsJson(stored));
  await kvWriteAll(writes);
  return stored;
}

// ------------------------------------------------------------------ K_P under the authenticator (PRF)

function hasShare(record) {
  return record.phoneShare.some((b) => b !== 0);
}

function withShare(record, share) {
  return PhonePairingRecord.fromDict({ ...record.toDict(), phone_share: b64e(share) });
}

/**
 * How the shares (K_P) are kept: {kind: "prf", credentialId, salt} when they are
 * sealed under the authenticator's PRF, else {kind: "device"} (the records'
 * non-extractable wrap key only).
 */
export async function shareProtection() {
  const wrap = await kvGet("share-wrap");
  return wrap ? { kind: "prf", credentialId: wrap.credentialId, salt: wrap.salt } : { kind: "device" };
}

/** The AES-GCM key of "shares": HKDF-SHA256(PRF output, salt, "unlatch-phone/share-key/v1"). */
export async function shareKeyFromPrf(prfOutput, salt) {
  const ikm = await crypto.subtle.importKey("raw", prfOutput, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt, info: SHARE_KEY_INFO },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

async function openShares(shareKey) {
  const stored = await kvGet("shares");
  return stored ? openJson(shareKey, SHARES_AAD, stored) : {};
}

/**
 * Move every K_P under the PRF-derived key: "shares" gets them, "pairings" keeps
 * zeros, "share-wrap" says so; the three in one transaction. `salt` is the PRF
 * input (32 random bytes, stored: it is no secret). Returns the stored records.
 */
export async function enableShareWrap(credentialId, prfOutput, salt) {
  const shareKey = await shareKeyFromPrf(prfOutput, salt);
  const pairings = await loadPairings();
  const shares = Object.fromEntries(pairings.map((p) => [b64e(p.record.pairingId), b64e(p.record.phoneShare)]));
  const stored = pairings.map((p) => ({ ...p, record: withShare(p.record, new Uint8Array(SHARE_LEN)) }));
  await kvWriteAll({
    shares: await sealJson(shareKey, SHARES_AAD, shares),
    pairings: await sealJson(await wrapKey(), RECORDS_AAD, pairingsJson(stored)),
    "share-wrap": { credentialId, salt },
  });
  return stored;
}

/** Back to the device key only (verification turned off): the shares return into the records. */
export async function disableShareWrap(shareKey) {
  const shares = await openShares(shareKey);
  const pairings = (await loadPairings()).map((p) => {
    const share = shares[b64e(p.record.pairingId)];
    return share && !hasShare(p.record) ? { ...p, record: withShare(p.record, b64d(share, "share", 64)) } : p;
  });
  await kvWriteAll({
    pairings: await sealJson(await wrapKey(), RECORDS_AAD, pairingsJson(pairings)),
    shares: undefined,
    "share-wrap": undefined,
  });
  return pairings;
}

/** The record with its K_P, for the one approval it is needed for (never stored so). */
export async function recordWithShare(record, shareKey) {
  if (hasShare(record)) return record;
  const share = (await openShares(shareKey))[b64e(record.pairingId)];
  if (!share) throw new Error("This desktop's unlock key is missing from this phone: pair it again.");
  return withShare(record, b64d(share, "share", 64));
}

export async function loadReplayGuard() {
  const stored = await kvGet("replay");
  return stored ? ReplayGuard.fromDict(stored) : new ReplayGuard();
}

/**
 * Record that this phone answers `requestId`, in the stored replay guard, in
 * ONE readwrite transaction: read the guard, refuse with AlreadyAnswered if
 * the id is there, add it, write it back. IndexedDB runs readwrite
 * transactions on the same store one at a time across every tab, window and
 * the service worker of the origin, so two open copies of the app can neither
 * both answer one request nor overwrite each other's entries (a
 * load-then-save of the in-memory guard could do both). Resolves to the
 * stored guard (with the new entry) for the app's in-memory copy.
 */
export async function rememberAnswer(requestId, expiresAt, { now }) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, "readwrite");
    const store = t.objectStore(STORE);
    let guard = null;
    let refusal = null;
    const req = store.get("replay");
    req.onsuccess = () => {
      // Synchronous from here to put(): an await would let the transaction commit early.
      try {
        guard = req.result ? ReplayGuard.fromDict(req.result) : new ReplayGuard();
        guard.check(requestId);
        guard.remember(requestId, expiresAt, { now });
        store.put(guard.toDict(), "replay");
      } catch (err) {
        refusal = err;
        t.abort();
      }
    };
    t.oncomplete = () => resolve(guard);
    t.onabort = () => reject(refusal || t.error || new Error("storage transaction aborted"));
  });
}

const DEFAULT_SETTINGS = Object.freeze({
  phoneName: "",
  uvCredentialId: null, // base64url WebAuthn credential id when local verification is on
});

export async function loadSettings() {
  return { ...DEFAULT_SETTINGS, ...((await kvGet("settings")) || {}) };
}

export async function saveSettings(settings) {
  await kvSet("settings", settings);
}

/** Forget everything (Settings > Reset): keys, pairings, settings. */
export async function wipe() {
  await tx("readwrite", (store) => store.clear());
}

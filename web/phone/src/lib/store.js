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
 *   - "replay", "settings", "push": plain data (no secrets).
 * A script of this origin can still *use* these keys (that is how the app
 * works); what it cannot do is copy the raw key bytes elsewhere.
 *
 * The service worker uses this same module to read the pairings when a push
 * arrives, so it must not touch `window` or the DOM.
 */

import { PhonePairingRecord, ReplayGuard, KeyPair } from "../protocol/index.js";

const DB_NAME = "unlatch-phone";
const DB_VERSION = 1;
const STORE = "kv";
const RECORDS_AAD = new TextEncoder().encode("unlatch-phone/pairings/v1");

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
  const key = await wrapKey();
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: stored.iv, additionalData: RECORDS_AAD },
    key,
    stored.ct,
  );
  const list = JSON.parse(new TextDecoder().decode(plain));
  return list.map((entry) => ({
    record: PhonePairingRecord.fromDict(entry.record),
    label: entry.label,
    addedAt: entry.addedAt,
  }));
}

export async function savePairings(pairings) {
  const key = await wrapKey();
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const json = JSON.stringify(
    pairings.map((p) => ({ record: p.record.toDict(), label: p.label, addedAt: p.addedAt })),
  );
  const ct = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: RECORDS_AAD },
      key,
      new TextEncoder().encode(json),
    ),
  );
  await kvSet("pairings", { iv, ct });
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

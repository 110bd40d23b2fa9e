/**
 * The app's service worker: serves the pinned app code (below), turns a
 * relay push into "Unlock request from <desktop>", and opens the scanner for
 * that request when the notification is tapped.
 *
 * The push payload is the relay's notification JSON; its `push` field is the
 * desktop's sealed bytes, opened here with the stored pairings
 * (PhoneUnlock.openPush): the relay cannot make a notification that names a
 * desktop, and a push from an unknown pairing says so.
 */

/* global __APP_BUILD__ */
import { PhoneUnlock, ProtocolError, RequestExpired, b64d } from "./protocol/index.js";
import { loadPairings, kvDelete, kvGet, kvSet } from "./lib/store.js";
import {
  MANIFEST_FILE,
  SIGNATURE_FILE,
  MAX_MANIFEST_BYTES,
  SIGNATURE_BYTES,
  changedFiles,
  decideUpdate,
  parseManifest,
  pinOf,
  sha256Hex,
  verifySignature,
} from "./lib/integrity.js";

// ---------------------------------------------------------------- pinned code
//
// BUILD is this worker's own build (build.mjs): version, build id, the SHA-256
// of every file it serves, the release public key. The phone pins one build
// ("app-pin" in IndexedDB) and this worker serves only that build's files,
// from the cache it filled after checking each digest: a server that changes
// app.js afterwards is never run, only reported ("app-served"). A new worker
// (a byte-different sw.js) installs only files matching ITS digests, and is
// pinned only if decideUpdate() accepts it (signed by the pinned key), else
// it is kept as "app-update" until the user approves it in the app.
// docs/phone-app.md, "Pinned code", says what this cannot stop.

const BUILD = __APP_BUILD__;
const PIN = "app-pin";
const PENDING = "app-update";
const SERVED = "app-served";
const REFUSED = "app-refused";
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const scope = self.registration.scope; // ends with /app/
const cacheName = (build) => `unlatch-shell-${build}`;
const fileUrl = (name) => new URL(name, scope).href;

/** Bytes of a file of the app as the server serves it now, or null (offline, error, too large). */
async function fetchFile(name, cache = "no-store") {
  let res;
  try {
    res = await fetch(fileUrl(name), { cache, credentials: "omit", redirect: "error" });
  } catch {
    return null;
  }
  if (!res.ok) return null;
  const bytes = new Uint8Array(await res.arrayBuffer());
  return bytes.length > MAX_FILE_BYTES ? null : { bytes, headers: res.headers };
}

/** Tell every open window what the integrity status is now. */
async function broadcast() {
  const status = await integrityStatus();
  for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
    client.postMessage({ type: "integrity", status });
  }
}

/** What the app shows: the pinned build, a refused or waiting update, what the server serves now. */
async function integrityStatus() {
  const [pin, pending, served, refused] = await Promise.all([kvGet(PIN), kvGet(PENDING), kvGet(SERVED), kvGet(REFUSED)]);
  return {
    origin: self.location.origin,
    pinned: pin ? { version: pin.version, build: pin.build, keyKind: pin.keyKind } : null,
    pending: pending && pin && pending.build !== pin.build ? pending : null,
    served: served && pin && served.build === pin.build ? served : null,
    refused: refused && pin && refused.pinned === pin.build ? refused : null,
  };
}

async function install() {
  // Every file must be the one this build names: one that differs is refused
  // (the install fails and the installed build stays).
  const files = {};
  const bad = [];
  for (const [name, digest] of Object.entries(BUILD.files)) {
    const got = await fetchFile(name);
    if (!got) throw new Error(`could not fetch ${name}`);
    if ((await sha256Hex(got.bytes)) !== digest) bad.push(name);
    else files[name] = got;
  }
  const pin = await kvGet(PIN);
  if (bad.length) {
    if (pin) {
      await kvSet(REFUSED, { pinned: pin.build, version: BUILD.version, build: BUILD.build, files: bad, at: Date.now() });
      await broadcast();
    }
    throw new Error(`refused: ${bad.join(", ")} differ from build ${BUILD.build}`);
  }
  const cache = await caches.open(cacheName(BUILD.build));
  for (const [name, got] of Object.entries(files)) {
    await cache.put(fileUrl(name), new Response(got.bytes, { status: 200, headers: got.headers }));
  }
  const manifest = await fetchFile(MANIFEST_FILE);
  const sig = await fetchFile(SIGNATURE_FILE);
  const decision = await decideUpdate({
    pin,
    build: BUILD,
    manifestBytes: manifest && manifest.bytes.length <= MAX_MANIFEST_BYTES ? manifest.bytes : null,
    signature: sig && sig.bytes.length === SIGNATURE_BYTES ? sig.bytes : null,
  });
  if (decision.accept) {
    await kvSet(PIN, decision.pin);
    await kvDelete(PENDING);
    await kvDelete(REFUSED);
    await broadcast();
    await self.skipWaiting();
  } else {
    await kvSet(PENDING, { version: BUILD.version, build: BUILD.build, keyKind: BUILD.keyKind, reason: decision.reason });
    await broadcast();
  }
}

self.addEventListener("install", (event) => event.waitUntil(install()));

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const [pin, pending] = await Promise.all([kvGet(PIN), kvGet(PENDING)]);
      const keep = new Set([pin, pending].filter(Boolean).map((b) => cacheName(b.build)));
      for (const key of await caches.keys()) if (key.startsWith("unlatch-shell-") && !keep.has(key)) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

/** A file of the pinned build: from its cache, else fetched and served only if its digest matches. */
async function servePinned(pin, name) {
  if (!(name in pin.files)) return new Response("not a file of the installed unlatch app", { status: 404 });
  const hit = await (await caches.open(cacheName(pin.build))).match(fileUrl(name));
  if (hit) return hit;
  const got = await fetchFile(name);
  if (got && (await sha256Hex(got.bytes)) === pin.files[name]) {
    return new Response(got.bytes, { status: 200, headers: got.headers });
  }
  return new Response(`the installed unlatch app's ${name} is missing and the server's copy differs`, { status: 502 });
}

/**
 * Compare what the server serves now with the pinned files, on each start of
 * the app (conditional requests: unchanged files cost a 304; one check at a
 * time). A difference that a manifest signed
 * by the pinned key explains is an update on its way; any other is a warning.
 */
let checking = null;
function checkServed() {
  checking ||= compareServed().finally(() => {
    checking = null;
  });
  return checking;
}

async function compareServed() {
  const pin = await kvGet(PIN);
  if (!pin) return;
  const served = {};
  for (const name of Object.keys(pin.files)) {
    const got = await fetchFile(name, "no-cache");
    if (!got) return; // offline or unreachable: no verdict
    served[name] = await sha256Hex(got.bytes);
  }
  const changed = changedFiles(pin.files, served);
  let state = changed.length ? "changed" : "same";
  let update = null;
  if (changed.length) {
    const manifest = await fetchFile(MANIFEST_FILE, "no-cache");
    const sig = await fetchFile(SIGNATURE_FILE, "no-cache");
    if (manifest && sig && (await verifySignature(manifest.bytes, sig.bytes, pin.releaseKey))) {
      try {
        const m = parseManifest(manifest.bytes);
        if (changed.every((name) => m.files[name] === served[name])) {
          state = "signed-update";
          update = { version: m.version, build: m.build };
        }
      } catch {
        // an unparseable manifest explains nothing: a warning
      }
    }
  }
  await kvSet(SERVED, { build: pin.build, state, changed, update, at: Date.now() });
  await broadcast();
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || !url.href.startsWith(scope)) return; // API calls: network only
  const name = req.mode === "navigate" ? "index.html" : url.pathname.slice(new URL(scope).pathname.length) || "index.html";
  event.respondWith(
    (async () => {
      const pin = await kvGet(PIN);
      // Not installed yet (this worker's first install failed): nothing is pinned to serve.
      return pin ? servePinned(pin, name) : fetch(req);
    })(),
  );
  if (req.mode === "navigate") event.waitUntil(checkServed().catch(() => null));
});

self.addEventListener("message", (event) => {
  const msg = event.data || {};
  if (msg.type === "integrity") {
    event.waitUntil(
      (async () => {
        await checkServed().catch(() => null); // joins the check this start began, if still running
        event.source?.postMessage({ type: "integrity", status: await integrityStatus() });
      })(),
    );
  } else if (msg.type === "approve-update" && msg.build === BUILD.build) {
    // The user saw this version and approved it: pin it (its own release key becomes the pinned one).
    event.waitUntil(
      (async () => {
        const pending = await kvGet(PENDING);
        if (!pending || pending.build !== BUILD.build) return;
        await kvSet(PIN, pinOf(BUILD));
        await kvDelete(PENDING);
        await kvDelete(SERVED);
        await self.skipWaiting();
        event.source?.postMessage({ type: "update-approved", build: BUILD.build });
      })(),
    );
  }
});

function label(entry) {
  return entry?.label || entry?.record?.desktopName || "your desktop";
}

/** What a relay notification should show: {title, options} (never throws). */
async function describe(notification) {
  const fallback = {
    title: "Unlock request",
    options: { body: "Open unlatch to see it.", tag: "unlatch-unknown", data: { hash: "#/" } },
  };
  if (!notification || notification.type !== "unlock" || typeof notification.push !== "string") return fallback;
  let pairings;
  try {
    pairings = await loadPairings();
  } catch {
    return fallback;
  }
  try {
    const pushed = await PhoneUnlock.openPush(
      b64d(notification.push, "push", 2048),
      pairings.map((p) => p.record),
      { now: Math.floor(Date.now() / 1000) },
    );
    const entry = pairings.find((p) => p.record === pushed.pairing);
    const rid = notification.request_id;
    const numberMatch = pushed.params.mode === 2;
    const refused = numberMatch && !pushed.pairing.allowNumberMatching; // protocol.md 6.8
    const from = notification.requester?.address;
    return {
      title: `Unlock request from ${label(entry)}`,
      options: {
        body: refused
          ? "It asked to be approved from the notification, which you did not allow for it. Tap for details."
          : numberMatch
            ? "Tap to pick the number your desktop shows."
            : `Tap to scan the QR code on its screen${from ? ` · from ${from}` : ""}.`,
        tag: `unlatch-${rid}`,
        renotify: true,
        requireInteraction: true,
        timestamp: Math.round(Number(pushed.params.createdAt) * 1000),
        icon: new URL("icon-192.png", scope).href,
        badge: new URL("badge-96.png", scope).href,
        data: { hash: `#/scan?request=${encodeURIComponent(rid)}`, requestId: rid, notification },
      },
    };
  } catch (err) {
    if (err instanceof RequestExpired) {
      return { title: "Expired unlock request", options: { body: err.message, tag: "unlatch-expired", data: { hash: "#/" } } };
    }
    if (err instanceof ProtocolError) {
      return {
        title: "Unlock request not from your desktops",
        options: {
          body: "A request arrived that none of your paired desktops made. It was ignored.",
          tag: "unlatch-unknown",
          data: { hash: "#/" },
        },
      };
    }
    return fallback;
  }
}

self.addEventListener("push", (event) => {
  event.waitUntil(
    (async () => {
      let notification = null;
      try {
        notification = event.data ? event.data.json() : null;
      } catch {
        notification = null;
      }
      const { title, options } = await describe(notification);
      await self.registration.showNotification(title, options);
      // An open app adds the request to its list at once.
      for (const client of await self.clients.matchAll({ type: "window", includeUncontrolled: true })) {
        if (notification) client.postMessage({ type: "notification", notification });
      }
    })(),
  );
});

/** Open the app at `hash` (#/scan?request=...): focus an open window, or open one. */
async function openApp(hash) {
  const url = new URL(`./${hash}`, scope).href;
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const existing = windows.find((c) => c.url.startsWith(scope));
  if (existing) {
    existing.postMessage({ type: "navigate", hash });
    try {
      await existing.focus();
    } catch {
      // focusing needs a user gesture on some platforms; the app still navigated
    }
    return { url, reused: true };
  }
  await self.clients.openWindow(url);
  return { url, reused: false };
}

async function clickNotification(notification) {
  notification.close();
  return openApp(notification.data?.hash || "#/");
}

self.addEventListener("notificationclick", (event) => {
  event.waitUntil(clickNotification(event.notification));
});

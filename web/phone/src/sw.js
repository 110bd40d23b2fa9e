/**
 * The app's service worker: keeps the app shell for offline start, turns a
 * relay push into "Unlock request from <desktop>", and opens the scanner for
 * that request when the notification is tapped.
 *
 * The push payload is the relay's notification JSON; its `push` field is the
 * desktop's sealed bytes, opened here with the stored pairings
 * (PhoneUnlock.openPush): the relay cannot make a notification that names a
 * desktop, and a push from an unknown pairing says so.
 */

/* global __SHELL_VERSION__, __SHELL_FILES__ */
import { PhoneUnlock, ProtocolError, RequestExpired, b64d } from "./protocol/index.js";
import { loadPairings } from "./lib/store.js";

const CACHE = `unlatch-shell-${__SHELL_VERSION__}`;
const SHELL = __SHELL_FILES__;
const scope = self.registration.scope; // ends with /app/

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((f) => new URL(f, scope).href)))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) if (key.startsWith("unlatch-shell-") && key !== CACHE) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || !url.href.startsWith(scope)) return; // API calls: network only
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const key = req.mode === "navigate" ? new URL("index.html", scope).href : url.href.split("#")[0];
      const hit = await cache.match(key, { ignoreSearch: true });
      if (hit) return hit;
      return fetch(req);
    })(),
  );
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

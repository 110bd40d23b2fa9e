/**
 * The unlatch phone app: boot, state, router and the frame around the screens.
 *
 * Routes are #fragments (the app is one static page under /app/):
 *   #/            Home: pending requests and paired desktops
 *   #/scan        Scanner (?request=<id> when opened from a notification)
 *   #/pair        Pairing (state in memory: opened from a scanned offer)
 *   #/approve     Approve / Deny / "I did not ask for this"
 *   #/devices     Paired desktops: rename, unpair, unblock
 *   #/settings    Phone name, user verification, notifications
 *   #m=<code>     A QR code opened by the phone's own camera: the code is read,
 *                 removed from the address bar, and sent to the right flow.
 */

import {
  addNotification,
  checkRemovedPairings,
  enablePush,
  explain,
  handleCode,
  loadPushStatus,
  onRelayFrame,
  refreshPending,
} from "./lib/actions.js";
import { h, icon } from "./lib/dom.js";
import { RELAY_URL_KEY, Relay, relayBaseFromLocation } from "./lib/relay.js";
import { identity, kvGet, loadPairings, loadReplayGuard, loadSettings } from "./lib/store.js";
import { unsupportedReason } from "./lib/support.js";
import * as approve from "./screens/approve.js";
import * as devices from "./screens/devices.js";
import * as home from "./screens/home.js";
import { renderIntegrity } from "./screens/integrity.js";
import * as pair from "./screens/pair.js";
import * as scan from "./screens/scan.js";
import * as settings from "./screens/settings.js";

const SCREENS = { "": home, scan, pair, approve, devices, settings };
const TABS = [
  ["", "Home", "home"],
  ["scan", "Scan", "scan"],
  ["devices", "Desktops", "devices"],
  ["settings", "Settings", "settings"],
];

const state = {
  ready: false,
  identity: null,
  pairings: [],
  settings: null,
  replay: null,
  pending: new Map(), // request id (b64url) -> {notification, pushed, pairingEntry}
  listener: "connecting",
  push: null,
  flow: null, // the pairing or approval in progress
  notice: null, // {title, message, kind} shown once on the next screen
  integrity: null, // the service worker's report on the app's own code (sw.js, "Pinned code")
};

const relay = new Relay(relayBaseFromLocation());
let current = null; // {name, cleanup}
const root = document.getElementById("app");
// Above every screen, kept across renders: warnings about the app's own code.
const integrityBanner = h("div", { id: "integrity-warning", class: "integrity", role: "alert", hidden: true });

const ctx = {
  state,
  relay,
  go(hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  },
  rerender: () => render(),
  notify(notice) {
    state.notice = notice;
  },
  // Screens subscribe to "pending changed" to refresh lists and banners.
  listeners: new Set(),
  emit() {
    for (const fn of ctx.listeners) fn();
  },
};
globalThis.unlatchApp = ctx; // for the browser console and end-to-end tests

function parseRoute() {
  const hash = location.hash.replace(/^#/, "");
  const [path, query] = hash.replace(/^\//, "").split("?");
  return { name: path in SCREENS ? path : "", params: new URLSearchParams(query || "") };
}

function frame(name, content) {
  const nav = h(
    "nav",
    { class: "tabs", "aria-label": "Sections" },
    TABS.map(([route, label, iconName]) =>
      h(
        "a",
        {
          href: `#/${route}`,
          class: `tab${route === name ? " active" : ""}`,
          "aria-current": route === name ? "page" : null,
        },
        icon(iconName),
        h("span", { text: label }),
      ),
    ),
  );
  const focused = name === "pair" || name === "approve";
  return [integrityBanner, h("main", { class: `screen screen-${name || "home"}` }, content), focused ? null : nav];
}

async function render() {
  if (!state.ready) return;
  if (location.hash.startsWith("#m=")) return openLink();
  const { name, params } = parseRoute();
  if (current?.cleanup) current.cleanup();
  const screen = SCREENS[name];
  const out = screen.render(ctx, params);
  current = { name, cleanup: out.cleanup };
  root.replaceChildren(...frame(name, out.node).filter(Boolean));
  root.dataset.screen = name || "home";
  window.scrollTo(0, 0);
}

/** A #m= link (QR opened by the phone's camera, or pasted): consume it, never keep it in history. */
async function openLink() {
  const link = location.href;
  history.replaceState(null, "", location.pathname + location.search + "#/");
  try {
    await handleCode(ctx, link);
  } catch (err) {
    const e = explain(err);
    state.notice = { title: e.title, message: e.message, kind: e.kind };
    render();
  }
}

function showBootError(title, message) {
  root.replaceChildren(
    h(
      "main",
      { class: "screen" },
      h("div", { class: "card error", id: "boot-error" }, h("h2", { text: title }), h("p", { text: message })),
    ),
  );
}

async function boot() {
  const unsupported = await unsupportedReason();
  if (unsupported) {
    showBootError(unsupported.title, unsupported.message);
    return;
  }
  try {
    [state.identity, state.pairings, state.settings, state.replay, state.push] = await Promise.all([
      identity(),
      loadPairings(),
      loadSettings(),
      loadReplayGuard(),
      loadPushStatus(),
    ]);
    const ownRelay = await kvGet(RELAY_URL_KEY); // set when the app has an origin of its own
    if (typeof ownRelay === "string") relay.use(ownRelay);
    await relay.computeDeviceId();
  } catch (err) {
    showBootError("This browser cannot run unlatch", explain(err).message);
    return;
  }
  state.ready = true;
  window.addEventListener("hashchange", render);
  await render();
  registerServiceWorker();
  startListening();
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => null);
  navigator.serviceWorker.addEventListener("message", (event) => {
    const msg = event.data || {};
    if (msg.type === "navigate" && typeof msg.hash === "string" && msg.hash.startsWith("#/")) {
      ctx.go(msg.hash);
    } else if (msg.type === "notification" && msg.notification) {
      addNotification(ctx, msg.notification).then((added) => added && ctx.emit());
    } else if (msg.type === "integrity" && msg.status) {
      state.integrity = msg.status;
      renderIntegrity(integrityBanner, msg.status, { approve: approveUpdate });
    } else if (msg.type === "update-approved") {
      location.reload();
    }
  });
  // Ask the worker for its report (it also checks what the server serves now), and ask
  // again when another worker takes over (it answers from its own, later, reading).
  const ask = () => navigator.serviceWorker.controller?.postMessage({ type: "integrity" });
  navigator.serviceWorker.ready.then(ask).catch(() => null);
  navigator.serviceWorker.addEventListener("controllerchange", ask);
}

/** The user approved the waiting update shown with its version: tell that worker to pin itself. */
async function approveUpdate(build) {
  const reg = await navigator.serviceWorker.getRegistration();
  for (const worker of [reg?.waiting, reg?.installing, reg?.active]) {
    worker?.postMessage({ type: "approve-update", build });
  }
}

function startListening() {
  const refresh = () =>
    Promise.all([refreshPending(ctx), checkRemovedPairings(ctx)])
      .then(() => ctx.emit())
      .catch(() => null);
  relay.listen(
    async (notification) => {
      if (await addNotification(ctx, notification)) ctx.emit();
    },
    (status) => {
      state.listener = status;
      if (status === "live") refresh();
      ctx.emit();
    },
    async (frame) => {
      if (await onRelayFrame(ctx, frame).catch(() => false)) ctx.emit();
    },
  );
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
  setInterval(() => {
    const now = Date.now() / 1000;
    let changed = false;
    for (const [rid, p] of state.pending) {
      for (const c of p.session.handle({ type: "tick", now })) {
        if (c.type === "forget") {
          state.pending.delete(rid);
          changed = true;
        }
      }
    }
    if (changed) ctx.emit();
  }, 1000);
  if (state.pairings.length && !state.push.enabled && globalThis.Notification?.permission === "granted") {
    enablePush(ctx, { ask: false }).then(() => ctx.emit());
  }
}

boot();

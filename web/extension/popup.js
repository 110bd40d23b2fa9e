/**
 * The popup: a surface over the desktop agent's state, reached through the native
 * host (docs/browser.md). It keeps no secret: logins arrive one item per click and
 * go straight into the page or the clipboard. While open it watches the agent's
 * state, so a lock or unlock made anywhere shows here at once.
 */
import { HostClient, HOST_NAME, WATCH_TIMEOUT } from "./lib/host.js";
import { FINAL, mmss, requestStatus, screenFor } from "./lib/view.js";
import { chooseFrame, fillGenerated, fillLogin, probeFrame } from "./lib/fill.js";

const $ = (id) => document.getElementById(id);
const SCREENS = ["connecting", "no_vault", "locked", "request", "unlocked"];
let host = null;
let state = null;
let tab = null;
let qrKey = "";
let dismissed = "";  // a finished request the user closed with "Back"
let clockSkew = 0;
let pendingFrame = null;

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function fail(err) {
  notice(err && err.message ? err.message : String(err));
}

async function busy(button, fn) {
  button.disabled = true;
  try { return await fn(); } catch (err) { fail(err); return undefined; } finally { button.disabled = false; }
}

async function targetTab() {
  const id = new URLSearchParams(location.search).get("tab");  // the pop-out window names its tab
  if (id) {
    try { return await chrome.tabs.get(Number(id)); } catch (e) { return null; }
  }
  const [active] = await chrome.tabs.query({ active: true, currentWindow: true });
  return active || null;
}

function showScreen(name) {
  for (const s of SCREENS) $(`screen-${s}`).hidden = s !== name;
  document.body.dataset.screen = name;
}

function render(next) {
  const prev = state;
  state = next;
  clockSkew = next.now - Date.now() / 1000;
  $("desktop-name").textContent = next.desktop.name;
  let screen = screenFor(next);
  if (screen === "request" && next.unlock.id === dismissed) screen = "locked";
  const before = prev ? document.body.dataset.screen : "";
  showScreen(screen);
  if (screen === "locked") renderLocked(next);
  if (screen === "request") renderRequest(next.unlock);
  if (screen === "unlocked" && before !== "unlocked") { loadLogins(); $("search").focus(); }
  if (screen !== "unlocked") { $("logins").textContent = ""; hideConfirm(); }
  if (screen === "locked" && before !== "locked") $("password").focus();
}

// ------------------------------------------------------------------ locked

function renderLocked(s) {
  const phones = s.phones || [];
  $("phone-btn").hidden = phones.length === 0;
  $("no-phone").hidden = phones.length > 0;
  const select = $("phone-select");
  select.hidden = $("phone-select-label").hidden = phones.length < 2;
  const ids = phones.map((p) => p.id).join(",");
  if (select.dataset.ids !== ids) {
    select.dataset.ids = ids;
    select.textContent = "";
    for (const p of phones) select.append(new Option(p.label, p.id));
  }
}

$("password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  busy($("password-btn"), async () => {
    try {
      await host.call("unlock_password", { password: $("password").value });
      $("password").value = "";
      $("password-error").hidden = true;
    } catch (err) {
      $("password-error").textContent = err.code === "wrong_password" ? "Wrong master password." : err.message;
      $("password-error").hidden = false;
      $("password").select();
    }
  });
});

async function requestUnlock() {
  notice("");
  const phones = state.phones || [];
  const args = phones.length > 1 ? { phone_id: $("phone-select").value } : {};
  const attempt = await host.call("unlock_phone", args);
  dismissed = "";
  render({ ...state, unlock: attempt });
  $("request-title").focus();
}
$("phone-btn").addEventListener("click", () => busy($("phone-btn"), requestUnlock));
$("request-again").addEventListener("click", () => busy($("request-again"), requestUnlock));
$("request-cancel").addEventListener("click", () => busy($("request-cancel"), () => host.call("unlock_cancel")));
$("request-back").addEventListener("click", () => { dismissed = state.unlock ? state.unlock.id : ""; render(state); });

$("passkey-btn").addEventListener("click", () => busy($("passkey-btn"), async () => {
  const { url } = await host.call("open_ui");
  await chrome.tabs.create({ url });
  $("passkey-note").hidden = false;
}));

// ------------------------------------------------------------------ request

function renderRequest(u) {
  const status = requestStatus(u);
  const numberMode = u.mode === "number";
  $("request-title").textContent = numberMode ? "Approve on your phone" : "Scan with your phone";
  $("request-status").textContent = status.text;
  $("request-status").dataset.state = u.state;
  $("request-detail").textContent = status.final ? status.detail : `Sent to ${u.phone.label}. ${status.detail}`;
  $("request-number").hidden = !numberMode || u.number === null || status.final;
  $("request-number").textContent = u.number === null ? "" : String(u.number);
  $("request-cancel").hidden = status.final;
  $("request-again").hidden = $("request-back").hidden = !status.final;
  const img = $("request-qr");
  img.hidden = numberMode || status.final;
  const key = `${u.id}-${u.generation}`;
  if (!numberMode && !status.final && key !== qrKey) {
    qrKey = key;
    host.call("unlock_qr").then((qr) => {
      if (qrKey === key) img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(qr.svg);
    }).catch(() => {});  // the request ended meanwhile: the next state shows why
  }
  tick();
}

function tick() {
  const u = state && state.unlock;
  const left = u && !FINAL.includes(u.state) ? u.expires_at - (Date.now() / 1000 + clockSkew) : null;
  $("request-expiry").textContent = left === null ? "" : `This request expires in ${mmss(left)}`;
}
setInterval(tick, 1000);

// ------------------------------------------------------------------ unlocked

function siteOf(url) {
  try { return new URL(url).host; } catch (e) { return ""; }
}

async function loadLogins() {
  const query = $("search").value.trim();
  const url = tab && tab.url ? tab.url : "";
  const site = siteOf(url);
  $("site").textContent = site ? `Logins for ${site}` : "This tab has no web page to fill.";
  try {
    const { logins } = await host.call("logins", { url, query });
    renderLogins(logins, query);
  } catch (err) { fail(err); }
}

function actionButton(text, label, onClick, primary = false) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = primary ? "btn primary" : "btn";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", () => busy(b, onClick));
  return b;
}

function renderLogins(logins, query) {
  const list = $("logins");
  list.textContent = "";
  $("logins-empty").hidden = logins.length > 0;
  $("logins-empty").textContent = query ? "Nothing matches." : "No login saved for this site. Search to see all.";
  for (const login of logins) {
    const li = document.createElement("li");
    li.dataset.item = login.id;
    const title = document.createElement("div");
    title.className = "t";
    title.textContent = login.title;
    if (login.match) {
      const m = document.createElement("span");
      m.className = "match";
      m.textContent = "this site";
      title.append(m);
    }
    const user = document.createElement("div");
    user.className = "u";
    user.textContent = login.username;
    const acts = document.createElement("div");
    acts.className = "acts";
    if (login.match) acts.append(actionButton("Fill", `Fill ${login.title}`, () => fill(login), true));
    if (login.username) acts.append(actionButton("Copy username", `Copy username of ${login.title}`, () => copy(login, "username")));
    acts.append(actionButton("Copy password", `Copy password of ${login.title}`, () => copy(login, "password")));
    if (login.has_totp) acts.append(actionButton("Copy code", `Copy code of ${login.title}`, () => copy(login, "totp")));
    li.append(title, user, acts);
    list.append(li);
  }
}

let searchTimer = 0;
$("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadLogins, 150); });

async function copy(login, field) {
  const { value } = await host.call("copy", { item_id: login.id, field });
  await navigator.clipboard.writeText(value);
  notice({ username: "Username", password: "Password", totp: "One-time code" }[field] + " copied.");
}

async function probe() {
  return chrome.scripting.executeScript({ target: { tabId: tab.id, allFrames: true }, func: probeFrame });
}

async function fill(login) {
  if (!tab) throw new Error("No tab to fill.");
  notice("");
  const probes = await probe();
  const top = probes.find((p) => p.result && p.result.top);
  let frame = chooseFrame(probes);
  const formFound = probes.some((p) => p.result && p.result.hasPassword);
  if (top && !formFound && top.result.frames.length) {
    return askFrame(login, top.result.frames[0]);  // the form may be in a frame we may not touch
  }
  if (!frame) throw new Error("Nothing to fill on this page.");
  if (frame.crossOrigin) return askFrame(login, frame.origin);
  return fillFrame(login, frame);
}

async function fillFrame(login, frame) {
  const creds = await host.call("fill", { item_id: login.id, url: frame.href });
  const [result] = await chrome.scripting.executeScript({
    target: { tabId: tab.id, frameIds: [frame.frameId] }, func: fillLogin, args: [creds.username, creds.password],
  });
  const filled = result && result.result ? result.result : [];
  notice(filled.length ? `Filled ${filled.join(" and ")}.` : "No login field found on this page.");
}

function askFrame(login, origin) {
  pendingFrame = { login, origin };
  $("frame-confirm-text").textContent = `The login form is in a frame from ${origin}, not from this page's site. Fill it there?`;
  $("frame-confirm").hidden = false;
  $("frame-confirm-no").focus();
}

function hideConfirm() { pendingFrame = null; $("frame-confirm").hidden = true; }
$("frame-confirm-no").addEventListener("click", () => { hideConfirm(); notice("Nothing was filled."); });
$("frame-confirm-yes").addEventListener("click", () => busy($("frame-confirm-yes"), async () => {
  const { login, origin } = pendingFrame;
  hideConfirm();
  const granted = await chrome.permissions.request({ origins: [`${origin}/*`] });
  if (!granted) { notice("Nothing was filled: the browser did not allow access to that frame."); return; }
  const frame = (await probe()).filter((p) => p.result && p.result.origin === origin && p.result.hasPassword)
    .map((p) => ({ frameId: p.frameId, href: p.result.href, origin, crossOrigin: true }))[0];
  if (!frame) { notice("No login form found in that frame."); return; }
  await fillFrame(login, frame);
}));

$("generate-btn").addEventListener("click", () => busy($("generate-btn"), async () => {
  const { value } = await host.call("generate", { length: 20 });
  let placed = false;
  if (tab) {
    const [result] = await chrome.scripting.executeScript({ target: { tabId: tab.id }, func: fillGenerated, args: [value] });
    placed = Boolean(result && result.result);
  }
  if (!placed) await navigator.clipboard.writeText(value);
  notice(placed ? "A new password was put into the focused field." : "No field had focus: the new password was copied.");
}));

$("lock-btn").addEventListener("click", () => busy($("lock-btn"), () => host.call("lock")));

$("popout").addEventListener("click", async () => {
  if (!tab) return;
  await chrome.windows.create({ url: `popup.html?tab=${tab.id}`, type: "popup", width: 380, height: 620 });
  window.close();
});

// ------------------------------------------------------------------ start

async function watch() {
  while (!host.closed) {
    try {
      const next = await host.call("state", { since: state.version, timeout: WATCH_TIMEOUT }, (WATCH_TIMEOUT + 15) * 1000);
      if (next.version !== state.version) render(next);
    } catch (err) {
      if (host.closed) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  showScreen("connecting");
  fail(host.closed);
}

async function start() {
  tab = await targetTab();
  host = new HostClient(chrome.runtime.connectNative(HOST_NAME));
  try {
    render(await host.call("state"));
  } catch (err) {
    fail(err);
    return;
  }
  watch();
}

start();

// unlatch desktop UI: passkey unlock (WebAuthn with the PRF extension).
// An ES module loaded next to app.js; no inline script (the CSP forbids it).
//
// The agent makes every WebAuthn challenge and verifies every answer; this
// page only runs navigator.credentials.create/get and forwards the results,
// including the PRF output, to the local agent over the same-origin,
// cookie + CSRF protected connection. The relying party is "localhost"
// (browsers refuse an IP address such as 127.0.0.1 as an RP id), so
// ceremonies run only on http://localhost:PORT/.

const CANONICAL_HOST = "localhost";

// ------------------------------------------------------------------ base64url
export function b64urlEncode(buf) {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
export function b64urlDecode(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

// ------------------------------------------------------------------ API
// app.js's helper (window.unlatch.api: CSRF token, relative paths, ApiError). app.js
// is a deferred classic script listed before this module, so it has run by now.
const { api, ApiError } = window.unlatch;

// ------------------------------------------------------ options and results
function creationOptions(pk) {
  const o = structuredClone(pk);
  o.challenge = b64urlDecode(pk.challenge);
  o.user.id = b64urlDecode(pk.user.id);
  o.excludeCredentials = (pk.excludeCredentials || []).map((c) => ({ ...c, id: b64urlDecode(c.id) }));
  if (pk.extensions && pk.extensions.prf && pk.extensions.prf.eval) {
    o.extensions.prf.eval.first = b64urlDecode(pk.extensions.prf.eval.first);
  }
  return o;
}
function requestOptions(pk) {
  const o = structuredClone(pk);
  o.challenge = b64urlDecode(pk.challenge);
  o.allowCredentials = (pk.allowCredentials || []).map((c) => ({ ...c, id: b64urlDecode(c.id) }));
  const byCred = pk.extensions && pk.extensions.prf && pk.extensions.prf.evalByCredential;
  if (byCred) {
    o.extensions.prf.evalByCredential = {};
    for (const [id, v] of Object.entries(byCred)) o.extensions.prf.evalByCredential[id] = { first: b64urlDecode(v.first) };
  }
  return o;
}

function prfJSON(prf) {
  if (!prf) return undefined;
  const out = {};
  if ("enabled" in prf) out.enabled = prf.enabled;
  if (prf.results && prf.results.first) {
    out.results = { first: typeof prf.results.first === "string" ? prf.results.first : b64urlEncode(prf.results.first) };
  }
  return out;
}

// The JSON form the agent's WebAuthn library reads (toJSON() where the browser has it).
export function credentialJSON(cred) {
  const ext = cred.getClientExtensionResults();
  let json = null;
  if (typeof cred.toJSON === "function") { try { json = cred.toJSON(); } catch (e) { json = null; } }
  if (!json) {
    const r = cred.response;
    const response = { clientDataJSON: b64urlEncode(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = b64urlEncode(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = b64urlEncode(r.authenticatorData);
      response.signature = b64urlEncode(r.signature);
      if (r.userHandle) response.userHandle = b64urlEncode(r.userHandle);
    }
    json = { id: cred.id, rawId: b64urlEncode(cred.rawId), type: cred.type, response,
             authenticatorAttachment: cred.authenticatorAttachment || undefined, clientExtensionResults: {} };
  }
  json.clientExtensionResults = { ...(json.clientExtensionResults || {}) };
  const prf = prfJSON(ext.prf);
  if (prf) json.clientExtensionResults.prf = prf; else delete json.clientExtensionResults.prf;
  return json;
}

// Best effort: overwrite the PRF output the browser handed us once it is sent.
function wipePrf(cred) {
  try {
    const first = cred.getClientExtensionResults().prf?.results?.first;
    if (first && first.byteLength !== undefined) new Uint8Array(first.buffer || first).fill(0);
  } catch (e) { /* nothing to wipe */ }
}

function explainDom(err, during) {
  if (err instanceof ApiError) return err.message;
  const name = err && err.name;
  if (name === "NotAllowedError") {
    return during === "unlock"
      ? "No passkey of this vault was used (cancelled, timed out, or this authenticator has no passkey registered here). The vault stays locked."
      : "The passkey dialog was cancelled or timed out. Nothing was added.";
  }
  if (name === "InvalidStateError") return "This authenticator already holds a passkey for this vault.";
  if (name === "SecurityError") return `Passkeys work only on http://${CANONICAL_HOST}:${location.port}/.`;
  if (name === "NotSupportedError") return "This browser or authenticator does not support passkeys with PRF.";
  return (err && err.message) || String(err);
}

export const onCanonicalHost = () => location.hostname === CANONICAL_HOST;

// ------------------------------------------------------------- ceremonies
export async function addPasskey(label) {
  const opts = await api("POST", "api/passkeys/register/options", { label });
  const cred = await navigator.credentials.create({ publicKey: creationOptions(opts.publicKey) });
  let result;
  try { result = await api("POST", "api/passkeys/register", { token: opts.token, credential: credentialJSON(cred) }); }
  finally { wipePrf(cred); }
  if (result.passkey) return result.passkey;
  // PRF supported but not evaluated at creation: one assertion carries it.
  const assertion = await navigator.credentials.get({ publicKey: requestOptions(result.publicKey) });
  try { result = await api("POST", "api/passkeys/register/prf", { token: result.token, credential: credentialJSON(assertion) }); }
  finally { wipePrf(assertion); }
  return result.passkey;
}

export async function unlockWithPasskey() {
  const opts = await api("POST", "api/passkeys/unlock/options");
  const assertion = await navigator.credentials.get({ publicKey: requestOptions(opts.publicKey) });
  try { return await api("POST", "api/passkeys/unlock", { token: opts.token, credential: credentialJSON(assertion) }); }
  finally { wipePrf(assertion); }
}

export async function switchToCanonicalHost() {
  const { url } = await api("POST", "api/passkeys/switch-host");
  location.assign(url);
}

// ------------------------------------------------------------------ view
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(e.dataset, v); else if (k in e) e[k] = v; else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
};

let passkeys = [];
let lastKey = "";

function setError(node, text) { node.textContent = text || ""; node.hidden = !text; }

function hostNote() {
  const box = el("p", { className: "muted small passkey-host-note", hidden: onCanonicalHost() },
    `Passkeys are bound to the host name “${CANONICAL_HOST}”. `,
  );
  const btn = el("button", { type: "button", className: "btn small passkey-switch-host", textContent: `Open on ${CANONICAL_HOST}` });
  btn.addEventListener("click", () => switchToCanonicalHost().catch((e) => alert(explainDom(e))));
  box.append(btn);
  return box;
}

function buildLocked() {
  const methods = document.getElementById("unlock-methods");
  if (!methods || document.getElementById("passkey-method")) return;
  const btn = el("button", { type: "button", className: "btn wide", id: "unlock-passkey-btn", textContent: "Unlock with passkey" });
  const err = el("p", { className: "error", id: "passkey-unlock-error", role: "alert", hidden: true });
  const box = el("div", { id: "passkey-method", hidden: true }, btn, hostNote(), err);
  btn.addEventListener("click", async () => {
    setError(err, "");
    if (!onCanonicalHost()) { setError(err, `Passkeys work only on http://${CANONICAL_HOST}:${location.port}/ — use “Open on ${CANONICAL_HOST}”.`); return; }
    btn.disabled = true;
    try { await unlockWithPasskey(); await refresh(); }
    catch (e) { setError(err, explainDom(e, "unlock")); }
    finally { btn.disabled = false; }
  });
  methods.append(box);
}

function buildSettings() {
  const settings = document.getElementById("settings");
  if (!settings || document.getElementById("passkeys-card")) return;
  const list = el("ul", { id: "passkeys", className: "phones" });
  const empty = el("p", { className: "muted small", id: "passkeys-empty", textContent: "No passkey added yet." });
  const label = el("input", { id: "passkey-label", maxLength: 64, placeholder: "Name (e.g. “Phone passkey”)" });
  label.setAttribute("aria-label", "Passkey name");
  const add = el("button", { type: "submit", className: "btn primary", id: "add-passkey-btn", textContent: "Add a passkey" });
  const form = el("form", { id: "passkey-form", className: "password-form", autocomplete: "off" }, label, add);
  const err = el("p", { className: "error", id: "passkeys-error", role: "alert", hidden: true });
  const about = el("p", { className: "muted small" },
    "A passkey on this computer, a security key, or a phone (choose “use a phone” and scan the browser’s QR code) can unlock this vault. " +
    "It must support the WebAuthn PRF extension. Your master password keeps working.");
  const card = el("div", { className: "card", id: "passkeys-card" },
    el("div", { className: "card-head" }, el("h2", { textContent: "Passkeys" })), about, list, empty, form, hostNote(), err);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    setError(err, "");
    if (!onCanonicalHost()) { setError(err, `Passkeys work only on http://${CANONICAL_HOST}:${location.port}/ — use “Open on ${CANONICAL_HOST}”.`); return; }
    add.disabled = true;
    try { const pk = await addPasskey(label.value.trim() || "Passkey"); label.value = ""; toast(`Passkey “${pk.label}” added`); await refresh(); }
    catch (ex) { setError(err, explainDom(ex, "add")); }
    finally { add.disabled = false; }
  });
  const firstCard = settings.querySelector(".card");
  if (firstCard && firstCard.nextSibling) settings.insertBefore(card, firstCard.nextSibling); else settings.append(card);
}

function toast(text) {
  const t = document.getElementById("toast");
  if (!t) return;
  t.textContent = text; t.hidden = false;
  setTimeout(() => { t.hidden = true; }, 3500);
}

function render(state) {
  const box = document.getElementById("passkey-method");
  if (box) box.hidden = !(passkeys.length > 0 && (!state || state.vault.exists));
  const list = document.getElementById("passkeys");
  if (!list) return;
  const err = document.getElementById("passkeys-error");
  const shown = JSON.stringify(passkeys);
  if (list.dataset.shown === shown) return;  // unchanged: keep the DOM (and focus) as is
  list.dataset.shown = shown;
  list.textContent = "";
  for (const p of passkeys) {
    const li = el("li", { dataset: { id: p.id } });
    const info = el("div", { className: "spacer" },
      el("div", { className: "name", textContent: p.label }),
      el("div", { className: "muted small", textContent: `added ${new Date(p.created_at * 1000).toLocaleDateString()} · credential ${p.credential}…` }));
    const rename = el("button", { type: "button", className: "btn small passkey-rename", textContent: "Rename" });
    rename.addEventListener("click", async () => {
      const label = prompt("New name for this passkey", p.label);
      if (!label) return;
      try { await api("PUT", `api/passkeys/${encodeURIComponent(p.id)}`, { label }); setError(err, ""); await refresh(); }
      catch (e) { setError(err, explainDom(e)); }
    });
    const remove = el("button", { type: "button", className: "btn small danger passkey-remove", textContent: "Remove" });
    remove.addEventListener("click", async () => {
      if (!confirm(`Remove the passkey “${p.label}”? It will no longer unlock this vault.`)) return;
      try { await api("DELETE", `api/passkeys/${encodeURIComponent(p.id)}`); setError(err, ""); toast("Passkey removed"); await refresh(); }
      catch (e) { setError(err, explainDom(e)); }
    });
    li.append(el("span", { className: "avatar", textContent: (p.label.trim()[0] || "?") }), info, rename, remove);
    list.append(li);
  }
  document.getElementById("passkeys-empty").hidden = passkeys.length > 0;
}

let current = null;
export async function refresh() {
  try { passkeys = (await api("GET", "api/passkeys")).passkeys; } catch (e) { passkeys = []; }
  render(current);
  document.documentElement.dataset.passkeys = String(passkeys.length);
}

function onState(next) {
  current = next;
  const key = `${next.vault.exists}-${next.vault.unlocked}-${next.version}`;
  if (key !== lastKey) { lastKey = key; refresh(); } else render(next);
}

buildLocked();
buildSettings();
window.unlatch.onState.push(onState);
if (window.unlatch.state) onState(window.unlatch.state);
window.unlatchPasskey = { addPasskey, unlockWithPasskey, refresh, credentialJSON, switchToCanonicalHost };

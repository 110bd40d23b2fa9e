// unlatch desktop UI. Plain ES2020, no build step, no external assets.
// The page is a view of the agent's state: it follows /api/events (server-sent
// events, one snapshot per change), reconnecting on its own and falling back to
// polling /api/state; every change is a fetch with the CSRF token. All URLs are
// relative: the page lives under the agent's secret path prefix (/<prefix>/).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let state = null;
  let items = [];
  let selected = null;   // full item currently shown
  let editing = null;    // item id being edited, "" for new
  let listVersion = -1;
  let clockSkew = 0;     // server time - local time (seconds)

  // ------------------------------------------------------------------ API
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `request failed (HTTP ${status})`);
      this.status = status; this.code = body && body.error; this.retryAfter = body && body.retry_after;
    }
  }
  async function api(method, path, body) {
    const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (method !== "GET") {
      opts.headers["X-CSRF-Token"] = csrf;
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body || {});
    }
    let resp;
    try { resp = await fetch(path, opts); } catch (e) {
      throw new ApiError(0, { error: "agent_down", message: "The unlatch agent is not answering. Is it still running?" });
    }
    const data = await resp.json().catch(() => null);
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }
  // Extension point (e.g. passkey unlock): other scripts may use the same helpers.
  window.unlatch = { api, ApiError, onState: [], get state() { return state; } };

  // The command that opens this agent's window again (with UNLATCH_HOME when it has one):
  // kept from the last state, since it is needed exactly when the agent no longer answers.
  let reopen = "unlatch desktop";
  function explain(err) {
    const hints = {
      relay_down: "The relay cannot be reached. Start it (`unlatch relay`) or check the relay URL in Settings.",
      no_session: `This window is closed: the unlatch agent restarted, or its session ended (after 12 hours). Run \`${reopen}\` in a terminal to open a fresh window.`,
      agent_down: `The unlatch agent is not answering (stopped?). Run \`${reopen}\` in a terminal to start it and open a fresh window.`,
      not_paired: "This phone is not paired (anymore). Pair it again in Settings.",
      blocked: "Your phone blocked requests from this desktop (someone pressed “I did not ask for this”). Unblock it on the phone.",
      rate_limited: `Too many requests. Try again in ${Math.ceil(err.retryAfter || 30)} s.`,
      too_many_pending: `Too many open requests. Try again in ${Math.ceil(err.retryAfter || 30)} s.`,
    };
    return hints[err.code] || err.message;
  }
  function show(el, on) { el.hidden = !on; }
  function setError(el, err) { if (err) { el.textContent = typeof err === "string" ? err : explain(err); el.hidden = false; } else { el.hidden = true; } }
  let toastTimer = 0;
  function toast(text) {
    const t = $("toast"); t.textContent = text; t.hidden = false;
    clearTimeout(toastTimer); toastTimer = setTimeout(() => { t.hidden = true; }, 3500);
  }
  async function busy(btn, fn) {
    btn.disabled = true;
    try { return await fn(); } finally { btn.disabled = false; }
  }
  function now() { return Date.now() / 1000 + clockSkew; }
  function mmss(s) { s = Math.max(0, Math.round(s)); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; }

  // --------------------------------------------------------- live state
  let events = null, sseFailures = 0, pollTimer = 0, gone = false;
  function connect() {
    if (gone) return;
    if (events) events.close();
    const source = new EventSource("api/events");
    events = source;
    source.addEventListener("state", (e) => { sseFailures = 0; stopPolling(); apply(JSON.parse(e.data)); });
    source.onerror = () => {
      if (events !== source) return;
      sseFailures += 1;
      // EventSource retries by itself only after network errors. An HTTP error answer
      // (401 once the agent restarted, a 5xx) closes it for good: poll at once then.
      // After 3 failed retries, poll too. Either way, try the stream again in 30 s;
      // polling stops once the stream delivers a state again.
      if (source.readyState === EventSource.CLOSED || sseFailures >= 3) {
        source.close(); events = null; startPolling();
        setTimeout(() => { sseFailures = 0; connect(); }, 30000);
      }
    };
  }
  function startPolling() {
    if (pollTimer || gone) return;
    const tick = async () => {
      try { apply(await api("GET", "api/state")); $("banner").hidden = true; }
      catch (e) {
        $("banner").textContent = explain(e); $("banner").hidden = false;
        // A closed window stays closed (a new agent run has a new address and session):
        // say what to run, and stop asking every 2 s.
        if (e.code === "no_session") { stopPolling(); if (events) { events.close(); events = null; } gone = true; }
      }
    };
    tick(); pollTimer = setInterval(tick, 2000);
  }
  function stopPolling() { clearInterval(pollTimer); pollTimer = 0; }

  function apply(next) {
    const prev = state; state = next;
    clockSkew = next.now - Date.now() / 1000;
    $("desktop-name").textContent = next.desktop.name;
    const v = next.vault;
    const unlocked = v.unlocked;
    show($("top-actions"), unlocked);
    const inSettings = !$("settings").hidden;
    show($("locked"), !unlocked);
    show($("vault"), unlocked && !inSettings);
    if (!unlocked) show($("settings"), false);
    if (next.vault.reopen) reopen = next.vault.reopen;
    $("vault-path").textContent = v.path; $("vault-path").title = v.path;
    if (!v.exists) {
      const init = reopen.replace("unlatch desktop", "unlatch init");
      $("locked-sub").textContent = `No vault at ${v.path}. Create one with \`${init}\` (or open the agent of the folder your vault is in).`;
    }
    ensureTypes();
    renderPhonesChoice(next);
    renderRequest(next.unlock);
    renderSettings(next);
    renderPairing(next.pairing);
    if (unlocked && (!prev || !prev.vault.unlocked || next.version !== listVersion)) { listVersion = next.version; loadItems(); }
    // Unlocked: the locked screen (and whatever had focus on it) is gone; keep the keyboard in the vault.
    const lost = document.activeElement === document.body || $("locked").contains(document.activeElement);
    if (unlocked && prev && !prev.vault.unlocked && lost) $("search").focus();
    if (!unlocked && prev && prev.vault.unlocked) {
      items = []; selected = null; editing = null; renderItems(); $("password").focus();
      clearClipboard();  // locked: a copied secret goes now, not in up to 30 s
    }
    updateCountdowns();  // at once, not at the next tick of the 1 s timer
    for (const fn of window.unlatch.onState) { try { fn(next, prev); } catch (e) { console.error(e); } }
  }

  // -------------------------------------------------------- locked screen
  function renderPhonesChoice(s) {
    const phones = s.phones;
    show($("unlock-phone-btn"), phones.length > 0);
    show($("no-phone"), phones.length === 0);
    show($("phone-choice"), phones.length > 1);
    const sel = $("phone-select");
    const ids = phones.map((p) => p.id).join(",");
    if (sel.dataset.ids !== ids) {
      sel.dataset.ids = ids; sel.textContent = "";
      for (const p of phones) { const o = document.createElement("option"); o.value = p.id; o.textContent = p.label; sel.append(o); }
    }
  }

  $("password-form").addEventListener("submit", (e) => {
    e.preventDefault();
    busy($("password-btn"), async () => {
      try { await api("POST", "api/unlock/password", { password: $("password").value }); $("password").value = ""; setError($("password-error"), null); }
      catch (err) { setError($("password-error"), err.code === "wrong_password" ? "Wrong master password." : err); $("password").select(); }
    });
  });

  async function requestUnlock() {
    setError($("unlock-error"), null);
    const body = {};
    if (state && state.phones.length > 1) body.phone_id = $("phone-select").value;
    await busy($("unlock-phone-btn"), async () => {
      try {
        apply({ ...state, unlock: await api("POST", "api/unlock/phone", body) });
        $("request-title").focus();  // the pressed button is busy: keep keyboard users on the request
      }
      catch (err) { setError($("unlock-error"), err); }
    });
  }
  $("unlock-phone-btn").addEventListener("click", requestUnlock);
  $("request-again").addEventListener("click", requestUnlock);
  $("request-cancel").addEventListener("click", async () => {
    try { await api("POST", "api/unlock/phone/cancel"); } catch (err) { setError($("unlock-error"), err); }
  });

  const FINAL = ["approved", "denied", "not_me", "wrong_number", "expired", "failed", "cancelled"];
  let qrKey = "";
  function renderRequest(u) {
    const box = $("request");
    if (!u || (u.state === "cancelled")) { show(box, false); qrKey = ""; return; }
    if (state.vault.unlocked) { show(box, false); return; }
    show(box, true);
    const final = FINAL.includes(u.state);
    const key = `${u.id}-${u.generation}`;
    // Number matching makes no QR (a scanned one could only fail): show the number alone.
    const numberMode = u.mode === "number";
    show(box.querySelector(".request-qr"), !numberMode);
    if (numberMode) qrKey = "";
    else if (!final && key !== qrKey) { qrKey = key; $("unlock-qr").src = `api/unlock/qr.svg?v=${encodeURIComponent(key)}`; }
    $("unlock-status").dataset.state = u.state;
    $("unlock-status-text").textContent = u.message;
    const overlay = $("qr-overlay");
    const overlayText = { seen: "Scanned ✓\nApprove on your phone", approved: "Approved ✓" }[u.state] || (final ? "This code is no longer valid" : "");
    overlay.textContent = overlayText; show(overlay, Boolean(overlayText));
    $("request-title").textContent = numberMode ? "Approve on your phone" : "Scan with your phone";
    show($("number-box"), numberMode && u.number !== null && !final);
    $("number").textContent = u.number === null ? "" : String(u.number);
    const pushed = u.notified && (u.notified.listeners > 0 || u.notified.push === "queued");
    const how = numberMode ? "Open the notification on the phone and pick this number." : "Scan the code with the phone's camera or the unlatch app.";
    $("request-detail").textContent = final ? "" : `Sent to ${u.phone.label}${pushed ? " (notified)" : ""}. ${how}`;
    show($("request-again"), final);
    show($("request-cancel"), !final);
    updateCountdowns();
  }

  // --------------------------------------------------------------- vault
  let loadSeq = 0;
  async function loadItems() {
    const seq = ++loadSeq;  // answers can arrive out of order: keep only the newest
    try {
      const found = (await api("GET", "api/items?q=" + encodeURIComponent($("search").value))).items;
      if (seq === loadSeq) { items = found; renderItems(); }
    }
    catch (err) { if (err.code !== "locked") toast(explain(err)); }
  }
  function initial(t) { return (t.trim()[0] || "?"); }
  // Item types: labels, fields and forms come from the agent's schema (GET api/types,
  // unlatch.vault.items.types_schema): one table for the vault, the CLI and this page.
  let types = {};        // type -> {label, login_fields, web, fields}
  let typeOrder = [];
  let fieldKinds = ["text", "hidden", "url"];
  let typesLoading = null;
  function ensureTypes() {  // once; again after a failure (agent down at first)
    if (!typeOrder.length && !typesLoading) typesLoading = loadTypes().catch(() => {}).finally(() => { typesLoading = null; if (items.length) renderItems(); });
  }
  async function loadTypes() {
    const t = await api("GET", "api/types");
    types = {}; typeOrder = [];
    for (const entry of t.types) { types[entry.type] = entry; typeOrder.push(entry.type); }
    fieldKinds = t.field_kinds;
    const picker = $("form-type"), filter = $("filter");
    picker.textContent = "";
    for (const name of typeOrder) {
      const o = document.createElement("option"); o.value = name; o.textContent = types[name].label; picker.append(o);
      const f = document.createElement("option"); f.value = `type:${name}`; f.textContent = types[name].label; filter.append(f);
    }
  }
  function typeOf(it) { return types[it.type] || { type: it.type, label: it.type, login_fields: [], web: true, fields: [] }; }
  // A small drawn icon per type (no font or image needed; the CSP allows no external asset).
  const ICONS = {
    login: ["M9 12a4 4 0 1 1 3.9 4H12v3h-3v3H6v-4.6l4.3-4.3A4 4 0 0 1 9 12z", "M15 10.5h.01"],
    note: ["M6 3h9l4 4v14H6z", "M9 11h7M9 15h7M9 19h4"],
    card: ["M3 6h18v12H3z", "M3 10h18M6 15h5"],
    identity: ["M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z", "M4 21c1-4 4-6 8-6s7 2 8 6"],
    ssh_key: ["M3 5h18v14H3z", "M7 10l3 2-3 2M12 15h5"],
  };
  function typeIcon(type) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("width", "20"); svg.setAttribute("height", "20");
    svg.setAttribute("aria-hidden", "true"); svg.classList.add("type-icon");
    for (const d of ICONS[type] || ICONS.login) {
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path"); path.setAttribute("d", d); svg.append(path);
    }
    return svg;
  }
  // What the list shows under the title: the username, else a non-secret field of the type.
  function subtitle(it) {
    if (it.username) return it.username;
    const d = it.data || {};
    const name = [d.first_name, d.last_name].filter(Boolean).join(" ");
    return d.cardholder || d.brand || name || d.email || d.fingerprint || it.urls[0] || "";
  }
  function renderItems() {
    const ul = $("items"); ul.textContent = "";
    const filter = $("filter").value;
    const shown = items.filter((it) => !filter || (filter === "favorite" ? it.favorite : `type:${it.type}` === filter));
    for (const it of shown) {
      const li = document.createElement("li");
      li.tabIndex = 0; li.setAttribute("role", "option"); li.dataset.id = it.id;
      li.setAttribute("aria-selected", selected !== null && selected.id === it.id ? "true" : "false");
      li.dataset.type = it.type;
      const av = document.createElement("span"); av.className = "avatar"; av.append(typeIcon(it.type));
      const text = document.createElement("span"); text.className = "spacer";
      const t = document.createElement("div"); t.className = "t"; t.textContent = it.title;
      const kind = document.createElement("span"); kind.className = "sr-only"; kind.textContent = `, ${typeOf(it).label}`;
      const u = document.createElement("div"); u.className = "u"; u.textContent = subtitle(it);
      text.append(t, u, kind); li.append(av, text);
      if (it.favorite) {
        const star = document.createElement("span"); star.className = "star on"; star.textContent = "★";
        star.setAttribute("role", "img"); star.setAttribute("aria-label", "favourite"); li.append(star);
      }
      li.addEventListener("click", () => openItem(it.id));
      li.addEventListener("keydown", (e) => {
        if (e.key === "Enter") openItem(it.id);
        if (e.key === "ArrowDown" && li.nextSibling) li.nextSibling.focus();
        if (e.key === "ArrowUp" && li.previousSibling) li.previousSibling.focus();
      });
      ul.append(li);
    }
    show($("items-empty"), items.length === 0 && !$("search").value);
    show($("filter-empty"), shown.length === 0 && items.length > 0);
    renderDetail();
  }
  async function openItem(id) {
    try {
      selected = await api("GET", `api/items/${encodeURIComponent(id)}`); editing = null;
      stopTotp();  // its secret may have changed (edited): ask for a fresh code
      shownKey = "";  // opened (again): drawn afresh, secrets masked
      renderItems();
    }
    catch (err) { toast(explain(err)); }
  }
  // A website opens only as http(s): a stored "javascript:" or "data:" address stays text.
  // A bare host name ("github.com", as imports often have it) opens as https.
  function siteHref(u) {
    const text = u.trim();
    const candidate = /^[a-z][a-z0-9+.-]*:/i.test(text) ? text
      : (/^[^\s/?#:@]+\.[^\s/?#:@]+([/?#].*)?$/.test(text) ? `https://${text}` : "");
    try { const url = new URL(candidate); return ["http:", "https:"].includes(url.protocol) ? url.href : null; }
    catch (e) { return null; }
  }
  function copyButton(label, onClick) {
    const b = document.createElement("button"); b.type = "button"; b.className = "btn small ghost";
    b.textContent = "Copy"; b.setAttribute("aria-label", label); b.addEventListener("click", onClick);
    return b;
  }
  function renderUrls(list) {
    const box = $("view-urls"); box.textContent = "";
    for (const u of list) {
      const line = document.createElement("span"); line.className = "url-line";
      const href = siteHref(u);
      const text = document.createElement(href ? "a" : "span");
      text.textContent = u;
      if (href) { text.href = href; text.target = "_blank"; text.rel = "noopener noreferrer"; text.title = "Open in a new tab"; }
      line.append(text, copyButton(`Copy website ${u}`, () => copySecret(u, "Website")));
      box.append(line);
    }
    if (!list.length) box.textContent = "—";
  }

  // One-time code: the agent computes it from the item's secret, which never reaches the
  // page; the page asks again when the code expires, as long as the item stays open.
  // These requests do not count as activity: an open item does not defeat the auto-lock.
  const otp = { id: null, code: "", expires: 0, period: 30, timer: 0, seq: 0, error: "" };
  function stopTotp() { clearTimeout(otp.timer); otp.seq += 1; otp.id = null; otp.code = ""; otp.error = ""; }
  async function loadTotp(id) {
    clearTimeout(otp.timer);
    const seq = ++otp.seq;
    otp.id = id;
    try {
      const t = await api("GET", `api/items/${encodeURIComponent(id)}/totp`);
      if (seq !== otp.seq) return;
      Object.assign(otp, { code: t.code, period: t.period, expires: Date.now() + t.remaining * 1000, error: "" });
      otp.timer = setTimeout(() => loadTotp(id), t.remaining * 1000 + 200);
    } catch (err) {
      if (seq !== otp.seq) return;
      otp.code = ""; otp.error = err.code === "locked" ? "" : explain(err);
    }
    renderTotp();
  }
  function renderTotp() {
    const code = otp.code;
    const half = Math.floor(code.length / 2);
    $("view-totp").textContent = code ? `${code.slice(0, half)} ${code.slice(half)}` : "—";
    show($("copy-totp"), Boolean(code));
    show($("totp-ring"), Boolean(code));
    if (!code) { $("totp-left").textContent = otp.error; return; }
    const left = Math.max(0, Math.ceil((otp.expires - Date.now()) / 1000));
    $("totp-left").textContent = `${left} s`;
    $("totp-ring-left").setAttribute("stroke-dasharray", `${Math.min(100, (100 * left) / otp.period)} 100`);
    $("totp-ring").classList.toggle("ending", left <= 5);
  }
  $("copy-totp").addEventListener("click", () => { if (otp.code) copySecret(otp.code, "One-time code"); });
  const MASK = "••••••••••";
  // A secret's value comes from the agent only when the user presses Show or Copy:
  // the item the page holds has none (no password, card number, key or hidden field).
  async function revealed(ref) {
    const r = await api("POST", `api/items/${encodeURIComponent(selected.id)}/reveal`, { field: ref });
    return r.value;
  }
  function fieldRow(label, opts) {
    const row = document.createElement("div"); row.className = "field";
    const dt = document.createElement("dt"); dt.textContent = label;
    const dd = document.createElement("dd");
    row.append(dt, dd);
    if (opts.secret) {
      const value = document.createElement(opts.multiline ? "pre" : "span"); value.className = "secret"; value.textContent = MASK;
      const showBtn = document.createElement("button"); showBtn.type = "button"; showBtn.className = "btn small ghost";
      showBtn.textContent = "Show"; showBtn.setAttribute("aria-label", `Show ${label}`);
      showBtn.addEventListener("click", async () => {
        if (showBtn.textContent === "Hide") { value.textContent = MASK; showBtn.textContent = "Show"; showBtn.setAttribute("aria-label", `Show ${label}`); return; }
        try { value.textContent = await revealed(opts.secret); showBtn.textContent = "Hide"; showBtn.setAttribute("aria-label", `Hide ${label}`); }
        catch (err) { toast(explain(err)); }
      });
      dd.append(value, showBtn, copyButton(`Copy ${label}`, async () => {
        try { await copySecret(await revealed(opts.secret), label); } catch (err) { toast(explain(err)); }
      }));
    } else if (opts.url) {
      const href = siteHref(opts.value);
      const text = document.createElement(href ? "a" : "span"); text.textContent = opts.value;
      if (href) { text.href = href; text.target = "_blank"; text.rel = "noopener noreferrer"; text.title = "Open in a new tab"; }
      dd.append(text, copyButton(`Copy ${label}`, () => copySecret(opts.value, label)));
    } else {
      const value = document.createElement(opts.multiline ? "pre" : "span"); value.textContent = opts.value;
      if (opts.multiline) value.className = "multiline";
      dd.append(value, copyButton(`Copy ${label}`, () => copySecret(opts.value, label)));
    }
    return row;
  }
  function loginLabel(t, key) { const f = t.login_fields.find((x) => x.key === key); return f ? f.label : null; }
  let shownKey = "";  // the item version the view shows: a list refresh must not redraw it
  function renderDetail() {
    if (!selected || editing !== null) stopTotp();
    show($("detail-empty"), !selected && editing === null);
    show($("item-view"), Boolean(selected) && editing === null);
    show($("item-form"), editing !== null);
    const key = selected && editing === null ? `${selected.id}:${selected.version}` : "";
    // Redrawing the same version would hide what the user just revealed (Show) for nothing.
    if (key && key === shownKey) return;
    shownKey = key;
    if (selected && editing === null) {
      const t = typeOf(selected);
      const av = $("view-avatar"); av.textContent = ""; av.append(typeIcon(selected.type));
      $("view-title").textContent = selected.title;
      $("view-type").textContent = t.label;
      $("view-updated").textContent = "Updated " + new Date(selected.updated_at * 1000).toLocaleString();
      $("fav-btn").setAttribute("aria-pressed", String(selected.favorite));
      $("fav-btn").querySelector(".star").textContent = selected.favorite ? "★" : "☆";
      // The login rows a type offers (its schema), and any other type's that holds a value.
      const userLabel = loginLabel(t, "username"), passLabel = loginLabel(t, "password");
      show($("username-row"), Boolean(userLabel || selected.username));
      show($("password-row"), Boolean(passLabel || selected.has_password));
      $("username-label").textContent = userLabel || "Username";
      $("password-label").textContent = passLabel || "Password";
      document.querySelector("button.copy[data-copy=password]").setAttribute("aria-label", `Copy ${(passLabel || "password").toLowerCase()}`);
      $("view-username").textContent = selected.username || "—";
      $("view-password").textContent = selected.has_password ? MASK : "—"; $("reveal").textContent = "Show";
      // No Copy (or Show) button on an empty field: it would copy nothing.
      show(document.querySelector("button.copy[data-copy=username]"), Boolean(selected.username));
      show(document.querySelector("button.copy[data-copy=password]"), selected.has_password);
      show($("reveal"), selected.has_password);
      const typeBox = $("view-type-fields"); typeBox.textContent = "";
      for (const f of t.fields) {
        if (f.secret ? !selected.secret_data.includes(f.key) : !selected.data[f.key]) continue;  // only what is filled in
        typeBox.append(fieldRow(f.label, f.secret ? { secret: `data.${f.key}`, multiline: f.multiline } : { value: selected.data[f.key], multiline: f.multiline }));
      }
      show($("urls-row"), t.web || selected.urls.length > 0);
      renderUrls(selected.urls);
      show($("totp-row"), selected.has_totp);
      if (!selected.has_totp) stopTotp();
      else if (otp.id !== selected.id) { stopTotp(); renderTotp(); loadTotp(selected.id); }
      const custom = $("view-custom"); custom.textContent = "";
      selected.fields.forEach((f, i) => {
        custom.append(fieldRow(f.name, f.kind === "hidden" ? { secret: `fields.${i}` } : { value: f.value, url: f.kind === "url" }));
      });
      const tags = $("view-tags"); tags.textContent = "";
      for (const tag of selected.tags) { const sp = document.createElement("span"); sp.className = "tag"; sp.textContent = tag; tags.append(sp); }
      if (!selected.tags.length) tags.textContent = "—";
      $("view-notes").textContent = selected.notes || "—";
    }
  }
  $("reveal").addEventListener("click", async () => {
    const el = $("view-password"); const hidden = $("reveal").textContent === "Show";
    if (!hidden) { el.textContent = MASK; $("reveal").textContent = "Show"; return; }
    try { el.textContent = await revealed("password"); $("reveal").textContent = "Hide"; }
    catch (err) { toast(explain(err)); }
  });
  $("fav-btn").addEventListener("click", async () => {
    if (!selected) return;
    try {
      await api("PUT", `api/items/${encodeURIComponent(selected.id)}`, { item: { favorite: !selected.favorite } });
      toast(selected.favorite ? "Removed from favourites" : "Added to favourites");
      await openItem(selected.id); loadItems();
    } catch (err) { toast(explain(err)); }
  });
  // Clipboard: what we copied is cleared after the clipboard time (30 s by default), and only if it is still there
  // (checked with readText when the browser grants clipboard-read; without that
  // permission the copied secret is cleared regardless, as it should not linger).
  // Chromium refuses clipboard access to a window without focus: a clear that could
  // not run waits, and is retried when the window gets focus or becomes visible.
  // How long a copied secret stays: the clipboard time of Settings (agent state).
  function clipClearSeconds() { return state ? state.settings.clipboard_clear_seconds : 30; }
  const clip = { value: null, copiedAt: 0, due: 0, timer: 0, waiting: false, hideTimer: 0 };
  // A new clipboard time applies at once to what is on the clipboard now.
  function rescheduleClear() {
    if (clip.value === null || clip.waiting) return;
    clearTimeout(clip.timer);
    clip.due = clip.copiedAt + clipClearSeconds() * 1000;
    clip.timer = setTimeout(clearClipboard, Math.max(0, clip.due - Date.now()));
  }
  function clipStatus(text, fade) {
    const el = $("clip-status"); el.textContent = text; el.hidden = !text;
    clearTimeout(clip.hideTimer);
    if (fade) clip.hideTimer = setTimeout(() => { if (clip.value === null) clipStatus(""); }, 6000);
  }
  async function clipboardHolds(value) {  // true / false, or null when we may not look
    try {
      const perm = await navigator.permissions.query({ name: "clipboard-read" });
      if (perm.state !== "granted") return null;
      return (await navigator.clipboard.readText()) === value;
    } catch (e) { return null; }
  }
  function clipWait() {
    clip.waiting = true;
    clipStatus("The clipboard still holds the copied value: it is cleared when this window has focus again");
  }
  async function clearClipboard() {
    const value = clip.value;
    if (value === null) return;
    clearTimeout(clip.timer);
    if (!document.hasFocus()) { clipWait(); return; }
    const holds = await clipboardHolds(value);
    if (clip.value !== value) return;  // copied again meanwhile: that copy has its own timer
    if (holds === false) {
      clip.value = null; clip.waiting = false;
      clipStatus("Clipboard left as it is: it holds something else now", true);
      return;
    }
    try { await navigator.clipboard.writeText(""); }
    catch (e) { clipWait(); return; }
    if (clip.value === value) { clip.value = null; clip.waiting = false; clipStatus("Clipboard cleared", true); }
  }
  function retryClear() { if (clip.waiting) clearClipboard(); }
  window.addEventListener("focus", retryClear);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) retryClear(); });
  // The user copied something else in this page (Ctrl+C): the clipboard is theirs now.
  document.addEventListener("copy", () => {
    if (clip.value === null) return;
    clearTimeout(clip.timer); clip.value = null; clip.waiting = false;
    clipStatus("Clipboard left as it is: it holds something else now", true);
  });
  async function copySecret(value, what) {
    try {
      await navigator.clipboard.writeText(value);
      clearTimeout(clip.timer);
      clip.value = value; clip.waiting = false; clip.copiedAt = Date.now();
      rescheduleClear();
      toast(`${what} copied — the clipboard clears in ${clipClearSeconds()} s`);
      updateCountdowns();
    } catch (e) { toast("The browser refused clipboard access"); }
  }
  for (const btn of document.querySelectorAll("button.copy")) {
    btn.addEventListener("click", async () => {
      if (!selected) return;
      try {
        const value = btn.dataset.copy === "password" ? await revealed("password") : selected.username;
        if (value) await copySecret(value, btn.dataset.copy === "password" ? $("password-label").textContent : "Username");
      } catch (err) { toast(explain(err)); }
    });
  }
  // The QR codes' text alternative: their link, fetched only on this click (it holds the
  // request's secret in its #fragment), for whoever cannot scan the screen.
  for (const [button, route, what] of [["unlock-copy-link", "api/unlock/link", "Unlock link"],
                                       ["pair-copy-link", "api/pairing/link", "Pairing link"]]) {
    $(button).addEventListener("click", async () => {
      try { await copySecret((await api("POST", route)).link, `${what} (open it on the phone)`); }
      catch (err) { toast(explain(err)); }
    });
  }
  $("filter").addEventListener("change", renderItems);
  let searchTimer = 0;
  $("search").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadItems, 150); });

  // ---- the item form, drawn from the type's schema
  const KIND_LABELS = { text: "Text", hidden: "Hidden", url: "URL" };
  function customRow(f) {
    const row = document.createElement("div"); row.className = "custom-row";
    const name = document.createElement("input"); name.className = "cf-name"; name.maxLength = 128;
    name.placeholder = "Name"; name.setAttribute("aria-label", "Field name"); name.value = f ? f.name : "";
    const kind = document.createElement("select"); kind.className = "cf-kind"; kind.setAttribute("aria-label", "Field kind");
    for (const k of fieldKinds) { const o = document.createElement("option"); o.value = k; o.textContent = KIND_LABELS[k] || k; kind.append(o); }
    kind.value = f ? f.kind : "text";
    const value = document.createElement("input"); value.className = "cf-value"; value.maxLength = 4096;
    value.placeholder = "Value"; value.setAttribute("aria-label", "Field value"); value.autocomplete = "off"; value.spellcheck = false;
    value.value = f && f.value !== undefined ? f.value : "";
    const typeFor = () => { value.type = { hidden: "password", url: "url" }[kind.value] || "text"; };
    kind.addEventListener("change", typeFor); typeFor();
    const remove = document.createElement("button"); remove.type = "button"; remove.className = "btn small ghost";
    remove.textContent = "Remove"; remove.setAttribute("aria-label", "Remove this field");
    remove.addEventListener("click", () => {
      const next = row.nextElementSibling; row.remove();
      (next ? next.querySelector(".cf-name") : $("add-field")).focus();  // focus stays in the form
    });
    row.append(name, kind, value, remove);
    return row;
  }
  $("add-field").addEventListener("click", () => {
    const row = customRow(null); $("form-custom-rows").append(row); row.querySelector(".cf-name").focus();
  });
  // Which login rows the form shows: those of the type's schema, and any holding a value.
  function formShape(type, it) {
    const t = types[type] || typeOf({ type });
    const userLabel = loginLabel(t, "username"), passLabel = loginLabel(t, "password");
    const shape = {
      username: Boolean(userLabel || (it && it.username)),
      password: Boolean(passLabel || (it && it.password)),
      web: Boolean(t.web || (it && (it.urls.length || it.has_totp))),
    };
    show($("form-username-row"), shape.username); show($("form-password-row"), shape.password); show($("form-web"), shape.web);
    $("form-username-label").textContent = userLabel || "Username";
    $("form-password-label").textContent = passLabel || "Password";
    const box = $("form-type-fields"); box.textContent = "";
    for (const f of t.fields) {
      const label = document.createElement("label"); label.textContent = f.label;
      const input = document.createElement(f.multiline ? "textarea" : "input");
      input.name = `data.${f.key}`; input.maxLength = f.limit; input.autocomplete = "off"; input.spellcheck = false;
      if (f.multiline) input.rows = 4;
      if (f.secret) input.classList.add("secret");
      input.value = it && it.data[f.key] ? it.data[f.key] : "";
      label.append(input); box.append(label);
    }
    return shape;
  }
  function fillForm(it, type) {
    const f = $("item-form");
    $("form-type").value = it ? it.type : type; $("form-type").disabled = Boolean(it);
    formShape($("form-type").value, it);
    f.title.value = it ? it.title : ""; f.username.value = it ? it.username : ""; f.password.value = it ? it.password : "";
    f.urls.value = it ? it.urls.join("\n") : ""; f.tags.value = it ? it.tags.join(", ") : ""; f.notes.value = it ? it.notes : "";
    $("form-favorite").checked = Boolean(it && it.favorite);
    // The saved TOTP secret is never sent to the page: the field only sets a new one.
    f.totp_secret.value = ""; $("form-totp-remove").checked = false;
    f.totp_secret.placeholder = it && it.has_totp ? "Saved: leave empty to keep it" : "";
    show($("form-totp-remove-row"), Boolean(it && it.has_totp));
    const rows = $("form-custom-rows"); rows.textContent = "";
    for (const field of it ? it.fields : []) rows.append(customRow(field));
    $("form-title").textContent = it ? `Edit ${it.title}` : `New ${(types[type] || { label: "item" }).label.toLowerCase()}`;
    setError($("form-error"), null); $("gen-entropy").textContent = "";
  }
  $("form-type").addEventListener("change", () => {
    formShape($("form-type").value, null);
    $("form-title").textContent = `New ${types[$("form-type").value].label.toLowerCase()}`;
  });
  $("new-item").addEventListener("click", () => {
    // The filter names a type: a new item is of that type (the picker in the form changes it).
    const filter = $("filter").value;
    editing = ""; fillForm(null, filter.startsWith("type:") ? filter.slice(5) : "login"); renderDetail(); $("form-type").focus();
  });
  $("edit-item").addEventListener("click", async () => {
    // The form needs the values (not the TOTP secret): asked for now, on "Edit".
    try {
      const full = await api("POST", `api/items/${encodeURIComponent(selected.id)}/full`);
      editing = selected.id; fillForm(full); renderDetail(); $("item-form").title.focus();
    } catch (err) { toast(explain(err)); }
  });
  $("form-cancel").addEventListener("click", () => { editing = null; renderDetail(); });
  $("item-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = $("item-form");
    const type = $("form-type").value;
    const item = {
      title: f.title.value.trim(), notes: f.notes.value, favorite: $("form-favorite").checked,
      tags: f.tags.value.split(",").map((s) => s.trim()).filter(Boolean),
      data: {}, fields: [],
    };
    if (!editing) item.type = type;
    for (const input of $("form-type-fields").querySelectorAll("[name^='data.']")) {
      if (input.value) item.data[input.name.slice(5)] = input.value;
    }
    for (const row of $("form-custom-rows").querySelectorAll(".custom-row")) {
      const name = row.querySelector(".cf-name").value.trim(), value = row.querySelector(".cf-value").value;
      if (!name && !value) continue;  // an empty row added by mistake
      item.fields.push({ name, value, kind: row.querySelector(".cf-kind").value });
    }
    if (!$("form-username-row").hidden) item.username = f.username.value;
    if (!$("form-password-row").hidden) item.password = f.password.value;
    if (!$("form-web").hidden) {
      item.urls = f.urls.value.split("\n").map((s) => s.trim()).filter(Boolean);
      const secret = f.totp_secret.value.trim();
      if (secret) item.totp_secret = secret;
      else if (editing && $("form-totp-remove").checked) item.totp_secret = "";
    }
    try {
      const saved = editing ? await api("PUT", `api/items/${encodeURIComponent(editing)}`, { item })
                            : await api("POST", "api/items", { item });
      editing = null; toast("Saved"); await openItem(saved.id); loadItems();
    } catch (err) { setError($("form-error"), err); }
  });
  $("delete-item").addEventListener("click", async () => {
    if (!selected || !confirm(`Delete “${selected.title}”? This cannot be undone.`)) return;
    try { await api("DELETE", `api/items/${encodeURIComponent(selected.id)}`); selected = null; toast("Deleted"); loadItems(); }
    catch (err) { toast(explain(err)); }
  });
  async function generate() {
    const words = $("gen-words").checked;
    const body = words ? { kind: "passphrase", words: Math.max(4, Math.round(Number($("gen-length").value) / 4)) }
                       : { length: Number($("gen-length").value), symbols: $("gen-symbols").checked };
    try { const g = await api("POST", "api/generate", body); $("form-password").value = g.value; $("gen-entropy").textContent = `${g.entropy_bits} bits`; }
    catch (err) { setError($("form-error"), err); }
  }
  $("gen-btn").addEventListener("click", generate);
  $("gen-length").addEventListener("input", () => { $("gen-length-out").textContent = $("gen-length").value; });
  $("lock-btn").addEventListener("click", () => api("POST", "api/lock").catch((err) => toast(explain(err))));

  // ------------------------------------------------------------ settings
  $("settings-btn").addEventListener("click", () => {
    show($("vault"), false); show($("settings"), true); $("settings-close").focus();
    loadFormats().catch((err) => setError($("import-error"), err));
  });
  $("settings-close").addEventListener("click", () => { show($("settings"), false); show($("vault"), Boolean(state && state.vault.unlocked)); });
  function renderSettings(s) {
    $("number-matching").checked = s.settings.number_matching;
    const idle = $("idle-lock-min"), clipInput = $("clip-clear-s");
    const editingTimers = $("timers-form").contains(document.activeElement);
    if (!editingTimers) {
      idle.value = String(Math.round((s.settings.idle_lock_seconds / 60) * 100) / 100);
      clipInput.value = String(s.settings.clipboard_clear_seconds);
    }
    idle.disabled = Boolean(s.settings.idle_lock_fixed_by);
    clipInput.disabled = s.settings.clipboard_clear_locked;
    $("timers-save").disabled = idle.disabled && clipInput.disabled;
    const fixed = [];
    if (s.settings.idle_lock_fixed_by) fixed.push(`The auto-lock time is set by ${s.settings.idle_lock_fixed_by} for this agent.`);
    if (s.settings.clipboard_clear_locked) fixed.push("The clipboard time is set by UNLATCH_DESKTOP_CLIPBOARD_CLEAR_SECONDS.");
    $("timers-note").textContent = fixed.join(" "); show($("timers-note"), fixed.length > 0);
    if (!prevSettings || prevSettings.clipboard_clear_seconds !== s.settings.clipboard_clear_seconds) rescheduleClear();
    prevSettings = s.settings;
    const relay = $("relay-url");
    if (document.activeElement !== relay) relay.value = s.settings.relay_url;
    relay.disabled = s.settings.relay_url_locked;
    $("relay-note").textContent = s.settings.relay_url_locked
      ? "Set by --relay or UNLATCH_DESKTOP_RELAY_URL for this run."
      : "The relay carries only encrypted messages; it learns no key or password.";
    const ul = $("phones"); const ids = JSON.stringify(s.phones);
    if (ul.dataset.ids === ids) return;
    ul.dataset.ids = ids; ul.textContent = "";
    for (const p of s.phones) {
      const li = document.createElement("li");
      const av = document.createElement("span"); av.className = "avatar"; av.textContent = initial(p.label);
      const info = document.createElement("div"); info.className = "spacer";
      const name = document.createElement("div"); name.className = "name"; name.textContent = p.label;
      const meta = document.createElement("div"); meta.className = "muted small";
      const policy = p.allows_number_matching ? "allows number matching" : "scan only";
      meta.textContent = `paired ${new Date(p.created_at * 1000).toLocaleDateString()} · via ${p.relay_url} · ${policy}`;
      info.append(name, meta);
      const rename = document.createElement("button"); rename.type = "button"; rename.className = "btn small"; rename.textContent = "Rename";
      rename.addEventListener("click", async () => {
        const label = prompt("New name for this phone", p.label);
        if (!label) return;
        try { await api("PUT", `api/phones/${encodeURIComponent(p.id)}`, { label }); setError($("phones-error"), null); }
        catch (err) { setError($("phones-error"), err); }
      });
      const revoke = document.createElement("button"); revoke.type = "button"; revoke.className = "btn small danger"; revoke.textContent = "Revoke";
      revoke.addEventListener("click", async () => {
        if (!confirm(`Revoke ${p.label}? It will no longer be able to unlock this vault.`)) return;
        try { const r = await api("DELETE", `api/phones/${encodeURIComponent(p.id)}`); toast(`${p.label} revoked ${r.relay || ""}`); }
        catch (err) { setError($("phones-error"), err); }
      });
      li.append(av, info, rename, revoke); ul.append(li);
    }
    show($("phones-empty"), s.phones.length === 0);
  }
  let prevSettings = null;
  $("timers-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {};
    const minutes = $("idle-lock-min").value.trim(), seconds = $("clip-clear-s").value.trim();
    // An empty or non-numeric field goes as null: the agent's check says what it wants.
    if (!$("idle-lock-min").disabled) body.idle_lock_seconds = minutes === "" ? null : Math.round(Number(minutes) * 60);
    if (!$("clip-clear-s").disabled) body.clipboard_clear_seconds = seconds === "" ? null : Number(seconds);
    await busy($("timers-save"), async () => {
      try {
        const saved = await api("PUT", "api/settings", body); setError($("timers-error"), null);
        $("idle-lock-min").value = String(Math.round((saved.idle_lock_seconds / 60) * 100) / 100);
        $("clip-clear-s").value = String(saved.clipboard_clear_seconds);
        toast("Saved: applied now");
      } catch (err) { setError($("timers-error"), err); }
    });
  });
  $("number-matching").addEventListener("change", async (e) => {
    try { await api("PUT", "api/settings", { number_matching: e.target.checked }); toast(e.target.checked ? "Number matching on, with phones that allow it" : "Number matching off"); }
    catch (err) { e.target.checked = !e.target.checked; toast(explain(err)); }
  });
  $("relay-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await api("PUT", "api/settings", { relay_url: $("relay-url").value }); setError($("relay-error"), null); toast("Relay saved"); }
    catch (err) { setError($("relay-error"), err); }
  });

  // ---------------------------------------------------- import and export
  // Import: the file goes up as it is, the agent has it parsed in a separate process
  // and answers a report (nothing written); "Import" then adds what was checked, in one
  // transaction. Export: the agent answers the file, which the page hands to the browser
  // as a download; CSV (every secret in the clear) only after an explicit confirmation.
  let formats = null, importToken = null;
  async function loadFormats() {
    if (formats) return;
    formats = await api("GET", "api/transfer/formats");
    for (const [select, list] of [[$("import-format"), formats.import], [$("export-format"), formats.export]]) {
      select.textContent = "";
      for (const fmt of list) { const o = document.createElement("option"); o.value = fmt.name; o.textContent = fmt.description; select.append(o); }
    }
    transferShape();
  }
  function transferShape() {
    if (!formats) return;
    const imp = formats.import.find((f) => f.name === $("import-format").value);
    show($("import-password-row"), Boolean(imp && imp.password));
    const exp = formats.export.find((f) => f.name === $("export-format").value);
    const encrypted = Boolean(exp && exp.encrypted);
    show($("export-password-rows"), encrypted); show($("export-clear-row"), !encrypted);
    $("export-btn").textContent = encrypted ? "Export" : "Export unencrypted";
  }
  $("import-format").addEventListener("change", () => { importToken = null; show($("import-report"), false); transferShape(); });
  $("import-file").addEventListener("change", () => { importToken = null; show($("import-report"), false); });
  $("export-format").addEventListener("change", transferShape);
  async function upload(file) {
    let resp;
    try {
      resp = await fetch("api/import/file", { method: "POST", credentials: "same-origin", body: file,
        headers: { "X-CSRF-Token": csrf, "Content-Type": "application/octet-stream", "Accept": "application/json" } });
    } catch (e) { throw new ApiError(0, { error: "agent_down", message: "The unlatch agent is not answering." }); }
    const data = await resp.json().catch(() => null);
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data.token;
  }
  function listOf(el, lines) {
    el.textContent = "";
    for (const line of lines) { const li = document.createElement("li"); li.textContent = line; el.append(li); }
  }
  $("import-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    setError($("import-error"), null); show($("import-report"), false);
    const file = $("import-file").files[0];
    if (!file) { setError($("import-error"), "Choose the file to import."); return; }
    await busy($("import-check"), async () => {
      try {
        importToken = await upload(file);
        const r = await api("POST", "api/import/check", { token: importToken, format: $("import-format").value, password: $("import-password").value });
        $("import-summary").textContent = `${file.name}: ${r.found} item(s) to import${r.skipped.length ? `, ${r.skipped.length} skipped` : ""}. Nothing is imported until you press Import.`;
        listOf($("import-titles"), r.titles.concat(r.found > r.titles.length ? [`… and ${r.found - r.titles.length} more`] : []));
        listOf($("import-skipped"), r.skipped.map((x) => `Skipped ${x.entry}: ${x.reason}`).concat(r.ignored.length ? [`Not imported (metadata): ${r.ignored.join(", ")}`] : []));
        $("import-commit").textContent = `Import ${r.found} item(s)`; $("import-commit").disabled = r.found === 0;
        show($("import-report"), true); $("import-report").focus();
      } catch (err) { importToken = null; setError($("import-error"), err); }
    });
  });
  $("import-commit").addEventListener("click", () => busy($("import-commit"), async () => {
    try {
      const r = await api("POST", "api/import/commit", { token: importToken });
      importToken = null; show($("import-report"), false); $("import-form").reset(); transferShape();
      $("import-check").focus();
      toast(`Imported ${r.imported} item(s)`); loadItems();
    } catch (err) { setError($("import-error"), err); }
  }));
  $("import-cancel").addEventListener("click", () => { importToken = null; show($("import-report"), false); $("import-check").focus(); });
  $("export-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    setError($("export-error"), null);
    const fmt = formats.export.find((f) => f.name === $("export-format").value);
    const body = { format: fmt.name };
    if (fmt.encrypted) {
      if ($("export-password").value !== $("export-password2").value) { setError($("export-error"), "The two passwords differ."); return; }
      body.password = $("export-password").value;
    } else {
      if (!$("export-unencrypted").checked) { setError($("export-error"), "Tick “I understand: export unencrypted” first, or choose an encrypted format."); return; }
      body.unencrypted = true;
    }
    await busy($("export-btn"), async () => {
      let resp;
      try {
        resp = await fetch("api/export", { method: "POST", credentials: "same-origin", body: JSON.stringify(body),
          headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" } });
      } catch (err) { setError($("export-error"), "The unlatch agent is not answering."); return; }
      if (!resp.ok) { setError($("export-error"), new ApiError(resp.status, await resp.json().catch(() => null))); return; }
      const name = (/filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "") || [])[1] || "unlatch-export";
      const url = URL.createObjectURL(await resp.blob());
      const a = document.createElement("a"); a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      $("export-password").value = ""; $("export-password2").value = ""; $("export-unencrypted").checked = false;
      toast(`Exported ${resp.headers.get("X-Item-Count")} item(s) to ${name}`);
    });
  });

  // ------------------------------------------------------------- pairing
  let pairQrFor = "";
  let pairingOpen = false;
  function renderPairing(p) {
    show($("pairing"), pairingOpen && Boolean(p));
    if (!p || !pairingOpen) return;
    const waiting = p.state === "waiting";
    show($("pair-qr").parentElement, waiting);
    if (waiting && pairQrFor !== p.id) { pairQrFor = p.id; $("pair-qr").src = `api/pairing/qr.svg?v=${encodeURIComponent(p.id)}`; }
    show($("pair-waiting"), waiting);
    const confirmNow = p.state === "confirm";
    const box = $("pair-confirm-box");
    if (confirmNow && box.hidden) {
      $("pair-code").textContent = p.code.replace(/(\d{3})(\d{3})/, "$1 $2");
      $("pair-phone-name").textContent = p.phone_name; $("pair-label").value = p.phone_name;
      show(box, true); $("pair-confirm").focus();
    }
    if (!confirmNow) show(box, false);
    const texts = { waiting: `Waiting for a phone… (code valid until ${new Date(p.expires_at * 1000).toLocaleTimeString()})`,
      confirm: "", done: `✓ ${p.phone ? p.phone.label : "Phone"} is paired. It can now unlock this vault.`,
      rejected: p.message, expired: "The pairing code expired. Start again.", failed: p.message };
    $("pair-status").textContent = texts[p.state] || p.message;
  }
  $("pair-btn").addEventListener("click", () => busy($("pair-btn"), async () => {
    try { pairingOpen = true; pairQrFor = ""; const p = await api("POST", "api/pairing"); apply({ ...state, pairing: p }); setError($("phones-error"), null); }
    catch (err) { pairingOpen = false; setError($("phones-error"), err); }
  }));
  $("pair-confirm").addEventListener("click", () => busy($("pair-confirm"), async () => {
    try { await api("POST", `api/pairing/${encodeURIComponent(state.pairing.id)}/confirm`, { label: $("pair-label").value }); }
    catch (err) { setError($("phones-error"), err); }
  }));
  $("pair-reject").addEventListener("click", async () => {
    try { await api("POST", `api/pairing/${encodeURIComponent(state.pairing.id)}/reject`); } catch (err) { setError($("phones-error"), err); }
  });
  $("pair-close").addEventListener("click", async () => {
    const p = state && state.pairing;
    pairingOpen = false; show($("pairing"), false);
    if (p && (p.state === "waiting" || p.state === "confirm")) api("POST", `api/pairing/${encodeURIComponent(p.id)}/cancel`).catch(() => {});
  });

  // ------------------------------------------------------------ countdowns
  function updateCountdowns() {
    if (!state) return;
    const v = state.vault;
    if (v.unlocked && v.locks_in !== null) {
      const left = v.locks_in - (now() - state.now);
      $("autolock").textContent = `Locks in ${mmss(left)}`;
    } else { $("autolock").textContent = v.unlocked ? "Auto-lock off" : ""; }
    const u = state.unlock;
    if (u && !FINAL.includes(u.state)) $("request-expiry").textContent = `This code expires in ${mmss(u.expires_at - now())}`;
    else $("request-expiry").textContent = "";
    if (otp.code) renderTotp();
    if (clip.value !== null && !clip.waiting) clipStatus(`Clipboard clears in ${mmss((clip.due - Date.now()) / 1000)}`);
  }
  setInterval(updateCountdowns, 1000);
  // Activity (viewing, copying) pushes the agent's auto-lock back without an event:
  // resynchronise the countdown now and then.
  setInterval(() => { if (state && state.vault.unlocked && !pollTimer) api("GET", "api/state").then(apply).catch(() => {}); }, 20000);

  // ------------------------------------------------------------ keyboard
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (e.key === "/" && !typing && state && state.vault.unlocked) { e.preventDefault(); $("search").focus(); }
    if (e.key === "Escape") {
      if (editing !== null) { editing = null; renderDetail(); }
      else if (!$("settings").hidden) $("settings-close").click();
    }
  });

  connect();
  ensureTypes();
  api("GET", "api/state").then(apply).catch(() => startPolling());
})();

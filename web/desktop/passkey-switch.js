// Hand-over from http://127.0.0.1:PORT to http://localhost:PORT (passkeys need a host
// name: the WebAuthn RP id is "localhost"). The single-use launch secret arrives in the
// #fragment, which is never sent to any server; this page, already on localhost, then
// opens the launch link itself, so the session cookie (SameSite=Strict) is set by a
// same-site navigation and sent on the redirect that follows (to the UI's secret
// path prefix, where this page also lives).
"use strict";
(() => {
  const k = new URLSearchParams(location.hash.slice(1)).get("k");
  history.replaceState(null, "", location.pathname);  // drop the secret from history
  if (k && /^[A-Za-z0-9_-]{16,128}$/.test(k)) {
    location.replace("/?k=" + encodeURIComponent(k));
  } else {
    document.getElementById("switch-note").textContent =
      "This hand-over link is incomplete. Run `unlatch desktop` for a fresh link.";
  }
})();

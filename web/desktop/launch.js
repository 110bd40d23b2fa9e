// Hand-over to http://localhost:PORT from a page that is not on localhost: the launch
// file of `unlatch desktop` (file://, so the browser's command line holds no secret) and
// the passkeys' switch from http://127.0.0.1:PORT (passkeys need a host name: the
// WebAuthn RP id is "localhost"). A navigation started there is cross-site, and the
// session cookie (SameSite=Strict) would not be sent on the redirect that follows the
// launch link. So the single-use launch secret arrives in the #fragment, which is never
// sent to any server, and this page, already on localhost, opens the launch link
// itself: a same-site navigation, whose redirect to the UI's secret path prefix (where
// this page also lives) carries the new cookie.
"use strict";
(() => {
  const k = new URLSearchParams(location.hash.slice(1)).get("k");
  history.replaceState(null, "", location.pathname);  // drop the secret from history
  if (k && /^[A-Za-z0-9_-]{16,128}$/.test(k)) {
    location.replace("/?k=" + encodeURIComponent(k));
  } else {
    document.getElementById("launch-note").textContent =
      "This launch link is incomplete. Run `unlatch desktop` for a fresh link.";
  }
})();

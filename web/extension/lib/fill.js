/**
 * Filling: which frame of the tab gets a login, and the functions injected into it.
 *
 * The rules (docs/browser.md): only on a user's click; the top frame, or a frame of
 * the top frame's origin; a cross-origin frame only after the user confirmed its
 * origin; and the host releases the login only if the frame's URL matches it.
 * `probeFrame`, `fillLogin` and `fillGenerated` are serialized into the page by
 * chrome.scripting.executeScript: they must not use anything outside their body.
 */

/** Runs in each frame: where it is and whether it has a login form. */
export function probeFrame() {
  const visible = (el) => !el.disabled && !el.readOnly && el.getClientRects().length > 0;
  const passwords = [...document.querySelectorAll("input[type=password]")].filter(visible);
  const frames = [...document.querySelectorAll("iframe[src]")].map((f) => {
    try { return new URL(f.src, location.href).origin; } catch (e) { return null; }
  }).filter((o) => o && o !== location.origin && /^https?:/.test(o));
  return { href: location.href, origin: location.origin, top: window === window.top, hasPassword: passwords.length > 0, frames: [...new Set(frames)] };
}

/** Runs in the chosen frame: put the login into the form the way typing would. */
export function fillLogin(username, password) {
  const visible = (el) => !el.disabled && !el.readOnly && el.getClientRects().length > 0;
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
  const put = (el, value) => {
    el.focus();
    setter.call(el, value);  // the native setter: frameworks that track .value see a change
    el.dispatchEvent(new Event("input", { bubbles: true }));
    el.dispatchEvent(new Event("change", { bubbles: true }));
  };
  const pass = [...document.querySelectorAll("input[type=password]")].find(visible);
  const scope = (pass && pass.form) || document;
  const textual = [...scope.querySelectorAll("input")].filter((el) => visible(el) && ["text", "email", "tel"].includes(el.type));
  let user = textual.find((el) => /username|email/.test(el.autocomplete || ""));
  if (!user && pass) user = textual.filter((el) => el.compareDocumentPosition(pass) & Node.DOCUMENT_POSITION_FOLLOWING).pop();
  if (!user) user = textual[0];
  const filled = [];
  if (user && username) { put(user, username); filled.push("username"); }
  if (pass && password) { put(pass, password); filled.push("password"); }
  return filled;
}

/** Runs in a frame: put a generated password into the focused field, if it is one. */
export function fillGenerated(value) {
  const el = document.activeElement;
  if (!(el instanceof HTMLInputElement) || !["password", "text"].includes(el.type)) return false;
  Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(el, value);
  el.dispatchEvent(new Event("input", { bubbles: true }));
  el.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
}

/**
 * From the probes of a tab's frames, the frame to fill.
 * @returns {{frameId: number, href: string, origin: string, crossOrigin: boolean} | null}
 */
export function chooseFrame(probes) {
  const top = probes.find((p) => p.result && p.result.top);
  if (!top) return null;
  const withForm = probes.filter((p) => p.result && p.result.hasPassword);
  const pick = (p) => ({ frameId: p.frameId, href: p.result.href, origin: p.result.origin, crossOrigin: p.result.origin !== top.result.origin });
  const same = withForm.find((p) => p.result.origin === top.result.origin);
  if (same) return pick(same);
  if (withForm.length) return pick(withForm[0]);
  return pick(top);  // no password field: a username-only step of a login
}

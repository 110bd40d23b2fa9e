/**
 * QR code payloads as links (mirror of unlatch/protocol/links.py).
 *
 * A QR code holds an https link to the phone app whose `#fragment` carries
 * the message (a phone's own camera opens the app on it; browsers never send
 * a fragment to a server), or a bare `unlatch:` form. Both carry the same
 * base64url message bytes.
 */

import { MAX_LINK_CHARS } from "./constants.js";
import { b64d, b64e } from "./encoding.js";
import { MalformedMessage } from "./errors.js";

export const FRAGMENT_KEY = "m=";
export const BARE_PREFIX = "unlatch:";

/** `https://relay.example/app/#m=<base64url(message)>`. */
export function appLink(appUrl, message) {
  if (appUrl.includes("#")) throw new RangeError("the app URL must not have a fragment");
  return `${appUrl}#${FRAGMENT_KEY}${b64e(message)}`;
}

/** `unlatch:<base64url(message)>`. */
export function bareLink(message) {
  return BARE_PREFIX + b64e(message);
}

/** The message bytes of an app link, a bare link, or bare base64url text. */
export function parseLink(text) {
  if (typeof text !== "string") throw new MalformedMessage("a link must be text");
  // Python's str.strip() removes Unicode whitespace, as String.prototype.trim does.
  text = text.trim();
  if (text.length > MAX_LINK_CHARS) throw new MalformedMessage("link is too long to be an unlatch QR code");
  let payload;
  if (text.toLowerCase().startsWith(BARE_PREFIX)) {
    payload = text.slice(BARE_PREFIX.length);
  } else if (text.includes("#")) {
    const fragment = text.slice(text.indexOf("#") + 1);
    if (!fragment.startsWith(FRAGMENT_KEY)) {
      throw new MalformedMessage("link does not carry an unlatch code in its #fragment");
    }
    payload = fragment.slice(FRAGMENT_KEY.length);
  } else if (text.includes("://")) {
    throw new MalformedMessage("link does not carry an unlatch code (no #fragment)");
  } else {
    payload = text;
  }
  if (!payload) throw new MalformedMessage("link carries an empty code");
  return b64d(payload, "QR code payload");
}

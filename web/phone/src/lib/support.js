/**
 * What the app needs from the browser, checked once at boot, so that a phone
 * that cannot run it is told why in words instead of failing later with an
 * engine error.
 *
 * The hard floor is WebCrypto X25519: the phone's protocol identity is a
 * non-extractable X25519 key and every reply is HPKE over X25519. Safari has
 * it from 17 (iOS 17), Chrome from 133, Firefox from 130; iOS 16.4 to 16.x
 * can install the app and even get Web Push, but cannot do this, so it is
 * named in the message (an iPhone user there must update iOS). The build
 * (build.mjs) targets the same browsers.
 */

export const SUPPORTED_BROWSERS =
  "iOS 17 / Safari 17 or newer, Chrome 133 or newer (Android), or Firefox 130 or newer";

/** null when the browser can run the app, else {title, message} to show instead of the app. */
export async function unsupportedReason() {
  if (!globalThis.isSecureContext || !globalThis.crypto?.subtle) {
    return {
      title: "This page is not secure",
      message: "unlatch keeps keys in the browser, which browsers allow only on an https:// address. Open the app through the relay's https address.",
    };
  }
  if (!("indexedDB" in globalThis)) {
    return {
      title: "This browser cannot run unlatch",
      message: "It has no storage for web apps (IndexedDB). Private browsing modes can turn it off: open the app in a normal window.",
    };
  }
  try {
    await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  } catch {
    return {
      title: "This browser is too old for unlatch",
      message: `unlatch needs X25519 in the browser's WebCrypto: it needs iOS 17 / Safari 17 or newer. Supported: ${SUPPORTED_BROWSERS}. On an iPhone, update iOS in Settings > General > Software Update.`,
    };
  }
  return null;
}

/**
 * Optional local user verification before approving: a WebAuthn platform
 * credential (fingerprint, face, device PIN) with userVerification "required".
 *
 * This is a local gate against someone holding the already-unlocked phone,
 * not a server-checked signature: the assertion is checked here (UV flag set,
 * the credential we registered), nothing is sent anywhere. Where the
 * authenticator has the PRF extension, the same assertion also evaluates the
 * PRF on a stored salt: its output is the key (after HKDF, lib/store.js) that
 * the pairing shares are sealed under, so the gate is then cryptographic.
 */

import { b64d, b64e } from "../protocol/index.js";

const UV_FLAG = 0x04;

export function webauthnAvailable() {
  return Boolean(globalThis.PublicKeyCredential && navigator.credentials?.create);
}

export async function platformAuthenticatorAvailable() {
  try {
    return await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable();
  } catch {
    return false;
  }
}

/** Register a platform credential (asking for PRF); returns {id (base64url), prf: enabled?}. */
export async function createCredential(phoneName) {
  const cred = await navigator.credentials.create({
    publicKey: {
      rp: { name: "unlatch", id: location.hostname },
      user: {
        id: crypto.getRandomValues(new Uint8Array(16)),
        name: phoneName || "unlatch phone",
        displayName: phoneName || "unlatch phone",
      },
      challenge: crypto.getRandomValues(new Uint8Array(32)),
      pubKeyCredParams: [
        { type: "public-key", alg: -7 },
        { type: "public-key", alg: -257 },
      ],
      authenticatorSelection: {
        authenticatorAttachment: "platform",
        userVerification: "required",
        residentKey: "discouraged",
      },
      attestation: "none",
      timeout: 60000,
      extensions: { prf: {} },
    },
  });
  if (!cred) throw new Error("no credential was created");
  const prf = cred.getClientExtensionResults?.().prf;
  return { id: b64e(new Uint8Array(cred.rawId)), prf: Boolean(prf?.enabled || prf?.results?.first) };
}

/**
 * Ask the user to verify (biometric or PIN); throws if they cancel or cannot.
 * With `prfSalt`, also evaluates the credential's PRF on it and returns the
 * 32-byte output (throws if the authenticator gives none); else returns null.
 */
export async function verifyUser(credentialId, { prfSalt = null } = {}) {
  let assertion;
  try {
    assertion = await navigator.credentials.get({
      publicKey: {
        challenge: crypto.getRandomValues(new Uint8Array(32)),
        rpId: location.hostname,
        allowCredentials: [{ type: "public-key", id: b64d(credentialId, "credential id", 1400) }],
        userVerification: "required",
        timeout: 60000,
        ...(prfSalt ? { extensions: { prf: { eval: { first: prfSalt } } } } : {}),
      },
    });
  } catch (err) {
    throw new Error(
      err?.name === "NotAllowedError"
        ? "Verification was cancelled: nothing was sent."
        : "This phone could not verify you: nothing was sent.",
    );
  }
  const authData = new Uint8Array(assertion.response.authenticatorData);
  if (b64e(new Uint8Array(assertion.rawId)) !== credentialId || !(authData[32] & UV_FLAG)) {
    throw new Error("The verification did not confirm it was you: nothing was sent.");
  }
  if (!prfSalt) return null;
  const first = assertion.getClientExtensionResults?.().prf?.results?.first;
  if (!first || first.byteLength !== 32) {
    throw new Error("This authenticator did not give the key that protects the unlock keys: nothing was sent.");
  }
  return new Uint8Array(first);
}

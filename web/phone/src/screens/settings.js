/** Settings: phone name, local user verification before approving, notifications, reset. */

import { enablePush, explain } from "../lib/actions.js";
import { h, icon } from "../lib/dom.js";
import { disableShareWrap, enableShareWrap, saveSettings, shareKeyFromPrf, shareProtection, wipe } from "../lib/store.js";
import { createCredential, platformAuthenticatorAvailable, verifyUser, webauthnAvailable } from "../lib/webauthn.js";
import { busy, button, header, noticeCard } from "./common.js";

export function render(ctx) {
  const { state } = ctx;
  const errorBox = h("div");
  const showError = (err) => {
    const e = explain(err);
    errorBox.replaceChildren(noticeCard({ title: e.title, message: e.message, kind: e.kind }));
  };

  // Phone name
  const nameInput = h("input", { id: "settings-phone-name", class: "text-input", maxlength: 40, value: state.settings.phoneName, placeholder: "My phone" });
  nameInput.addEventListener("change", async () => {
    state.settings.phoneName = nameInput.value.trim();
    await saveSettings(state.settings);
  });

  // User verification
  const uvToggle = h("input", {
    type: "checkbox", id: "uv-toggle", role: "switch", checked: Boolean(state.settings.uvCredentialId),
    "aria-labelledby": "uv-title", "aria-describedby": "uv-note",
  });
  const uvNote = h("p", { class: "muted small", id: "uv-note" });
  // Which protection the unlock keys (K_P) have at rest: shown, not assumed.
  const protectionNote = h("p", { class: "muted small", id: "share-protection" });
  const setUvNote = () => {
    uvNote.textContent = state.settings.uvCredentialId
      ? "On: approving asks for your fingerprint, face or screen lock first."
      : "Off: Approve sends the unlock key at once.";
    shareProtection().then((p) => {
      protectionNote.dataset.kind = p.kind;
      protectionNote.textContent =
        p.kind === "prf"
          ? "Unlock keys: sealed by this phone's authenticator (passkey PRF). A copy of this browser's storage cannot release them."
          : "Unlock keys: sealed by this browser's own storage key. Turn on the check above on a phone whose authenticator supports PRF to tie them to it.";
    });
  };
  setUvNote();
  if (!webauthnAvailable()) {
    uvToggle.disabled = true;
    uvNote.textContent = "This browser has no WebAuthn: local verification is not available.";
  } else {
    platformAuthenticatorAvailable().then((ok) => {
      if (!ok && !state.settings.uvCredentialId) {
        uvToggle.disabled = true;
        uvNote.textContent = "This device has no fingerprint, face or screen-lock authenticator for web apps.";
      }
    });
  }
  uvToggle.addEventListener("change", async () => {
    uvToggle.disabled = true;
    try {
      if (uvToggle.checked) {
        const cred = await createCredential(state.settings.phoneName);
        // Prove it works before relying on it; with PRF, seal the unlock keys under it.
        const salt = crypto.getRandomValues(new Uint8Array(32));
        const prf = await verifyUser(cred.id, { prfSalt: salt }).catch(async (err) => {
          if (cred.prf) throw err;
          await verifyUser(cred.id); // no PRF here: the check alone, keys stay under the device key
          return null;
        });
        if (prf) state.pairings = await enableShareWrap(cred.id, prf, salt);
        state.settings.uvCredentialId = cred.id;
      } else {
        const p = await shareProtection();
        if (p.kind === "prf") {
          const prf = await verifyUser(p.credentialId, { prfSalt: p.salt });
          state.pairings = await disableShareWrap(await shareKeyFromPrf(prf, p.salt));
        } else if (state.settings.uvCredentialId) {
          await verifyUser(state.settings.uvCredentialId);
        }
        state.settings.uvCredentialId = null;
      }
      await saveSettings(state.settings);
      errorBox.replaceChildren();
    } catch (err) {
      uvToggle.checked = Boolean(state.settings.uvCredentialId);
      showError(err?.name === "NotAllowedError" ? new Error("Verification was cancelled.") : err);
    } finally {
      uvToggle.disabled = false;
      setUvNote();
    }
  });

  // Notifications
  const pushStatus = h("p", { class: "muted small", id: "push-status" });
  const setPushStatus = () => {
    pushStatus.textContent = state.push?.enabled ? "On: unlock requests appear as notifications." : state.push?.reason || "Off.";
  };
  setPushStatus();
  const pushBtn = button(state.push?.enabled ? "Renew" : "Turn on", null, { kind: "ghost small", iconName: "bell", id: "push-enable" });
  pushBtn.addEventListener("click", () =>
    busy(pushBtn, async () => {
      await enablePush(ctx);
      setPushStatus();
    }, showError),
  );

  // Reset
  const resetArea = h("div", { class: "reset" });
  const showReset = () =>
    resetArea.replaceChildren(button("Reset this phone", askReset, { kind: "ghost small danger-text", id: "reset" }));
  const askReset = () => {
    const yes = button("Erase everything", null, { kind: "danger small" });
    yes.addEventListener("click", () =>
      busy(yes, async () => {
        for (const p of state.pairings) await ctx.relay.deletePairing(p.record.keys.routing_id).catch(() => null);
        await wipe();
        location.replace(location.pathname);
        location.reload();
      }, showError),
    );
    resetArea.replaceChildren(
      h("p", { class: "confirm-text", text: "This forgets every paired desktop and this phone's keys. Desktops will need to pair again." }),
      yes,
      button("Cancel", showReset, { kind: "ghost small" }),
    );
  };
  showReset();

  return {
    node: [
      header("Settings"),
      errorBox,
      h(
        "section",
        { class: "card settings" },
        h("label", { class: "field" }, h("span", { text: "Name of this phone" }), nameInput),
        h("div", { class: "setting" }, h("div", {}, h("strong", { id: "uv-title" }, icon("fingerprint"), "Confirm it's you before approving"), uvNote, protectionNote), h("label", { class: "switch" }, uvToggle, h("span", { class: "slider" }))),
        h("div", { class: "setting" }, h("div", {}, h("strong", {}, icon("bell"), "Notifications"), pushStatus), pushBtn),
      ),
      h(
        "section",
        { class: "card about" },
        h("p", { class: "muted small" }, "Relay: ", h("code", { text: ctx.relay.baseUrl })),
        h("p", { class: "muted small" }, "This phone on the relay: ", h("code", { id: "device-id", text: ctx.relay.deviceId || "" })),
        h("p", { class: "muted small", text: "The keys of this app never leave this phone: the relay only passes sealed messages along." }),
        resetArea,
      ),
    ],
  };
}

/**
 * Pairing, after a pairing QR code was scanned or its link opened:
 * confirm -> (hello) -> show the verification code and wait for the desktop's
 * confirmation -> name the desktop -> notifications -> done.
 */

import { awaitAccept, enablePush, explain, renamePairing, sendHello, setNumberMatching } from "../lib/actions.js";
import { formatRemaining, groupCode, h, icon, nowSeconds } from "../lib/dom.js";
import { saveSettings } from "../lib/store.js";
import { busy, button, header, noticeCard } from "./common.js";

function defaultPhoneName() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return "iPhone";
  if (/iPad/.test(ua)) return "iPad";
  if (/Android/.test(ua)) return "Android phone";
  return "My phone";
}

export function render(ctx) {
  const flow = ctx.state.flow;
  if (!flow || flow.kind !== "pair") {
    queueMicrotask(() => ctx.go("#/"));
    return { node: [] };
  }
  const body = h("div", { class: "pair-body" });
  const abort = new AbortController();
  let timer = null;

  const fail = (err) => {
    const e = explain(err);
    body.replaceChildren(
      noticeCard({ title: e.title, message: e.message, kind: e.kind }),
      h("a", { class: "btn secondary", href: "#/" }, h("span", { text: "Back to start" })),
    );
    ctx.state.flow = null;
  };

  const host = new URL(flow.offer.relayUrl).host;

  const stepConfirm = () => {
    const nameInput = h("input", {
      id: "phone-name",
      class: "text-input",
      maxlength: 40,
      value: ctx.state.settings.phoneName || defaultPhoneName(),
      autocomplete: "off",
    });
    const expiry = h("span", { class: "countdown" });
    const tick = () => {
      const left = flow.offer.expiresAt - nowSeconds();
      expiry.textContent = left > 0 ? `valid for ${formatRemaining(left)}` : "expired";
    };
    tick();
    timer = setInterval(tick, 1000);
    const go = button("Pair", null, { iconName: "link", id: "pair-start" });
    go.addEventListener("click", () =>
      busy(
        go,
        async () => {
          const name = nameInput.value.trim() || defaultPhoneName();
          if (new TextEncoder().encode(name).length > 64) throw new Error("The phone's name is too long.");
          ctx.state.settings.phoneName = name;
          await saveSettings(ctx.state.settings);
          const code = await sendHello(ctx, name);
          clearInterval(timer);
          stepCode(code);
        },
        fail,
      ),
    );
    body.replaceChildren(
      h(
        "div",
        { class: "card" },
        h("div", { class: "hero-icon small" }, icon("phone"), icon("link"), icon("laptop")),
        h("h2", { text: "Pair with a desktop" }),
        h("p", { class: "muted" }, `Pairing code from ${host} · `, expiry),
        h("label", { class: "field" }, h("span", { text: "Name of this phone, shown on the desktop" }), nameInput),
      ),
      go,
      h("a", { class: "btn ghost", href: "#/" }, h("span", { text: "Cancel" })),
    );
  };

  const stepCode = (code) => {
    const digits = h(
      "div",
      { class: "code", id: "verification-code", "data-code": code, "aria-label": `Verification code ${code.split("").join(" ")}` },
      ...groupCode(code)
        .split("")
        .map((c) => (c === " " ? h("span", { class: "code-gap" }) : h("span", { class: "code-digit", text: c }))),
    );
    body.replaceChildren(
      h(
        "div",
        { class: "card center" },
        h("h2", { text: "Check the code" }),
        h("p", { class: "muted", text: "Your desktop shows six digits too. If they are the same, confirm on the desktop." }),
        digits,
        h("p", { class: "waiting" }, h("span", { class: "spinner" }), "Waiting for the desktop to confirm…"),
      ),
      noticeCard({
        title: "Different digits?",
        message: "Cancel on both screens: someone else may be trying to pair. Nothing is saved until the desktop confirms.",
        kind: "info subtle",
      }),
      h("a", { class: "btn ghost", href: "#/" }, h("span", { text: "Cancel" })),
    );
    awaitAccept(ctx, abort.signal).then(stepName, (err) => {
      if (err?.name !== "AbortError") fail(err);
    });
  };

  const stepName = (entry) => {
    const labelInput = h("input", { id: "desktop-name", class: "text-input", maxlength: 40, value: entry.label, autocomplete: "off" });
    // The pairing's unlock policy is this phone's choice (protocol.md 6.8): scan only unless allowed here.
    const allowInput = h("input", { type: "checkbox", id: "allow-number-matching", role: "switch" });
    const save = button("Save", null, { iconName: "check", id: "pair-save" });
    save.addEventListener("click", () =>
      busy(
        save,
        async () => {
          const label = labelInput.value.trim() || entry.record.desktopName;
          if (label !== entry.label) await renamePairing(ctx, entry, label);
          if (allowInput.checked) await setNumberMatching(ctx, entry, true);
          stepDone(label, await enablePush(ctx));
        },
        fail,
      ),
    );
    body.replaceChildren(
      h(
        "div",
        { class: "card" },
        h("div", { class: "success-icon" }, icon("check")),
        h("h2", { text: "Paired" }),
        h("p", { class: "muted", text: `This phone can now unlock ${entry.record.desktopName}.` }),
        h("label", { class: "field" }, h("span", { text: "Name for this desktop" }), labelInput),
        h(
          "div",
          { class: "setting" },
          h(
            "div",
            {},
            h("strong", { text: "Also approve from the notification" }),
            h("p", {
              class: "muted",
              text: "Number matching: pick the number the desktop shows instead of scanning its QR code. Weaker: it proves you looked, not that you are there. Off unless you turn it on; change it later under Desktops.",
            }),
          ),
          h("label", { class: "switch" }, allowInput, h("span", { class: "slider" })),
        ),
      ),
      save,
    );
  };

  const stepDone = (label, push) => {
    ctx.state.flow = null;
    body.replaceChildren(
      h(
        "div",
        { class: "card center", id: "pair-done" },
        h("div", { class: "success-icon" }, icon("check")),
        h("h2", { text: `${label} is paired` }),
        h("p", { class: "muted", text: "When it asks to unlock, scan the QR code it shows with this app." }),
      ),
      push.enabled
        ? noticeCard({ title: "Notifications on", message: "Unlock requests will appear as notifications.", kind: "info" })
        : noticeCard({ title: "No notifications", message: push.reason, kind: "warning" }),
      h("a", { class: "btn primary", href: "#/", id: "pair-finish" }, h("span", { text: "Done" })),
    );
  };

  if (flow.step === "confirm") stepConfirm();
  else fail(new Error("This pairing was interrupted. Scan the pairing code again."));
  return {
    node: [header("Pair", "Link this phone with a desktop", { back: "#/" }), body],
    cleanup() {
      clearInterval(timer);
      abort.abort();
      if (ctx.state.flow === flow && flow.step !== "confirm") {
        const { pp } = ctx.state.flow;
        if (pp && pp.state !== "done") {
          pp.fail();
          ctx.relay.closePairingChannel(pp.channelId);
        }
        ctx.state.flow = null;
      }
    },
  };
}

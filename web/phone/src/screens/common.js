/** Pieces several screens share: the header, notices, buttons, the pending-request card. */

import { UnlockMode } from "../protocol/index.js";
import { explain, labelOf, refuseFromPush } from "../lib/actions.js";
import { formatRemaining, h, icon, nowSeconds } from "../lib/dom.js";

export function header(title, subtitle = null, { back = null } = {}) {
  return h(
    "header",
    { class: "bar" },
    back ? h("a", { class: "back", href: back, "aria-label": "Back" }, icon("back")) : h("span", { class: "brand-mark" }, icon("lock")),
    h("div", { class: "titles" }, h("h1", { text: title }), subtitle ? h("p", { class: "subtitle", text: subtitle }) : null),
  );
}

/** The one-time notice (error or info) left by the previous step, if any. */
export function takeNotice(ctx) {
  const n = ctx.state.notice;
  ctx.state.notice = null;
  return n ? noticeCard(n) : null;
}

export function noticeCard({ title, message, kind = "error" }) {
  return h(
    "div",
    { class: `notice ${kind}`, role: kind === "info" ? "status" : "alert" },
    icon(kind === "info" ? "check" : "shield"),
    h("div", {}, h("strong", { class: "notice-title", text: title }), h("p", { class: "notice-text", text: message })),
  );
}

export function button(label, onclick, { kind = "primary", iconName = null, id = null, disabled = false } = {}) {
  return h("button", { class: `btn ${kind}`, type: "button", onclick, id, disabled }, iconName ? icon(iconName) : null, h("span", { text: label }));
}

/** Run an async action with the button busy; errors are shown by `onError`. */
export async function busy(btn, fn, onError) {
  const label = btn.querySelector("span");
  const text = label?.textContent;
  btn.disabled = true;
  btn.classList.add("busy");
  try {
    return await fn();
  } catch (err) {
    onError(err);
    return undefined;
  } finally {
    btn.disabled = false;
    btn.classList.remove("busy");
    if (label) label.textContent = text;
  }
}

/**
 * "I did not ask for this" on a request card, with a confirm step (it blocks the
 * desktop). The step in progress lives on the pending entry, so a redraw of the
 * list (another request arriving) keeps it.
 */
export function refuseControls(ctx, p) {
  const label = labelOf(p.pairingEntry);
  const area = h("div", { class: "refuse" });
  const ask = () => {
    p.refuseStep = "ask";
    const yes = button(`Block ${label}`, null, { kind: "danger small confirm-not-me", iconName: "shield" });
    const no = button("Cancel", null, { kind: "ghost small" });
    no.addEventListener("click", idle);
    yes.addEventListener("click", () =>
      busy(
        yes,
        async () => {
          const result = await refuseFromPush(ctx, p);
          ctx.notify({
            title: `${label} is blocked`,
            message:
              (result.delivered
                ? `${label} was told you did not ask for this. `
                : "The desktop had already stopped waiting for this request. ") +
              "It cannot send new requests until you unblock it under Desktops.",
            kind: "warning",
          });
          ctx.go("#/");
        },
        (err) => {
          const e = explain(err);
          area.replaceChildren(noticeCard({ title: e.title, message: e.message, kind: e.kind }), yes, no);
        },
      ),
    );
    area.replaceChildren(
      h("p", {
        class: "confirm-text",
        text: `Tell ${label} you did not ask for this, and block its requests until you unblock it under Desktops?`,
      }),
      yes,
      no,
    );
  };
  const idle = () => {
    p.refuseStep = null;
    const notMe = button("I did not ask for this", ask, { kind: "danger-link small not-me", iconName: "shield" });
    area.replaceChildren(notMe);
  };
  if (p.refuseStep === "ask") ask();
  else idle();
  return area;
}

/** A pending unlock request as a card with its countdown and the way to answer it. */
export function pendingCard(ctx, p) {
  const scanMode = p.pushed.params.mode === UnlockMode.SCAN;
  const remaining = h("span", { class: "countdown" });
  const tick = () => {
    remaining.textContent = `${formatRemaining(Number(p.pushed.params.expiresAt) - nowSeconds())} left`;
  };
  tick();
  const from = p.notification.requester?.address;
  return {
    tick,
    node: h(
      "div",
      { class: "card request", "data-request": p.requestId },
      h(
        "div",
        { class: "request-head" },
        h("span", { class: "avatar" }, icon("laptop")),
        h(
          "div",
          { class: "request-text" },
          h("strong", { text: `Unlock request from ${labelOf(p.pairingEntry)}` }),
          h("span", { class: "muted" }, from ? `from ${from} · ` : "", remaining),
        ),
      ),
      scanMode
        ? h("a", { class: "btn primary", href: `#/scan?request=${p.requestId}` }, icon("scan"), h("span", { text: "Scan the QR code" }))
        : h("a", { class: "btn primary", href: `#/approve?request=${p.requestId}` }, icon("check"), h("span", { text: "Answer" })),
      refuseControls(ctx, p),
    ),
  };
}

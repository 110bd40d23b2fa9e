/** Home: what waits for the user (pending requests) and the paired desktops. */

import { labelOf } from "../lib/actions.js";
import { formatDate, h, icon } from "../lib/dom.js";
import { header, pendingCard, takeNotice } from "./common.js";

export function render(ctx) {
  const { state } = ctx;
  const pendingBox = h("section", { class: "pending", "aria-live": "polite" });
  const statusLine = h("p", { class: "status-line" });
  let ticks = [];

  // The paired desktops, redrawn with the pending list (a desktop may remove this phone).
  const desktopList = h("ul", { class: "list" });
  const drawDesktops = () =>
    desktopList.replaceChildren(
      ...state.pairings.map((p) =>
        h(
          "li",
          { class: "list-item" },
          h("span", { class: "avatar" }, icon("laptop")),
          h(
            "div",
            { class: "item-text" },
            h("strong", { text: labelOf(p) }),
            h("span", {
              class: "muted",
              text: p.removed
                ? "Removed by the desktop: forget it under Desktops, or pair again"
                : `Paired ${formatDate(p.addedAt)}`,
            }),
          ),
        ),
      ),
    );

  const draw = () => {
    drawDesktops();
    const cards = [...state.pending.values()].map((p) => pendingCard(ctx, p));
    ticks = cards.map((c) => c.tick);
    pendingBox.replaceChildren(
      ...(cards.length ? [h("h2", { class: "section-title", text: "Waiting for you" }), ...cards.map((c) => c.node)] : []),
    );
    const live = state.listener === "live";
    statusLine.replaceChildren(
      h("span", { class: `dot ${live ? "live" : "off"}` }),
      live ? "Listening for unlock requests" : state.listener === "offline" ? "Relay unreachable: retrying" : "Connecting to the relay…",
      state.push?.enabled ? " · notifications on" : "",
    );
  };
  draw();
  ctx.listeners.add(draw);
  const timer = setInterval(() => ticks.forEach((t) => t()), 1000);

  const content = [header("unlatch", "Your phone unlocks your desktop"), takeNotice(ctx), pendingBox];
  if (!state.pairings.length) {
    content.push(
      h(
        "div",
        { class: "card hero" },
        h("div", { class: "hero-icon" }, icon("phone"), icon("link"), icon("laptop")),
        h("h2", { text: "Pair with your desktop" }),
        h("p", {
          text: "On your desktop, start pairing (unlatch pair) and scan the QR code it shows. Both screens then show the same six digits.",
        }),
        h("a", { class: "btn primary", href: "#/scan" }, icon("scan"), h("span", { text: "Scan pairing code" })),
      ),
    );
  } else {
    content.push(
      h("h2", { class: "section-title", text: "Paired desktops" }),
      desktopList,
      h(
        "div",
        { class: "card tip" },
        icon("lock"),
        h("p", { text: "To unlock, start an unlock on your desktop and scan the QR code it shows with this app." }),
      ),
    );
  }
  content.push(statusLine);
  return {
    node: content,
    cleanup() {
      clearInterval(timer);
      ctx.listeners.delete(draw);
    },
  };
}

/**
 * Paired desktops: rename, unpair, unblock after "I did not ask for this", and
 * each desktop's unlock policy (scan only, or approve from the notification too).
 */

import { b64e } from "../protocol/index.js";
import { explain, labelOf, renamePairing, setNumberMatching, unpair } from "../lib/actions.js";
import { formatDate, h, icon } from "../lib/dom.js";
import { busy, button, header, noticeCard, takeNotice } from "./common.js";

export function render(ctx) {
  const list = h("div", { class: "devices" });
  const errorBox = h("div");
  const relayState = new Map(); // routing id -> {state, blocked}
  let alive = true;

  const showError = (err) => {
    const e = explain(err);
    errorBox.replaceChildren(noticeCard({ title: e.title, message: e.message, kind: e.kind }));
  };

  const card = (entry) => {
    const rid = b64e(entry.record.keys.routing_id);
    const info = relayState.get(rid);
    const badge = entry.removed
      ? h("span", { class: "badge bad", text: "removed" })
      : !info
      ? null
      : info.blocked
        ? h("span", { class: "badge bad", text: "blocked" })
        : info.state === "linked"
          ? h("span", { class: "badge ok", text: "linked" })
          : h("span", { class: "badge", text: info.state || "not on relay" });
    const actions = h("div", { class: "device-actions" });
    const node = h(
      "div",
      { class: "card device", "data-routing": rid },
      h(
        "div",
        { class: "request-head" },
        h("span", { class: "avatar" }, icon("laptop")),
        h(
          "div",
          { class: "item-text" },
          h("strong", { class: "device-name", text: labelOf(entry) }, badge),
          h(
            "span",
            { class: "muted" },
            entry.label && entry.label !== entry.record.desktopName ? `${entry.record.desktopName} · ` : "",
            `paired ${formatDate(entry.addedAt)}`,
          ),
          h("span", {
            class: "muted policy",
            "data-number-matching": String(entry.record.allowNumberMatching),
            text: entry.record.allowNumberMatching
              ? "Approve by scanning, or from the notification (number matching)"
              : "Approve by scanning its QR code only",
          }),
        ),
      ),
      actions,
    );
    const showActions = () => {
      if (entry.removed) {
        // The desktop removed this phone (revoked it): only forgetting it is left.
        const forget = button("Forget", null, { kind: "ghost small danger-text", id: "forget-removed" });
        forget.addEventListener("click", () =>
          busy(forget, async () => {
            await unpair(ctx, entry);
            draw();
          }, showError),
        );
        actions.replaceChildren(
          h("p", {
            class: "muted removed-note",
            text: `${labelOf(entry)} removed this phone, so it can no longer unlock it. Forget it here, or pair again from the desktop.`,
          }),
          forget,
        );
        return;
      }
      const rename = button("Rename", showRename, { kind: "ghost small" });
      const remove = button("Unpair", showUnpair, { kind: "ghost small danger-text" });
      const policy = entry.record.allowNumberMatching
        ? button("Scan only", () => savePolicy(policy, false), { kind: "ghost small policy-scan-only" })
        : button("Allow from notification", showAllow, { kind: "ghost small policy-allow" });
      const row = [rename, policy, remove];
      if (info?.blocked) {
        const unblock = button("Unblock", null, { kind: "ghost small" });
        unblock.addEventListener("click", () =>
          busy(unblock, async () => {
            await ctx.relay.unblock(entry.record.keys.routing_id);
            await load();
          }, showError),
        );
        row.unshift(unblock);
      }
      actions.replaceChildren(...row);
    };
    const showRename = () => {
      const input = h("input", { class: "text-input", maxlength: 40, value: labelOf(entry), "aria-label": "New name" });
      const save = button("Save", null, { kind: "primary small" });
      save.addEventListener("click", () =>
        busy(save, async () => {
          const label = input.value.trim();
          if (label) await renamePairing(ctx, entry, label);
          draw();
        }, showError),
      );
      actions.replaceChildren(input, save, button("Cancel", showActions, { kind: "ghost small" }));
      input.focus();
    };
    const savePolicy = (btn, allowed) =>
      busy(btn, async () => {
        await setNumberMatching(ctx, entry, allowed);
        draw();
      }, showError);
    const showAllow = () => {
      const confirmBtn = button("Allow", null, { kind: "primary small policy-allow-confirm" });
      confirmBtn.addEventListener("click", () => savePolicy(confirmBtn, true));
      actions.replaceChildren(
        h("p", {
          class: "confirm-text",
          text:
            `${labelOf(entry)} may then be approved from the notification by picking the number it shows. ` +
            "Scanning proves you are at the desktop; a picked number only proves you looked. " +
            "The desktop uses it after this phone's next answer.",
        }),
        confirmBtn,
        button("Keep scan only", showActions, { kind: "ghost small" }),
      );
    };
    const showUnpair = () => {
      const confirmBtn = button("Unpair", null, { kind: "danger small" });
      confirmBtn.addEventListener("click", () =>
        busy(confirmBtn, async () => {
          await unpair(ctx, entry);
          draw();
        }, showError),
      );
      actions.replaceChildren(
        h("p", { class: "confirm-text", text: `This phone will no longer unlock ${labelOf(entry)}. Pair again to undo.` }),
        confirmBtn,
        button("Keep", showActions, { kind: "ghost small" }),
      );
    };
    showActions();
    return node;
  };

  const draw = () => {
    if (!alive) return;
    const entries = ctx.state.pairings;
    list.replaceChildren(
      ...(entries.length
        ? entries.map(card)
        : [
            h(
              "div",
              { class: "card center" },
              h("p", { class: "muted", text: "No desktop is paired with this phone yet." }),
              h("a", { class: "btn primary", href: "#/scan" }, icon("scan"), h("span", { text: "Scan pairing code" })),
            ),
          ]),
    );
  };

  const load = async () => {
    try {
      const pairings = await ctx.relay.listPairings();
      relayState.clear();
      for (const p of pairings) relayState.set(p.routing_id, p);
    } catch (err) {
      showError(err);
    }
    draw();
  };
  draw();
  if (ctx.state.pairings.length) load();

  return {
    node: [header("Desktops", "Paired with this phone"), takeNotice(ctx), errorBox, list],
    cleanup() {
      alive = false;
    },
  };
}

/**
 * The banner that says what the service worker found about the app's own code
 * (sw.js "Pinned code"): the server now serves other files than the installed
 * ones, an update was refused, or an unsigned update waits for the user.
 *
 * It sits above every screen (app.js frame) so the warning is seen whatever
 * the user is doing; it says what the phone did (kept its installed code) and
 * what the user should do.
 */

import { h } from "../lib/dom.js";
import { button, noticeCard } from "./common.js";

const buildName = (b) => `version ${b.version} (build ${b.build}${b.keyKind === "development" ? ", development key" : ""})`;

/** The banner's content for an integrity status from the service worker (null: nothing to say). */
export function integrityNotices(status, { approve }) {
  if (!status?.pinned) return [];
  const out = [];
  const installed = buildName(status.pinned);
  if (status.served?.state === "changed") {
    out.push(
      noticeCard({
        kind: "danger",
        title: "Warning: the app's server changed its code",
        message:
          `${status.origin} now serves a version of ${status.served.changed.join(", ")} that differs from the unlatch app ` +
          `installed on this phone (${installed}) and is not a signed unlatch update. This phone refused it and keeps ` +
          "running its installed code. If you did not expect an update, that server may be compromised: tell whoever " +
          "runs it, and do not open unlatch codes in a browser where the app is not installed.",
      }),
    );
  }
  if (status.refused) {
    out.push(
      noticeCard({
        kind: "danger",
        title: "An app update was refused",
        message:
          `${status.origin} offered ${buildName(status.refused)}, but its ${status.refused.files.join(", ")} ` +
          `did not match that build's own list of files. This phone keeps running ${installed}.`,
      }),
    );
  }
  if (status.pending) {
    const p = status.pending;
    out.push(
      h(
        "div",
        { class: "stack", id: "integrity-update" },
        noticeCard({
          kind: "warning",
          title: `Update waiting: ${buildName(p)}`,
          message:
            `${status.origin} offers ${buildName(p)}, but ${p.reason}. This phone keeps running ${installed} ` +
            "until you install it. Install it only if you expected an unlatch update.",
        }),
        button(`Install version ${p.version} (build ${p.build})`, () => approve(p.build), {
          kind: "secondary",
          id: "integrity-approve",
        }),
      ),
    );
  }
  return out;
}

/** Render into the banner element (kept across screens). */
export function renderIntegrity(el, status, handlers) {
  const notices = integrityNotices(status, handlers);
  el.replaceChildren(...notices);
  el.hidden = notices.length === 0;
  el.dataset.state = status?.served?.state || "";
}

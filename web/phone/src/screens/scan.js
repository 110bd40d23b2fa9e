/**
 * Scanner: the camera looks for a QR code (pairing offer or unlock request);
 * a link can be pasted instead. Opened from a notification, it names the
 * desktop that asked (?request=<id>).
 */

import { explain, handleCode, labelOf, refreshPending, startUnlockFromPush } from "../lib/actions.js";
import { h, icon } from "../lib/dom.js";
import { Scanner, cameraErrorMessage } from "../lib/scanner.js";
import { UnlockMode } from "../protocol/index.js";
import { busy, button, header, noticeCard, refuseControls, takeNotice } from "./common.js";

export function render(ctx, params) {
  const requestId = params.get("request");
  const pending = requestId ? ctx.state.pending.get(requestId) : null;
  if (pending && pending.pushed.params.mode === UnlockMode.NUMBER_MATCH) {
    // Number matching needs no QR: answer straight away.
    queueMicrotask(() => {
      try {
        startUnlockFromPush(ctx, pending);
      } catch (err) {
        const e = explain(err);
        ctx.notify({ title: e.title, message: e.message, kind: e.kind });
        ctx.go("#/");
      }
    });
    return { node: header("Opening request…") };
  }

  if (requestId && !pending) {
    // Opened from a notification before the app knew the request: ask the relay,
    // then show which desktop asks (or go straight to the numbers).
    let alive = true;
    refreshPending(ctx)
      .then(() => {
        if (alive && ctx.state.pending.has(requestId)) ctx.rerender();
      })
      .catch(() => null);
    const out = renderScanner(ctx, null);
    const inner = out.cleanup;
    out.cleanup = () => {
      alive = false;
      inner();
    };
    return out;
  }
  return renderScanner(ctx, pending);
}

function renderScanner(ctx, pending) {
  const subtitle = pending
    ? `Scan the QR code on ${labelOf(pending.pairingEntry)}'s screen`
    : "Point the camera at the QR code on your desktop";
  const video = h("video", { class: "camera", autoplay: true, muted: true, playsinline: true, "aria-label": "Camera" });
  const status = h("p", { class: "scan-status", role: "status", text: "Starting the camera…" });
  const errorBox = h("div", { class: "scan-error" });
  const torchBtn = button("Light", null, { kind: "ghost small", iconName: "torch", id: "torch" });
  torchBtn.hidden = true;
  torchBtn.setAttribute("aria-pressed", "false");
  const viewfinder = h(
    "div",
    { class: "viewfinder" },
    video,
    h("div", { class: "frame-corners" }, h("i"), h("i"), h("i"), h("i")),
  );
  let scanner = null;
  let torchOn = false;

  const showError = (err) => {
    const e = explain(err);
    errorBox.replaceChildren(
      noticeCard({ title: e.title, message: e.message, kind: e.kind }),
      button("Scan again", () => ctx.rerender(), { kind: "secondary", iconName: "scan", id: "scan-again" }),
    );
    viewfinder.classList.add("stopped");
    status.textContent = "";
  };

  const onCode = async (text) => {
    status.textContent = "Checking the code…";
    viewfinder.classList.add("found");
    try {
      await handleCode(ctx, text);
    } catch (err) {
      showError(err);
    }
  };

  const startCamera = async () => {
    scanner = new Scanner(video, onCode);
    try {
      await scanner.start();
      if (!scanner.stream) return;
      status.textContent = "Looking for a QR code…";
      viewfinder.dataset.engine = scanner.engine;
      if (scanner.torchSupported) torchBtn.hidden = false;
    } catch (err) {
      viewfinder.classList.add("stopped");
      status.textContent = "";
      errorBox.replaceChildren(noticeCard({ title: "No camera", message: cameraErrorMessage(err), kind: "warning" }));
      pasteBox.open = true;
    }
  };
  torchBtn.addEventListener("click", async () => {
    torchOn = !torchOn;
    try {
      await scanner?.setTorch(torchOn);
      torchBtn.classList.toggle("on", torchOn);
      torchBtn.setAttribute("aria-pressed", String(torchOn));
    } catch {
      torchBtn.hidden = true;
    }
  });

  const input = h("textarea", {
    class: "paste-input",
    rows: 3,
    placeholder: "https://…/app/#m=…",
    "aria-label": "Link from the desktop",
    autocomplete: "off",
    spellcheck: "false",
  });
  const useBtn = button("Use this link", null, { kind: "secondary", iconName: "link", id: "use-link" });
  useBtn.addEventListener("click", () =>
    busy(
      useBtn,
      async () => {
        scanner?.stop();
        await handleCode(ctx, input.value);
      },
      showError,
    ),
  );
  const pasteBox = h(
    "details",
    { class: "paste" },
    h("summary", {}, icon("link"), h("span", { text: "Paste a link instead" })),
    h("p", { class: "muted", text: "Copy the link shown under the QR code on the desktop and paste it here." }),
    input,
    useBtn,
  );

  startCamera();
  return {
    node: [
      header(pending ? "Scan to unlock" : "Scan", subtitle),
      takeNotice(ctx),
      viewfinder,
      h("div", { class: "scan-row" }, status, torchBtn),
      errorBox,
      pasteBox,
      pending ? refuseControls(ctx, pending) : null,
    ],
    cleanup() {
      scanner?.stop();
    },
  };
}

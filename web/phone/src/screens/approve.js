/**
 * Approve screen: which desktop asks, when, from where (what the relay saw),
 * how long the request lives; Approve / Deny / "I did not ask for this".
 * With number matching, the user picks the number the desktop shows.
 */

import { answer, explain, labelOf, prepareUnlockFromPush, sendAnswer } from "../lib/actions.js";
import { AnswerState, fill } from "../lib/session.js";
import { MODE_NOT_ALLOWED, ModeNotAllowed } from "../protocol/index.js";
import { RelayError } from "../lib/relay.js";
import { describeUserAgent, formatAgo, formatClock, formatRemaining, h, icon, nowSeconds } from "../lib/dom.js";
import { busy, button, header, noticeCard } from "./common.js";

export function render(ctx, params) {
  let flow = ctx.state.flow;
  const fromList = params.get("request");
  if ((!flow || flow.kind !== "approve") && fromList && ctx.state.pending.has(fromList)) {
    try {
      prepareUnlockFromPush(ctx, ctx.state.pending.get(fromList));
      flow = ctx.state.flow;
    } catch (err) {
      const e = explain(err);
      ctx.notify({ title: e.title, message: e.message, kind: e.kind });
    }
  }
  if (!flow || flow.kind !== "approve") {
    queueMicrotask(() => ctx.go("#/"));
    return { node: [] };
  }
  const { pu, notification } = flow;
  const label = labelOf(flow.entry);
  const body = h("div", { class: "approve-body" });
  let timer = null;

  // What the AnswerSession says: "Approved" only once the relay said a waiting desktop took it.
  const KINDS = { ok: "ok", neutral: "neutral", bad: "bad", warning: "bad" };
  const showView = (view, verdict) => {
    clearInterval(timer);
    const kind = KINDS[view.kind] || "neutral";
    const approved = view.text === "done.approve";
    body.replaceChildren(
      h(
        "div",
        { class: `card center result ${kind}`, id: "approve-result", "data-verdict": verdict, "data-outcome": view.text },
        h("div", { class: "result-icon" }, icon(approved ? "unlock" : kind === "bad" ? "shield" : "cross")),
        h("h2", { text: fill(view.title, label) }),
        h("p", { class: "muted", text: fill(view.message, label) }),
      ),
      h("a", { class: "btn primary", href: "#/", id: "approve-done" }, h("span", { text: "Done" })),
    );
  };
  const showResult = (result) => showView(result.view, result.verdict);
  // The relay's word while the screen is open (cancelled, renewed, expired, removed...).
  const onChange = () => {
    const s = flow.session;
    if (!flow.result && s.view && [AnswerState.ENDED, AnswerState.DONE].includes(s.state)) showView(s.view, "");
    if (flow.result && s.view && s.view !== flow.result.view) showView(s.view, flow.result.verdict);
  };
  ctx.listeners.add(onChange);

  // After a failed send the answer is made and kept (flow.outbox): offer to send the same
  // bytes again when another try can help (network, relay trouble), not after a refusal.
  const canRetry = (err) =>
    Boolean(flow.outbox) &&
    !flow.result &&
    (!(err instanceof RelayError) || err.status === 0 || err.status === 429 || err.status >= 500);
  const retryBtn = button("Send again", null, { iconName: "unlock", id: "send-again" });
  retryBtn.addEventListener("click", () =>
    busy(retryBtn, async () => showResult(await sendAnswer(ctx, flow)), (err) => showError(err)),
  );

  const showError = (err) => {
    const e = explain(err);
    if (canRetry(err)) {
      errorBox.replaceChildren(
        noticeCard({
          title: "Not sent yet",
          message: `${e.message} Your answer is kept: "Send again" sends exactly the same answer.`,
          kind: "warning",
        }),
        retryBtn,
      );
    } else {
      errorBox.replaceChildren(noticeCard({ title: e.title, message: e.message, kind: e.kind }));
    }
  };

  const errorBox = h("div", { class: "approve-error" });
  const countdown = h("strong", { class: "countdown", id: "approve-countdown" });
  const meter = h("div", { class: "meter" }, h("div", { class: "meter-fill" }));
  const asked = h("span");
  const requester = notification.requester || {};
  const buttons = [];

  const act = (btn, verdict, choice = null) =>
    busy(
      btn,
      async () => {
        for (const b of buttons) b.disabled = true;
        const result = await answer(ctx, verdict, choice);
        showResult(result);
      },
      showError,
    ).finally(() => {
      // After `busy` re-enabled its button: once the answer is made (sent or kept for
      // "Send again"), none of the answers can be picked any more.
      for (const b of buttons) b.disabled = pu.answered;
    });

  let actions;
  if (!pu.modeAllowed) {
    // A mode this pairing did not agree to (protocol.md 6.8): no numbers to tap
    // blindly, only the refusal; Deny and "I did not ask for this" stay.
    const e = explain(new ModeNotAllowed(MODE_NOT_ALLOWED));
    actions = [
      h("div", { id: "mode-refused" }, noticeCard({ title: e.title, message: e.message, kind: e.kind })),
      h("a", { class: "btn secondary", href: "#/devices", id: "mode-refused-devices" }, h("span", { text: "Open Desktops to unpair it" })),
    ];
  } else if (pu.needsNumber) {
    const choices = pu.choices.map((n) => {
      const b = h("button", { class: "btn number", type: "button", "data-number": n, text: String(n) });
      b.addEventListener("click", () => act(b, "approve", n));
      buttons.push(b);
      return b;
    });
    actions = [
      h("p", { class: "pick-title", text: "Tap the number shown on your desktop" }),
      h("div", { class: "numbers" }, choices),
    ];
  } else {
    const approveBtn = button("Approve", null, { iconName: "unlock", id: "approve" });
    approveBtn.addEventListener("click", () => act(approveBtn, "approve"));
    buttons.push(approveBtn);
    actions = [approveBtn];
  }
  const denyBtn = button("Deny", null, { kind: "secondary", iconName: "cross", id: "deny" });
  denyBtn.addEventListener("click", () => act(denyBtn, "deny"));
  const notMeBtn = button("I did not ask for this", null, { kind: "danger-link", iconName: "shield", id: "not-me" });
  notMeBtn.addEventListener("click", () => act(notMeBtn, "not_me"));
  buttons.push(denyBtn, notMeBtn);

  const total = pu.params.ttl;
  const tick = () => {
    const now = nowSeconds();
    const left = pu.remaining({ now });
    countdown.textContent = left > 0 ? formatRemaining(left) : "expired";
    meter.firstChild.style.width = `${Math.max(0, Math.min(100, (left / total) * 100))}%`;
    meter.classList.toggle("low", left <= 20);
    asked.textContent = `${formatClock(pu.params.createdAt)} (${formatAgo(now - pu.params.createdAt)})`;
    if (left <= 0 && !pu.answered && flow.session.handle({ type: "tick", now }).length) {
      showView(flow.session.view, "");
    }
  };

  body.replaceChildren(
    h(
      "div",
      { class: "card ask" },
      h("div", { class: "ask-head" }, h("span", { class: "avatar large" }, icon("laptop")), h("div", {}, h("h2", { id: "approve-desktop", text: label }), h("p", { class: "muted", text: "wants to unlock its vault" }))),
      h(
        "dl",
        { class: "facts" },
        h("div", {}, h("dt", {}, icon("clock"), "Asked"), h("dd", {}, asked)),
        h("div", {}, h("dt", {}, icon("globe"), "From"), h("dd", { id: "approve-from", text: requester.address || "unknown" })),
        h("div", {}, h("dt", {}, icon("laptop"), "App"), h("dd", { text: describeUserAgent(requester.user_agent) })),
        h("div", {}, h("dt", {}, icon("clock"), "Expires in"), h("dd", {}, countdown)),
      ),
      meter,
    ),
    errorBox,
    h("div", { class: "actions" }, ...actions, denyBtn, notMeBtn),
    h("p", { class: "fineprint", text: "Approve only if you are at this desktop and just asked to unlock it." }),
  );
  tick();
  timer = setInterval(tick, 1000);
  if (flow.result) showResult(flow.result);
  else if (flow.session.final) showView(flow.session.view, "");

  return {
    node: [header("Unlock request", null, { back: "#/" }), body],
    cleanup() {
      clearInterval(timer);
      ctx.listeners.delete(onChange);
      if (ctx.state.flow === flow) ctx.state.flow = null;
    },
  };
}

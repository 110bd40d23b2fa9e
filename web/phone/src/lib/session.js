/**
 * AnswerSession: one unlock request's life on the phone, as a sans-IO state machine.
 *
 * The same design, state for state and row for row, as unlatch/phone/session.py
 * (the Python phone client): both replay tests/vectors/sessions_answer.json.
 * It never reads a clock or touches the network: the app feeds it events with
 * `now` and carries out the commands it returns (show a view, post the reply,
 * forget the card, query the relay). Every message says what to do next;
 * "{desktop}" is the desktop's name, filled in by the screen.
 *
 * The rule it exists for: "Approved" is shown only after the relay said a
 * desktop still waiting took the reply ("delivered"), or the desktop
 * acknowledged it later (channel "answered" with `acknowledged`).
 */

export const AnswerState = Object.freeze({
  NEW: "new",
  LISTED: "listed",
  OPEN: "open",
  SENDING: "sending",
  RETRY: "retry",
  UNDELIVERED: "undelivered",
  DONE: "done",
  ENDED: "ended",
  FORGOTTEN: "forgotten",
});

export const FINAL = new Set([AnswerState.DONE, AnswerState.ENDED, AnswerState.FORGOTTEN]);
export const VERDICTS = ["approve", "deny", "not_me", "wrong_number"];
const ENDINGS = ["cancelled", "renewed", "expired", "closed", "answered", "revoked"];

export const TEXTS = {
  "done.approve": ["Approved", "{desktop} received your approval and is unlocking. Nothing more to do.", "ok"],
  "done.deny": ["Denied", "{desktop} was told no and nothing was released. Nothing more to do.", "neutral"],
  "done.not_me": [
    "{desktop} is blocked",
    "The request was refused and {desktop} cannot send new requests until you unblock it under Desktops.",
    "bad",
  ],
  "done.wrong_number": [
    "Wrong number",
    "That was not the number on the desktop, so nothing was released. If it was you, start a new unlock on the desktop.",
    "bad",
  ],
  queued: [
    "Sent, not picked up yet",
    "{desktop} has not taken your answer yet (it may be reconnecting). The relay keeps it until the request expires and {desktop} gets it when it is back; this screen says so then. If {desktop} does not unlock, request again on the desktop.",
    "warning",
  ],
  undelivered: [
    "Not delivered",
    "{desktop} is no longer waiting for this answer (it cancelled or restarted): request again on the desktop, then answer the new request.",
    "warning",
  ],
  retry: [
    "Not sent yet",
    'The relay could not be reached. Your answer is kept: "Send again" sends exactly the same answer.',
    "warning",
  ],
  "ended.cancelled": [
    "Cancelled on the desktop",
    "{desktop} cancelled this request; nothing was sent. To unlock, start a new request on the desktop.",
    "warning",
  ],
  "ended.renewed": [
    "A new code is on the desktop",
    "{desktop} replaced this request with a new QR code; nothing was sent. Scan the code the desktop shows now.",
    "warning",
  ],
  "ended.expired": ["Expired", "This request timed out before it was answered. Start a new unlock on the desktop.", "warning"],
  "ended.closed": [
    "The desktop stopped waiting",
    "{desktop} no longer waits for this request; nothing was sent. Request again on the desktop.",
    "warning",
  ],
  "ended.answered": [
    "Already answered",
    "This request was already answered on this phone. Nothing more to do; if the desktop did not unlock, start a new unlock there.",
    "neutral",
  ],
  "ended.revoked": [
    "Desktop removed",
    "{desktop} removed this phone, so it can no longer unlock it. Forget it under Desktops, or pair again from the desktop.",
    "bad",
  ],
};

/** An event the session cannot take (malformed, or an unknown verdict). */
export class SessionError extends Error {}

export class AnswerSession {
  constructor(requestId, expiresAt = 0) {
    this.requestId = requestId;
    this.expiresAt = expiresAt;
    this.state = AnswerState.NEW;
    this.verdict = null;
    this.ending = null;
    this.view = null;
  }

  get final() {
    return FINAL.has(this.state);
  }

  /** Apply one event; returns the commands (possibly none). */
  handle(event) {
    if (typeof event?.type !== "string") throw new SessionError("an event needs a type");
    const step = TABLE.get(`${this.state}|${event.type}`);
    return step ? step(this, event) : []; // late, duplicate or out of order: nothing to do
  }

  _show(screen, text = null) {
    const view = { screen };
    if (text !== null) {
      const [title, message, kind] = TEXTS[text];
      Object.assign(view, { title, message, kind, text });
    }
    this.view = view;
    return { type: "show", view };
  }

  _end(why) {
    this.state = AnswerState.ENDED;
    this.ending = why;
    return [this._show("ended", `ended.${why}`)];
  }

  _forget(why) {
    this.state = AnswerState.FORGOTTEN;
    this.ending = why;
    this.view = null;
    return [{ type: "forget" }];
  }

  _done() {
    this.state = AnswerState.DONE;
    return [this._show("result", `done.${this.verdict}`)];
  }
}

const steps = {
  notice(s, e) {
    if (e.expires_at !== undefined) s.expiresAt = Number(e.expires_at);
    if (e.now >= s.expiresAt) return s._forget("expired");
    s.state = AnswerState.LISTED;
    return [s._show("card")];
  },
  open(s, e) {
    if (e.expires_at !== undefined) s.expiresAt = Number(e.expires_at);
    if (e.now >= s.expiresAt) return s._end("expired");
    s.state = AnswerState.OPEN;
    return [s._show("approve")];
  },
  answer(s, e) {
    if (!VERDICTS.includes(e.verdict)) throw new SessionError(`unknown verdict ${e.verdict}`);
    if (s.state === AnswerState.LISTED && e.verdict !== "not_me") return []; // a card: only the refusal
    if (e.now >= s.expiresAt) return s._end("expired");
    s.verdict = e.verdict;
    s.state = AnswerState.SENDING;
    return [s._show("sending"), { type: "post_reply" }];
  },
  retry(s) {
    s.state = AnswerState.SENDING;
    return [s._show("sending"), { type: "post_reply" }];
  },
  reply(s, e) {
    if (e.outcome === "delivered") return s._done();
    if (e.outcome === "undelivered" || e.outcome === "queued") { // queued: the request is still open
      s.state = AnswerState.UNDELIVERED;
      return [s._show("result", e.outcome)];
    }
    if (["closed", "expired", "answered"].includes(e.outcome)) return s._end(e.outcome);
    s.state = AnswerState.RETRY; // "failed": the same bytes may be sent again
    return [s._show("retry", "retry")];
  },
  channelBeforeOpen: (s, e) => (ENDINGS.includes(e.state) ? s._forget(e.state) : []),
  // A renewed request stays answerable: the user scanned it (the desktop renews only QR codes
  // nobody scanned, and follows an older one that gets answered). When the desktop's attempt
  // ends, the relay closes it too, and that ends it here.
  channelOpen: (s, e) => (ENDINGS.includes(e.state) && e.state !== "renewed" ? s._end(e.state) : []),
  // a renewed request stays answerable (its channel is open); the others are over
  channelRetry: (s, e) => (["cancelled", "expired", "closed"].includes(e.state) ? s._end(e.state) : []),
  // a desktop that came back and read the reply acknowledges it: now it is true
  channelUndelivered: (s, e) => (e.state === "answered" && e.acknowledged ? s._done() : []),
  revokeListed: (s) => s._forget("revoked"),
  revoke: (s) => s._end("revoked"),
  tickListed: (s, e) => (e.now >= s.expiresAt ? s._forget("expired") : []),
  tickOpen: (s, e) => (e.now >= s.expiresAt ? s._end("expired") : []),
  restart: () => [{ type: "query" }],
};

const S = AnswerState;
/** The one transition table: "state|event" -> step. A pair not listed is ignored. */
export const TABLE = new Map([
  [`${S.NEW}|notice`, steps.notice],
  [`${S.NEW}|open`, steps.open],
  [`${S.NEW}|channel`, steps.channelBeforeOpen],
  [`${S.LISTED}|notice`, () => []], // a duplicate (push and listener both told)
  [`${S.LISTED}|open`, steps.open],
  [`${S.LISTED}|answer`, steps.answer],
  [`${S.LISTED}|channel`, steps.channelBeforeOpen],
  [`${S.LISTED}|revoke`, steps.revokeListed],
  [`${S.LISTED}|tick`, steps.tickListed],
  [`${S.LISTED}|restart`, steps.restart],
  [`${S.OPEN}|answer`, steps.answer],
  [`${S.OPEN}|channel`, steps.channelOpen],
  [`${S.OPEN}|revoke`, steps.revoke],
  [`${S.OPEN}|tick`, steps.tickOpen],
  [`${S.OPEN}|restart`, steps.restart],
  [`${S.SENDING}|reply`, steps.reply],
  [`${S.SENDING}|revoke`, steps.revoke],
  [`${S.RETRY}|retry`, steps.retry],
  [`${S.RETRY}|channel`, steps.channelRetry],
  [`${S.RETRY}|revoke`, steps.revoke],
  [`${S.RETRY}|tick`, steps.tickOpen],
  [`${S.RETRY}|restart`, steps.restart],
  [`${S.UNDELIVERED}|channel`, steps.channelUndelivered],
  [`${S.UNDELIVERED}|restart`, steps.restart],
]);

/** Fill "{desktop}" in a view's title and message. */
export function fill(text, desktop) {
  return text.replaceAll("{desktop}", desktop);
}

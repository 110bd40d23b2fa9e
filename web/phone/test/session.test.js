/** The phone's AnswerSession replays the shared vectors (tests/vectors/sessions_answer.json), as Python does. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { AnswerSession, AnswerState, SessionError, TABLE } from "../src/lib/session.js";
import { loadVector } from "./helpers.js";

const VECTORS = loadVector("sessions_answer.json");

for (const c of VECTORS.cases) {
  test(`lifecycle session vector: ${c.name}`, () => {
    const session = new AnswerSession("request");
    for (const step of c.steps) {
      assert.deepEqual(session.handle(step.event), step.commands, JSON.stringify(step.event));
      assert.equal(session.state, step.state);
    }
  });
}

test("lifecycle session: the table is the vectors' table", () => {
  const rows = [...TABLE.keys()].map((k) => k.split("|")).sort((a, b) => (a.join() < b.join() ? -1 : 1));
  const want = [...VECTORS.table].sort((a, b) => (a.join() < b.join() ? -1 : 1));
  assert.deepEqual(rows, want);
});

test("lifecycle session: malformed events are refused, the state kept", () => {
  const session = new AnswerSession("r");
  session.handle({ type: "open", now: 1, expires_at: 100 });
  assert.throws(() => session.handle({ now: 2 }), SessionError);
  assert.throws(() => session.handle({ type: "answer", now: 2, verdict: "maybe" }), SessionError);
  assert.equal(session.state, AnswerState.OPEN);
});

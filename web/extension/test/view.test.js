import { test } from "node:test";
import assert from "node:assert/strict";
import { mmss, requestStatus, screenFor } from "../lib/view.js";

const base = { vault: { exists: true, unlocked: false }, unlock: null };

test("the screen follows the vault, then the request", () => {
  assert.equal(screenFor({ ...base, vault: { exists: false, unlocked: false } }), "no_vault");
  assert.equal(screenFor(base), "locked");
  assert.equal(screenFor({ ...base, unlock: { state: "waiting" } }), "request");
  assert.equal(screenFor({ ...base, unlock: { state: "cancelled" } }), "locked");
  assert.equal(screenFor({ ...base, unlock: { state: "denied" } }), "request");  // the outcome stays visible
  assert.equal(screenFor({ ...base, vault: { exists: true, unlocked: true }, unlock: { state: "approved" } }), "unlocked");
});

test("every request state has words and a final flag", () => {
  for (const [s, final] of [["waiting", false], ["seen", false], ["approved", true], ["denied", true], ["expired", true], ["not_me", true]]) {
    const status = requestStatus({ state: s, message: "m" });
    assert.equal(status.final, final, s);
    assert.ok(status.text.length > 3, s);
  }
});

test("mm:ss", () => {
  assert.equal(mmss(119.6), "2:00");
  assert.equal(mmss(61), "1:01");
  assert.equal(mmss(-3), "0:00");
});

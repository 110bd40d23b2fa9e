import { test } from "node:test";
import assert from "node:assert/strict";
import { chooseFrame } from "../lib/fill.js";

const frame = (frameId, origin, { top = false, hasPassword = false, frames = [] } = {}) =>
  ({ frameId, result: { href: `${origin}/login`, origin, top, hasPassword, frames } });

test("the top frame's form is filled", () => {
  const pick = chooseFrame([frame(0, "https://a.example", { top: true, hasPassword: true })]);
  assert.deepEqual(pick, { frameId: 0, href: "https://a.example/login", origin: "https://a.example", crossOrigin: false });
});

test("a same-origin frame's form is preferred over a cross-origin one", () => {
  const pick = chooseFrame([
    frame(0, "https://a.example", { top: true }),
    frame(3, "https://evil.example", { hasPassword: true }),
    frame(4, "https://a.example", { hasPassword: true }),
  ]);
  assert.equal(pick.frameId, 4);
  assert.equal(pick.crossOrigin, false);
});

test("a form only in a cross-origin frame is flagged for confirmation", () => {
  const pick = chooseFrame([frame(0, "https://a.example", { top: true }), frame(5, "https://sso.example", { hasPassword: true })]);
  assert.equal(pick.frameId, 5);
  assert.equal(pick.crossOrigin, true);
});

test("without any password field, the top frame (a username-only step)", () => {
  assert.equal(chooseFrame([frame(0, "https://a.example", { top: true })]).frameId, 0);
  assert.equal(chooseFrame([]), null);
});

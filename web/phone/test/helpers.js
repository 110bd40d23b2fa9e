/** Shared helpers of the node tests: vector loading and the recorded-draws rng. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

import { hex, unhex } from "../src/protocol/index.js";

const HERE = dirname(fileURLToPath(import.meta.url));
export const VECTOR_DIR = join(HERE, "..", "..", "..", "tests", "vectors");

export function loadVector(name) {
  return JSON.parse(readFileSync(join(VECTOR_DIR, name), "utf-8"));
}

/**
 * An rng that hands out a step's recorded draws in order, checking each
 * request's size, so the JavaScript consumes randomness exactly as Python did.
 */
export function replayRng(draws) {
  const queue = draws.map(unhex);
  const rng = (n) => {
    assert.ok(queue.length > 0, `rng asked for ${n} bytes after the recorded draws ran out`);
    const next = queue.shift();
    assert.equal(next.length, n, `rng asked for ${n} bytes, the recorded draw has ${next.length}`);
    return next;
  };
  rng.done = () => assert.equal(queue.length, 0, `${queue.length} recorded draws were not used`);
  return rng;
}

/** assert.equal on hex, so a mismatch shows which bytes differ. */
export function assertBytes(actual, expectedHex, what) {
  assert.equal(hex(actual), expectedHex, `${what} differs from the vector`);
}

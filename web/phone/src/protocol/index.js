/**
 * The unlatch protocol, version 1, in JavaScript: a port of unlatch/protocol
 * (the Python reference) for the phone app. Pure code over WebCrypto and
 * @hpke/core; no I/O, no clocks (times are passed in). Pinned byte for byte
 * by tests/vectors/*.json through test/*.test.js.
 */

export * from "./constants.js";
export * from "./errors.js";
export { b64d, b64e, concat, equalBytes, header, hex, peekType, transcript, unhex } from "./encoding.js";
export * from "./keyschedule.js";
export * from "./links.js";
export * from "./messages.js";
export { KeyPair, SUITE, systemRandom } from "./primitives.js";
export * from "./records.js";
export * from "./replay.js";
export * from "./pairing.js";
export * from "./unlock.js";

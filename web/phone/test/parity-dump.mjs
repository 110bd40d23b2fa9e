/**
 * Prints, as JSON, the outcome ("ok" or the ProtocolError code) of every
 * mutation of every vector message when fed to the JavaScript state machine.
 * tests/test_pwa_protocol_parity.py runs this and compares each entry with
 * what the Python reference says for the same bytes.
 */

import { hex, unhex } from "../src/protocol/index.js";
import { CONSUMERS, mutations, outcome } from "./consumers.js";

const result = {};
for (const [name, { bytes }] of Object.entries(CONSUMERS)) {
  result[name] = { original: bytes, cases: {} };
  result[name].cases.original = await outcome(name, unhex(bytes));
  for (const [label, data] of mutations(unhex(bytes))) {
    result[name].cases[label] = { data: hex(data), outcome: await outcome(name, data) };
  }
}
process.stdout.write(JSON.stringify(result));

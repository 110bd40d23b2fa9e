/**
 * Prints the relay sign-in message and device id the app computes for fixed
 * inputs; tests/test_pwa_protocol_parity.py compares them with unlatch.relay.auth.
 */

import { hex, unhex } from "../src/protocol/index.js";
import { authMessage, deviceIdFor } from "../src/lib/relay.js";

const [origin, challengeHex, publicKeyHex] = process.argv.slice(2);
const publicKey = unhex(publicKeyHex);
process.stdout.write(
  JSON.stringify({
    message: hex(authMessage(origin, unhex(challengeHex), publicKey)),
    device_id: await deviceIdFor(publicKey),
  }),
);

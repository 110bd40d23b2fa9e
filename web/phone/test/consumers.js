/**
 * One function per vector message that feeds (possibly mutated) bytes to the
 * state machine that consumes that message, in the state the vector had, and
 * returns "ok" or the ProtocolError's code. Used by errors.test.js and by
 * tests/test_pwa_protocol_parity.py (which compares every code with Python's).
 */

import {
  DesktopPairing,
  DesktopPairingRecord,
  DesktopUnlock,
  KeyPair,
  PhonePairing,
  PhonePairingRecord,
  PhoneUnlock,
  ProtocolError,
  unhex,
} from "../src/protocol/index.js";
import { loadVector, replayRng } from "./helpers.js";

const P = loadVector("pairing.json");
const U = loadVector("unlock.json");
const I = P.inputs;

async function identities() {
  const ids = replayRng(P.draws.identities);
  return { desktop: await KeyPair.derive(ids(32)), phone: await KeyPair.derive(ids(32)) };
}

async function desktopPairing() {
  const { desktop } = await identities();
  return DesktopPairing.create(desktop, I.relay_url, { now: I.now_offer, ttl: I.pairing_ttl, rng: replayRng(P.draws.offer) });
}

async function phonePairing() {
  const { phone } = await identities();
  return PhonePairing.create(unhex(P.messages.offer), phone, I.phone_name, I.phone_device_id, {
    now: I.now_hello,
    rng: replayRng(P.draws.hello),
  });
}

function unlockVector(name) {
  return U.vectors.find((v) => v.name === name);
}

async function desktopUnlock(v) {
  const drec = DesktopPairingRecord.fromDict(U.pairing_records.desktop);
  return DesktopUnlock.create(drec, {
    now: v.inputs.now_request,
    ttl: v.inputs.ttl,
    mode: v.inputs.mode,
    rng: replayRng(v.draws.request),
  });
}

const prec = () => PhonePairingRecord.fromDict(U.pairing_records.phone);

/** message name -> {bytes: original, consume: async (bytes) => void} */
export const CONSUMERS = {
  offer: {
    bytes: P.messages.offer,
    consume: async (data) => {
      const { phone } = await identities();
      await PhonePairing.create(data, phone, I.phone_name, I.phone_device_id, { now: I.now_hello });
    },
  },
  hello: {
    bytes: P.messages.hello,
    consume: async (data) => (await desktopPairing()).receiveHello(data, { now: I.now_hello + 1 }),
  },
  accept: {
    bytes: P.messages.accept,
    consume: async (data) => (await phonePairing()).receiveAccept(data, { now: I.now_accept }),
  },
  qr: {
    bytes: unlockVector("scan_approve").messages.qr,
    consume: async (data) => {
      const { phone } = await identities();
      await PhoneUnlock.fromQr(data, [prec()], phone, { now: unlockVector("scan_approve").inputs.now_scan });
    },
  },
  push: {
    bytes: unlockVector("number_match_approve").messages.push,
    consume: (data) => PhoneUnlock.openPush(data, [prec()], { now: unlockVector("number_match_approve").inputs.now_push }),
  },
  seen: {
    bytes: unlockVector("scan_approve").messages.seen,
    consume: async (data) => {
      const v = unlockVector("scan_approve");
      await (await desktopUnlock(v)).receiveSeen(data, { now: v.inputs.now_scan + 1 });
    },
  },
  reply: {
    bytes: unlockVector("scan_approve").messages.reply,
    consume: async (data) => {
      const v = unlockVector("scan_approve");
      await (await desktopUnlock(v)).receiveReply(data, { now: v.inputs.now_receive });
    },
  },
};

/** "ok", or the code of the ProtocolError raised; anything else is rethrown (a bug). */
export async function outcome(name, data) {
  try {
    await CONSUMERS[name].consume(data);
    return "ok";
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
}

/** The mutations both languages apply: every truncation, one bit flip per byte, growth. */
export function mutations(original) {
  const out = [];
  for (let n = 0; n < original.length; n++) out.push([`truncate:${n}`, original.slice(0, n)]);
  for (let i = 0; i < original.length; i++) {
    const m = original.slice();
    m[i] ^= 0x01;
    out.push([`flip:${i}`, m]);
  }
  const plusOne = new Uint8Array(original.length + 1);
  plusOne.set(original);
  out.push(["append:1", plusOne]);
  const huge = new Uint8Array(2049);
  huge.set(original);
  out.push(["oversize:2049", huge]);
  return out;
}

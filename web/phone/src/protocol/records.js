/**
 * What each side keeps after pairing, and how it is serialised (mirror of unlatch/protocol/records.py).
 *
 * `toDict()` gives the same JSON-friendly dict of base64url strings as the
 * Python records, so a record made here and one made by the Python phone
 * client are interchangeable. The phone record holds the unlock share K_P:
 * the app stores it only encrypted (see src/store.js).
 */

import { UnlockPolicy } from "./constants.js";
import { b64d, b64e } from "./encoding.js";
import { MalformedMessage } from "./errors.js";
import { PAIRING_KEY_FIELDS } from "./keyschedule.js";

function keysToDict(keys) {
  return Object.fromEntries(PAIRING_KEY_FIELDS.map((name) => [name, b64e(keys[name])]));
}

function keysFromDict(data) {
  return Object.freeze(Object.fromEntries(PAIRING_KEY_FIELDS.map((name) => [name, bytesOf(data, name)])));
}

function bytesOf(data, name) {
  const value = data?.[name];
  if (typeof value !== "string") throw new MalformedMessage(`pairing record lacks ${name}`);
  return b64d(value, name);
}

function textOf(data, name) {
  const value = data?.[name];
  if (typeof value !== "string") throw new MalformedMessage(`pairing record lacks ${name}`);
  return value;
}

/** A yes/no field that records made before it existed lack: absent means no. */
function flagOf(data, name) {
  const value = data?.[name] ?? false;
  if (typeof value !== "boolean") throw new MalformedMessage(`pairing record field ${name} must be true or false`);
  return value;
}

function intOf(data, name) {
  const value = data?.[name];
  if (!Number.isSafeInteger(value)) throw new MalformedMessage(`pairing record lacks ${name}`);
  return value;
}

/** The desktop's view of a paired phone (used here to check vectors and in tests). */
export class DesktopPairingRecord {
  constructor({ keys, phonePk, phoneName, phoneDeviceId, createdAt }) {
    Object.assign(this, { keys, phonePk, phoneName, phoneDeviceId, createdAt });
    Object.freeze(this);
  }

  get pairingId() {
    return this.keys.pairing_id;
  }

  toDict() {
    return {
      ...keysToDict(this.keys),
      phone_pk: b64e(this.phonePk),
      phone_name: this.phoneName,
      phone_device_id: this.phoneDeviceId,
      created_at: this.createdAt,
    };
  }

  static fromDict(data) {
    return new DesktopPairingRecord({
      keys: keysFromDict(data),
      phonePk: bytesOf(data, "phone_pk"),
      phoneName: textOf(data, "phone_name"),
      phoneDeviceId: textOf(data, "phone_device_id"),
      createdAt: intOf(data, "created_at"),
    });
  }
}

/**
 * The phone's view of a paired desktop, including its unlock share K_P.
 * `allowNumberMatching` is the pairing's unlock policy, the phone user's
 * choice (protocol.md 6.8); a record stored before it existed reads as off.
 */
export class PhonePairingRecord {
  constructor({ keys, desktopPk, desktopName, desktopDeviceId, relayUrl, phoneShare, createdAt, allowNumberMatching = false }) {
    Object.assign(this, { keys, desktopPk, desktopName, desktopDeviceId, relayUrl, phoneShare, createdAt, allowNumberMatching });
    Object.freeze(this);
  }

  get pairingId() {
    return this.keys.pairing_id;
  }

  /** The policy as the replies carry it. */
  get policy() {
    return this.allowNumberMatching ? UnlockPolicy.NUMBER_MATCHING : UnlockPolicy.SCAN_ONLY;
  }

  /** The same record with another policy (records are frozen). */
  withNumberMatching(allowed) {
    return new PhonePairingRecord({ ...this, allowNumberMatching: Boolean(allowed) });
  }

  toDict() {
    return {
      ...keysToDict(this.keys),
      desktop_pk: b64e(this.desktopPk),
      desktop_name: this.desktopName,
      desktop_device_id: this.desktopDeviceId,
      relay_url: this.relayUrl,
      phone_share: b64e(this.phoneShare),
      created_at: this.createdAt,
      allow_number_matching: this.allowNumberMatching,
    };
  }

  static fromDict(data) {
    return new PhonePairingRecord({
      keys: keysFromDict(data),
      desktopPk: bytesOf(data, "desktop_pk"),
      desktopName: textOf(data, "desktop_name"),
      desktopDeviceId: textOf(data, "desktop_device_id"),
      relayUrl: textOf(data, "relay_url"),
      phoneShare: bytesOf(data, "phone_share"),
      createdAt: intOf(data, "created_at"),
      allowNumberMatching: flagOf(data, "allow_number_matching"),
    });
  }
}

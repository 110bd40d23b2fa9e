/**
 * Pairing a phone with a desktop: both roles as sans-IO state machines
 * (mirror of unlatch/protocol/pairing.py).
 *
 *     desktop                                  phone
 *     PairingOffer  ==== QR code (screen) ===>  scan
 *                   <==== PairingHello ====     HPKE mode_psk to desktop_pk,
 *                                                psk from the QR's secret
 *     show code                                 show code   (same 6 digits)
 *     PairingAccept ====================>       K_P, desktop name (AES-GCM,
 *                                                key from the HPKE exporter)
 *
 * WebCrypto is asynchronous, so constructors are `static async create(...)`.
 * Times are passed in; randomness comes from an injected `rng(n) -> Uint8Array`.
 */

import { DEFAULT_PAIRING_TTL, ID_LEN, KEY_LEN, NONCE_LEN, PAIRING_SECRET_LEN, Label } from "./constants.js";
import { header } from "./encoding.js";
import { InvalidState, ProtocolError, RequestExpired } from "./errors.js";
import {
  acceptAad,
  acceptKey,
  helloInfo,
  pairingKeysFromRoot,
  pairingPsk,
  pairingTranscriptHash,
  rootExportContext,
  verificationCode,
} from "./keyschedule.js";
import { parseLink } from "./links.js";
import {
  AcceptPlaintext,
  HelloPlaintext,
  PairingAccept,
  PairingHello,
  PairingOffer,
  checkDeviceId,
  checkName,
} from "./messages.js";
import { aeadOpen, aeadSeal, checkPublicKey, hpkeOpen, hpkeSeal, systemRandom } from "./primitives.js";
import { DesktopPairingRecord, PhonePairingRecord } from "./records.js";

const ZERO_NONCE = new Uint8Array(NONCE_LEN);

export const PairingState = Object.freeze({
  WAITING_HELLO: "waiting_hello",
  AWAITING_CONFIRM: "awaiting_confirm",
  WAITING_ACCEPT: "waiting_accept",
  DONE: "done",
  FAILED: "failed",
});

/** The desktop's side of one pairing attempt (the phone app uses it only in tests). */
export class DesktopPairing {
  static async create(identity, relayUrl, { now, ttl = DEFAULT_PAIRING_TTL, rng = systemRandom }) {
    const self = new DesktopPairing();
    self._identity = identity;
    self.offer = {
      channelId: rng(ID_LEN),
      pairingSecret: rng(PAIRING_SECRET_LEN),
      desktopPk: identity.public,
      relayUrl: relayUrl.replace(/\/+$/, ""),
      expiresAt: now + ttl,
    };
    self._offerBytes = PairingOffer.encode(self.offer);
    self.state = PairingState.WAITING_HELLO;
    self._root = null;
    self._th = null;
    self._hello = null;
    return self;
  }

  /** The offer to show as a QR code while the attempt is open (it holds S: forgotten at the end). */
  get offerBytes() {
    if (this._offerBytes === null) throw new InvalidState(`pairing is ${this.state}: its code was forgotten`);
    return this._offerBytes;
  }

  /** Enter a final state and drop every secret of the attempt; `offer` keeps its public fields. */
  _end(state) {
    this.offer = { ...this.offer, pairingSecret: new Uint8Array(0) };
    this._offerBytes = null;
    this._root = this._th = this._hello = null;
    this.state = state;
  }

  get channelId() {
    return this.offer.channelId;
  }

  get expiresAt() {
    return this.offer.expiresAt;
  }

  /** Check a phone's hello; returns {phoneName, phoneDeviceId, verificationCode}. */
  async receiveHello(data, { now }) {
    if (this.state !== PairingState.WAITING_HELLO) {
      throw new InvalidState(`pairing is ${this.state}, not waiting for a phone`);
    }
    if (now > this.offer.expiresAt) {
      this._end(PairingState.FAILED);
      throw new RequestExpired("the pairing code expired: start pairing again");
    }
    const hello = PairingHello.decode(data);
    const o = this.offer;
    const th = await pairingTranscriptHash(o.channelId, o.desktopPk, o.relayUrl, o.expiresAt, data);
    const { plaintext, exported: root } = await hpkeOpen({
      recipient: this._identity,
      enc: hello.enc,
      info: helloInfo(o.channelId, o.desktopPk, o.relayUrl, o.expiresAt),
      aad: header(PairingHello.TYPE),
      ciphertext: hello.ciphertext,
      psk: await pairingPsk(o.pairingSecret, o.channelId),
      pskId: Label.PAIR_PSK_ID,
      exportContext: rootExportContext(th),
      what: "pairing hello",
    });
    const contents = HelloPlaintext.decode(plaintext);
    // Every later reply is authenticated with this key: refuse an unusable one now.
    await checkPublicKey(contents.phonePk, "the phone's key");
    this._root = root;
    this._th = th;
    this._hello = contents;
    this.state = PairingState.AWAITING_CONFIRM;
    return {
      phoneName: contents.phoneName,
      phoneDeviceId: contents.phoneDeviceId,
      verificationCode: await verificationCode(root),
    };
  }

  /** The user confirmed matching codes: returns {accept, record, phoneShare}. */
  async confirm(desktopName, desktopDeviceId, { now, rng = systemRandom }) {
    if (this.state !== PairingState.AWAITING_CONFIRM) {
      throw new InvalidState(`pairing is ${this.state}, nothing to confirm`);
    }
    // The phone refuses an accept whose names break the rules (and that ends its
    // attempt): refuse them here instead, while the user can still fix them.
    checkName(desktopName, "desktop name");
    checkDeviceId(desktopDeviceId, "desktop device id");
    if (now > this.offer.expiresAt) {
      this._end(PairingState.FAILED);
      throw new RequestExpired("the pairing code expired: start pairing again");
    }
    const phoneShare = rng(KEY_LEN);
    const contents = AcceptPlaintext.encode({ phoneShare, desktopName, desktopDeviceId });
    const ct = await aeadSeal(await acceptKey(this._root), ZERO_NONCE, contents, acceptAad(this._th));
    const record = new DesktopPairingRecord({
      keys: await pairingKeysFromRoot(this._root),
      phonePk: this._hello.phonePk,
      phoneName: this._hello.phoneName,
      phoneDeviceId: this._hello.phoneDeviceId,
      createdAt: now,
    });
    this._end(PairingState.DONE);
    return { accept: PairingAccept.encode({ ciphertext: ct }), record, phoneShare };
  }

  /** The codes did not match (or the user cancelled): forget everything. */
  reject() {
    this._end(PairingState.FAILED);
  }
}

/** The phone's side of one pairing attempt, started from a scanned offer. */
export class PhonePairing {
  /**
   * `offer`: the QR text/link or the offer bytes. `identity`: the phone's KeyPair.
   * Throws a ProtocolError for a bad or expired offer.
   */
  static async create(offer, identity, phoneName, phoneDeviceId, { now, rng = systemRandom }) {
    const self = new PhonePairing();
    const raw = typeof offer === "string" ? parseLink(offer) : offer;
    self.offer = PairingOffer.decode(raw);
    if (now > self.offer.expiresAt) {
      throw new RequestExpired("this pairing code has expired: ask the desktop for a new one");
    }
    // The desktop refuses a hello whose names break the rules: check them here first.
    checkName(phoneName, "phone name");
    checkDeviceId(phoneDeviceId, "phone device id");
    const o = self.offer;
    const contents = HelloPlaintext.encode({ phonePk: identity.public, phoneName, phoneDeviceId });
    // The root is exported from the HPKE context and bound to the hello's exact bytes.
    let helloBytes = null;
    const { exported: root } = await hpkeSeal({
      recipientPk: o.desktopPk,
      info: helloInfo(o.channelId, o.desktopPk, o.relayUrl, o.expiresAt),
      aad: header(PairingHello.TYPE),
      plaintext: contents,
      psk: await pairingPsk(o.pairingSecret, o.channelId),
      pskId: Label.PAIR_PSK_ID,
      ephemeralSeed: rng(KEY_LEN),
      exportContext: async (enc, ciphertext) => {
        helloBytes = PairingHello.encode({ enc, ciphertext });
        return rootExportContext(
          await pairingTranscriptHash(o.channelId, o.desktopPk, o.relayUrl, o.expiresAt, helloBytes),
        );
      },
      recipient: "the desktop's key",
    });
    self.helloBytes = helloBytes;
    // S has done its job (the hello's PSK): keep only the offer's public fields.
    self.offer = { ...o, pairingSecret: new Uint8Array(0) };
    self._th = await pairingTranscriptHash(o.channelId, o.desktopPk, o.relayUrl, o.expiresAt, helloBytes);
    self._root = root;
    self.verificationCode = await verificationCode(root);
    self.state = PairingState.WAITING_ACCEPT;
    return self;
  }

  get channelId() {
    return this.offer.channelId;
  }

  get relayUrl() {
    return this.offer.relayUrl;
  }

  /** The desktop's user confirmed: decrypt K_P and make the pairing record. */
  async receiveAccept(data, { now }) {
    if (this.state !== PairingState.WAITING_ACCEPT || this._root === null) {
      throw new InvalidState(`pairing is ${this.state}, not waiting for the desktop`);
    }
    const accept = PairingAccept.decode(data);
    let contents;
    try {
      const plaintext = await aeadOpen(
        await acceptKey(this._root),
        ZERO_NONCE,
        accept.ciphertext,
        acceptAad(this._th),
        "pairing accept",
      );
      contents = AcceptPlaintext.decode(plaintext);
    } catch (err) {
      if (err instanceof ProtocolError) this.fail();
      throw err;
    }
    const record = new PhonePairingRecord({
      keys: await pairingKeysFromRoot(this._root),
      desktopPk: this.offer.desktopPk,
      desktopName: contents.desktopName,
      desktopDeviceId: contents.desktopDeviceId,
      relayUrl: this.offer.relayUrl,
      phoneShare: contents.phoneShare,
      createdAt: now,
    });
    this._end(PairingState.DONE);
    return record;
  }

  /** Abandon the attempt and forget its secrets. */
  fail() {
    this._end(PairingState.FAILED);
  }

  _end(state) {
    this._root = this._th = null;
    this.state = state;
  }
}

/**
 * The relay's HTTP/WebSocket API (docs/relay.md) as the phone app uses it.
 *
 * The relay is the app's own origin (it serves the app under /app/), so every
 * call is same-origin and the CSP can stay at connect-src 'self'. The device
 * authenticates with its non-extractable ECDSA P-256 key: it signs
 * lp("unlatch relay auth v1") | lp(origin) | lp(challenge) | lp(public_key)
 * (uint16 lengths). Session tokens live in memory only; a 401 logs in again.
 */

import { b64d, b64e, concat } from "../protocol/index.js";
import { deviceKey } from "./store.js";
// The one registry of relay error codes (unlatch/relay/errors.json), bundled by esbuild.
import REGISTRY from "../../../../unlatch/relay/errors.json" with { type: "json" };

/** code -> {status, ws_close, exception, message, meaning}: the relay's error codes. */
export const RELAY_ERRORS = Object.freeze(REGISTRY.codes);

/** What to tell a person about relay error `code` (ends in what to do next), or null. */
export function relayErrorMessage(code) {
  return Object.hasOwn(RELAY_ERRORS, code) ? RELAY_ERRORS[code].message : null;
}

const te = new TextEncoder();
const AUTH_LABEL = te.encode("unlatch relay auth v1");
const DEVICE_ID_LABEL = te.encode("unlatch relay device id v1");

/** A relay answer that was not 2xx: `code` is the relay's error code ("expired", ...). */
export class RelayError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "RelayError";
    this.status = status;
    this.code = code;
  }
}

function lp16(bytes) {
  const out = new Uint8Array(2 + bytes.length);
  new DataView(out.buffer).setUint16(0, bytes.length);
  out.set(bytes, 2);
  return out;
}

/** The bytes a device signs to open a session (unlatch.relay.auth.auth_message). */
export function authMessage(origin, challenge, publicKey) {
  return concat(lp16(AUTH_LABEL), lp16(te.encode(origin)), lp16(challenge), lp16(publicKey));
}

/** The relay device id of a public key (unlatch.relay.auth.device_id_for). */
export async function deviceIdFor(publicKey) {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", concat(DEVICE_ID_LABEL, new Uint8Array([0]), publicKey)),
  );
  return b64e(digest.slice(0, 16));
}

/** The relay's base URL for an app served at <base>/app/ (any path prefix kept). */
export function relayBaseFromLocation(loc = globalThis.location) {
  const path = loc.pathname.replace(/\/app\/.*$/, "").replace(/\/app$/, "");
  return (loc.origin + path).replace(/\/+$/, "");
}

/** Where this app's relay is remembered when the app has an origin of its own (kv key). */
export const RELAY_URL_KEY = "relay-url";

/**
 * Whether the app is served by a relay (at <relay>/app/), asked of its own origin:
 * an app on an origin of its own (the operator's --app-url) has no relay there.
 */
export async function servedByARelay(loc = globalThis.location) {
  try {
    const res = await fetch(relayBaseFromLocation(loc) + "/healthz", { cache: "no-store", credentials: "omit" });
    return res.ok && (await res.json())?.ok === true;
  } catch {
    return false;
  }
}

export class Relay {
  constructor(baseUrl) {
    this.use(baseUrl);
    this.deviceId = null;
  }

  /** Talk to the relay at `baseUrl` from now on (a new relay: a new sign-in). */
  use(baseUrl) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.origin = new URL(this.baseUrl).origin;
    this._token = null;
    this._login = null;
  }

  async publicKeyRaw() {
    const pair = await deviceKey();
    return new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  }

  /** The relay device id: b64url(SHA-256(label || 0x00 || public_key)[:16]). */
  async computeDeviceId() {
    this.deviceId = await deviceIdFor(await this.publicKeyRaw());
    return this.deviceId;
  }

  async login() {
    if (!this._login) {
      this._login = (async () => {
        const pair = await deviceKey();
        const pk = await this.publicKeyRaw();
        const { challenge } = await this._fetch("POST", "/v1/auth/challenge", {});
        const challengeBytes = b64d(challenge, "challenge", 64);
        const message = authMessage(this.origin, challengeBytes, pk);
        const signature = new Uint8Array(
          await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, message),
        );
        const session = await this._fetch("POST", "/v1/auth/session", {
          public_key: b64e(pk),
          kind: "phone",
          challenge,
          signature: b64e(signature),
        });
        this._token = session.token;
        this.deviceId = session.device_id;
        return session.token;
      })().finally(() => {
        this._login = null;
      });
    }
    return this._login;
  }

  async _fetch(method, path, body, { token = null, signal } = {}) {
    const headers = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (token) headers.authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(this.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        signal,
      });
    } catch (err) {
      if (err?.name === "AbortError") throw err;
      throw new RelayError(0, "offline", RELAY_ERRORS.offline.message);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw new RelayError(
        response.status,
        data?.error || "http_error",
        data?.message || `the relay answered ${response.status}`,
      );
    }
    return data;
  }

  /** An authenticated call; logs in first, and once more if the session expired. */
  async call(method, path, body, options = {}) {
    const token = this._token || (await this.login());
    try {
      return await this._fetch(method, path, body, { ...options, token });
    } catch (err) {
      if (err instanceof RelayError && err.status === 401) {
        this._token = null;
        return this._fetch(method, path, body, { ...options, token: await this.login() });
      }
      throw err;
    }
  }

  // pairing channels -----------------------------------------------------
  postHello(channelId, hello) {
    return this.call("POST", `/v1/pairing/${b64e(channelId)}/hello`, { data: b64e(hello) });
  }

  /** Wait (long-poll) for the desktop's accept; returns {data: Uint8Array, sender}. */
  async waitAccept(channelId, { signal, deadline }) {
    let after = 0;
    for (;;) {
      if (signal?.aborted) throw new DOMException("cancelled", "AbortError");
      const left = Math.max(1, Math.min(25, Math.ceil(deadline - Date.now() / 1000)));
      const res = await this.call(
        "GET",
        `/v1/pairing/${b64e(channelId)}/wait?after=${after}&timeout=${left}`,
        undefined,
        { signal },
      );
      for (const msg of res.messages) {
        after = Math.max(after, msg.seq);
        if (msg.type === "accept") return { data: b64d(msg.data, "accept"), sender: msg.sender };
      }
      if (res.state === "closed" && res.outcome === "rejected") {
        throw new RelayError(RELAY_ERRORS.closed.status, "rejected", relayErrorMessage("rejected"));
      }
      if (res.state !== "open") {
        throw new RelayError(RELAY_ERRORS[res.state]?.status ?? 410, res.state, "the pairing code expired before the desktop confirmed");
      }
    }
  }

  closePairingChannel(channelId) {
    return this.call("DELETE", `/v1/pairing/${b64e(channelId)}`).catch(() => null);
  }

  // pairings --------------------------------------------------------------
  registerPairing(routingId, peerDeviceId) {
    return this.call("POST", "/v1/pairings", { routing_id: b64e(routingId), peer_device_id: peerDeviceId });
  }

  async listPairings() {
    return (await this.call("GET", "/v1/pairings")).pairings;
  }

  deletePairing(routingId) {
    return this.call("DELETE", `/v1/pairings/${b64e(routingId)}`);
  }

  block(routingId) {
    return this.call("POST", `/v1/pairings/${b64e(routingId)}/block`, {});
  }

  unblock(routingId) {
    return this.call("POST", `/v1/pairings/${b64e(routingId)}/unblock`, {});
  }

  // unlock channels -------------------------------------------------------
  async pendingUnlocks() {
    return (await this.call("GET", "/v1/unlock/pending")).requests;
  }

  getUnlock(requestId) {
    return this.call("GET", `/v1/unlock/${b64e(requestId)}`);
  }

  postSeen(requestId, seen) {
    return this.call("POST", `/v1/unlock/${b64e(requestId)}/seen`, { data: b64e(seen) });
  }

  /** Post the reply; with `wait` (s) the answer's `delivery` says whether a waiting desktop took it. */
  postReply(requestId, reply, { wait = 0 } = {}) {
    const body = wait ? { data: b64e(reply), wait } : { data: b64e(reply) };
    return this.call("POST", `/v1/unlock/${b64e(requestId)}/reply`, body);
  }

  /** Where a request stands: {state: open|renewed|answered|cancelled|expired|closed, acknowledged?}. */
  unlockState(requestId) {
    return this.call("GET", `/v1/unlock/${b64e(requestId)}/state`);
  }

  // push ------------------------------------------------------------------
  async vapidPublicKey() {
    return (await this._fetch("GET", "/v1/push/vapid-public-key")).public_key;
  }

  setPushTarget(subscription) {
    const json = subscription.toJSON();
    return this.call("PUT", "/v1/devices/me/push", {
      type: "webpush",
      endpoint: json.endpoint,
      keys: { p256dh: json.keys.p256dh, auth: json.keys.auth },
    });
  }

  me() {
    return this.call("GET", "/v1/devices/me");
  }

  /**
   * Listen for unlock notifications over /v1/listen while the app is open.
   * Calls onNotification(n) for each, onFrame(f) for the relay's word on a
   * request ("request" frames) or a pairing ("pairing" frames); reconnects
   * with backoff. Returns stop().
   */
  listen(onNotification, onState = () => {}, onFrame = () => {}) {
    let socket = null;
    let stopped = false;
    let delay = 1000;
    let timer = null;
    const connect = async () => {
      const wsUrl = this.baseUrl.replace(/^http/, "ws") + "/v1/listen"; // use() may have changed it
      if (stopped) return;
      let token;
      try {
        token = this._token || (await this.login());
      } catch {
        onState("offline");
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
        return;
      }
      socket = new WebSocket(wsUrl);
      socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token }));
      socket.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch {
          return;
        }
        if (msg.type === "ready") {
          delay = 1000;
          onState("live");
        } else if (msg.type === "unlock") {
          onNotification(msg);
        } else if (msg.type === "request" || msg.type === "pairing") {
          onFrame(msg);
        } else if (msg.type === "error" && msg.error === "unauthorized") {
          this._token = null;
        }
      };
      socket.onclose = (event) => {
        socket = null;
        if (stopped) return;
        if (event.code === RELAY_ERRORS.unauthorized.ws_close) this._token = null;
        onState("reconnecting");
        timer = setTimeout(connect, event.code === 1012 ? 200 : delay);
        delay = Math.min(delay * 2, 30000);
      };
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close(1000);
    };
  }
}

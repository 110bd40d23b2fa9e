/**
 * The popup's side of the native messaging protocol (docs/browser.md): requests
 * `{v, id, op, args}` over a port to the unlatch host, replies matched by id.
 * A reply with `ok: false` rejects with a HostError carrying the host's code and
 * message; a closed port rejects every pending call with code "disconnected".
 */
import protocol from "../protocol.json" with { type: "json" };

export const { host_name: HOST_NAME, version: PROTOCOL_VERSION, watch_timeout: WATCH_TIMEOUT } = protocol;

export class HostError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "HostError";
    this.code = code;
  }
}

export class HostClient {
  /** @param port a chrome.runtime.Port (or anything with postMessage and the two events) */
  constructor(port) {
    this.port = port;
    this.nextId = 1;
    this.pending = new Map();
    this.closed = null;
    port.onMessage.addListener((message) => this.#receive(message));
    port.onDisconnect.addListener(() => this.#disconnected());
  }

  call(op, args = {}, timeoutMs = 30000) {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new HostError("timeout", `unlatch did not answer "${op}" in ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.port.postMessage({ v: PROTOCOL_VERSION, id, op, args });
    });
  }

  #receive(message) {
    if (!message || typeof message !== "object") return;
    const entry = this.pending.get(message.id);
    if (!entry) {
      // A refusal not tied to a request (e.g. forbidden_origin): the host ends.
      if (message.ok === false && message.error) this.closed = new HostError(message.error.code, message.error.message);
      return;
    }
    this.pending.delete(message.id);
    clearTimeout(entry.timer);
    if (message.ok) entry.resolve(message.result);
    else entry.reject(new HostError(message.error?.code || "error", message.error?.message || "unlatch refused the request"));
  }

  #disconnected() {
    const reason = globalThis.chrome?.runtime?.lastError?.message;
    this.closed = this.closed || new HostError("disconnected", explainDisconnect(reason));
    for (const entry of this.pending.values()) { clearTimeout(entry.timer); entry.reject(this.closed); }
    this.pending.clear();
  }
}

/** What to tell the user when the host cannot be reached. */
export function explainDisconnect(reason) {
  if (reason && /not found/i.test(reason)) {
    return "The unlatch app is not connected to this browser: run `unlatch browser install`, then reopen this popup.";
  }
  if (reason && /forbidden/i.test(reason)) {
    return "This browser does not allow the extension to talk to unlatch: run `unlatch browser install` again.";
  }
  return "The connection to unlatch closed" + (reason ? ` (${reason})` : "") + ": reopen this popup.";
}

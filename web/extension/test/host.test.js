import { test } from "node:test";
import assert from "node:assert/strict";
import { HostClient, HostError, PROTOCOL_VERSION, explainDisconnect } from "../lib/host.js";

/** A port that records what is posted and lets the test answer, as the browser's would. */
function makePort() {
  const listeners = { message: [], disconnect: [] };
  return {
    sent: [],
    postMessage(m) { this.sent.push(m); },
    onMessage: { addListener: (f) => listeners.message.push(f) },
    onDisconnect: { addListener: (f) => listeners.disconnect.push(f) },
    deliver(m) { for (const f of listeners.message) f(m); },
    disconnect() { for (const f of listeners.disconnect) f(); },
  };
}

test("requests carry the version, a fresh id, the op and args; replies match by id", async () => {
  const port = makePort();
  const client = new HostClient(port);
  const a = client.call("state");
  const b = client.call("logins", { url: "https://example.com/" });
  assert.deepEqual(port.sent[0], { v: PROTOCOL_VERSION, id: 1, op: "state", args: {} });
  assert.equal(port.sent[1].id, 2);
  port.deliver({ v: 1, id: 2, ok: true, result: { logins: [] } });  // out of order
  port.deliver({ v: 1, id: 1, ok: true, result: { version: 7 } });
  assert.deepEqual(await b, { logins: [] });
  assert.deepEqual(await a, { version: 7 });
});

test("an error reply rejects with the host's code and message", async () => {
  const port = makePort();
  const client = new HostClient(port);
  const call = client.call("unlock_password", { password: "x" });
  port.deliver({ v: 1, id: 1, ok: false, error: { code: "wrong_password", message: "wrong password" } });
  await assert.rejects(call, (err) => err instanceof HostError && err.code === "wrong_password");
});

test("a closed port rejects pending and later calls, saying what to run", async () => {
  const port = makePort();
  const client = new HostClient(port);
  const call = client.call("state");
  globalThis.chrome = { runtime: { lastError: { message: "Specified native messaging host not found." } } };
  port.disconnect();
  delete globalThis.chrome;
  await assert.rejects(call, (err) => err.code === "disconnected" && /unlatch browser install/.test(err.message));
  await assert.rejects(client.call("state"), (err) => err.code === "disconnected");
});

test("a refusal without an id (forbidden origin) is what the client reports next", async () => {
  const port = makePort();
  const client = new HostClient(port);
  port.deliver({ v: 1, id: null, ok: false, error: { code: "forbidden_origin", message: "not ours" } });
  await assert.rejects(client.call("state"), (err) => err.code === "forbidden_origin");
});

test("a call the host never answers times out with a message", async () => {
  const client = new HostClient(makePort());
  await assert.rejects(client.call("state", {}, 20), (err) => err.code === "timeout" && /did not answer/.test(err.message));
});

test("disconnect reasons become instructions", () => {
  assert.match(explainDisconnect("Specified native messaging host not found."), /unlatch browser install/);
  assert.match(explainDisconnect("Access to the specified native messaging host is forbidden."), /install` again/);
  assert.match(explainDisconnect(undefined), /reopen this popup/);
});

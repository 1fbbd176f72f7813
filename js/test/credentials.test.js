// Credentials that refresh, against the real Rust test server started with
// `--token-file`: it accepts only the token the file holds, read at every
// upgrade, so rewriting the file rotates it. The client's url is an async
// function, evaluated before every attempt. A socket that hides the refusal's
// status, as a browser's does, is told it by the server's probe.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";

import { ConnectError } from "../sente-lite.js";
import { eventually } from "./support/server.js";
import { testbed } from "./support/testbed.js";

const { client, server } = testbed({ reconnect: { initialDelayMs: 20, maxDelayMs: 100 }, requestTimeoutMs: 3000 });

/** A WebSocket that, as a browser's, never says why an upgrade was refused. */
class OpaqueWebSocket extends WebSocket {
  set onerror(handler) {
    super.onerror = handler && (() => handler({ type: "error" }));
  }
  get onerror() {
    return super.onerror;
  }
}

/** A token file, the server reading it, and a way to rotate the token. */
async function tokenServer(t, token) {
  const dir = mkdtempSync(join(tmpdir(), "sente-lite-token-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "token");
  writeFileSync(file, token);
  const s = await server(["--token-file", file]);
  return { s, rotate: (next) => writeFileSync(file, next) };
}

/** Kills the server and starts it again on its port: every client reconnects. */
async function restart(s) {
  await s.kill();
  await s.start();
}

describe("credentials", () => {
  test("an async url function is asked again on every reconnect", async (t) => {
    const { s, rotate } = await tokenServer(t, "a");
    let token = "a";
    let asked = 0;
    const c = client(async () => {
      asked += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return `${s.url}?name=ada&token=${token}`;
    });
    await c.connect();
    assert.equal(c.userId, "ada");
    assert.equal(asked, 1);

    rotate("b");
    token = "b";
    await restart(s);
    await eventually(() => c.state === "open", 5000, "back with token b");
    assert.equal((await c.request("test/echo", { text: "hi" })).text, "hi");
    assert.ok(asked >= 2, `asked ${asked} times`);
  });

  test("a refused token is the application's to retry, with a fresh one", async (t) => {
    const { s, rotate } = await tokenServer(t, "a");
    let token = "a";
    const refusals = [];
    const c = client(async () => `${s.url}?token=${token}`, {
      onRejected: (rejection) => {
        refusals.push(rejection);
        return "retry";
      },
    });
    await c.connect();

    rotate("c");
    await restart(s);
    await eventually(() => refusals.length >= 2, 5000, "refused attempts decided on");
    assert.notEqual(c.state, "failed");
    assert.equal(refusals[0].status, 401);
    assert.ok(refusals[1].attempt > refusals[0].attempt);

    token = "c";
    await eventually(() => c.state === "open", 5000, "back with token c");
  });

  test("without the status, the probe tells a refusal from a server that is down", async (t) => {
    const { s, rotate } = await tokenServer(t, "a");
    const states = [];
    const c = client(`${s.url}?token=old`, {
      WebSocket: OpaqueWebSocket,
      onState: (state) => states.push(state),
    });
    const err = await c.connect().then(() => null, (e) => e);
    assert.ok(err instanceof ConnectError, String(err));
    assert.equal(err.code, "rejected");
    assert.equal(err.status, 401);
    assert.match(err.message, /token expired/);
    assert.deepEqual(states, ["connecting", "failed"]);

    // A server that is down is not a refusal: the client keeps trying.
    rotate("old");
    const port = s.port;
    await s.kill();
    const d = client(`ws://127.0.0.1:${port}/ws?token=old`, { WebSocket: OpaqueWebSocket });
    const connecting = d.connect();
    await eventually(() => d.state === "reconnecting", 5000, "retrying while the server is down");
    assert.equal(d.lastError.code, "closed-before-handshake");
    await s.start();
    await connecting;
    assert.equal(d.state, "open");
  });
});

// Cancellation over the wire (extension `cancel`) with the JavaScript client,
// against the real Rust test server (examples/js_test_server.rs): an aborted
// request is cancelled on the server, whose handler is dropped; the server's
// cancels and deadlines abort the `signal` of this client's handlers.

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";

import { CancelledError, EXTENSION_CANCEL, TimeoutError } from "../sente-lite.js";
import { eventually } from "./support/server.js";
import { testbed } from "./support/testbed.js";

const { client, server } = testbed({ reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, requestTimeoutMs: 5000 });

/** The server's state of the `test/hold` request tagged `tag`. */
const held = (c, tag) => c.request("test/held", { tag });

async function until(c, tag, state) {
  let last;
  await eventually(async () => (last = await held(c, tag)) === state, 5000, `${tag} ${state} (last: ${last})`);
}

describe("cancellation", () => {
  let s;
  before(async () => {
    s = await server();
  });

  test("the server offers the extension", async () => {
    const c = client(s.url);
    await c.connect();
    assert.ok(c.handshake.extensions.includes(EXTENSION_CANCEL));
  });

  test("aborting a request rejects it with the signal's reason and drops the server's handler", async () => {
    const c = client(s.url);
    await c.connect();
    const controller = new AbortController();
    const holding = c.request("test/hold", { tag: "abort-1" }, { signal: controller.signal });
    await until(c, "abort-1", "running");
    controller.abort();
    await assert.rejects(holding, (err) => err.name === "AbortError");
    await until(c, "abort-1", "dropped");
    // A reason of the application's own is what the request rejects with.
    const again = new AbortController();
    const second = c.request("test/hold", { tag: "abort-2" }, { signal: again.signal });
    await until(c, "abort-2", "running");
    again.abort(new Error("the user left the page"));
    await assert.rejects(second, /the user left the page/);
    await until(c, "abort-2", "dropped");
  });

  test("a request aborted before it went out is never sent", async () => {
    const c = client(s.url);
    await c.connect();
    const aborted = AbortSignal.abort();
    await assert.rejects(c.request("test/hold", { tag: "never-1" }, { signal: aborted }), (err) => err.name === "AbortError");
    // Aborted while waiting for a connection: it never reaches any.
    const away = client(s.url);
    const controller = new AbortController();
    const waiting = away.request("test/hold", { tag: "never-2" }, { signal: controller.signal });
    controller.abort();
    await assert.rejects(waiting, (err) => err.name === "AbortError");
    await away.connect();
    // Sent after both: when it is answered, both would have arrived before it.
    assert.equal(await c.request("test/echo", { text: "x" }).then((e) => e.text), "x");
    assert.equal(await held(c, "never-1"), "unknown");
    assert.equal(await held(away, "never-2"), "unknown");
  });

  test("the server's cancel aborts the handler's signal, and no reply is sent", async () => {
    const c = client(s.url);
    let reason = null;
    let replied = false;
    const off = c.on("test/question", (q, info) => new Promise((resolve) => {
      info.signal.addEventListener("abort", () => {
        reason = info.signal.reason;
        // Answering now is too late: the client sends nothing.
        resolve("too late");
        replied = true;
      });
    }));
    await c.connect();
    const answer = await c.request("test/ask-within", { text: "q", deadline_ms: 10_000, give_up_ms: 200 });
    assert.equal(answer, "gave up");
    await eventually(() => reason !== null, 5000, "the handler's signal aborted");
    assert.ok(reason instanceof CancelledError, `${reason}`);
    assert.equal(c.requestsCancelled, 1);
    await eventually(() => replied, 2000, "the handler resolved");
    // The connection goes on, and the next question is answered as usual.
    off();
    c.on("test/question", async (q) => `answer to ${q.text}`);
    assert.equal(await c.request("test/ask", { text: "life" }), "answer to life");
  });

  test("a server request past its deadline aborts the handler and is answered deadline-exceeded", async () => {
    const c = client(s.url);
    let reason = null;
    c.on("test/question", (q, info) => new Promise(() => {
      info.signal.addEventListener("abort", () => {
        reason = info.signal.reason;
      });
    }));
    await c.connect();
    const answer = await c.request("test/ask-within", { text: "q", deadline_ms: 200, give_up_ms: 5000 });
    assert.match(answer, /^failed: /);
    // The server stops waiting at the same deadline, and its answer may
    // arrive before this client's own timer fires.
    await eventually(() => reason !== null, 5000, "the handler's signal aborted at the deadline");
    assert.ok(reason instanceof TimeoutError, `${reason}`);
    assert.equal(c.requestsCancelled, 0, "a deadline is not a cancel");
  });

  test("the client names the extension first, so that the server sends it cancels", async () => {
    // A bare WebSocket that does not name it gets no `sl/cancel`.
    for (const opts of [false, true]) {
      const ws = new WebSocket(s.url, "sente-lite.json.v1");
      const frames = [];
      const next = async () => {
        await eventually(() => frames.length > 0, 5000, "a frame");
        return frames.shift();
      };
      ws.on("message", (data) => {
        const frame = JSON.parse(data.toString());
        if (frame[0] === "sl/ping") ws.send(JSON.stringify(["sl/pong", frame[1]]));
        else frames.push(frame);
      });
      await new Promise((resolve) => ws.once("open", resolve));
      assert.equal((await next())[0], "sl/handshake");
      if (opts) ws.send(JSON.stringify(["sl/extensions", ["cancel"]]));
      ws.send(JSON.stringify(["test/ask-within", { text: "q", deadline_ms: 10_000, give_up_ms: 100 }, 1, 5000]));
      const question = await next();
      assert.equal(question[0], "test/question");
      if (opts) assert.deepEqual(await next(), ["sl/cancel", question[2]]);
      assert.deepEqual(await next(), ["sl/ok", 1, "gave up"]);
      ws.close();
    }
  });
});

// The JavaScript client in Node.js, against the real Rust test server
// (examples/js_test_server.rs) run as a process.

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";

import {
  ClosedError,
  ConnectError,
  QueueFullError,
  RemoteError,
  TimeoutError,
  backoffCeiling,
  backoffDelay,
  channelName,
} from "../sente-lite.js";
import { eventually, freePort } from "./support/server.js";
import { testbed } from "./support/testbed.js";

const FAST = { initialDelayMs: 20, maxDelayMs: 200 };
const { client, server } = testbed({ reconnect: FAST, requestTimeoutMs: 3000 });

describe("backoff", () => {
  test("the ceiling grows exponentially, then is capped", () => {
    const policy = { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000 };
    assert.deepEqual([0, 1, 2, 3, 4, 50].map((n) => backoffCeiling(policy, n)), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(backoffCeiling({ ...policy, multiplier: 0.5 }, 5), 100, "a multiplier below 1 counts as 1");
    assert.equal(backoffCeiling({ ...policy, multiplier: 1e300 }, 5), 1000, "an overflow is capped");
  });

  test("full jitter: delays spread over [0, ceiling)", () => {
    const policy = { initialDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay(policy, 3, () => 0), 0);
    const delays = Array.from({ length: 2000 }, () => backoffDelay(policy, 3));
    assert.ok(delays.every((d) => d >= 0 && d < 800));
    assert.ok(Math.min(...delays) < 40 && Math.max(...delays) > 760);
    const mean = delays.reduce((a, b) => a + b) / delays.length;
    assert.ok(mean > 320 && mean < 480, `mean ${mean}`);
  });
});

describe("against a server", () => {
  let s;
  before(async () => {
    s = await server();
  });

  test("connects through connecting to open and exposes the handshake", async () => {
    const states = [];
    const c = client(`${s.url}?name=ada`, { onState: (state) => states.push(state) });
    assert.equal(c.state, "closed");
    await c.connect();
    assert.deepEqual(states, ["connecting", "open"]);
    assert.equal(c.userId, "ada");
    assert.equal(typeof c.connId, "number");
    assert.equal(c.handshake.version, 1);
    assert.match(c.handshake.schema_hash, /^[0-9a-f]{16}$/);
    const echoed = await c.request("test/echo", { text: "hi" });
    assert.deepEqual(echoed, { text: "hi", conn_id: c.connId, user_id: "ada" });
    await c.disconnect();
    assert.deepEqual(states, ["connecting", "open", "closing", "closed"]);
  });

  test("a message over the size limit is told too-large and closed with 1009, not reset", async () => {
    // Node's `ws` directly: what the JavaScript client's transport sees.
    const ws = new WebSocket(s.url, "sente-lite.json.v1");
    const frames = [];
    const closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
    ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
    ws.on("error", () => {});
    await new Promise((resolve) => ws.once("message", resolve));
    assert.equal(frames[0][0], "sl/handshake");
    const limit = frames[0][1].max_message_size;
    ws.send(JSON.stringify(["test/echo", { text: "x".repeat(8 * limit) }, 1]));
    assert.equal(await closed, 1009);
    const told = frames.find((f) => f[0] === "sl/error");
    assert.equal(told?.[1].code, "too-large", JSON.stringify(frames.slice(1)));
  });

  test("a request settles with the server's typed error", async () => {
    const c = client(s.url);
    await c.connect();
    const err = await c.request("test/fail", { reason: "no" }).then(() => null, (e) => e);
    assert.ok(err instanceof RemoteError);
    assert.equal(err.code, "test/refused");
    assert.equal(err.message, "refused: no");
    assert.deepEqual(err.data, { reason: "no" });
  });

  test("a request times out, and a late reply is ignored", async () => {
    const c = client(s.url);
    await c.connect();
    const started = Date.now();
    const err = await c.request("test/slow", { ms: 400 }, { timeoutMs: 150 }).then(() => null, (e) => e);
    assert.ok(err instanceof TimeoutError, String(err));
    assert.equal(err.code, "timeout");
    assert.ok(Date.now() - started >= 140);
    await sleep(400);
    assert.equal(await c.request("test/slow", { ms: 1 }), 1, "the connection goes on");
  });

  test("bad ids are refused before anything is sent", async () => {
    const c = client(s.url);
    assert.throws(() => c.send("Bad Id", {}), TypeError);
    assert.throws(() => c.send("sl/ping", {}), TypeError);
    await assert.rejects(c.request("nope", {}), TypeError);
    assert.throws(() => c.send("test/note", {}), ClosedError, "not connected yet");
  });

  test("one-way events arrive in order", async () => {
    const c = client(s.url);
    await c.connect();
    for (let seq = 1; seq <= 20; seq++) c.send("test/note", { client: "order", seq });
    const notes = await c.request("test/notes", { client: "order" });
    assert.deepEqual(notes, Array.from({ length: 20 }, (_, i) => i + 1));
  });

  test("subscriptions get publications with positions; a refused one is forgotten", async () => {
    const c = client(s.url);
    const got = [];
    c.on("test/news", (news, info) => got.push({ ...news, ...info }));
    await c.connect();
    const reply = await c.subscribe("news/a");
    assert.equal(reply.recovered, false);
    assert.equal(await c.request("test/publish", { channel: "news/a", text: "one" }), 1);
    await eventually(() => got.length === 1, 2000, "the publication");
    assert.equal(got[0].text, "one");
    assert.equal(got[0].channel, "news/a");
    assert.deepEqual(c.position("news/a"), got[0].position);
    const err = await c.subscribe("secret/x").then(() => null, (e) => e);
    assert.ok(err instanceof RemoteError);
    assert.equal(err.code, "forbidden");
    assert.deepEqual(c.subscriptions(), ["news/a"]);
    await c.unsubscribe("news/a");
    assert.deepEqual(c.subscriptions(), []);
    assert.equal(await c.request("test/publish", { channel: "news/a", text: "two" }), 0);
  });

  test("a typed channel joined with its parameters delivers to its own handlers", async () => {
    const c = client(s.url);
    const general = [];
    c.on("test/news", (news) => general.push(news.text));
    await c.connect();
    const joined = [];
    // `/` and `%` in a parameter are escaped as the Rust API escapes them:
    // the server's typed rule parses the name back, or it would refuse it.
    const desk = await c.join("desk/{team}/{id}", { team: "a/b%", id: 7 }, {
      "test/news": (news, info) => joined.push([news.text, info.channel]),
    });
    assert.equal(desk.channel, "desk/a%2Fb%25/7");
    assert.equal(channelName("desk/{team}/{id}", { team: "a/b%", id: 7 }), desk.channel);
    assert.deepEqual(c.subscriptions(), [desk.channel]);
    assert.equal(await c.request("test/publish", { channel: desk.channel, text: "one" }), 1);
    await eventually(() => joined.length === 1, 2000, "the publication");
    assert.deepEqual(joined, [["one", desk.channel]]);
    assert.deepEqual(general, [], "a joined channel's publications skip the `on` handlers");

    const refused = await c.join("desk/{team}/{id}", { team: "a", id: 5000 }, {}).then(() => null, (e) => e);
    assert.ok(refused instanceof RemoteError);
    assert.equal(refused.code, "forbidden");
    assert.equal(refused.message, "desk 5000 of a is closed");
    assert.throws(() => channelName("desk/{team}/{id}", { team: "a" }), TypeError);

    await desk.leave();
    assert.deepEqual(c.subscriptions(), []);
    assert.equal(await c.request("test/publish", { channel: desk.channel, text: "two" }), 0);
  });

  test("events sent to the connection and requests from the server reach handlers", async () => {
    const c = client(s.url);
    const news = [];
    c.on("test/news", (payload, info) => news.push([payload.text, info.channel]));
    c.on("test/question", async (q) => `answer to ${q.text}`);
    await c.connect();
    c.send("test/push", { text: "direct" });
    await eventually(() => news.length === 1, 2000, "the pushed event");
    assert.deepEqual(news[0], ["direct", null]);
    assert.equal(await c.request("test/ask", { text: "life" }), "answer to life");
  });

  test("a full send queue refuses more events, and too many requests are refused", async () => {
    const c = client(`ws://127.0.0.1:${await freePort()}/ws`, { queueCapacity: 3, maxInFlight: 1 });
    c.connect().catch(() => {});
    await eventually(() => c.state === "reconnecting", 2000, "reconnecting");
    for (let seq = 0; seq < 3; seq++) c.send("test/note", { client: "full", seq });
    assert.equal(c.queued, 3);
    assert.throws(() => c.send("test/note", { client: "full", seq: 3 }), QueueFullError);
    await c.disconnect();
    assert.equal(c.queued, 0);

    const d = client(s.url, { maxInFlight: 1 });
    await d.connect();
    const slow = d.request("test/slow", { ms: 200 });
    const err = await d.request("test/slow", { ms: 1 }).then(() => null, (e) => e);
    assert.ok(err instanceof QueueFullError);
    assert.equal(err.code, "too-many-in-flight");
    assert.equal(await slow, 200);
  });

  test("a refused upgrade fails at once, without retrying", async () => {
    const states = [];
    const c = client(`${s.url}?name=intruder`, { onState: (state) => states.push(state) });
    const err = await c.connect().then(() => null, (e) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.status, 401);
    assert.equal(err.retryable, false);
    assert.deepEqual(states, ["connecting", "failed"]);
  });

  test("the policy's attempts run out into failed; connect() starts again", async () => {
    const port = await freePort();
    const c = client(`ws://127.0.0.1:${port}/ws`, { reconnect: { ...FAST, maxAttempts: 2 } });
    const err = await c.connect().then(() => null, (e) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(c.state, "failed");
    await assert.rejects(c.request("test/echo", { text: "x" }), ClosedError);
    await server([], { port });
    await c.connect();
    assert.equal(c.state, "open");
  });

  test("telemetry records reach the server's log", async () => {
    const c = client(`${s.url}?name=logger`, { telemetry: { console: false, flushMs: 50 } });
    await c.connect();
    c.log("error", "node-telemetry-7f3a", { answer: 42 }, "node-test");
    await s.waitForOutput(/node-telemetry-7f3a/);
    const line = s.output.split("\n").find((l) => l.includes("node-telemetry-7f3a"));
    assert.match(line, /ERROR/);
    assert.match(line, /user_id="?logger/);
    assert.match(line, /source="?node-test/);
    assert.match(c.telemetrySession, /^[0-9a-f]{16}$/);
    assert.match(line, new RegExp(`session="?${c.telemetrySession}`));
    const named = client(`${s.url}?name=logger`, { telemetry: { console: false, flushMs: 50, session: "checkout-run-12" } });
    await named.connect();
    assert.equal(named.telemetrySession, "checkout-run-12");
    named.log("warn", "node-telemetry-session-2c1d");
    await s.waitForOutput(/node-telemetry-session-2c1d/);
    const namedLine = s.output.split("\n").find((l) => l.includes("node-telemetry-session-2c1d"));
    assert.match(namedLine, /session="?checkout-run-12/);
  });

  test("oversized telemetry is cut by the client and split into batches the server takes", async () => {
    const c = client(`${s.url}?name=big-logger`, { telemetry: { console: false, flushMs: 50 } });
    await c.connect();
    const connId = c.connId;
    const fields = {};
    for (let i = 0; i < 40; i++) fields[`f${String(i).padStart(2, "0")}`] = "v".repeat(100_000);
    // 4 MB and a split surrogate pair at the cut, then 30 records of 4 KB: 120 KB in all.
    c.log("error", `oversized-js-91d ${"m".repeat(4077)}😀${"m".repeat(50_000)}`, fields, "s".repeat(200_000));
    for (let i = 0; i < 30; i++) c.log("warn", `bulk-js-91d-${i} ${"b".repeat(4000)}`, {}, "node-test");
    await s.waitForOutput(/bulk-js-91d-29/);
    const line = s.output.split("\n").find((l) => l.includes("oversized-js-91d"));
    assert.ok(line, "the oversized record was logged");
    assert.ok(line.length < 60_000, `a ${line.length}-character line`);
    assert.match(line, /m…/);
    assert.match(line, /s…/);
    assert.match(line, /v…/);
    assert.match(line, /25 more fields/);
    assert.equal(c.connId, connId, "the connection was kept");
  });
});

describe("across server restarts", () => {
  test("killed and restarted: reconnects, restores subscriptions with since, sends what it queued", async () => {
    const s = await server();
    const resubscribed = [];
    const gaps = [];
    const states = [];
    const news = [];
    const c = client(`${s.url}?name=phoenix`, {
      onState: (state) => states.push(state),
      onResubscribe: (channel, result) => resubscribed.push({ channel, ...result }),
      onGap: (channel, reply) => gaps.push({ channel, reply }),
      telemetry: { console: false, flushMs: 50, capacity: 2 },
    });
    c.on("test/news", (n) => news.push(n.text));
    await c.connect();
    await c.subscribe("news/r");
    await c.request("test/publish", { channel: "news/r", text: "before" });
    await eventually(() => news.length === 1, 2000, "the first publication");
    const seen = c.position("news/r");
    assert.ok(seen, "a position was seen");

    await s.kill();
    await eventually(() => c.state === "reconnecting", 3000, "reconnecting");
    for (let seq = 1; seq <= 5; seq++) c.send("test/note", { client: "phoenix", seq });
    for (let i = 1; i <= 5; i++) c.log("warn", `while-away-${i}`, {}, "node-test");
    const pending = c.request("test/notes", { client: "phoenix" }, { timeoutMs: 5000 });
    await sleep(100);
    await s.start();

    assert.deepEqual(await pending, [1, 2, 3, 4, 5], "queued events went out, in order, before the request");
    await eventually(() => resubscribed.length === 1, 3000, "the restored subscription");
    assert.equal(resubscribed[0].channel, "news/r");
    assert.equal(resubscribed[0].gap, true, "the restore sent `since`; the new server's epoch differs");
    assert.deepEqual(gaps, [{ channel: "news/r", reply: resubscribed[0].reply }], "the gap was reported to onGap");
    assert.notEqual(c.position("news/r").epoch, seen.epoch, "the new epoch's position replaced the old one");
    await c.request("test/publish", { channel: "news/r", text: "after" });
    await eventually(() => news.length === 2, 2000, "a publication after the restart");
    assert.equal(news[1], "after");
    assert.deepEqual(states.slice(0, 3), ["connecting", "open", "reconnecting"]);
    assert.equal(states.at(-1), "open");

    // Telemetry kept while away: the last two records, and a count of the dropped ones.
    await s.waitForOutput(/while-away-5/);
    assert.doesNotMatch(s.output, /while-away-3/);
    await s.waitForOutput(/telemetry records lost.*dropped_by_client=3/);
  });

  test("answers pings, and takes a silent server for dead", async () => {
    const s = await server(["--ping-interval-ms", "150", "--ping-timeout-ms", "250"]);
    const states = [];
    const c = client(s.url, { onState: (state) => states.push(state) });
    await c.connect();
    const firstConn = c.connId;
    await sleep(1200);
    assert.deepEqual(states, ["connecting", "open"], "pongs kept the connection open across several pings");

    s.signal("SIGSTOP");
    const stoppedAt = Date.now();
    try {
      await eventually(() => c.state === "reconnecting", 3000, "dead-server detection");
      const detectedAfter = Date.now() - stoppedAt;
      assert.ok(detectedAfter >= 300 && detectedAfter < 1500, `detected after ${detectedAfter} ms`);
    } finally {
      s.signal("SIGCONT");
    }
    await c.waitFor("open", 5000);
    assert.notEqual(c.connId, firstConn);
  });

  test("honours the server's reconnect_after_ms when it shuts down", async () => {
    const s = await server(["--reconnect-spread-ms", "1500"]);
    let closedAt = 0;
    let openedAt = 0;
    const c = client(s.url, {
      onState: (state) => {
        if (state === "reconnecting" && !closedAt) closedAt = Date.now();
        if (state === "open" && closedAt) openedAt = Date.now();
      },
    });
    await c.connect();
    await s.kill("SIGTERM");
    await eventually(() => closedAt, 3000, "the close");
    await s.start();
    await eventually(() => openedAt, 5000, "reopened");
    const floor = c.lastClose?.reconnect_after_ms;
    assert.equal(c.lastClose?.code, "going-away");
    assert.equal(typeof floor, "number");
    assert.ok(openedAt - closedAt >= floor - 20, `reopened after ${openedAt - closedAt} ms, asked for ${floor}`);
  });

  test("what waited in the queue is paced to the server's announced rate, none of it lost", async () => {
    const s = await server(["--rate-per-sec", "400", "--rate-burst", "200"]);
    const c = client(`${s.url}?name=pacer`);
    await c.connect();
    assert.deepEqual(
      { rate: c.handshake.limits.rate_per_sec, burst: c.handshake.limits.rate_burst },
      { rate: 400, burst: 400 },
    );
    await s.kill();
    await eventually(() => c.state === "reconnecting", 3000, "reconnecting");
    // More than the server reads in a burst: sent at once, most would be dropped.
    for (let seq = 1; seq <= 600; seq++) c.send("test/note", { client: "pacer", seq });
    const notes = c.request("test/notes", { client: "pacer" }, { timeoutMs: 8000 });
    await s.start();
    const got = await notes;
    assert.equal(got.length, 600, `${got.length} of 600 arrived`);
    assert.deepEqual(got, Array.from({ length: 600 }, (_, i) => i + 1));
    assert.doesNotMatch(s.output, /rate-limited|too many messages/);
  });

  test("reconnect() drops the connection and opens a new one at once", async () => {
    const s = await server();
    const c = client(s.url);
    await c.connect();
    const first = c.connId;
    c.reconnect();
    assert.equal(c.state, "reconnecting");
    await c.waitFor("open", 3000);
    assert.notEqual(c.connId, first);
  });
});

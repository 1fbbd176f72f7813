// The server's `sl/resub` in the JavaScript client, against the real Rust
// test server (examples/js_test_server.rs): its `test/resub` request ends a
// channel's subscriptions and asks their clients to subscribe again. Its
// `news/*` channels keep 100 publications of history and their presence;
// `plain/*` keep neither.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";

import { Client } from "../sente-lite.js";
import { ServerProcess, buildExamples, eventually, freePort } from "./support/server.js";

const FAST = { initialDelayMs: 20, maxDelayMs: 200 };

describe("sl/resub against a server", () => {
  let s;
  const clients = [];

  /** A connected client of user `name`, with what it saw. */
  async function connected(name) {
    const seen = { texts: [], gaps: [], resubscribed: [] };
    const c = new Client(`${s.url}?name=${name}`, {
      WebSocket,
      reconnect: FAST,
      requestTimeoutMs: 5000,
      onGap: (channel) => seen.gaps.push(channel),
      onResubscribe: (channel, result) => seen.resubscribed.push({ channel, ...result }),
    });
    clients.push(c);
    c.on("test/news", (news) => seen.texts.push(news.text));
    await c.connect();
    return { c, seen };
  }

  async function publish(publisher, channel, text, reached) {
    assert.equal(await publisher.request("test/publish", { channel, text }), reached);
  }

  async function resub(publisher, channel, told, thenPublish = null) {
    assert.equal(await publisher.request("test/resub", { channel, then_publish: thenPublish }), told);
  }

  before(async () => {
    const { js_test_server: executable } = buildExamples("js_test_server");
    s = await new ServerProcess(executable, { port: await freePort() }).start();
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await s.kill();
  });

  test("the client subscribes again from its last position: nothing is missed", async () => {
    const channel = "news/r-history";
    const { c: publisher } = await connected("pub");
    const { c, seen } = await connected("ada");
    await c.subscribe(channel);
    for (const text of ["1", "2", "3"]) await publish(publisher, channel, text, 1);
    await eventually(() => seen.texts.length === 3, 3000, "the first publications");

    await resub(publisher, channel, 1);
    // Published while the client may not be back yet: replayed if so.
    for (const text of ["4", "5", "6"]) await publisher.request("test/publish", { channel, text });
    await eventually(() => seen.resubscribed.length === 1, 3000, "the subscription taken again");
    assert.equal(seen.resubscribed[0].channel, channel);
    assert.equal(seen.resubscribed[0].reply?.recovered, true, JSON.stringify(seen.resubscribed[0]));
    for (const text of ["7", "8", "9"]) await publish(publisher, channel, text, 1);

    await eventually(() => seen.texts.length >= 9, 3000, "every publication");
    await sleep(100);
    assert.deepEqual(seen.texts, ["1", "2", "3", "4", "5", "6", "7", "8", "9"], "once each, in order");
    assert.deepEqual(seen.gaps, []);
    assert.equal(c.position(channel).offset, 9);
    assert.deepEqual(c.subscriptions(), [channel]);
  });

  test("a publication missed on a channel without history is reported as a gap", async () => {
    const channel = "plain/r-gap";
    const { c: publisher } = await connected("pub");
    const { c, seen } = await connected("bob");
    await c.subscribe(channel);
    await publish(publisher, channel, "1", 1);
    await eventually(() => seen.texts.length === 1, 3000, "the first publication");

    // Published by the server right after the resub, before the client can be back.
    await resub(publisher, channel, 1, "2");
    await eventually(() => seen.gaps.length === 1, 3000, "the gap");
    assert.deepEqual(seen.gaps, [channel]);
    await eventually(() => seen.resubscribed.length === 1, 3000, "the subscription taken again");
    assert.equal(seen.resubscribed[0].reply?.recovered, false);
    assert.equal(seen.resubscribed[0].gap, true);
    assert.equal(c.position(channel).offset, 2, "the position is the server's answer's");

    await publish(publisher, channel, "3", 1);
    await eventually(() => seen.texts.length === 2, 3000, "the next publication");
    assert.deepEqual(seen.texts, ["1", "3"]);
  });

  test("a presence watch is watched again once subscribed again", async () => {
    const channel = "news/r-watch";
    const { c: publisher } = await connected("pub");
    const { c: cy } = await connected("cy");
    await cy.subscribe(channel);
    const calls = [];
    await cy.watchPresence(channel, (members, change) => calls.push({ members, change }));
    assert.equal(calls.length, 1);

    await resub(publisher, channel, 1);
    await eventually(() => calls.length === 2, 3000, "the members asked for again");
    assert.deepEqual(calls[1], {
      members: [{ user_id: "cy", info: { name: "cy" } }],
      change: { reset: true },
    }, "cy came back within the grace: she never left");

    const { c: dan } = await connected("dan");
    await dan.subscribe(channel);
    await eventually(() => calls.length === 3, 3000, "dan's join");
    assert.deepEqual(calls[2].change, { joined: [{ user_id: "dan", info: { name: "dan" } }], left: [] });
  });

  test("a channel left meanwhile is not taken again", async () => {
    const channel = "news/r-left";
    const { c: publisher } = await connected("pub");
    const { c, seen } = await connected("eve");
    await c.subscribe(channel);
    // The resub and the unsubscribe cross: the client keeps what it left.
    const told = publisher.request("test/resub", { channel, then_publish: null });
    await c.unsubscribe(channel);
    assert.ok([0, 1].includes(await told));
    await sleep(200);
    await publish(publisher, channel, "after", 0);
    await sleep(100);
    assert.deepEqual(seen.texts, []);
    assert.deepEqual(seen.resubscribed, []);
    assert.deepEqual(c.subscriptions(), []);
  });
});

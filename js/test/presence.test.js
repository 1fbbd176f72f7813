// Channel presence and positions in the JavaScript client: the member-set
// logic on its own, then the client against the real Rust test server
// (examples/js_test_server.rs), whose `news/*` channels keep 100
// publications of history and their presence, with `{"name": <user id>}` as
// each member's info.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";

import { Client, PresenceSet, RemoteError } from "../sente-lite.js";
import { ServerProcess, buildExamples, eventually, freePort } from "./support/server.js";

const FAST = { initialDelayMs: 20, maxDelayMs: 200 };
// The server's presence grace (5 s by default), its 100 ms gathering, and margin.
const LEAVE_MS = 10_000;

const member = (name) => ({ user_id: name, info: { name } });
const ids = (members) => members.map((m) => m.user_id);

describe("PresenceSet", () => {
  test("diffs given before the snapshot apply after it, in order", () => {
    const set = new PresenceSet();
    assert.equal(set.following, false);
    const token = set.expect();
    assert.equal(set.following, true);
    assert.equal(set.live, false);
    // Sent by the server after its snapshot, read before the reply.
    assert.equal(set.apply({ joined: [member("cy")], left: ["ada"] }), null);
    assert.equal(set.apply({ joined: [member("dan")], left: ["cy"] }), null);
    assert.deepEqual(set.members(), [], "nothing applies before the snapshot");
    assert.equal(set.snapshot([member("bob"), member("ada")], token), true);
    assert.equal(set.live, true);
    assert.deepEqual(ids(set.members()), ["bob", "dan"]);
    // Later diffs apply at once and say what changed.
    assert.deepEqual(set.apply({ joined: [member("eve")], left: ["bob"] }), { joined: [member("eve")], left: ["bob"] });
    assert.deepEqual(ids(set.members()), ["dan", "eve"]);
  });

  test("left applies before joined; a known member is replaced; no-ops are not changes", () => {
    const set = new PresenceSet();
    set.snapshot([member("ada"), { user_id: "bob" }], set.expect());
    assert.deepEqual(set.members(), [member("ada"), { user_id: "bob", info: null }], "a missing info is null");
    // bob leaves and comes back in one diff: he stays, with his new info.
    const change = set.apply({
      joined: [{ user_id: "bob", info: { name: "Bob" } }, member("ada")],
      left: ["bob", "nobody"],
    });
    assert.deepEqual(change, { joined: [{ user_id: "bob", info: { name: "Bob" } }], left: ["bob"] });
    assert.deepEqual(set.members(), [member("ada"), { user_id: "bob", info: { name: "Bob" } }]);
  });

  test("members are sorted by user id", () => {
    const set = new PresenceSet();
    set.snapshot([member("cy"), member("ada")], set.expect());
    set.apply({ joined: [member("bob")], left: [] });
    assert.deepEqual(ids(set.members()), ["ada", "bob", "cy"]);
  });

  test("a stale, abandoned or stopped expectation does not apply", () => {
    const set = new PresenceSet();
    const first = set.expect();
    const second = set.expect();
    assert.equal(set.snapshot([member("old")], first), false);
    set.abandon(first);
    assert.equal(set.following, true, "abandoning another expectation changes nothing");
    set.apply({ joined: [member("bob")], left: [] });
    assert.equal(set.snapshot([member("ada")], second), true);
    assert.deepEqual(ids(set.members()), ["ada", "bob"]);

    const third = set.expect();
    set.abandon(third);
    assert.equal(set.following, false);
    assert.equal(set.snapshot([], third), false);

    const fourth = set.expect();
    set.stop();
    assert.equal(set.snapshot([], fourth), false, "the connection was lost");
    assert.equal(set.apply({ joined: [member("cy")], left: [] }), null, "a set that does not follow ignores diffs");
    assert.deepEqual(ids(set.members()), ["ada", "bob"], "the last members are kept");
  });
});

describe("against a server", () => {
  let executable;
  let s;
  const clients = [];

  function client(name, options = {}) {
    const url = name === null ? s.url : `${s.url}?name=${name}`;
    const c = new Client(url, { WebSocket, reconnect: FAST, requestTimeoutMs: 5000, ...options });
    clients.push(c);
    return c;
  }

  async function joined(name, channel, options) {
    const c = client(name, options);
    await c.connect();
    await c.subscribe(channel);
    return c;
  }

  /** Calls to a watcher, kept in order. */
  function recorder() {
    const calls = [];
    const onChange = (members, change) => calls.push({ members, change });
    return { calls, onChange, last: () => calls.at(-1) };
  }

  before(async () => {
    ({ js_test_server: executable } = buildExamples("js_test_server"));
    s = await new ServerProcess(executable, { port: await freePort() }).start();
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.disconnect()));
    await s.kill();
  });

  test("the handshake offers presence and recovery", async () => {
    const c = client("ada");
    await c.connect();
    assert.ok(c.handshake.extensions.includes("presence"), JSON.stringify(c.handshake.extensions));
    assert.ok(c.handshake.extensions.includes("recovery"), JSON.stringify(c.handshake.extensions));
  });

  test("presence lists the members with their info; anonymous connections are not members", async () => {
    const ada = await joined("ada", "news/p-list");
    await joined("bob", "news/p-list");
    await joined(null, "news/p-list");
    assert.deepEqual(await ada.presence("news/p-list"), { members: [member("ada"), member("bob")] });
    const err = await ada.presence("news/p-elsewhere").then(() => null, (e) => e);
    assert.ok(err instanceof RemoteError, String(err));
    assert.equal(err.code, "forbidden");
  });

  test("a watch starts with the members, then sees joins and leaves", async () => {
    const ada = await joined("ada", "news/p-watch");
    const watcher = recorder();
    const stop = await ada.watchPresence("news/p-watch", watcher.onChange);
    assert.deepEqual(watcher.calls, [{ members: [member("ada")], change: { reset: true } }]);

    const bob = await joined("bob", "news/p-watch");
    await eventually(() => watcher.calls.length === 2, 3000, "bob's join");
    assert.deepEqual(watcher.last(), {
      members: [member("ada"), member("bob")],
      change: { joined: [member("bob")], left: [] },
    });

    await bob.unsubscribe("news/p-watch");
    await eventually(() => watcher.calls.length === 3, LEAVE_MS, "bob's leave");
    assert.deepEqual(watcher.last(), { members: [member("ada")], change: { joined: [], left: ["bob"] } });
    assert.deepEqual(await ada.presence("news/p-watch"), { members: [member("ada")] });

    stop();
    await joined("cy", "news/p-watch");
    await sleep(400);
    assert.equal(watcher.calls.length, 3, "a stopped watch is not called");
  });

  test("two watches of one channel: stopping one keeps the other", async () => {
    const ada = await joined("ada", "news/p-two");
    const first = recorder();
    const second = recorder();
    const stopFirst = await ada.watchPresence("news/p-two", first.onChange);
    await ada.watchPresence("news/p-two", second.onChange);
    stopFirst();
    await joined("bob", "news/p-two");
    await eventually(() => second.calls.length === 2, 3000, "bob's join");
    assert.deepEqual(second.last().change, { joined: [member("bob")], left: [] });
    assert.equal(first.calls.length, 1);
  });

  test("a watch is re-established after a reconnect, once the channel is subscribed again", async () => {
    const ada = await joined("ada", "news/p-again");
    await joined("bob", "news/p-again");
    const watcher = recorder();
    await ada.watchPresence("news/p-again", watcher.onChange);
    const before = ada.connId;

    ada.reconnect();
    await eventually(() => watcher.calls.length === 2, 3000, "the reset after the reconnect");
    assert.notEqual(ada.connId, before);
    assert.deepEqual(watcher.last(), {
      members: [member("ada"), member("bob")],
      change: { reset: true },
    }, "ada came back within the grace: she never left");

    await joined("cy", "news/p-again");
    await eventually(() => watcher.calls.length === 3, 3000, "cy's join on the new connection");
    assert.deepEqual(watcher.last().change, { joined: [member("cy")], left: [] });
  });

  test("a watch started while users join ends with the server's members", async () => {
    const channel = "news/p-busy";
    const ada = await joined("ada", channel);
    const names = Array.from({ length: 10 }, (_, n) => `j${n}`);
    const joiners = await Promise.all(names.map(async (name) => {
      const c = client(name);
      await c.connect();
      return c;
    }));
    // Users join before, during and after the watch's request, so that some
    // diffs arrive before its snapshot and some after.
    const joining = (async () => {
      for (const c of joiners) {
        await c.subscribe(channel);
        await sleep(15);
      }
    })();
    await sleep(40);
    // A replica built from the changes alone.
    const replica = new Map();
    await ada.watchPresence(channel, (members, change) => {
      if (change.reset) {
        replica.clear();
        for (const m of members) replica.set(m.user_id, m);
        return;
      }
      for (const user of change.left) replica.delete(user);
      for (const m of change.joined) replica.set(m.user_id, m);
    });
    await joining;
    const expected = ["ada", ...names].sort();
    await eventually(() => [...replica.keys()].sort().join() === expected.join(), 3000, "every join");
    const { members } = await joiners[0].presence(channel);
    assert.deepEqual(ids(members), expected);
    assert.deepEqual([...replica.values()].sort((a, b) => (a.user_id < b.user_id ? -1 : 1)), members);
  });

  test("positions keep the largest; a resume replays each missed publication once", async () => {
    const channel = "news/p-ticks";
    const publisher = client("pub");
    await publisher.connect();
    const gaps = [];
    const resubscribed = [];
    const got = [];
    const c = client("ticks", {
      onGap: (ch) => gaps.push(ch),
      onResubscribe: (ch, result) => resubscribed.push({ ch, ...result }),
    });
    c.on("test/news", (news, info) => got.push({ text: news.text, position: info.position }));
    await c.connect();

    // Publications keep coming while the client subscribes: some arrive
    // before the answer to the subscription.
    let publishing = true;
    let published = 0;
    const publishes = (async () => {
      // Paced, so that what is missed while away fits the history of 100.
      while (publishing) {
        await publisher.request("test/publish", { channel, text: String(published) });
        published += 1;
        await sleep(4);
      }
    })();
    await sleep(50);
    const reply = await c.subscribe(channel);
    assert.equal(reply.recovered, false);
    const start = reply.position;
    assert.ok(start, "the server keeps positions");
    const held = c.position(channel);
    assert.equal(held.epoch, start.epoch);
    assert.ok(held.offset >= start.offset, `${JSON.stringify(held)} is behind ${JSON.stringify(start)}`);

    // Away for a while, then back: the history holds what was missed.
    await eventually(() => got.length >= 10, 3000, "publications");
    await c.disconnect();
    await sleep(100);
    await c.connect();
    await eventually(() => resubscribed.length === 1, 3000, "the restored subscription");
    assert.equal(resubscribed[0].reply?.recovered, true, JSON.stringify(resubscribed[0]));
    await sleep(100);
    publishing = false;
    await publishes;

    await eventually(() => got.at(-1)?.text === String(published - 1), 3000, "the last publication");
    const offsets = got.map((g) => g.position.offset);
    const expected = Array.from({ length: got.length }, (_, i) => start.offset + 1 + i);
    assert.deepEqual(offsets, expected, "no gap, no duplicate, in order, from the subscription's start");
    assert.ok(got.every((g) => g.position.epoch === start.epoch));
    assert.deepEqual(c.position(channel), got.at(-1).position, "the position is the last publication's");
    assert.deepEqual(gaps, [], "no gap was reported");
  });
});

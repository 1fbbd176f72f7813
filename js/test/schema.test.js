// The schema hash in JavaScript: the canonical JSON it is computed over, the
// hash of the description the real Rust server publishes at `/schema` (which
// must equal the hash in its handshake), and the mismatch a client reports
// when it was built with other shapes.

import { describe, test } from "node:test";
import assert from "node:assert/strict";

import { canonicalJson, schemaDifferences, schemaHash, schemaUrlOf } from "../sente-lite.js";
import { eventually } from "./support/server.js";
import { testbed } from "./support/testbed.js";

const { client, server } = testbed({ reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });

/**
 * `fetch`, recording in `urls` each description it is asked for (not the
 * probes of attempts that fail while the server restarts).
 */
function countingFetch(urls) {
  return (url, init) => {
    if (new URL(url).pathname === "/schema") urls.push(url);
    return fetch(url, init);
  };
}

async function description(s) {
  const response = await fetch(schemaUrlOf(s.url));
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /^application\/json/);
  return response.json();
}

describe("canonical JSON", () => {
  test("numbers are written as ECMAScript writes them", () => {
    const cases = [
      [0, "0"],
      [-0, "0"],
      [-32768, "-32768"],
      [1.5, "1.5"],
      [0.000001, "0.000001"],
      [0.0000001, "1e-7"],
      [1e21, "1e+21"],
      [1e20, "100000000000000000000"],
      [18446744073709551615, "18446744073709552000"],
      [5e-324, "5e-324"],
    ];
    for (const [value, text] of cases) assert.equal(canonicalJson(value), text, String(value));
  });

  test("members are sorted, except a `properties` map's, whose values are sorted again", () => {
    const value = JSON.parse(
      '{"type":"object","properties":{"zeta":{"type":"string","format":"x"},"alpha":{"b":1,"a":2}},"required":["zeta"]}',
    );
    assert.equal(
      canonicalJson(value),
      '{"properties":{"zeta":{"format":"x","type":"string"},"alpha":{"a":2,"b":1}},"required":["zeta"],"type":"object"}',
    );
    const nested = JSON.parse('{"properties":{"properties":{"type":"object","properties":{"b":{},"a":{}}},"z":{}}}');
    assert.equal(
      canonicalJson(nested),
      '{"properties":{"properties":{"properties":{"b":{},"a":{}},"type":"object"},"z":{}}}',
    );
  });

  test("strings are escaped as JSON.stringify does, names sorted by UTF-16 code units", () => {
    const value = { "\u{e000}": 1, "\u{1f600}": 2, 'a"\\\n\u0001\u007fé': 3 };
    assert.equal(canonicalJson(value), '{"a\\"\\\\\\n\\u0001\u007fé":3,"\u{1f600}":2,"\u{e000}":1}');
  });

  test("the hash of no events is FNV-1a's offset basis", () => {
    assert.equal(schemaHash({ events: [] }), "cbf29ce484222325");
  });
});

describe("against the server", () => {
  test("the published description hashes to the handshake's schema hash", async () => {
    const s = await server();
    const published = await description(s);
    assert.equal(published.version, 1);
    assert.ok(published.events.some((event) => event.id === "test/echo"));
    assert.ok(!published.events.some((event) => event.id.startsWith("telemetry/")), "library events are left out");
    assert.equal(schemaHash(published), published.schema_hash);

    const c = client(s.url);
    await c.connect();
    assert.equal(c.handshake.schema_hash, published.schema_hash);
  });

  test("a client built with the server's shapes reports nothing", async () => {
    const s = await server();
    const published = await description(s);
    const reported = [];
    const fetched = [];
    const c = client(s.url, {
      schema: published,
      onSchemaMismatch: (m) => reported.push(m),
      fetch: countingFetch(fetched),
    });
    assert.equal(c.schemaHash, published.schema_hash);
    await c.connect();
    await c.request("test/echo", { text: "hi" });
    // The description is fetched (synchronously, at the handshake) only
    // when the hashes differ: nothing can be reported later.
    assert.deepEqual(fetched, []);
    assert.deepEqual(reported, []);
    assert.equal(c.schemaMismatch, null);
  });

  test("a client built with other shapes is told which events differ", async () => {
    const s = await server();
    const published = await description(s);
    const ours = structuredClone(published);
    const echo = ours.events.find((event) => event.id === "test/echo");
    echo.payload.properties.loud = { type: "boolean" };
    const dropped = ours.events.find((event) => event.id !== "test/echo").id;
    ours.events = ours.events.filter((event) => event.id !== dropped);
    ours.events.push({ id: "test/only-here", kind: "event", payload: { type: "null" } });

    const reported = [];
    const fetched = [];
    const c = client(s.url, {
      schema: ours,
      onSchemaMismatch: (m) => reported.push(m),
      fetch: countingFetch(fetched),
    });
    await c.connect();
    await eventually(() => reported.length > 0, 5000, "a mismatch report");
    const expected = [
      { id: "test/echo", kind: "shape", payload: true, reply: false },
      { id: dropped, kind: "only-theirs" },
      { id: "test/only-here", kind: "only-ours" },
    ].sort((a, b) => (a.id < b.id ? -1 : 1));
    assert.deepEqual(reported, [
      { ours: schemaHash(ours), theirs: published.schema_hash, differences: expected, error: null },
    ]);
    assert.deepEqual(c.schemaMismatch, reported[0]);
    assert.deepEqual(schemaDifferences(ours, published), expected);

    // Reported once per server hash: a reconnect to the same server says nothing new.
    await s.kill();
    await s.start();
    await eventually(() => c.state === "open", 5000, "the reconnect");
    assert.equal(fetched.length, 1, "not fetched again: nothing more to report");
    assert.equal(reported.length, 1);
  });

  test("a server that does not publish its description: the mismatch, without the events", async () => {
    const s = await server(["--no-schema"]);
    const response = await fetch(schemaUrlOf(s.url));
    assert.equal(response.status, 404);
    const reported = [];
    const c = client(s.url, {
      schema: { version: 1, schema_hash: "", events: [] },
      onSchemaMismatch: (m) => reported.push(m),
    });
    await c.connect();
    await eventually(() => reported.length > 0, 5000, "a mismatch report");
    assert.equal(reported[0].ours, "cbf29ce484222325");
    assert.equal(reported[0].theirs, c.handshake.schema_hash);
    assert.equal(reported[0].differences, null);
    assert.match(reported[0].error, /does not publish its schema/);
  });
});

// Compressed frames (extension `compression`) with the JavaScript client,
// against the real Rust test server run with `--compress-min-bytes`: large
// frames arrive compressed and are inflated with `DecompressionStream`, in
// order with the frames around them.

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { inflateRawSync } from "node:zlib";

import { EXTENSION_COMPRESSION } from "../sente-lite.js";
import { eventually } from "./support/server.js";
import { testbed } from "./support/testbed.js";

const { client, server } = testbed({ reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, requestTimeoutMs: 5000 });

/** Words that repeat, as chat and JSON do. */
function text(len) {
  const words = ["room", "lobby", "hello", "world", "typed", "events"];
  let out = "";
  for (let i = 0; out.length < len; i++) out += `${words[(i * 7) % words.length]} `;
  return out.slice(0, len);
}

describe("compression", () => {
  let s;
  before(async () => {
    s = await server(["--compress-min-bytes", "1024"]);
  });

  test("large replies and publications arrive inflated, in order with small ones", async () => {
    const c = client(s.url);
    const news = [];
    c.on("test/news", (payload) => news.push(payload.text.length));
    await c.connect();
    assert.ok(c.handshake.extensions.includes(EXTENSION_COMPRESSION));
    const big = text(20_000);
    assert.equal((await c.request("test/echo", { text: big })).text, big);
    assert.equal((await c.request("test/echo", { text: "small" })).text, "small");
    await c.subscribe("plain/zip");
    const sizes = [30_000, 10, 5_000, 20, 40_000, 30];
    for (const size of sizes) await c.request("test/publish", { channel: "plain/zip", text: text(size) });
    await eventually(() => news.length === sizes.length, 5000, "every publication");
    assert.deepEqual(news, sizes, "in the order published");
  });

  test("the server compresses only for a client that names the extension", async () => {
    for (const named of [false, true]) {
      const ws = new WebSocket(s.url, "sente-lite.json.v1");
      const messages = [];
      ws.on("message", (data, isBinary) => messages.push({ data, isBinary }));
      await new Promise((resolve) => ws.once("open", resolve));
      await eventually(() => messages.length === 1, 5000, "the handshake");
      if (named) ws.send(JSON.stringify(["sl/extensions", ["compression"]]));
      const big = text(8_000);
      ws.send(JSON.stringify(["test/echo", { text: big }, 1]));
      await eventually(() => messages.length === 2, 5000, "the reply");
      const { data, isBinary } = messages[1];
      assert.equal(isBinary, named);
      const frame = named ? (assert.deepEqual([...data.subarray(0, 2)], [0x11, 0]), inflateRawSync(data.subarray(2)).toString()) : data.toString();
      assert.equal(JSON.parse(frame)[2].text, big);
      if (named) assert.ok(data.length < big.length / 3, `${data.length} bytes`);
      ws.close();
    }
  });
});

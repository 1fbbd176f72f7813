// Fuzzing the JavaScript client's frame handling: messages made by mutating
// the server-to-client examples of docs/PROTOCOL.md (bytes flipped, inserted,
// cut and spliced; JSON values replaced, dropped and added; binary messages)
// are given to an open client through its socket's `onmessage`, as the `ws`
// package and browsers deliver them. Not coverage-guided (the coverage-guided
// engines for Node.js need a newer C library than Debian 12's); seeded, so a
// failure names the seed and the run that replays it.
//
// In the test command: 20,000 messages. A long run:
//   SENTE_LITE_FUZZ_RUNS=5000000 node --test js/test/frames.fuzz.test.js
// (SENTE_LITE_FUZZ_SEED=<n> replays a seed.)
//
// A finding is an exception out of `onmessage`, a frame the client sends that
// is not a frame of the protocol, a message that is not a frame and is not
// answered with `sl/error` `bad-frame`, or a client that does not stay open.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { Client, SUBPROTOCOL } from "../sente-lite.js";

const RUNS = Number(process.env.SENTE_LITE_FUZZ_RUNS ?? 20_000);
const SEED = Number(process.env.SENTE_LITE_FUZZ_SEED ?? Date.now() % 2 ** 31);

/** xorshift32: a small seeded generator, so that a seed replays a run. */
function generator(seed) {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  const below = (n) => next() % n;
  return { below, pick: (items) => items[below(items.length)] };
}

/** The frames a server sends, as docs/PROTOCOL.md shows them. */
function specFrames() {
  const spec = readFileSync(new URL("../../docs/PROTOCOL.md", import.meta.url), "utf8");
  const frames = spec
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith('["'))
    .filter((line) => {
      try {
        return Array.isArray(JSON.parse(line));
      } catch {
        return false;
      }
    });
  // Requests and events the client has handlers for, from the server.
  frames.push('["user/get",{"id":0},9]', '["chat/send",{"text":"hi"},10]', '["nobody/here",{},11]');
  return [...new Set(frames)];
}

const ODD_VALUES = [
  null, true, false, 0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, "", "sl/ok", "sl/pub", "room/lobby",
  "x".repeat(5000), [], [[[]]], {}, { code: "bad-frame" }, { epoch: "e", offset: -1 },
  { joined: [{ user_id: 1 }], left: [null] }, { channel: 7 }, { reconnect_after_ms: "soon" },
  "__proto__", { __proto__: { polluted: true } }, { constructor: "x" },
];

/** One mutation of a seed frame. */
function mutate(rng, seeds) {
  const text = rng.pick(seeds);
  switch (rng.below(10)) {
    case 0: {
      // Flip a byte.
      const bytes = Buffer.from(text);
      bytes[rng.below(bytes.length)] ^= 1 << rng.below(8);
      return bytes.toString("latin1");
    }
    case 1: {
      // Cut it short.
      return text.slice(0, rng.below(text.length));
    }
    case 2: {
      // Insert a character that matters to JSON.
      const at = rng.below(text.length + 1);
      return text.slice(0, at) + rng.pick(['"', "[", "]", "{", "}", ",", ":", "\\", "0", "-", "e", "\u0000", "\ud800"]) + text.slice(at);
    }
    case 3: {
      // Splice two seeds.
      const other = rng.pick(seeds);
      return text.slice(0, rng.below(text.length)) + other.slice(rng.below(other.length));
    }
    case 4:
    case 5:
    case 6: {
      // Replace an element of the frame (or of its first object) with an odd value.
      const frame = JSON.parse(text);
      const at = rng.below(frame.length + 1);
      const value = rng.pick(ODD_VALUES);
      if (at < frame.length && frame[at] && typeof frame[at] === "object" && !Array.isArray(frame[at]) && rng.below(2)) {
        const keys = Object.keys(frame[at]);
        frame[at][keys.length ? rng.pick(keys) : "x"] = value;
      } else {
        frame[at] = value;
      }
      return JSON.stringify(frame);
    }
    case 7: {
      // Drop elements, or add some.
      const frame = JSON.parse(text);
      if (rng.below(2)) frame.length = rng.below(frame.length + 1);
      else frame.push(rng.pick(ODD_VALUES), rng.pick(ODD_VALUES));
      return JSON.stringify(frame);
    }
    case 8: {
      // Not an array, or not starting with a string.
      return JSON.stringify(rng.pick([JSON.parse(text)[1] ?? null, [7, ...JSON.parse(text)], "sl/ping", 3]));
    }
    default: {
      // A binary message.
      return Buffer.from(text);
    }
  }
}

/** What the client wrote since the last message. */
let sent = [];

/**
 * A socket whose other end is this test: it opens at once, and what the
 * client writes is kept in `sent`. `Client` takes any class with the
 * browser's WebSocket interface (`options.WebSocket`).
 */
class LoopbackSocket {
  static last = null;

  constructor(url, protocols) {
    this.url = url;
    this.protocol = protocols.includes(SUBPROTOCOL) ? SUBPROTOCOL : "";
    this.readyState = 0;
    this.bufferedAmount = 0;
    LoopbackSocket.last = this;
  }

  send(data) {
    assert.equal(typeof data, "string", "the JSON client sends text messages only");
    sent.push(data);
  }

  close(code = 1005, reason = "") {
    if (this.readyState === 3) return;
    this.readyState = 3;
    // As a socket does: the close event comes later.
    setImmediate(() => this.onclose?.({ code, reason }));
  }
}

const HANDSHAKE = JSON.stringify([
  "sl/handshake",
  {
    version: 1,
    conn_id: 1,
    user_id: "ada",
    heartbeat: { interval_ms: 25000, timeout_ms: 10000 },
    schema_hash: "9f3b2c1d4e5a6b7c",
    max_message_size: 1048576,
    extensions: ["recovery", "presence"],
    // A rate the harness never reaches: what the client answers goes out
    // at once (the client paces itself to the server's announced rate).
    limits: { max_in_flight: 64, rate_per_sec: 1e9, rate_burst: 1e9, max_subscriptions: 256, max_channel_name: 256 },
  },
]);

/** Whether `text` is a frame of the protocol: a JSON array starting with a string. */
function isFrame(text) {
  try {
    const frame = JSON.parse(text);
    return Array.isArray(frame) && typeof frame[0] === "string";
  } catch {
    return false;
  }
}

test(`${RUNS} mutated server messages leave the client open, answered as documented (seed ${SEED})`, async () => {
  const client = new Client("ws://fuzz.invalid/ws", {
    WebSocket: LoopbackSocket,
    reconnect: { initialDelayMs: 3_600_000, maxDelayMs: 3_600_000 },
    requestTimeoutMs: 3_600_000,
    onProtocolError: () => {},
  });
  client.on("chat/send", (payload) => payload?.text);
  client.on("user/get", (payload, info) => {
    // Asked as a request, id 0 fails (answered `sl/err`).
    if (info?.reqId != null && payload?.id === 0) throw Object.assign(new Error("no user 0"), { code: "user/not-found" });
    return { id: payload?.id ?? null, name: "ada" };
  });
  const opened = client.connect();
  const socket = LoopbackSocket.last;
  socket.readyState = 1;
  socket.onopen?.();
  socket.onmessage({ data: HANDSHAKE });
  await opened;
  // A subscription and a presence watch, so that publications, `sl/resub`
  // and presence diffs have something to apply to.
  client.subscribe("room/lobby").catch(() => {});
  client.watchPresence("room/lobby", () => {}).catch(() => {});

  const seeds = specFrames();
  assert.ok(seeds.length >= 15, `the spec's frames: ${seeds.length}`);
  const rng = generator(SEED);
  const started = performance.now();
  for (let run = 0; run < RUNS; run += 1) {
    const message = mutate(rng, seeds);
    sent = [];
    const replay = `replay: SENTE_LITE_FUZZ_SEED=${SEED} SENTE_LITE_FUZZ_RUNS=${run + 1}; message ${JSON.stringify(String(message)).slice(0, 300)}`;
    try {
      socket.onmessage({ data: message });
    } catch (err) {
      assert.fail(`onmessage threw ${err?.stack ?? err}\n${replay}`);
    }
    for (const text of sent) {
      assert.ok(isFrame(text), `the client sent ${text}\n${replay}`);
    }
    if (typeof message !== "string" || !isFrame(message)) {
      const told = sent.some((text) => {
        const [kind, error] = JSON.parse(text);
        return kind === "sl/error" && error?.code === "bad-frame";
      });
      assert.ok(told, `not a frame, and not answered with sl/error bad-frame\n${replay}`);
    }
    assert.equal(client.state, "open", replay);
    assert.equal(LoopbackSocket.last, socket, `the client opened another socket\n${replay}`);
    if (run % 1000 === 999) {
      // Let the handlers' promises settle: a rejection nobody handles fails the test.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${RUNS} messages in ${seconds.toFixed(1)} s (${Math.round(RUNS / seconds)} a second), seed ${SEED}`);
  await client.disconnect();
});

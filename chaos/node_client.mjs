// The chaos harness's Node.js client process: the same part as the native
// `chaos_client`, with the JavaScript client (js/sente-lite.js). It subscribes
// to the channels of the publishers it is given, then, between `start` and
// `stop` on its stdin, sends one-way events, requests and (with --publish)
// publication requests at a steady pace, noting how each ended; it notes
// every publication it receives and every gap it is told of. On `report` it
// prints its ledger (`ledger {...}`) and exits.
//
// Started by the `chaos` orchestrator; by hand (after `npm ci --prefix js`):
//   node chaos/node_client.mjs --url ws://127.0.0.1:4100/ws --name j0 --feeds j0 --publish
// prints `ready` once subscribed, `stopped` once its traffic settled after `stop`.

import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

import { Client } from "../js/sente-lite.js";

const WebSocket = createRequire(new URL("../js/package.json", import.meta.url))("ws");

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    name: { type: "string" },
    feeds: { type: "string", default: "" },
    publish: { type: "boolean", default: false },
    "event-every-ms": { type: "string", default: "25" },
    "request-every-ms": { type: "string", default: "50" },
    "publish-every-ms": { type: "string", default: "40" },
    "request-timeout-ms": { type: "string", default: "5000" },
  },
});
const name = args.name;
const feeds = args.feeds.split(",").filter((f) => f.length > 0);
const ms = (key) => Number(args[key]);

// The ledger, as the native client's (chaos/src/ledger.rs).
const ledger = {
  client: name,
  kind: "node",
  first_run: "",
  last_run: "",
  reconnects: 0,
  events_sent: 0,
  events_refused: [],
  requests: [],
  publishes: [],
  received: {},
  resubscribe_refused: 0,
};
const arrived = (channel, arrival) => {
  const publisher = channel.startsWith("feed/") ? channel.slice(5) : channel;
  (ledger.received[publisher] ??= []).push(arrival);
};
const position = (p) => (p ? { epoch: p.epoch, offset: p.offset } : null);

let opened = 0;
const client = new Client(args.url, {
  WebSocket,
  requestTimeoutMs: ms("request-timeout-ms"),
  reconnect: { initialDelayMs: 50, maxDelayMs: 400 },
  onState: (state) => {
    if (state === "open") opened += 1;
  },
  onGap: (channel, reply) => arrived(channel, { gap: position(reply?.position) }),
  onResubscribe: (channel, result) => {
    if (result.error?.name === "RemoteError") {
      // The client forgot the channel: subscribe again (told).
      console.error(`node_client: ${channel} refused: ${result.error.message}`);
      ledger.resubscribe_refused += 1;
      subscribe(channel).then((reply) => arrived(channel, { gap: position(reply.position) }));
    }
  },
});
client.on("chaos/pub", (numbered) => arrived(`feed/${numbered.from}`, numbered.seq));

/** Subscribes to `channel` until the server says yes (every 200 ms). */
async function subscribe(channel) {
  for (;;) {
    try {
      return await client.subscribe(channel);
    } catch (err) {
      console.error(`node_client: subscribing to ${channel}: ${err.message}`);
      await sleep(200);
    }
  }
}

/** Sends `chaos/mark` until it is answered; the run that answered. */
async function mark(last) {
  for (;;) {
    try {
      return await client.request("chaos/mark", { client: name, last });
    } catch (err) {
      console.error(`node_client: mark: ${err.message}`);
      await sleep(100);
    }
  }
}

const outcome = (err) => (err.code === "deadline-exceeded" ? "timeout" : String(err.code ?? "error"));

let stopping = false;
const traffic = [];

/** Sends one-way events until stopped. */
async function sendEvents() {
  let seq = 0;
  while (!stopping) {
    await sleep(ms("event-every-ms"));
    if (stopping) break;
    seq += 1;
    ledger.events_sent = seq;
    try {
      client.send("chaos/event", { client: name, seq });
    } catch (err) {
      ledger.events_refused.push({ seq, code: outcome(err) });
    }
  }
}

/** Sends a request every interval (each waits on its own) until stopped. */
async function sendRequests() {
  const asked = [];
  let seq = 0;
  while (!stopping) {
    await sleep(ms("request-every-ms"));
    if (stopping) break;
    seq += 1;
    const index = seq - 1;
    const mine = seq;
    ledger.requests.push("");
    asked.push(
      client.request("chaos/request", { client: name, seq: mine }).then(
        (echo) => (ledger.requests[index] = echo === mine ? "ok" : "wrong-reply"),
        (err) => (ledger.requests[index] = outcome(err)),
      ),
    );
  }
  await Promise.all(asked);
}

/** Publishes numbered messages one after the other until stopped. */
async function publish() {
  let seq = 0;
  while (!stopping) {
    seq += 1;
    try {
      const [epoch, offset] = await client.request("chaos/publish", { client: name, seq });
      ledger.publishes.push({ outcome: "ok", position: { epoch, offset } });
    } catch (err) {
      ledger.publishes.push({ outcome: outcome(err), position: null });
    }
    await sleep(ms("publish-every-ms"));
  }
}

client.connect().catch(() => {});
ledger.first_run = await mark(false);
for (const publisher of feeds) {
  ledger.received[publisher] ??= [];
  await subscribe(`feed/${publisher}`);
}
console.log("ready");

for await (const command of createInterface({ input: process.stdin })) {
  if (command === "start") {
    traffic.push(sendEvents(), sendRequests());
    if (args.publish) traffic.push(publish());
  } else if (command === "stop") {
    stopping = true;
    await Promise.all(traffic);
    ledger.last_run = await mark(true);
    console.log("stopped");
  } else if (command === "report") {
    ledger.reconnects = Math.max(0, opened - 1);
    // Exits once the line is written: a pipe takes long lines in parts.
    process.stdout.write(`ledger ${JSON.stringify(ledger)}\n`, () => process.exit(0));
  } else {
    console.error(`node_client: unknown command ${JSON.stringify(command)}`);
  }
}

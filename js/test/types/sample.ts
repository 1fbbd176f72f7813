// Typed use of the client with the chat's generated event map: this file must
// compile with `tsc --strict`. Each `@ts-expect-error` marks a mistake that
// must be a type error (an unused directive is itself an error).
import { Client, PresenceSet, RemoteError, TimeoutError } from "sente-lite";
import type { PresenceChange, PresenceMember, SchemaDescription, SchemaMismatch } from "sente-lite";
import type { ChatMessage, Events, Joined } from "./events.js";

const client = new Client<Events>("ws://127.0.0.1:3000/ws?name=ada");

export async function chat(): Promise<string[]> {
  const joined: Joined = await client.request("chat/join", { room: "lobby" });
  const left: null = await client.request("chat/leave", { room: "lobby" }, { timeoutMs: 500 });
  const stop = new AbortController();
  await client.request("chat/join", { room: "lobby" }, { signal: stop.signal });
  const cancelled: number = client.requestsCancelled;
  client.send("chat/say", { room: "lobby", text: "hi" });
  const off = client.on("chat/message", (msg: ChatMessage, info) => {
    console.log(msg.from, msg.text, msg.at_ms.toFixed(0), info.channel, info.signal?.aborted, cancelled);
  });
  off();
  client.send("telemetry/batch", {
    records: [{ level: "warn", message: "m", source: "s", at_ms: 0, fields: {} }],
    dropped: 0,
    session: "9f86d081884c7d65",
  });
  client.log("error", "something broke", { code: 7 });

  // @ts-expect-error: `Join` has a `room`, not an `id`.
  await client.request("chat/join", { id: 1 });
  // @ts-expect-error: `chat/say` is one-way: there is no reply to wait for.
  await client.request("chat/say", { room: "lobby", text: "hi" });
  // @ts-expect-error: `chat/join` is a request, not a one-way event.
  client.send("chat/join", { room: "lobby" });
  // @ts-expect-error: there is no event `chat/shout`.
  client.send("chat/shout", { room: "lobby" });
  // @ts-expect-error: the reply is a `Joined`, which has no `name`.
  console.log((await client.request("chat/join", { room: "lobby" })).name);
  // @ts-expect-error: a telemetry level is one of five words.
  client.log("fatal", "no such level");

  try {
    await client.request("chat/join", { room: "x" });
  } catch (err) {
    if (err instanceof RemoteError) console.log(err.code, err.data);
    if (err instanceof TimeoutError) console.log(err.timeoutMs);
  }
  console.log(left, client.state === "open", client.handshake?.conn_id);
  return joined.members;
}

// Without a map every id and payload is accepted.
const loose = new Client("ws://127.0.0.1:3000/ws");
loose.send("any/thing", { whatever: true });
export const reply: Promise<unknown> = loose.request("any/request", 1);

// Channels: gaps and presence.
export async function presence(): Promise<string[]> {
  const offGap = client.onGap((channel: string, reply) => console.log(channel, reply.position?.offset));
  offGap();
  const { members } = await client.presence("room/lobby");
  const stop: () => void = await client.watchPresence("room/lobby", (now, change) => {
    if (change.reset) console.log("all", now.length);
    else console.log(change.joined.map((m) => m.user_id), change.left.join(","));
  });
  stop();
  const set = new PresenceSet();
  const token: number = set.expect();
  set.apply({ joined: [{ user_id: "cy", info: null }], left: [] });
  set.snapshot(members, token);
  // @ts-expect-error: `left` lists user ids, not members.
  set.apply({ joined: [], left: [{ user_id: "ada", info: null }] });
  // @ts-expect-error: a watcher is told the members and the change.
  await client.watchPresence("room/lobby", (change: PresenceChange) => change);
  return set.members().map((m: PresenceMember) => m.user_id);
}

// Typed channels: the generated `Channels` map types `join`.
import { channelName } from "sente-lite";
import type { Channels } from "./events.js";

const typed = new Client<Events, Channels>("ws://127.0.0.1:3000/ws?name=ada");

export async function rooms(): Promise<string> {
  const lobby = await typed.join("room/{name}", { name: "lobby" }, {
    "chat/message": (msg: ChatMessage, info) => console.log(msg.from, msg.text, info.position?.offset),
  });
  await lobby.leave();
  const name: Channels["room/{name}"]["name"] = `room/${"lobby"}`;
  console.log(name, channelName<Channels, "room/{name}">("room/{name}", { name: "a/b" }));

  // `subscribe` takes the name of one of the map's channels; a name outside
  // the map goes through the same client without the map.
  await typed.subscribe("room/lobby");
  await (typed as Client<Events>).subscribe(`dm/${"ada"}`);
  // @ts-expect-error: no channel of the map is named `lobby`; a room's name is `room/...`.
  await typed.subscribe("lobby");
  // @ts-expect-error: a room's parameter is `name`, not `room`.
  await typed.join("room/{name}", { room: "lobby" }, {});
  // @ts-expect-error: a room's channel carries `chat/message`, not `chat/say`.
  await typed.join("room/{name}", { name: "lobby" }, { "chat/say": () => {} });
  // @ts-expect-error: there is no typed channel `user/{id}`.
  await typed.join("user/{id}", { id: 1 }, {});
  await typed.join("room/{name}", { name: "lobby" }, {
    // @ts-expect-error: a chat message has no `body`.
    "chat/message": (msg) => console.log(msg.body),
  });
  // @ts-expect-error: a room's name starts with `room/`.
  const wrong: Channels["room/{name}"]["name"] = "lobby";
  return String(wrong) + lobby.channel;
}

// A client that knows the shapes it was built with and hears when a server's differ.
declare const schema: SchemaDescription;
const checked = new Client<Events>("ws://127.0.0.1:3000/ws", {
  schema,
  onSchemaMismatch: (mismatch: SchemaMismatch) => {
    const changed: string[] = (mismatch.differences ?? [])
      .filter((difference) => difference.kind === "shape" && difference.payload)
      .map((difference) => difference.id);
    console.warn(mismatch.ours, mismatch.theirs, changed, mismatch.error);
  },
});
export const ourHash: string | null = checked.schemaHash;
export const lastMismatch: SchemaMismatch | null = checked.schemaMismatch;

// Credentials fetched before every attempt, and a refusal decided on.
async function freshToken(): Promise<string> {
  return "token";
}
export const refreshing = new Client<Events>(async () => `wss://chat.example/ws?token=${await freshToken()}`, {
  onRejected: (rejection) => (rejection.status === 401 && rejection.attempt < 3 ? "retry" : "stop"),
});

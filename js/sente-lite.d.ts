// Types of the sente-lite JavaScript client (sente-lite.js).
//
// The client is generic over an event map: the `Events` type that sente-lite's
// `typescript` feature writes from the Rust event types (`events.d.ts`):
//
//   import { Client } from "./sente-lite.js";
//   import type { Events } from "./events.js";
//   const client = new Client<Events>("/ws");
//   const joined = await client.request("chat/join", { room: "lobby" }); // Joined
//
// Without a map every id and payload is accepted (`AnyEvents`). The second
// parameter is the `Channels` map of typed channels, for `join` and
// `subscribe`:
//
//   import type { Channels, Events } from "./events.js";
//   const client = new Client<Events, Channels>("/ws");
//   await client.join("room/{name}", { name: "lobby" }, {
//     "chat/message": (message) => show(message.text),
//   });
//   await client.subscribe("room/lobby"); // a name of one of the map's channels
//
// A channel named at run time outside the map is subscribed through the
// client without the map, the same object: `(client as Client<Events>).subscribe(name)`.

/** Whether an event is one-way or a request. */
export type EventKind = "event" | "request";

/** One entry of an event map. */
export interface EventShape {
  kind: EventKind;
  payload: unknown;
  reply?: unknown;
}

/** An event map that accepts every id and payload. */
export type AnyEvents = { [id: string]: { kind: any; payload: any; reply: any } };

/** The ids of the map's requests. */
export type RequestId<M> = {
  [K in keyof M]: M[K] extends { kind: "request" } ? K : never;
}[keyof M] &
  string;

/** The ids of the map's one-way events. */
export type OneWayId<M> = {
  [K in keyof M]: M[K] extends { kind: "event" } ? K : never;
}[keyof M] &
  string;

/** Every id of the map. */
export type EventId<M> = keyof M & string;

/** The payload type of event `K`. */
export type PayloadOf<M, K extends keyof M> = M[K] extends { payload: infer P } ? P : never;

/** The reply type of request `K`. */
export type ReplyOf<M, K extends keyof M> = M[K] extends { reply: infer R } ? R : never;

/** One entry of a channel map: a typed channel's parameters, names and events. */
export interface ChannelShape {
  params: Record<string, unknown>;
  name: string;
  events: string;
}

/** A channel map that accepts every pattern, parameter and event. */
export type AnyChannels = { [pattern: string]: { params: any; name: string; events: any } };

/** The parameters of channel pattern `P`. */
export type ParamsOf<C, P extends keyof C> = C[P] extends { params: infer A } ? A : never;

/**
 * The names of the channels of map `C`: the union of its channels' name
 * types (`room/${string}`), `string` for `AnyChannels`.
 */
export type ChannelNameOf<C> = { [P in keyof C]: C[P] extends { name: infer N } ? N : never }[keyof C] & string;

/** The ids of the events channel pattern `P` carries. */
export type ChannelEventsOf<C, P extends keyof C> = C[P] extends { events: infer E } ? E : never;

/** The handlers of a joined channel: at most one per event it carries. */
export type ChannelHandlers<M, C, P extends keyof C> = {
  [K in ChannelEventsOf<C, P> & keyof M]?: (payload: PayloadOf<M, K>, info: EventInfo) => void | Promise<void>;
};

/** A typed channel joined with `Client.join`. */
export interface JoinedChannel {
  /** The channel's name. */
  readonly channel: string;
  /** Leaves the channel (as `unsubscribe`). */
  leave(): Promise<void>;
}

/**
 * The name of a typed channel: the pattern with each parameter's text, `%`
 * written `%25` and `/` written `%2F`, as the Rust API writes it.
 */
export function channelName<C = AnyChannels, P extends keyof C & string = keyof C & string>(
  pattern: P,
  params: ParamsOf<C, P>,
): string;

/** The six connection states. */
export type ConnectionState = "closed" | "connecting" | "open" | "closing" | "reconnecting" | "failed";

export const STATES: readonly ConnectionState[];
export const SUBPROTOCOL: "sente-lite.json.v1";
export const PROTOCOL_VERSION: 1;
/** The protocol extension of channel presence, listed in the handshake's `extensions`. */
export const EXTENSION_PRESENCE: "presence";
export const EXTENSION_CANCEL: "cancel";
export const EXTENSION_COMPRESSION: "compression";

/** How the client reconnects: capped exponential backoff with full jitter. */
export interface ReconnectPolicy {
  /** The ceiling of the first delay. Default 250. */
  initialDelayMs?: number;
  /** How much the ceiling grows per attempt. Default 2. */
  multiplier?: number;
  /** The largest ceiling. Default 30 000. */
  maxDelayMs?: number;
  /** Attempts in a row before entering `failed`; `null` (default) tries forever. */
  maxAttempts?: number | null;
}

export const DEFAULTS: Readonly<{
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  queueCapacity: number;
  maxInFlight: number;
  maxPeerRequests: number;
  reconnect: Readonly<Required<ReconnectPolicy>>;
}>;

/** `min(maxDelayMs, initialDelayMs × multiplier^attempt)`. */
export function backoffCeiling(policy: ReconnectPolicy, attempt: number): number;
/** A delay drawn uniformly from `[0, backoffCeiling(policy, attempt))`. */
export function backoffDelay(policy: ReconnectPolicy, attempt: number, random?: () => number): number;

/** Per-connection limits a server announces in its handshake (`0` means no limit). */
export interface PeerLimits {
  max_in_flight: number;
  rate_per_sec: number;
  rate_burst: number;
  max_subscriptions: number;
  max_channel_name: number;
}

/** The server's handshake. */
export interface Handshake {
  version: number;
  conn_id: number;
  user_id: string | null;
  heartbeat: { interval_ms: number; timeout_ms: number };
  schema_hash: string;
  max_message_size: number;
  extensions: string[];
  /** The limits the client keeps to (0: none). Absent from servers that do not announce them. */
  limits?: PeerLimits;
}

/** The path where a server publishes its schema description (`/schema`). */
export const SCHEMA_PATH: "/schema";

/** One event of a schema description: its id, kind and shapes (JSON Schema documents). */
export interface SchemaEvent {
  id: string;
  kind: "event" | "request";
  payload: unknown;
  /** The reply's shape, for a request. */
  reply?: unknown;
}

/**
 * The shapes of a program's events, as a server publishes them at `GET /schema`
 * and as the Rust exporter writes them to `events.schema.json`.
 */
export interface SchemaDescription {
  version: number;
  /** The schema hash, 16 lowercase hex digits. */
  schema_hash: string;
  events: SchemaEvent[];
}

/** An event on which two descriptions disagree. */
export type SchemaDifference =
  | { id: string; kind: "only-ours" | "only-theirs" }
  | { id: string; kind: "shape"; payload: boolean; reply: boolean };

/** A client's schema hash differs from the server's. */
export interface SchemaMismatch {
  /** The hash of `options.schema`. */
  ours: string;
  /** The hash in the server's handshake. */
  theirs: string;
  /** The events that differ, or `null` when the server's description could not be read. */
  differences: SchemaDifference[] | null;
  /** Why the description could not be read (or does not hash to `theirs`), else `null`. */
  error: string | null;
}

/** A JSON value in the schema hash's canonical form (docs/PROTOCOL.md). */
export function canonicalJson(value: unknown): string;
/** The schema hash of a description's events, 16 lowercase hex digits. */
export function schemaHash(description: { events: SchemaEvent[] }): string;
/** The events on which two descriptions disagree, sorted by id. */
export function schemaDifferences(
  ours: { events: SchemaEvent[] },
  theirs: { events: SchemaEvent[] },
): SchemaDifference[];
/** `http(s)://host/schema` for a `ws(s)://host/path` url. */
export function schemaUrlOf(wsUrl: string): string;

/** A channel's stream position. */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/** The server's answer to a subscription. */
export interface SubscribeReply {
  position: StreamPosition | null;
  recovered: boolean;
}

/** The server's `sl/close` reason. */
export interface CloseReason {
  code: string;
  message: string;
  reconnect_after_ms: number | null;
}

/** Where an incoming event came from. */
export interface EventInfo {
  /** The channel of a publication, `null` for an event sent to this connection. */
  channel: string | null;
  /** The publication's stream position, when the channel keeps one. */
  position: StreamPosition | null;
  /** The request id, for a request from the server. */
  reqId?: number;
  /**
   * For a request from the server: aborted when the request is no longer
   * wanted (the server cancelled it, its deadline passed, or the connection
   * closed). No reply is sent after a cancel.
   */
  signal?: AbortSignal;
}

/** Options of one request. */
export interface RequestOptions {
  /** How long to wait (for a connection and the reply), in ms; also the deadline sent. */
  timeoutMs?: number;
  /**
   * Aborting it rejects the request with the signal's reason; a request
   * already sent is cancelled on the server (`sl/cancel`), which drops its handler.
   */
  signal?: AbortSignal;
}

/** A member of a channel's presence: a user subscribed to it, with what the server attaches. */
export interface PresenceMember {
  user_id: string;
  /** The server's choice (a name, an avatar), `null` when none. */
  info: unknown;
}

/** The members of a channel, sorted by `user_id`. */
export interface PresenceSnapshot {
  members: PresenceMember[];
}

/** A change of a channel's members, as the server sends it (`sl/presence-diff`). */
export interface PresenceDiff {
  joined: PresenceMember[];
  left: string[];
}

/**
 * What changed, for a presence watcher: members that joined (or whose `info`
 * changed) and user ids that left, or `reset` when the whole set was fetched
 * (the watch started, or was re-established after a reconnect).
 */
export type PresenceChange =
  | { joined: PresenceMember[]; left: string[]; reset?: undefined }
  | { reset: true; joined?: undefined; left?: undefined };

/**
 * The members of one channel kept from a snapshot and the diffs that follow
 * it; diffs given while a snapshot is expected apply after it.
 */
export class PresenceSet {
  constructor();
  /** A snapshot was applied and diffs apply as they come. */
  readonly live: boolean;
  /** Live, or expecting a snapshot. */
  readonly following: boolean;
  /** A snapshot is on its way: diffs wait for it. Returns the token to apply it with. */
  expect(): number;
  /** Applies the snapshot expected with `token`, then the diffs that waited; `false` for a stale token. */
  snapshot(members: PresenceMember[], token: number): boolean;
  /** The snapshot expected with `token` will not come. */
  abandon(token: number): void;
  /** Stops following: diffs are ignored. */
  stop(): void;
  /** Applies (or keeps) a diff; what changed, or `null` when it waits or is ignored. */
  apply(diff: PresenceDiff): { joined: PresenceMember[]; left: string[] } | null;
  /** The members, sorted by `user_id`. */
  members(): PresenceMember[];
}

/** The outcome of a subscription restored after a reconnect. */
export type ResubscribeResult =
  | { reply: SubscribeReply; gap: boolean; error?: undefined }
  | { error: SenteError; reply?: undefined; gap?: undefined };

export type TelemetryLevel = "error" | "warn" | "info" | "debug" | "trace";

export interface TelemetryOptions {
  /** Forward `console.error` calls. Default true. */
  console?: boolean;
  /** Forward uncaught errors and unhandled rejections (browsers). Default true. */
  errors?: boolean;
  /** Records per batch (at most 100; a batch is also split past about 64 KiB). Default 20. */
  maxBatch?: number;
  /** A batch is sent at most this long after its first record. Default 1000. */
  flushMs?: number;
  /** Records kept while no connection is open; older ones are dropped and counted. Default 500. */
  capacity?: number;
  /** Once the client is closed or failed, write records to the console. Default true. */
  fallbackToConsole?: boolean;
  /**
   * The telemetry session the records name (at most 128 characters), the same
   * across reconnections. Default: 16 random hexadecimal digits per client.
   */
  session?: string;
}

export interface ClientOptions {
  /** The WebSocket constructor; default `globalThis.WebSocket` (pass `ws`'s in Node.js 20). */
  WebSocket?: unknown;
  reconnect?: ReconnectPolicy;
  /** Default timeout of requests and subscriptions. Default 10 000. */
  requestTimeoutMs?: number;
  /** Time to open the socket and receive the handshake. Default 10 000. */
  connectTimeoutMs?: number;
  /** Events kept while reconnecting. Default 1024. */
  queueCapacity?: number;
  /** Requests in flight at once. Default 64, and never more than the server announces (`limits.max_in_flight`). */
  maxInFlight?: number;
  /** Requests from the server handled at once. Default 64. */
  maxPeerRequests?: number;
  /** Called on every state change. */
  onState?: (state: ConnectionState, previous: ConnectionState) => void;
  /**
   * Called with the server's answer to each subscription restored after a
   * reconnect, or after the server ended it and asked for it again (`sl/resub`).
   */
  onResubscribe?: (channel: string, result: ResubscribeResult) => void;
  /** Called when publications on a channel were missed: reload its state (see `Client.onGap`). */
  onGap?: (channel: string, reply: SubscribeReply) => void;
  /** Called with each `sl/error` the server sends. */
  onProtocolError?: (error: RemoteError) => void;
  /**
   * Decides, when the server refuses an attempt (HTTP 401 or 403 for refused
   * credentials; in a browser, learned from the server's probe), whether to
   * retry after the backoff delay (calling an async `url` function again for
   * fresh credentials) or to stop in `failed`. Without it, 408, 429 and 5xx
   * are retried and other statuses fail.
   */
  onRejected?: (rejection: Rejection) => "retry" | "stop";
  /**
   * The description of the events this client was built with (the exporter's
   * `events.schema.json`). With it, the client compares its schema hash with
   * each server's handshake and, on a difference, reads the server's
   * description and calls `onSchemaMismatch` with the events that differ.
   */
  schema?: SchemaDescription;
  /** Where to read the server's description. Default: `/schema` on the WebSocket's host. */
  schemaUrl?: string;
  /** Called once per server hash that differs from ours. */
  onSchemaMismatch?: (mismatch: SchemaMismatch) => void;
  /** The `fetch` used to read the server's description and to probe a refused attempt. Default `globalThis.fetch`. */
  fetch?: (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;
  /** Starts capturing telemetry at once. */
  telemetry?: TelemetryOptions;
  /** The random source of the backoff jitter, in `[0, 1)`. */
  random?: () => number;
}

export class SenteError extends Error {
  readonly code: string;
}
export class TimeoutError extends SenteError {
  readonly code: "timeout";
  readonly timeoutMs: number;
}
export class ClosedError extends SenteError {
  readonly code: "closed";
}
export class RemoteError extends SenteError {
  readonly data: unknown;
}
/** The reason of a handler's `signal` when the server cancelled its request. */
export class CancelledError extends SenteError {
  readonly code: "cancelled";
}
export class QueueFullError extends SenteError {
  readonly code: "queue-full" | "too-many-in-flight";
}
/** A refused connection attempt, as `onRejected` sees it. */
export interface Rejection {
  /** The HTTP status the server refused the upgrade with. */
  status: number;
  /** What the server said. */
  message: string;
  /** How many attempts failed in a row before this one. */
  attempt: number;
}

/**
 * Why an attempt failed: `rejected` (with `status`), `credentials` (an async
 * url function failed; retried), `closed-before-handshake`, `connect-timeout`,
 * `invalid-url`, `subprotocol-refused`, `invalid-handshake`,
 * `not-a-handshake` or `unsupported-version`.
 */
export class ConnectError extends SenteError {
  readonly retryable: boolean;
  readonly status?: number;
  readonly closeCode?: number;
}

/** What a handler returns: nothing for an event, the reply for a request. */
export type HandlerResult<M, K extends keyof M> = M[K] extends { kind: "request"; reply: infer R }
  ? R | Promise<R>
  : void | Promise<void>;

export class Client<
  M extends { [K in keyof M]: EventShape } = AnyEvents,
  C extends { [P in keyof C]: ChannelShape } = AnyChannels,
> {
  /**
   * `url`, or a function returning it (or a promise of it) before every
   * attempt: the place to put a fresh token in the query.
   */
  constructor(url: string | (() => string | Promise<string>), options?: ClientOptions);

  readonly state: ConnectionState;
  readonly handshake: Handshake | null;
  /** The schema hash of `options.schema`, or `null` without one. */
  readonly schemaHash: string | null;
  /** The last schema mismatch with a server, or `null` while the hashes agree. */
  readonly schemaMismatch: SchemaMismatch | null;
  readonly connId: number | null;
  readonly userId: string | null;
  readonly lastError: SenteError | null;
  readonly lastClose: CloseReason | null;
  readonly queued: number;
  /** Requests of the server's that it cancelled while their handler ran. */
  readonly requestsCancelled: number;

  onState(listener: (state: ConnectionState, previous: ConnectionState) => void): () => void;
  /**
   * Called when a subscription sent a position and the server answered
   * `recovered: false`: publications were missed, reload the channel's state.
   */
  onGap(listener: (channel: string, reply: SubscribeReply) => void): () => void;
  waitFor(state: ConnectionState, timeoutMs?: number): Promise<void>;

  connect(): Promise<void>;
  reconnect(): void;
  disconnect(): Promise<void>;

  on<K extends EventId<M>>(
    id: K,
    handler: (payload: PayloadOf<M, K>, info: EventInfo) => HandlerResult<M, K>,
  ): () => void;
  send<K extends OneWayId<M>>(id: K, payload: PayloadOf<M, K>): void;
  request<K extends RequestId<M>>(
    id: K,
    payload: PayloadOf<M, K>,
    options?: RequestOptions,
  ): Promise<ReplyOf<M, K>>;

  /**
   * Joins a typed channel of the `Channels` map: subscribes to its name and
   * gives its publications to `handlers`, keyed by the ids of the events it
   * carries, instead of the handlers registered with `on`.
   */
  join<P extends keyof C & string>(
    pattern: P,
    params: ParamsOf<C, P>,
    handlers: ChannelHandlers<M, C, P>,
  ): Promise<JoinedChannel>;
  /**
   * Subscribes to a channel by name, kept across reconnects; its
   * publications go to the handlers registered with `on`. With a `Channels`
   * map, only a name of one of its channels (see `ChannelNameOf`).
   */
  subscribe(channel: ChannelNameOf<C>): Promise<SubscribeReply>;
  unsubscribe(channel: string): Promise<void>;
  subscriptions(): string[];
  position(channel: string): StreamPosition | null;

  /** The members of a subscribed channel (extension `presence`). */
  presence(channel: string): Promise<PresenceSnapshot>;
  /**
   * Watches a subscribed channel's members; `onChange` is called first with
   * `{ reset: true }`, then with each change, and with a reset again after a
   * reconnect. Resolves with a function that stops the watch.
   */
  watchPresence(
    channel: string,
    onChange: (members: PresenceMember[], change: PresenceChange) => void,
  ): Promise<() => void>;

  log(level: TelemetryLevel, message: string, fields?: Record<string, unknown>, source?: string): void;
  captureTelemetry(options?: TelemetryOptions): () => void;
  /** The telemetry session this client's records name, the same across reconnections. */
  readonly telemetrySession: string;
}

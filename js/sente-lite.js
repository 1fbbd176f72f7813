// sente-lite JavaScript client: typed realtime events and requests over one
// WebSocket, speaking the sente-lite protocol v1 in its JSON encoding.
//
// One ES module without dependencies. In browsers it uses the native
// WebSocket; in Node.js 20+ pass a WebSocket constructor, such as the `ws`
// package's: `new Client(url, { WebSocket })`.
//
//   import { Client } from "/sente-lite.js";
//   const client = new Client("/ws?name=ada", { onState: (s) => console.log(s) });
//   client.on("chat/message", (msg) => console.log(msg.from, msg.text));
//   await client.connect();
//   await client.subscribe("room/lobby");
//   client.send("chat/say", { room: "lobby", text: "hi" });
//   const joined = await client.request("chat/join", { room: "lobby" });
//
// It behaves as the native Rust client does: six connection states, capped
// exponential backoff with full jitter, subscriptions restored after a
// reconnect, or when the server asks (`sl/resub`), from the largest position
// seen (a gap the server cannot recover is reported to `onGap`), typed channels
// joined by pattern and parameters (`join`, `channelName`), channel presence (`presence`, `watchPresence`), a
// bounded queue of events sent while away (written in order after the
// handshake and the restored subscriptions), `sl/ping` answered, a silent
// server taken for dead, a server's `reconnect_after_ms` honoured, and, given
// the shapes it was built with (`schema`), the events whose shapes differ
// from the server's reported (`onSchemaMismatch`). The
// wire format is described in the repository's docs/PROTOCOL.md.

/** The subprotocol of the JSON encoding, version 1. */
export const SUBPROTOCOL = "sente-lite.json.v1";

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** The protocol extension of channel presence, listed in the handshake's `extensions`. */
export const EXTENSION_PRESENCE = "presence";

/**
 * The protocol extension of request cancellation (`sl/cancel`), listed in the
 * handshake's `extensions`: an aborted request is cancelled on the server,
 * and the server's cancels abort the `signal` given to this client's handlers.
 */
export const EXTENSION_CANCEL = "cancel";

/**
 * The protocol extension of compressed frames (kind 17: raw DEFLATE), listed
 * in the handshake's `extensions`: the client takes them where the platform
 * has `DecompressionStream`.
 */
export const EXTENSION_COMPRESSION = "compression";

/** The most a compressed frame inflates to (the server's own limit applies on its side). */
const MAX_INFLATED = 64 * 1024 * 1024;

/** The six connection states. */
export const STATES = Object.freeze([
  "closed",
  "connecting",
  "open",
  "closing",
  "reconnecting",
  "failed",
]);

/** Default settings; every one can be changed in the `Client` options. */
export const DEFAULTS = Object.freeze({
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  queueCapacity: 1024,
  maxInFlight: 64,
  maxPeerRequests: 64,
  reconnect: Object.freeze({
    initialDelayMs: 250,
    multiplier: 2,
    maxDelayMs: 30_000,
    maxAttempts: null,
  }),
});

const MIN_SILENCE_LIMIT_MS = 100;
const CLOSE_GRACE_MS = 3_000;
const MAX_SAFE_REQ_ID = Number.MAX_SAFE_INTEGER;
const EVENT_ID = /^[a-z0-9_.-]+\/[a-z0-9_.-]+$/;
const TELEMETRY_EVENT = "telemetry/batch";
const TELEMETRY_MAX_RECORDS = 100;
// The server's limits (sente_lite::telemetry): longer texts are cut here, and
// marked with `…`, so that a record never makes a batch too large to send.
const TELEMETRY_MAX_MESSAGE = 4096;
const TELEMETRY_MAX_SOURCE = 256;
const TELEMETRY_MAX_FIELDS = 16;
const TELEMETRY_MAX_FIELD_KEY = 64;
const TELEMETRY_MAX_FIELD_VALUE = 2048;
const TELEMETRY_MAX_SESSION = 128;
// Characters of records per batch: a batch is split past it, which keeps it
// well below the server's message size limit (1 MiB by default).
const TELEMETRY_MAX_BATCH_CHARS = 64 * 1024;
const LEVELS = ["error", "warn", "info", "debug", "trace"];

// ---------------------------------------------------------------- errors

/** Every error this client raises; `code` says which. */
export class SenteError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "SenteError";
    /** A short machine-readable code (`timeout`, `closed`, a server's code...). */
    this.code = code;
  }
}

/** No reply (or no connection) came within the request's timeout. */
export class TimeoutError extends SenteError {
  constructor(timeoutMs, what = "the reply") {
    super("timeout", `${what} did not come within ${timeoutMs} ms`);
    this.name = "TimeoutError";
    /** How long the caller waited. */
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The connection was lost before the reply came (the server may or may not
 * have handled the request), or the client was disconnected or gave up.
 */
export class ClosedError extends SenteError {
  constructor(message = "the connection closed before the reply came") {
    super("closed", message);
    this.name = "ClosedError";
  }
}

/** The server answered with an error: its `code`, `message` and optional `data`. */
export class RemoteError extends SenteError {
  constructor(error) {
    const code = typeof error?.code === "string" ? error.code : "internal";
    const message = typeof error?.message === "string" ? error.message : String(error);
    super(code, message);
    this.name = "RemoteError";
    /** Details the server attached, if any. */
    this.data = error?.data;
  }
}

/** The server cancelled its request (`sl/cancel`): the reason of the handler's aborted `signal`. */
export class CancelledError extends SenteError {
  constructor(message = "the request was cancelled") {
    super("cancelled", message);
    this.name = "CancelledError";
  }
}

/** The send queue is full (the event was dropped), or too many requests are in flight. */
export class QueueFullError extends SenteError {
  constructor(code, message) {
    super(code, message);
    this.name = "QueueFullError";
  }
}

/** The connection could not be opened; `retryable` tells whether trying again may help. */
export class ConnectError extends SenteError {
  constructor(code, message, retryable, details = {}) {
    super(code, message);
    this.name = "ConnectError";
    this.retryable = retryable;
    Object.assign(this, details);
  }
}

// ---------------------------------------------------------------- channels

/**
 * The name of a typed channel: `pattern` (such as `room/{name}`) with each
 * `{param}` segment replaced by `String(params[param])`, in which `%` is
 * written `%25` and `/` is written `%2F`, exactly as the Rust API writes it.
 *
 *   channelName("org/{org}/room/{name}", { org: 7, name: "a/b" }); // "org/7/room/a%2Fb"
 */
export function channelName(pattern, params) {
  if (typeof pattern !== "string" || pattern.length === 0) {
    throw new TypeError("a channel pattern is a non-empty string");
  }
  return pattern
    .split("/")
    .map((segment) => {
      const param = /^\{([^{}]+)\}$/.exec(segment)?.[1];
      if (param === undefined) return segment;
      const value = params?.[param];
      if (value === undefined || value === null) {
        throw new TypeError(`channel pattern \`${pattern}\` needs the parameter \`${param}\``);
      }
      return String(value).replaceAll("%", "%25").replaceAll("/", "%2F");
    })
    .join("/");
}

// ---------------------------------------------------------------- backoff

/**
 * The upper bound of the delay before reconnection attempt `attempt` (0-based):
 * `min(maxDelayMs, initialDelayMs × multiplier^attempt)`.
 */
export function backoffCeiling(policy, attempt) {
  const p = { ...DEFAULTS.reconnect, ...policy };
  const multiplier = Number.isFinite(p.multiplier) && p.multiplier >= 1 ? p.multiplier : 1;
  const ms = p.initialDelayMs * multiplier ** attempt;
  return ms < p.maxDelayMs ? ms : p.maxDelayMs;
}

/** The delay before attempt `attempt`: full jitter, uniform in `[0, ceiling)`. */
export function backoffDelay(policy, attempt, random = Math.random) {
  return backoffCeiling(policy, attempt) * random();
}

// ---------------------------------------------------------------- helpers

function checkEventId(id) {
  if (typeof id !== "string" || id.length > 128 || !EVENT_ID.test(id) || id.startsWith("sl/")) {
    throw new TypeError(
      `invalid event id ${JSON.stringify(id)}: an id is \`namespace/name\` using lowercase ASCII letters, digits, \`_\`, \`-\` and \`.\``,
    );
  }
}

function now() {
  return globalThis.performance?.now ? performance.now() : Date.now();
}

/**
 * The position to keep after seeing `seen` with `held` kept: the larger offset
 * within an epoch, `seen` when its epoch differs (the server lost the channel's
 * history and what it reports now counts). Publications may arrive before the
 * answer to their subscription, which then reports a smaller position.
 */
function advancePosition(held, seen) {
  if (seen == null) return held;
  if (held != null && held.epoch === seen.epoch && held.offset >= seen.offset) return held;
  return seen;
}

function byUserId(a, b) {
  return a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0;
}

/** A relative url (`/ws?name=ada`) is resolved against the page's location. */
function resolveUrl(url) {
  if (/^wss?:\/\//i.test(url)) return url;
  const location = globalThis.location;
  if (!location) {
    throw new TypeError(`url ${JSON.stringify(url)} is not absolute (ws://host:port/path)`);
  }
  const resolved = new URL(url, location.href);
  resolved.protocol = resolved.protocol === "https:" ? "wss:" : "ws:";
  return resolved.href;
}

/** A refused upgrade: retried by default for 408, 429 and 5xx only. */
function rejectedError(status, message) {
  const retryable = status >= 500 || status === 408 || status === 429;
  return new ConnectError("rejected", message, retryable, { status });
}

/**
 * Asks the server what it answers an upgrade from `wsUrl` (its probe,
 * docs/PROTOCOL.md section 5): a `rejected` error for a 4xx or 5xx answer,
 * `null` when it would accept, or cannot be asked.
 */
async function probeRefusal(wsUrl, fetchFn, timeoutMs) {
  if (typeof fetchFn !== "function") return null;
  let url;
  try {
    url = new URL(wsUrl);
    url.protocol = url.protocol === "wss:" ? "https:" : "http:";
    url.searchParams.append("sl_probe", "1");
  } catch {
    return null;
  }
  try {
    const response = await fetchFn(url.href, {
      credentials: "include",
      cache: "no-store",
      signal: AbortSignal.timeout(timeoutMs),
    });
    // 426: a server without the probe answered as to any plain GET.
    if (response.status < 400 || response.status === 426) return null;
    const body = (await response.text()).trim();
    return rejectedError(response.status, `the server refuses the connection with HTTP ${response.status}: ${body}`);
  } catch {
    return null;
  }
}

/** The url without its query (which may carry a token), for messages. */
function displayUrl(url) {
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

function describeValue(value) {
  if (value instanceof Error) return value.stack || `${value.name}: ${value.message}`;
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** `text` in at most `max` characters (UTF-16 units), ending with `…` when cut. */
function cutText(text, max) {
  if (text.length <= max) return text;
  let end = max - 1;
  // Never split a surrogate pair: a lone half is not valid JSON for the server.
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${text.slice(0, end)}…`;
}

function timer(ms, fn) {
  const handle = setTimeout(fn, ms);
  return handle;
}

/** The bytes of a binary message (`ArrayBuffer`, a typed array or a Node `Buffer`), or `null`. */
function bytesOf(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/** Whether `data` is a compressed frame: a binary message starting with kind 17. */
function isCompressed(data) {
  const bytes = typeof data === "string" ? null : bytesOf(data);
  return bytes !== null && bytes.length > 0 && bytes[0] === 0x11;
}

/**
 * The JSON text inside compressed frame `data` (raw DEFLATE after two bytes:
 * kind 17 and the inside's encoding, which must be JSON here), inflated to
 * at most `MAX_INFLATED` bytes.
 */
async function inflateFrame(data) {
  const bytes = bytesOf(data);
  if (bytes.length < 2 || bytes[1] !== 0) {
    throw new Error("this client reads compressed JSON frames only");
  }
  const reader = new Blob([bytes.subarray(2)]).stream().pipeThrough(new DecompressionStream("deflate-raw")).getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > MAX_INFLATED) {
      await reader.cancel();
      throw new Error(`it inflates to more than ${MAX_INFLATED} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(all);
}

/** Whether `value` is a request id as JSON frames carry it: an integer in `0 ..= 2^53 - 1`. */
function isRequestId(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

/** `promise`, or a rejection with `signal`'s reason as soon as it is aborted. */
function untilAborted(promise, signal) {
  if (signal === null) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/**
 * Keeps a connection's frames within the rate the server announced in its
 * handshake (`limits.rate_per_sec`, `limits.rate_burst`): a token bucket
 * refilled at the sustained rate, holding half the burst (the other half is
 * margin for frames the network delivers bunched). `null` when the server
 * announces no rate.
 */
class Pacer {
  static from(limits) {
    const rate = limits?.rate_per_sec ?? 0;
    if (!(rate > 0)) return null;
    return new Pacer(rate, limits.rate_burst ?? rate);
  }

  constructor(ratePerSec, burst) {
    this.rate = ratePerSec;
    this.capacity = Math.max(1, Math.floor(burst / 2));
    this.tokens = this.capacity;
    this.last = now();
  }

  /** Whether a frame may go now. */
  ready() {
    const t = now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    return this.tokens >= 1;
  }

  /** Counts a frame sent (control frames go at once and may run the bucket below zero). */
  spend() {
    this.tokens -= 1;
  }

  /** Milliseconds until the next frame may go. */
  waitMs() {
    return Math.max(1, Math.ceil(((1 - this.tokens) / this.rate) * 1000));
  }
}

// ---------------------------------------------------------------- schema

/** The path where a server publishes its schema description. */
export const SCHEMA_PATH = "/schema";

// The largest description this client reads (8 MiB), as the Rust client.
const MAX_SCHEMA_BYTES = 8 * 1024 * 1024;
const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/**
 * A JSON value in the canonical form the schema hash is computed over
 * (docs/PROTOCOL.md, "Schema hash"): RFC 8785 (no whitespace, members sorted
 * by UTF-16 code units, `JSON.stringify`'s strings and numbers), except that
 * the value of a `properties` member of a sorted object keeps its members'
 * order.
 */
export function canonicalJson(value) {
  return canonical(value, false);
}

function canonical(value, keepOrder) {
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value);
    return text === undefined ? "null" : text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => canonical(item, false)).join(",")}]`;
  }
  const names = Object.keys(value);
  if (!keepOrder) names.sort();
  const members = names.map(
    (name) => `${JSON.stringify(name)}:${canonical(value[name], !keepOrder && name === "properties")}`,
  );
  return `{${members.join(",")}}`;
}

/**
 * The schema hash of a description (`{ events: [{ id, kind, payload, reply }] }`),
 * computed from its events, as 16 lowercase hex digits: what a server sends in
 * its handshake.
 */
export function schemaHash(description) {
  const lines = (description?.events ?? []).map(
    (event) =>
      `${event.id}\t${event.kind}\t${canonicalJson(event.payload)}\t${
        event.reply == null ? "" : canonicalJson(event.reply)
      }\n`,
  );
  lines.sort();
  let hash = FNV64_OFFSET;
  const encoder = new TextEncoder();
  for (const line of lines) {
    for (const byte of encoder.encode(line)) {
      hash = ((hash ^ BigInt(byte)) * FNV64_PRIME) & MASK64;
    }
  }
  return hash.toString(16).padStart(16, "0");
}

/**
 * The events on which two descriptions disagree, sorted by id:
 * `{ id, kind: "only-ours" | "only-theirs" }`, or
 * `{ id, kind: "shape", payload, reply }` where `payload` and `reply` say which
 * shapes differ (`reply` also when one side declares a request and the other a
 * one-way event).
 */
export function schemaDifferences(ours, theirs) {
  const byId = (description) => new Map((description?.events ?? []).map((event) => [event.id, event]));
  const mine = byId(ours);
  const other = byId(theirs);
  const shapeOf = (value) => (value == null ? null : canonicalJson(value));
  const out = [];
  for (const [id, event] of mine) {
    const them = other.get(id);
    if (!them) {
      out.push({ id, kind: "only-ours" });
      continue;
    }
    const payload = shapeOf(event.payload) !== shapeOf(them.payload);
    const reply = event.kind !== them.kind || shapeOf(event.reply) !== shapeOf(them.reply);
    if (payload || reply) out.push({ id, kind: "shape", payload, reply });
  }
  for (const id of other.keys()) {
    if (!mine.has(id)) out.push({ id, kind: "only-theirs" });
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The `http(s)://host/schema` of a `ws(s)://host/path` url. */
export function schemaUrlOf(wsUrl) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = SCHEMA_PATH;
  url.search = "";
  url.hash = "";
  return url.href;
}

/** Reads the server's description; throws with a message saying why not. */
async function fetchDescription(url, fetchFn, timeoutMs) {
  if (typeof fetchFn !== "function") {
    throw new Error("no fetch: pass one as `options.fetch`");
  }
  const response = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (response.status === 404) {
    throw new Error(`the server does not publish its schema (${url} answered 404)`);
  }
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  const length = Number(response.headers.get("content-length") ?? 0);
  if (length > MAX_SCHEMA_BYTES) {
    throw new Error(`${url} sent ${length} bytes, more than ${MAX_SCHEMA_BYTES}`);
  }
  const text = await response.text();
  if (text.length > MAX_SCHEMA_BYTES) {
    throw new Error(`${url} sent more than ${MAX_SCHEMA_BYTES} bytes`);
  }
  const description = JSON.parse(text);
  if (!Array.isArray(description?.events)) throw new Error(`${url} is not a schema description`);
  return description;
}

// ---------------------------------------------------------------- presence

/**
 * The members of one channel, as a presence watch keeps them: a snapshot, then
 * the diffs that follow it (docs/PROTOCOL.md, section 8, "Presence"). Diffs
 * given while a snapshot is expected wait and apply after it, in order;
 * within a diff `left` applies before `joined`, and a `joined` member already
 * known replaces its entry. The client keeps one per watched channel; it is
 * exported for code that follows presence frames itself.
 *
 *   const set = new PresenceSet();
 *   const token = set.expect();                          // `sl/presence` sent
 *   set.apply({ joined: [{ user_id: "cy", info: null }], left: [] });  // waits
 *   set.snapshot([{ user_id: "ada", info: null }], token);             // ada, cy
 */
export class PresenceSet {
  constructor() {
    this._members = new Map();
    this._early = null;
    this._live = false;
    this._token = 0;
  }

  /** Whether a snapshot was applied and diffs apply as they come. */
  get live() {
    return this._live;
  }

  /** Whether the set follows the server: live, or expecting a snapshot. */
  get following() {
    return this._live || this._early !== null;
  }

  /** A snapshot is on its way: diffs wait for it. Returns the token to apply it with. */
  expect() {
    this._token += 1;
    this._early = [];
    this._live = false;
    return this._token;
  }

  /**
   * Applies the snapshot expected with `token`, then the diffs that waited.
   * Returns `false`, changing nothing, when `token` is not the last
   * expectation or it was stopped.
   */
  snapshot(members, token) {
    if (token !== this._token || this._early === null) return false;
    this._members = new Map();
    for (const member of members) this._members.set(member.user_id, presenceMember(member));
    const early = this._early;
    this._early = null;
    this._live = true;
    for (const diff of early) this._applyNow(diff);
    return true;
  }

  /** The snapshot expected with `token` will not come: the set stops following. */
  abandon(token) {
    if (token === this._token && this._early !== null) this._early = null;
  }

  /** Stops following: diffs are ignored, and a snapshot on its way will not apply. */
  stop() {
    this._token += 1;
    this._early = null;
    this._live = false;
  }

  /**
   * Takes a diff `{ joined, left }`. Returns what changed, `{ joined, left }`
   * (either may be empty), or `null` when the diff waits for a snapshot or
   * the set does not follow.
   */
  apply(diff) {
    if (this._early !== null) {
      this._early.push(diff);
      return null;
    }
    return this._live ? this._applyNow(diff) : null;
  }

  _applyNow(diff) {
    const left = [];
    for (const user of diff?.left ?? []) {
      if (this._members.delete(user)) left.push(user);
    }
    const joined = [];
    for (const member of diff?.joined ?? []) {
      const known = this._members.get(member.user_id);
      const next = presenceMember(member);
      if (!known || JSON.stringify(known.info) !== JSON.stringify(next.info)) {
        this._members.set(next.user_id, next);
        joined.push(next);
      }
    }
    return { joined, left };
  }

  /** The members, `{ user_id, info }`, sorted by `user_id`. */
  members() {
    return [...this._members.values()].sort(byUserId);
  }
}

function presenceMember(member) {
  return { user_id: member.user_id, info: member.info ?? null };
}

// ---------------------------------------------------------------- client

/**
 * A connection to a sente-lite server that reconnects by itself.
 *
 * `url` is `ws://host:port/path?query`, a path relative to the page
 * (`/ws?name=ada`) in a browser, or a function returning either (or a promise
 * of either), called before every attempt to put a fresh token in the query;
 * a promise that rejects fails the attempt with `credentials`, retried. A
 * browser cannot read why the server refused an upgrade, so after an attempt
 * that closed before it opened the client asks the server's probe (PROTOCOL.md
 * section 5); a refusal (`rejected`, with its `status`) stops the client
 * unless `onRejected` says to retry. Nothing happens until `connect()`.
 */
export class Client {
  constructor(url, options = {}) {
    this._url = url;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== "function") {
      throw new TypeError(
        "no WebSocket: pass a constructor, such as the `ws` package's, as `options.WebSocket`",
      );
    }
    this._policy = { ...DEFAULTS.reconnect, ...options.reconnect };
    this._requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this._connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this._queueCapacity = options.queueCapacity ?? DEFAULTS.queueCapacity;
    this._maxInFlight = options.maxInFlight ?? DEFAULTS.maxInFlight;
    this._maxPeerRequests = options.maxPeerRequests ?? DEFAULTS.maxPeerRequests;
    this._onResubscribe = options.onResubscribe ?? null;
    this._gapListeners = new Set();
    if (options.onGap) this._gapListeners.add(options.onGap);
    this._presence = new Map();
    this._onProtocolError = options.onProtocolError ?? null;
    this._onRejected = options.onRejected ?? null;
    this._schema = options.schema ?? null;
    this._schemaHash = this._schema ? schemaHash(this._schema) : null;
    this._schemaUrl = options.schemaUrl ?? null;
    this._onSchemaMismatch = options.onSchemaMismatch ?? null;
    this._fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    /** Server hashes already compared, so each is fetched and reported once. */
    this._schemaChecked = new Set();
    this._schemaMismatch = null;
    this._random = options.random ?? Math.random;

    this._state = "closed";
    this._stateListeners = new Set();
    if (options.onState) this._stateListeners.add(options.onState);
    this._handlers = new Map();
    this._requestsCancelled = 0;
    this._queue = [];
    this._subscriptions = new Map();
    /** Typed channels joined with `join`: their handlers, by channel name. */
    this._joined = new Map();
    this._nextReqId = 1;
    this._conn = null;
    this._attemptSocket = null;
    this._attempt = 0;
    this._waitTimer = null;
    this._wakeWait = null;
    this._lastError = null;
    this._lastClose = null;
    this._stopped = true;
    this._disconnected = false;
    this._waiters = new Set();
    this._telemetry = new Telemetry(this, options.telemetry);
    this._onOnline = null;
  }

  // ------------------------------------------------------------ state

  /** The connection's state: one of `STATES`. */
  get state() {
    return this._state;
  }

  /** The schema hash of `options.schema`, or `null` without one. */
  get schemaHash() {
    return this._schemaHash;
  }

  /**
   * The last schema mismatch with a server, `{ ours, theirs, differences, error }`,
   * or `null` while the hashes agree (or no `options.schema` was given).
   */
  get schemaMismatch() {
    return this._schemaMismatch;
  }

  /** The open connection's handshake (`conn_id`, `user_id`, `heartbeat`, ...), or `null`. */
  get handshake() {
    return this._conn?.handshake ?? null;
  }

  /** The open connection's id on the server, or `null`. */
  get connId() {
    return this._conn?.handshake.conn_id ?? null;
  }

  /** The user the server authenticated this connection as, or `null`. */
  get userId() {
    return this._conn?.handshake.user_id ?? null;
  }

  /** The error of the last failed connection attempt, or `null`. */
  get lastError() {
    return this._lastError;
  }

  /**
   * Requests of the server's that it cancelled (`sl/cancel`) while their
   * handler ran: the handler's `signal` was aborted and no reply was sent.
   */
  get requestsCancelled() {
    return this._requestsCancelled;
  }

  /** The last `sl/close` the server sent (`code`, `message`, `reconnect_after_ms`), or `null`. */
  get lastClose() {
    return this._lastClose;
  }

  /** Events waiting in the send queue. */
  get queued() {
    return this._queue.length;
  }

  /** Calls `listener(state, previous)` on every state change; returns a function that stops it. */
  onState(listener) {
    this._stateListeners.add(listener);
    return () => this._stateListeners.delete(listener);
  }

  /**
   * Calls `listener(channel, reply)` whenever publications on a channel were
   * missed: the client subscribed with the position it had seen (after a
   * reconnect, or subscribing again to a channel it keeps) and the server
   * answered `recovered: false` (it lost the channel, or no longer holds what
   * came after that position). Reload the channel's state then; publications
   * after `reply.position` follow. Returns a function that stops it.
   *
   *   client.onGap((channel) => reloadRoom(channel));
   */
  onGap(listener) {
    this._gapListeners.add(listener);
    return () => this._gapListeners.delete(listener);
  }

  /**
   * Resolves once the client is in `state`; rejects with a `TimeoutError`
   * after `timeoutMs` (default: the request timeout).
   */
  waitFor(state, timeoutMs = this._requestTimeoutMs) {
    if (this._state === state) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = timer(timeoutMs, () => {
        off();
        reject(new TimeoutError(timeoutMs, `state \`${state}\` (it is \`${this._state}\`)`));
      });
      const off = this.onState((s) => {
        if (s === state) {
          clearTimeout(t);
          off();
          resolve();
        }
      });
    });
  }

  _setState(state) {
    if (this._state === state) return;
    const previous = this._state;
    this._state = state;
    for (const listener of [...this._stateListeners]) {
      try {
        listener(state, previous);
      } catch (err) {
        console.error("sente-lite: a state listener threw", err);
      }
    }
    for (const waiter of [...this._waiters]) waiter(state);
    this._telemetry.stateChanged();
  }

  // ------------------------------------------------------------ lifecycle

  /**
   * Starts connecting (and reconnecting whenever the connection is lost).
   * Resolves when the connection is open; rejects when the client enters
   * `failed` or `closed` first. Every attempt, the first included, follows the
   * reconnection policy. In `failed`, starts over with a fresh backoff.
   */
  connect() {
    const opened = this._untilOpen();
    if (this._state === "failed") {
      this.reconnect();
    } else if (this._stopped) {
      this._stopped = false;
      this._disconnected = false;
      this._attempt = 0;
      this._watchOnline(true);
      this._setState("connecting");
      this._open();
    }
    return opened;
  }

  _untilOpen() {
    if (this._state === "open") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = (state) => {
        if (state === "open") {
          this._waiters.delete(waiter);
          resolve();
        } else if (state === "failed" || state === "closed") {
          this._waiters.delete(waiter);
          reject(this._lastError ?? new ClosedError("the client stopped before connecting"));
        }
      };
      this._waiters.add(waiter);
    });
  }

  /**
   * Drops the current connection and connects again at once; while waiting
   * between attempts, skips the wait; in `failed`, starts trying again with a
   * fresh backoff. Does nothing on a disconnected client.
   */
  reconnect() {
    if (this._stopped) return;
    if (this._conn) {
      this._endConnection(this._conn, { forced: true, reason: "client reconnecting" });
    } else if (this._state === "failed") {
      this._attempt = 0;
      this._open();
    } else if (this._wakeWait) {
      this._wakeWait();
    } else if (this._attemptSocket) {
      this._abandonAttempt();
      this._open();
    }
  }

  /**
   * Closes the connection gracefully (`closing`, then `closed`) and stops
   * reconnecting. Queued events are written before the close when a
   * connection is open; otherwise they are dropped. Resolves when closed.
   */
  async disconnect() {
    if (this._stopped && this._state === "closed") return;
    this._stopped = true;
    this._disconnected = true;
    this._watchOnline(false);
    this._setState("closing");
    this._telemetry.flush();
    this._clearWait();
    this._abandonAttempt();
    const conn = this._conn;
    if (conn) {
      await this._drainQueue(conn);
      this._sendRaw(conn, ["sl/close", { code: "going-away", message: "client disconnecting", reconnect_after_ms: null }]);
      const closed = new Promise((resolve) => {
        conn.onGone = resolve;
        timer(CLOSE_GRACE_MS, resolve);
      });
      try {
        conn.ws.close(1000, "client disconnecting");
      } catch {
        /* already closing */
      }
      await closed;
      this._dropConnection(conn);
    }
    this._queue.length = 0;
    this._setState("closed");
  }

  // In a browser, coming back online skips the backoff wait.
  _watchOnline(on) {
    const target = globalThis.window;
    if (!target?.addEventListener) return;
    if (on && !this._onOnline) {
      this._onOnline = () => {
        if (this._state === "reconnecting") this.reconnect();
      };
      target.addEventListener("online", this._onOnline);
    } else if (!on && this._onOnline) {
      target.removeEventListener("online", this._onOnline);
      this._onOnline = null;
    }
  }

  // ------------------------------------------------------------ attempts

  async _open() {
    if (this._stopped) return;
    if (this._attempt > 0 || this._state !== "connecting") this._setState("reconnecting");
    // The attempt exists from now on, so that `_abandonAttempt` ends it while
    // its url is being made or its refusal probed.
    const attempt = { ws: null, url: null, done: false, closeFloorMs: null, timer: null };
    this._attemptSocket = attempt;
    const fail = (error) => {
      if (attempt.done) return;
      this._endAttempt(attempt);
      this._attemptFailed(error, attempt.closeFloorMs);
    };
    let given;
    try {
      given = typeof this._url === "function" ? this._url() : this._url;
    } catch (err) {
      fail(new ConnectError("invalid-url", err.message, false));
      return;
    }
    if (typeof given?.then === "function") {
      // An async url function: fetching credentials may fail for a while.
      try {
        given = await given;
      } catch (err) {
        fail(new ConnectError("credentials", `no url for the connection: ${err?.message ?? err}`, true));
        return;
      }
      if (attempt.done) return;
    }
    let url;
    try {
      url = resolveUrl(given);
    } catch (err) {
      fail(new ConnectError("invalid-url", err.message, false));
      return;
    }
    attempt.url = url;
    let ws;
    try {
      ws = new this._WebSocket(url, [SUBPROTOCOL]);
      // Compressed frames come as binary messages: read them as bytes.
      ws.binaryType = "arraybuffer";
    } catch (err) {
      fail(new ConnectError("invalid-url", `cannot open ${displayUrl(url)}: ${err.message}`, false));
      return;
    }
    attempt.ws = ws;
    attempt.timer = timer(this._connectTimeoutMs, () =>
      fail(new ConnectError("connect-timeout", `no handshake from ${displayUrl(url)} within ${this._connectTimeoutMs} ms`, true)),
    );
    let opened = false;
    ws.onopen = () => {
      opened = true;
      if (ws.protocol !== SUBPROTOCOL) {
        fail(new ConnectError("subprotocol-refused", `the server did not accept subprotocol ${SUBPROTOCOL} (it answered ${JSON.stringify(ws.protocol)})`, false));
      }
    };
    ws.onerror = (event) => {
      // Node's `ws` says why an upgrade was refused; browsers never do.
      const status = /Unexpected server response: (\d+)/.exec(event?.message ?? event?.error?.message ?? "");
      if (status) fail(rejectedError(Number(status[1]), `the server refused the WebSocket upgrade with HTTP ${status[1]}`));
    };
    ws.onclose = (event) => {
      const closed = new ConnectError("closed-before-handshake", `the connection to ${displayUrl(url)} ended before the server's handshake (close code ${event?.code})`, true, { closeCode: event?.code });
      if (attempt.done || opened || event?.code !== 1006) {
        fail(closed);
        return;
      }
      // Never opened, no status: ask the server whether it refused us.
      detach(ws);
      probeRefusal(url, this._fetch, this._connectTimeoutMs).then((refused) => fail(refused ?? closed));
    };
    ws.onmessage = (event) => {
      if (attempt.done) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        fail(new ConnectError("invalid-handshake", "the server's first frame is not JSON", false));
        return;
      }
      if (Array.isArray(frame) && frame[0] === "sl/close") {
        attempt.closeFloorMs = frame[1]?.reconnect_after_ms ?? null;
        this._lastClose = frame[1] ?? null;
        fail(new ConnectError("closed-before-handshake", `the server is closing: ${frame[1]?.message}`, true));
        return;
      }
      if (!Array.isArray(frame) || frame[0] !== "sl/handshake" || typeof frame[1] !== "object" || frame[1] === null) {
        fail(new ConnectError("not-a-handshake", "the server's first frame is not `sl/handshake`", false));
        return;
      }
      const handshake = frame[1];
      if (handshake.version !== PROTOCOL_VERSION) {
        fail(new ConnectError("unsupported-version", `the server speaks protocol version ${handshake.version}; this client speaks ${PROTOCOL_VERSION}`, false));
        return;
      }
      attempt.done = true;
      clearTimeout(attempt.timer);
      this._attemptSocket = null;
      this._opened(ws, handshake);
    };
  }

  _abandonAttempt() {
    if (this._attemptSocket) this._endAttempt(this._attemptSocket);
  }

  /** Marks `attempt` over and closes its socket, if it has one. */
  _endAttempt(attempt) {
    attempt.done = true;
    clearTimeout(attempt.timer);
    if (attempt.ws) {
      detach(attempt.ws);
      closeQuietly(attempt.ws);
    }
    if (this._attemptSocket === attempt) this._attemptSocket = null;
  }

  _attemptFailed(error, floorMs = null) {
    this._lastError = error;
    if (this._stopped) return;
    if (error.code === "rejected" && this._onRejected) {
      const decision = this._onRejected({ status: error.status, message: error.message, attempt: this._attempt });
      error.retryable = decision === "retry";
    }
    if (!error.retryable) {
      this._setState("failed");
      return;
    }
    this._pause(floorMs);
  }

  /** Waits before the next attempt, or gives up when the policy allows no more. */
  _pause(floorMs) {
    const max = this._policy.maxAttempts;
    if (max != null && this._attempt >= max) {
      this._setState("failed");
      return;
    }
    const jittered = backoffDelay(this._policy, this._attempt, this._random);
    this._attempt += 1;
    const delay = floorMs != null ? Math.max(jittered, floorMs) : jittered;
    this._setState("reconnecting");
    this._waitTimer = timer(delay, () => {
      this._waitTimer = null;
      this._wakeWait = null;
      this._open();
    });
    this._wakeWait = () => {
      this._clearWait();
      this._open();
    };
  }

  _clearWait() {
    clearTimeout(this._waitTimer);
    this._waitTimer = null;
    this._wakeWait = null;
  }

  // ------------------------------------------------------------ schema

  /**
   * Compares the server's schema hash with ours, once per server hash; on a
   * difference, fetches the server's description and reports the events
   * whose shapes differ.
   */
  _checkSchema(wsUrl, theirs) {
    if (this._schemaHash == null || typeof theirs !== "string") return;
    if (theirs === this._schemaHash) {
      this._schemaMismatch = null;
      return;
    }
    if (this._schemaChecked.has(theirs)) return;
    this._schemaChecked.add(theirs);
    const ours = this._schemaHash;
    let url;
    try {
      url = this._schemaUrl ?? schemaUrlOf(wsUrl);
    } catch (err) {
      this._reportSchema({ ours, theirs, differences: null, error: `no schema url: ${err.message}` });
      return;
    }
    fetchDescription(url, this._fetch, this._connectTimeoutMs).then(
      (description) => {
        const recomputed = schemaHash(description);
        const note =
          recomputed === theirs
            ? null
            : `the description at ${url} hashes to ${recomputed}, not the handshake's ${theirs}`;
        this._reportSchema({ ours, theirs, differences: schemaDifferences(this._schema, description), error: note });
      },
      (err) => this._reportSchema({ ours, theirs, differences: null, error: err.message }),
    );
  }

  _reportSchema(mismatch) {
    this._schemaMismatch = Object.freeze(mismatch);
    if (this._onSchemaMismatch) this._onSchemaMismatch(this._schemaMismatch);
  }

  // ------------------------------------------------------------ connection

  _opened(ws, handshake) {
    this._attempt = 0;
    this._lastError = null;
    const heartbeat = handshake.heartbeat ?? {};
    const silenceLimit = Math.max(
      MIN_SILENCE_LIMIT_MS,
      (heartbeat.interval_ms ?? 25_000) + (heartbeat.timeout_ms ?? 10_000),
    );
    const conn = {
      ws,
      handshake,
      pending: new Map(),
      peerRequests: 0,
      // The server's requests being handled: request id -> AbortController.
      peerHandlers: new Map(),
      // Frames read after a compressed one wait for it to be inflated, so
      // that they are handled in order: the last of them, or null.
      inflating: null,
      lastFrameAt: now(),
      silenceLimit,
      closeFloorMs: null,
      ended: false,
      onGone: null,
      ticker: null,
      pacer: Pacer.from(handshake.limits),
      flushTimer: null,
      // Channels with an `sl/sub` unanswered on this connection: a promise
      // settled once every one of them is answered.
      subscribing: new Map(),
    };
    this._conn = conn;
    this._checkSchema(ws.url, handshake.schema_hash);
    ws.onmessage = (event) => {
      conn.lastFrameAt = now();
      this._receive(conn, event.data);
    };
    ws.onclose = (event) => {
      if (conn.onGone) conn.onGone();
      if (!this._stopped) {
        this._endConnection(conn, { reason: `the connection closed (${event?.code} ${event?.reason ?? ""})`.trim() });
      }
    };
    ws.onerror = () => {};
    const tick = Math.min(1000, Math.max(25, silenceLimit / 4));
    conn.ticker = setInterval(() => {
      if (now() - conn.lastFrameAt > silenceLimit) {
        this._endConnection(conn, { reason: `the server was silent for more than ${silenceLimit} ms`, code: 4000 });
      }
    }, tick);

    // The extensions whose frames this client takes, before anything else.
    const taken = [];
    if (handshake.extensions?.includes(EXTENSION_CANCEL)) taken.push(EXTENSION_CANCEL);
    if (handshake.extensions?.includes(EXTENSION_COMPRESSION) && typeof DecompressionStream === "function") {
      taken.push(EXTENSION_COMPRESSION);
    }
    if (taken.length > 0) this._sendRaw(conn, ["sl/extensions", taken]);
    // Subscriptions are restored before anything queued goes out.
    for (const [channel, since] of this._subscriptions) {
      this._restore(conn, channel, since);
    }
    this._flushQueue(conn);
    this._setState("open");
    this._telemetry.flush();
  }

  /** Ends a live connection: fails its requests, then reconnects (unless stopped). */
  _endConnection(conn, { reason, forced = false, code = 1000 }) {
    if (conn.ended) return;
    this._dropConnection(conn);
    if (code === 4000 && typeof conn.ws.terminate === "function") {
      conn.ws.terminate();
    } else {
      this._sendRaw(conn, ["sl/close", { code: "going-away", message: reason, reconnect_after_ms: null }]);
      closeQuietly(conn.ws, code, code === 4000 ? "heartbeat timeout" : "client reconnecting");
    }
    if (this._stopped) return;
    if (forced) {
      this._setState("reconnecting");
      this._open();
    } else {
      this._pause(conn.closeFloorMs);
    }
  }

  _dropConnection(conn) {
    if (conn.ended) return;
    conn.ended = true;
    clearInterval(conn.ticker);
    clearTimeout(conn.flushTimer);
    // Requests still queued for this connection were failed below: they must
    // not go out on the next one.
    this._queue = this._queue.filter((entry) => typeof entry === "string" || entry.conn !== conn);
    detach(conn.ws);
    if (this._conn === conn) this._conn = null;
    // The server forgot this connection's presence watches.
    for (const { set } of this._presence.values()) set.stop();
    for (const entry of conn.pending.values()) entry.fail(new ClosedError());
    conn.pending.clear();
    // The server's requests are no longer wanted: their replies cannot go out.
    for (const controller of conn.peerHandlers.values()) {
      controller.abort(new ClosedError("the connection closed before the handler finished"));
    }
    conn.peerHandlers.clear();
  }

  _sendRaw(conn, frame) {
    if (conn.ended && frame[0] !== "sl/close") return false;
    try {
      this._transmit(conn, typeof frame === "string" ? frame : JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends everything queued, at the server's announced rate, then resolves. */
  async _drainQueue(conn) {
    this._flushQueue(conn);
    while (this._queue.length > 0 && !conn.ended) {
      await new Promise((resolve) => setTimeout(resolve, conn.pacer ? conn.pacer.waitMs() : 0));
      this._flushQueue(conn);
    }
  }

  /** Writes one frame, counting it against the server's announced rate. */
  _transmit(conn, text) {
    conn.pacer?.spend();
    conn.ws.send(text);
  }

  /**
   * Sends what waits in the queue, in order, as fast as the server's
   * announced rate allows; the rest goes when the rate allows more.
   */
  _flushQueue(conn) {
    while (this._queue.length > 0 && !conn.ended && (conn.pacer === null || conn.pacer.ready())) {
      const entry = this._queue.shift();
      this._transmit(conn, typeof entry === "string" ? entry : entry.text);
    }
    if (this._queue.length > 0 && !conn.ended && conn.flushTimer === null) {
      conn.flushTimer = setTimeout(() => {
        conn.flushTimer = null;
        this._flushQueue(conn);
      }, conn.pacer.waitMs());
    }
  }

  // ------------------------------------------------------------ frames

  /**
   * Takes one message: a compressed frame is inflated first (asynchronously),
   * and what arrives meanwhile waits behind it, in order.
   */
  _receive(conn, data) {
    const compressed = isCompressed(data);
    if (!compressed && conn.inflating === null) {
      this._onFrame(conn, data);
      return;
    }
    const step = (conn.inflating ?? Promise.resolve())
      .then(async () => {
        const frame = compressed ? await inflateFrame(data) : data;
        if (!conn.ended) this._onFrame(conn, frame);
      })
      .catch((err) => {
        if (!conn.ended) this._protocolError(conn, { code: "bad-frame", message: `a compressed frame: ${err?.message ?? err}` });
      });
    conn.inflating = step;
    step.then(() => {
      if (conn.inflating === step) conn.inflating = null;
    });
  }

  _onFrame(conn, data) {
    if (typeof data !== "string") {
      this._protocolError(conn, { code: "bad-frame", message: "this client speaks the JSON encoding: binary frames are not expected" });
      return;
    }
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      this._protocolError(conn, { code: "bad-frame", message: "not valid JSON" });
      return;
    }
    if (!Array.isArray(frame) || typeof frame[0] !== "string") {
      this._protocolError(conn, { code: "bad-frame", message: "a frame is a JSON array starting with a string" });
      return;
    }
    const [kind] = frame;
    switch (kind) {
      case "sl/ping":
        this._sendRaw(conn, ["sl/pong", frame[1]]);
        return;
      case "sl/pong":
        return;
      case "sl/ok":
      case "sl/err": {
        const entry = conn.pending.get(frame[1]);
        if (!entry) return; // a late reply: its request timed out
        conn.pending.delete(frame[1]);
        if (kind === "sl/ok") entry.settle(frame[2] ?? null);
        else entry.fail(new RemoteError(frame[2]));
        return;
      }
      case "sl/pub": {
        const [, channel, id, payload, position] = frame;
        // Also before the answer to the subscription: it may report less.
        if (position != null && this._subscriptions.has(channel)) {
          this._subscriptions.set(channel, advancePosition(this._subscriptions.get(channel), position));
        }
        const joined = this._joined.get(channel);
        if (joined) {
          // A joined channel's publications go to its own handlers only.
          const handler = Object.hasOwn(joined, id) ? joined[id] : undefined;
          if (typeof handler === "function") {
            this._call1(id, handler, payload, { channel, position: position ?? null });
          } else {
            console.warn(`sente-lite: channel \`${channel}\` delivered \`${id}\`, which it has no handler for`);
          }
          return;
        }
        this._dispatch(conn, id, payload, { channel, position: position ?? null });
        return;
      }
      case "sl/presence-diff":
        this._onPresenceDiff(frame[1], frame[2]);
        return;
      case "sl/resub":
        this._resubscribeAsked(conn, frame[1]?.channel);
        return;
      case "sl/cancel": {
        const reqId = frame[1];
        if (frame.length !== 2 || !isRequestId(reqId)) {
          this._protocolError(conn, { code: "bad-frame", message: "`sl/cancel` takes one request id" });
          return;
        }
        // An id not held (answered already, never seen) is ignored.
        const controller = conn.peerHandlers.get(reqId);
        if (controller) {
          conn.peerHandlers.delete(reqId);
          conn.peerRequests -= 1;
          this._requestsCancelled += 1;
          controller.abort(new CancelledError("the server cancelled the request"));
        }
        return;
      }
      case "sl/close":
        this._lastClose = frame[1] ?? null;
        conn.closeFloorMs = frame[1]?.reconnect_after_ms ?? null;
        return;
      case "sl/error":
        if (this._onProtocolError) this._onProtocolError(new RemoteError(frame[1]));
        return;
      default:
        if (kind.startsWith("sl/")) {
          this._protocolError(conn, { code: "bad-frame", message: `a client does not accept \`${kind}\`` });
        } else if (frame.length >= 3) {
          this._onPeerRequest(conn, kind, frame[1], frame[2], frame[3]);
        } else {
          this._dispatch(conn, kind, frame[1], { channel: null, position: null });
        }
    }
  }

  _protocolError(conn, error) {
    this._sendRaw(conn, ["sl/error", error]);
  }

  _dispatch(conn, id, payload, info) {
    const handlers = this._handlers.get(id);
    if (!handlers || handlers.size === 0) return;
    for (const handler of [...handlers]) this._call1(id, handler, payload, info);
  }

  /** Calls one handler of event `id`, reporting what it throws or rejects. */
  _call1(id, handler, payload, info) {
    try {
      const result = handler(payload ?? null, info);
      if (result && typeof result.then === "function") {
        result.then(undefined, (err) => console.error(`sente-lite: handler of \`${id}\` failed`, err));
      }
    } catch (err) {
      console.error(`sente-lite: handler of \`${id}\` threw`, err);
    }
  }

  async _onPeerRequest(conn, id, payload, reqId, deadlineMs) {
    const handler = this._handlers.get(id)?.values().next().value;
    const reply = (frame) => {
      if (!conn.ended) this._sendRaw(conn, frame);
    };
    if (!handler) {
      reply(["sl/err", reqId, { code: "bad-event", message: `unknown event \`${id}\`: no handler is registered for it` }]);
      return;
    }
    if (conn.peerHandlers.has(reqId)) {
      reply(["sl/err", reqId, { code: "duplicate-request", message: `request ${reqId} is already in flight` }]);
      return;
    }
    if (conn.peerRequests >= this._maxPeerRequests) {
      reply(["sl/err", reqId, { code: "too-many-requests", message: "too many requests in flight" }]);
      return;
    }
    if (deadlineMs === 0) {
      reply(["sl/err", reqId, { code: "deadline-exceeded", message: "the request's deadline had passed on arrival" }]);
      return;
    }
    // Aborted when the server cancels the request (`sl/cancel`), when its
    // deadline passes, or when the connection ends: no reply goes out then
    // (but the `deadline-exceeded` answer at the deadline).
    const controller = new AbortController();
    conn.peerHandlers.set(reqId, controller);
    conn.peerRequests += 1;
    const held = () => conn.peerHandlers.get(reqId) === controller;
    const release = () => {
      if (!held()) return false;
      conn.peerHandlers.delete(reqId);
      conn.peerRequests -= 1;
      return true;
    };
    const expiry = Number.isSafeInteger(deadlineMs) && deadlineMs > 0
      ? timer(deadlineMs, () => {
        if (!release()) return;
        controller.abort(new TimeoutError(deadlineMs));
        reply(["sl/err", reqId, { code: "deadline-exceeded", message: "the handler ran past the request's deadline" }]);
      })
      : null;
    let frame;
    try {
      const value = await handler(payload ?? null, { channel: null, position: null, reqId, signal: controller.signal });
      frame = ["sl/ok", reqId, value === undefined ? null : value];
    } catch (err) {
      const code = typeof err?.code === "string" && EVENT_ID.test(err.code) ? err.code : "internal";
      const error = { code, message: err?.message ?? String(err) };
      if (err?.data !== undefined) error.data = err.data;
      frame = ["sl/err", reqId, error];
    } finally {
      clearTimeout(expiry);
    }
    // A cancelled, expired or orphaned request gets no (further) reply.
    if (release()) reply(frame);
  }

  // ------------------------------------------------------------ events

  /**
   * Calls `handler(payload, info)` for every `id` event the server sends or
   * publishes on a channel this client joined (`info.channel`,
   * `info.position`). For a request from the server, the first handler's
   * return value (or promise) is the reply, and an error it throws is sent as
   * the error reply (its `code` when namespaced, else `internal`);
   * `info.reqId` is its id and `info.signal` an `AbortSignal` aborted when
   * the request is no longer wanted (the server cancelled it, with a
   * `CancelledError`; its deadline passed, with a `TimeoutError`, and the
   * server got `deadline-exceeded`; the connection closed), after which no
   * reply is sent. Returns a function that removes the handler.
   */
  on(id, handler) {
    checkEventId(id);
    let handlers = this._handlers.get(id);
    if (!handlers) {
      handlers = new Set();
      this._handlers.set(id, handlers);
    }
    handlers.add(handler);
    return () => handlers.delete(handler);
  }

  /**
   * Sends a one-way event. When the connection is open it goes out at once;
   * otherwise it waits in the send queue and goes out, in order, after the
   * next handshake and restored subscriptions. Throws a `QueueFullError` when
   * the queue holds `queueCapacity` events (the event is dropped), and a
   * `ClosedError` when the client is not connecting (never connected, or
   * disconnected). Delivered at most once: an event already written to a
   * connection that then dies is lost with it, and nothing says which; send
   * what must be accounted for as a request.
   */
  send(id, payload) {
    checkEventId(id);
    const text = JSON.stringify([id, payload ?? null]);
    this._enqueue(text);
  }

  /**
   * Sends `text` now, or queues it behind what already waits (while away, or
   * while the server's announced rate holds frames back). A request is queued
   * whatever the capacity (requests are bounded by `maxInFlight`), tagged
   * with its connection (`request`) so that it is dropped with it.
   */
  _enqueue(text, request = null) {
    if (this._stopped) {
      throw new ClosedError("the client is not connected: call connect() first");
    }
    const conn = this._conn;
    if (conn && this._queue.length === 0 && (conn.pacer === null || conn.pacer.ready())) {
      this._transmit(conn, text);
      return null;
    }
    if (request === null && this._queue.length >= this._queueCapacity) {
      throw new QueueFullError("queue-full", `the send queue is full (${this._queueCapacity} events): the event was dropped`);
    }
    const entry = request === null ? text : { text, conn: request };
    this._queue.push(entry);
    if (conn) this._flushQueue(conn);
    return entry;
  }

  /**
   * Sends a request and resolves with its reply. While the client is
   * reconnecting it waits for the next connection, within the same timeout
   * (`options.timeoutMs`, default `requestTimeoutMs`), which also travels as
   * the request's deadline. Rejects with a `RemoteError` (the server's code,
   * message and data), a `TimeoutError`, a `ClosedError` (connection lost
   * before the reply: the server may have handled it), or a `QueueFullError`
   * with code `too-many-in-flight`. Aborting `options.signal` rejects it with
   * the signal's reason; a request already sent is then cancelled on the
   * server (`sl/cancel`, when it offers the `cancel` extension), which drops
   * its handler and sends no reply.
   */
  request(id, payload, options = {}) {
    try {
      checkEventId(id);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs ?? this._requestTimeoutMs;
    const signal = options.signal ?? null;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this._call((reqId, leftMs) => [id, payload ?? null, reqId, leftMs], timeoutMs, signal);
  }

  /**
   * Registers a request on the open connection (waiting for one) and sends
   * `build(reqId, leftMs)`; an abort of `signal` rejects it with the
   * signal's reason and cancels it.
   */
  async _call(build, timeoutMs, signal = null) {
    const deadline = now() + timeoutMs;
    const conn = await untilAborted(this._openConnection(deadline, timeoutMs), signal);
    return this._callOn(conn, build, Math.max(1, deadline - now()), timeoutMs, signal);
  }

  /**
   * Registers a request on `conn` and sends `build(reqId, leftMs)`, waiting at
   * most `budgetMs` for the reply (a timeout reports `timeoutMs`).
   */
  async _callOn(conn, build, budgetMs, timeoutMs = budgetMs, signal = null) {
    if (conn.ended) throw new ClosedError();
    if (signal?.aborted) throw signal.reason;
    const deadline = now() + budgetMs;
    // Never more requests in flight than the server said it takes.
    const announced = conn.handshake.limits?.max_in_flight || Infinity;
    const maxInFlight = Math.min(this._maxInFlight, announced);
    if (conn.pending.size >= maxInFlight) {
      throw new QueueFullError("too-many-in-flight", `${maxInFlight} requests are already in flight`);
    }
    const reqId = this._nextRequestId();
    const leftMs = Math.max(1, Math.ceil(deadline - now()));
    const frame = build(reqId, leftMs);
    const text = JSON.stringify(frame);
    return new Promise((resolve, reject) => {
      let queued = null;
      const onAbort = () => {
        if (!conn.pending.has(reqId)) return;
        conn.pending.delete(reqId);
        clearTimeout(t);
        const at = queued === null ? -1 : this._queue.indexOf(queued);
        if (at >= 0) {
          // Never sent: it simply does not go out.
          this._queue.splice(at, 1);
        } else if (!conn.ended && conn.handshake.extensions?.includes(EXTENSION_CANCEL)) {
          // The server drops its handler and sends no reply.
          this._sendRaw(conn, ["sl/cancel", reqId]);
        }
        reject(signal.reason);
      };
      const done = () => {
        clearTimeout(t);
        signal?.removeEventListener("abort", onAbort);
      };
      const t = timer(leftMs, () => {
        conn.pending.delete(reqId);
        done();
        reject(new TimeoutError(timeoutMs));
      });
      conn.pending.set(reqId, {
        settle: (value) => {
          done();
          resolve(value);
        },
        fail: (err) => {
          done();
          // The server enforces the same deadline and may say so first.
          reject(err.code === "deadline-exceeded" ? new TimeoutError(timeoutMs) : err);
        },
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      // Behind what is queued, so events sent before the request arrive first.
      queued = this._enqueue(text, conn);
    });
  }

  _nextRequestId() {
    const id = this._nextReqId;
    this._nextReqId = id >= MAX_SAFE_REQ_ID ? 1 : id + 1;
    return id;
  }

  /** The open connection, waiting for one until `deadline`. */
  _openConnection(deadline, timeoutMs) {
    if (this._conn) return Promise.resolve(this._conn);
    if (this._stopped || this._state === "failed") {
      return Promise.reject(new ClosedError(this._stopped ? "the client is not connected: call connect() first" : "the client gave up reconnecting"));
    }
    return new Promise((resolve, reject) => {
      const t = timer(Math.max(0, deadline - now()), () => {
        this._waiters.delete(waiter);
        reject(new TimeoutError(timeoutMs, "a connection"));
      });
      const waiter = (state) => {
        if (state === "open" && this._conn) {
          clearTimeout(t);
          this._waiters.delete(waiter);
          resolve(this._conn);
        } else if (state === "failed" || state === "closing" || state === "closed") {
          clearTimeout(t);
          this._waiters.delete(waiter);
          reject(new ClosedError(state === "failed" ? "the client gave up reconnecting" : "the client disconnected"));
        }
      };
      this._waiters.add(waiter);
    });
  }

  // ------------------------------------------------------------ channels

  /**
   * Subscribes to `channel` and keeps it subscribed: after every reconnect,
   * and when the server ends the subscription and asks for it again
   * (`sl/resub`), it is restored from the largest position seen (`since`).
   * Resolves with the server's answer `{ position, recovered }`. If no
   * connection opens in time nothing changes; if the server refuses
   * (`RemoteError`, such as `forbidden`) the channel is forgotten; if the
   * answer does not come or the connection is lost, the channel stays wanted
   * and is asked for again on the next connection. A gap (a position was sent
   * and the server could not recover from it) is also reported to `onGap`.
   */
  async subscribe(channel) {
    if (typeof channel !== "string" || channel.length === 0) {
      throw new TypeError("a channel is a non-empty string");
    }
    const timeoutMs = this._requestTimeoutMs;
    const deadline = now() + timeoutMs;
    const conn = await this._openConnection(deadline, timeoutMs);
    if (!this._subscriptions.has(channel)) this._subscriptions.set(channel, null);
    const since = this._subscriptions.get(channel);
    const answered = this._unanswered(conn, channel);
    try {
      const reply = await this._callOn(
        conn,
        (reqId) => (since ? ["sl/sub", reqId, channel, since] : ["sl/sub", reqId, channel]),
        Math.max(1, deadline - now()),
        timeoutMs,
      );
      this._settleSubscription(conn, channel, since, reply);
      return reply;
    } catch (err) {
      if (err instanceof RemoteError) this._subscriptions.delete(channel);
      throw err;
    } finally {
      answered();
    }
  }

  /**
   * Joins a typed channel: subscribes to `channelName(pattern, params)` as
   * `subscribe` does (kept across reconnects) and gives its publications to
   * `handlers`, an object keyed by event id (`{ "chat/message": (payload,
   * info) => ... }`), instead of the handlers registered with `on`. With the
   * generated `Channels` map, TypeScript checks the parameters and that each
   * handler's event is one the channel carries. Resolves, once subscribed,
   * with `{ channel, leave }`; fails as `subscribe` fails. Joining a channel
   * again replaces its handlers; only the latest join's `leave` leaves it.
   */
  async join(pattern, params, handlers) {
    const channel = channelName(pattern, params);
    if (handlers === null || typeof handlers !== "object") {
      throw new TypeError("join takes an object of handlers, keyed by event id");
    }
    const own = { ...handlers };
    this._joined.set(channel, own);
    try {
      await this.subscribe(channel);
    } catch (err) {
      if (this._joined.get(channel) === own) this._joined.delete(channel);
      throw err;
    }
    return {
      channel,
      leave: async () => {
        if (this._joined.get(channel) === own) await this.unsubscribe(channel);
      },
    };
  }

  /** Leaves `channel`: it is no longer restored, and the server is told when a connection is open. */
  async unsubscribe(channel) {
    this._subscriptions.delete(channel);
    this._joined.delete(channel);
    // The server ends its presence watch of a channel left.
    this._presence.get(channel)?.set.stop();
    if (!this._conn) return;
    try {
      await this._call((reqId) => ["sl/unsub", reqId, channel], this._requestTimeoutMs);
    } catch (err) {
      // The connection went away: the server forgot the subscription with it.
      if (!(err instanceof ClosedError)) throw err;
    }
  }

  /** The channels this client keeps subscribed, sorted. */
  subscriptions() {
    return [...this._subscriptions.keys()].sort();
  }

  /**
   * The largest stream position seen on `channel` (`{ epoch, offset }`, from
   * publications and the server's subscribe answers), or `null`: the `since`
   * of the next subscription to it.
   */
  position(channel) {
    return this._subscriptions.get(channel) ?? null;
  }

  /** Takes in the server's answer to a subscription on `conn` that sent `since`. */
  _settleSubscription(conn, channel, since, reply) {
    if (this._subscriptions.has(channel)) {
      this._subscriptions.set(channel, advancePosition(this._subscriptions.get(channel), reply?.position ?? null));
    }
    if (since && !reply?.recovered) {
      for (const listener of [...this._gapListeners]) {
        try {
          listener(channel, reply);
        } catch (err) {
          console.error("sente-lite: a gap listener threw", err);
        }
      }
    }
    // Subscribed again (after a reconnect, or after leaving): watch again.
    this._rewatch(conn, channel);
  }

  /**
   * Marks an `sl/sub` of `channel` on `conn` unanswered, until the returned
   * function is called (once its answer was taken in).
   */
  _unanswered(conn, channel) {
    let answered;
    const mine = new Promise((resolve) => (answered = resolve));
    const before = conn.subscribing.get(channel);
    const all = before ? Promise.all([before, mine]) : mine;
    conn.subscribing.set(channel, all);
    return () => {
      answered();
      if (conn.subscribing.get(channel) === all) conn.subscribing.delete(channel);
    };
  }

  /**
   * The server ended the subscription to `channel` on `conn` (`sl/resub`):
   * when the channel is still wanted, subscribes again from the largest
   * position seen, as after a reconnect, once every `sl/sub` of it still
   * unanswered was answered (an answer may move the position).
   */
  async _resubscribeAsked(conn, channel) {
    if (typeof channel !== "string") return;
    // The server's watch of the channel ended with the subscription.
    this._presence.get(channel)?.set.stop();
    if (!this._subscriptions.has(channel)) return;
    await conn.subscribing.get(channel);
    if (conn.ended || !this._subscriptions.has(channel)) return;
    this._restore(conn, channel, this._subscriptions.get(channel));
  }

  _restore(conn, channel, since) {
    const reqId = this._nextRequestId();
    const timeoutMs = this._requestTimeoutMs;
    const answered = this._unanswered(conn, channel);
    const report = (result) => {
      answered();
      if (!this._onResubscribe || result === null) return;
      try {
        this._onResubscribe(channel, result);
      } catch (err) {
        console.error("sente-lite: onResubscribe threw", err);
      }
    };
    const t = timer(timeoutMs, () => {
      conn.pending.delete(reqId);
      report({ error: new TimeoutError(timeoutMs) });
    });
    conn.pending.set(reqId, {
      settle: (reply) => {
        clearTimeout(t);
        this._settleSubscription(conn, channel, since, reply);
        report({ reply, gap: Boolean(since) && !reply?.recovered });
      },
      fail: (err) => {
        clearTimeout(t);
        if (err instanceof RemoteError) this._subscriptions.delete(channel);
        // Lost with the connection: the next one restores it again.
        report(err instanceof ClosedError ? null : { error: err });
      },
    });
    this._sendRaw(conn, since ? ["sl/sub", reqId, channel, since] : ["sl/sub", reqId, channel]);
  }

  // ------------------------------------------------------------ presence

  /**
   * The members of `channel` (protocol extension `presence`): resolves with
   * `{ members }`, sorted by `user_id`, each `{ user_id, info }`. The client
   * must be subscribed to the channel and the server must keep its presence,
   * or it rejects with a `RemoteError` (`forbidden`); a server that does not
   * offer presence rejects it with a `SenteError` of code `unsupported`. When
   * the client watches the channel, the watch's members are returned without
   * asking the server.
   */
  async presence(channel) {
    const conn = await this._presenceConnection(channel);
    const entry = this._presenceEntry(channel);
    const members = await this._presenceTurn(channel, entry, () => this._refreshPresence(conn, channel, entry));
    return { members };
  }

  /**
   * Watches the members of `channel` (protocol extension `presence`).
   * `onChange(members, change)` is called with the current members (sorted by
   * `user_id`) and what changed: `{ joined, left }` (members that joined or
   * whose `info` changed, user ids that left), or `{ reset: true }` when the
   * whole set was fetched again: first when the watch starts, and again after
   * each reconnect, once the channel is subscribed again. Resolves, after
   * that first call, with a function that stops the watch (the server is told
   * when it was the client's last watch of the channel). Rejects like
   * `presence()`.
   *
   *   await client.subscribe("room/lobby");
   *   const stop = await client.watchPresence("room/lobby", (members, change) => render(members));
   */
  async watchPresence(channel, onChange) {
    if (typeof onChange !== "function") throw new TypeError("onChange is a function");
    const conn = await this._presenceConnection(channel);
    const entry = this._presenceEntry(channel);
    const watcher = { onChange, started: false };
    entry.watchers.add(watcher);
    let members;
    try {
      members = await this._presenceTurn(channel, entry, () => this._refreshPresence(conn, channel, entry));
    } catch (err) {
      this._unwatch(channel, entry, watcher);
      throw err;
    }
    // No frame is read between the snapshot and here: the first call is the snapshot.
    watcher.started = true;
    this._tell(watcher, members, { reset: true });
    return () => this._unwatch(channel, entry, watcher);
  }

  /** The open connection, once it offers presence and no `sl/sub` of `channel` is unanswered on it. */
  async _presenceConnection(channel) {
    if (typeof channel !== "string" || channel.length === 0) {
      throw new TypeError("a channel is a non-empty string");
    }
    const timeoutMs = this._requestTimeoutMs;
    const conn = await this._openConnection(now() + timeoutMs, timeoutMs);
    if (!conn.handshake.extensions?.includes(EXTENSION_PRESENCE)) {
      throw new SenteError("unsupported", `the server does not offer the \`${EXTENSION_PRESENCE}\` extension`);
    }
    await conn.subscribing.get(channel);
    return conn;
  }

  _presenceEntry(channel) {
    let entry = this._presence.get(channel);
    if (!entry) {
      entry = { set: new PresenceSet(), watchers: new Set(), lane: Promise.resolve(), busy: 0 };
      this._presence.set(channel, entry);
    }
    return entry;
  }

  /**
   * Runs `task` when the channel's earlier presence requests are done, so
   * that the server gets a channel's watch starts and stops in order.
   */
  _presenceTurn(channel, entry, task) {
    entry.busy += 1;
    const run = entry.lane.then(task);
    entry.lane = run.then(
      () => this._presenceDone(channel, entry),
      () => this._presenceDone(channel, entry),
    );
    return run;
  }

  _presenceDone(channel, entry) {
    entry.busy -= 1;
    if (entry.busy === 0 && entry.watchers.size === 0 && this._presence.get(channel) === entry) {
      this._presence.delete(channel);
    }
  }

  /**
   * In the channel's turn: its members, from the watch when it follows the
   * server, otherwise asked of the server, which starts watching when the
   * client has watchers of the channel (they are told the new set).
   */
  async _refreshPresence(conn, channel, entry) {
    if (entry.set.live) return entry.set.members();
    const timeoutMs = this._requestTimeoutMs;
    const ask = (watch) => this._callOn(conn, (reqId) => ["sl/presence", reqId, channel, watch], timeoutMs);
    if (entry.watchers.size === 0) {
      const snapshot = await ask(false);
      return [...(snapshot?.members ?? [])].sort(byUserId);
    }
    const token = entry.set.expect();
    let snapshot;
    try {
      snapshot = await ask(true);
    } catch (err) {
      entry.set.abandon(token);
      throw err;
    }
    if (!entry.set.snapshot(snapshot?.members ?? [], token)) throw new ClosedError();
    const members = entry.set.members();
    for (const watcher of [...entry.watchers]) {
      if (watcher.started) this._tell(watcher, members, { reset: true });
    }
    return members;
  }

  /** Watches `channel` again on `conn` when it has watchers and the server does not watch it for us. */
  _rewatch(conn, channel) {
    const entry = this._presence.get(channel);
    if (!entry || entry.watchers.size === 0 || entry.set.live) return;
    if (!conn.handshake.extensions?.includes(EXTENSION_PRESENCE)) return;
    this._presenceTurn(channel, entry, () =>
      entry.watchers.size > 0 ? this._refreshPresence(conn, channel, entry) : null,
    ).catch(() => {
      // Lost with the connection (the next one watches again), or refused:
      // the watchers keep the last set.
    });
  }

  _unwatch(channel, entry, watcher) {
    if (!entry.watchers.delete(watcher) || entry.watchers.size > 0) return;
    const watching = entry.set.following;
    entry.set.stop();
    this._presenceTurn(channel, entry, async () => {
      const conn = this._conn;
      if (!watching || entry.watchers.size > 0 || !conn) return;
      try {
        await this._callOn(conn, (reqId) => ["sl/presence", reqId, channel, false], this._requestTimeoutMs);
      } catch {
        // Best effort: the server stops anyway when the channel is left.
      }
    });
  }

  _onPresenceDiff(channel, diff) {
    const entry = this._presence.get(channel);
    const change = entry?.set.apply(diff);
    if (!change || (change.joined.length === 0 && change.left.length === 0)) return;
    const members = entry.set.members();
    for (const watcher of [...entry.watchers]) {
      if (watcher.started) this._tell(watcher, members, change);
    }
  }

  _tell(watcher, members, change) {
    try {
      watcher.onChange(members, change);
    } catch (err) {
      console.error("sente-lite: a presence watcher threw", err);
    }
  }

  // ------------------------------------------------------------ telemetry

  /** Whether no connection is coming: failed, or disconnected after having connected. */
  _gaveUp() {
    return this._state === "failed" || (this._state === "closed" && this._disconnected);
  }

  /**
   * Records a log line for the server (`telemetry/batch`): `level` is
   * `error`, `warn`, `info`, `debug` or `trace`; `fields` a flat object of
   * details. Records are batched; see `captureTelemetry`. Texts longer than
   * the server logs are cut here and end with `…` (message 4096 characters,
   * source 256, field keys 64, values 2048, 16 fields), so that no record
   * makes a batch too large to send.
   */
  log(level, message, fields = {}, source = "app") {
    this._telemetry.record(level, message, fields, source);
  }

  /**
   * Forwards the page's errors to the server as telemetry: `console.error`
   * calls (`console: true`), uncaught errors and unhandled rejections
   * (`errors: true`, in browsers). Batches of at most `maxBatch` records (and
   * about 64 KiB) are sent when full or `flushMs` after their first record. While no connection
   * is open, at most `capacity` records are kept (older ones are dropped and
   * counted); once the client is closed or failed, records go to the console
   * instead (`fallbackToConsole`). Returns a function that stops capturing.
   */
  captureTelemetry(options = {}) {
    return this._telemetry.capture(options);
  }

  /**
   * The telemetry session this client's records name: `telemetry.session`
   * when given, otherwise 16 random hexadecimal digits chosen when the client
   * was made. It stays the same across reconnections, so a server can file a
   * page's records together from load to unload.
   */
  get telemetrySession() {
    return this._telemetry.session;
  }
}

// ---------------------------------------------------------------- telemetry

/** 16 random hexadecimal digits, from the platform's secure source when there is one. */
function randomSession() {
  const bytes = new Uint8Array(8);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

class Telemetry {
  constructor(client, options) {
    this._client = client;
    this._records = [];
    this._dropped = 0;
    this._timer = null;
    this._recording = false;
    this._restore = [];
    this._configure(options ?? {});
    if (options && (options.console || options.errors)) this.capture(options);
  }

  _configure(options) {
    this._maxBatch = Math.min(TELEMETRY_MAX_RECORDS, options.maxBatch ?? this._maxBatch ?? 20);
    this._flushMs = options.flushMs ?? this._flushMs ?? 1000;
    this._capacity = options.capacity ?? this._capacity ?? 500;
    this._fallback = options.fallbackToConsole ?? this._fallback ?? true;
    this.session = cutText(String(options.session ?? this.session ?? randomSession()), TELEMETRY_MAX_SESSION);
    this._console = this._console ?? globalThis.console;
  }

  capture(options) {
    this._configure(options);
    const stops = [];
    const console = globalThis.console;
    if (options.console !== false && console && !this._originalError) {
      const original = console.error;
      this._originalError = original;
      console.error = (...args) => {
        original.apply(console, args);
        this.record("error", args.map(describeValue).join(" "), {}, "console");
      };
      stops.push(() => {
        console.error = original;
        this._originalError = null;
      });
    }
    const target = globalThis.window;
    if (options.errors !== false && target?.addEventListener) {
      const onError = (event) => {
        const fields = {};
        if (event.filename) fields.file = `${event.filename}:${event.lineno}:${event.colno}`;
        if (event.error?.stack) fields.stack = String(event.error.stack);
        this.record("error", event.message || describeValue(event.error), fields, "window.onerror");
      };
      const onRejection = (event) => {
        const reason = event.reason;
        const fields = reason?.stack ? { stack: String(reason.stack) } : {};
        this.record("error", `unhandled rejection: ${reason?.message ?? describeValue(reason)}`, fields, "unhandledrejection");
      };
      target.addEventListener("error", onError);
      target.addEventListener("unhandledrejection", onRejection);
      stops.push(() => {
        target.removeEventListener("error", onError);
        target.removeEventListener("unhandledrejection", onRejection);
      });
    }
    return () => stops.forEach((stop) => stop());
  }

  record(level, message, fields, source) {
    if (this._recording) return;
    this._recording = true;
    try {
      const record = {
        level: LEVELS.includes(level) ? level : "info",
        message: cutText(String(message), TELEMETRY_MAX_MESSAGE),
        source: cutText(String(source ?? ""), TELEMETRY_MAX_SOURCE),
        at_ms: Date.now(),
        fields: {},
      };
      const entries = Object.entries(fields ?? {});
      // Past the limit, the last field left says how many more there were.
      const over = entries.length > TELEMETRY_MAX_FIELDS;
      const kept = over ? TELEMETRY_MAX_FIELDS - 1 : entries.length;
      for (const [key, value] of entries.slice(0, kept)) {
        const text = typeof value === "string" ? value : describeValue(value);
        record.fields[cutText(key, TELEMETRY_MAX_FIELD_KEY)] = cutText(String(text), TELEMETRY_MAX_FIELD_VALUE);
      }
      if (over) record.fields["…"] = `${entries.length - kept} more fields`;
      if (this._client._gaveUp()) {
        if (this._fallback) this._toConsole(record);
        else this._dropped += 1;
        return;
      }
      if (this._records.length >= this._capacity) {
        this._records.shift();
        this._dropped += 1;
      }
      this._records.push(record);
      if (this._records.length >= this._maxBatch) this.flush();
      else if (!this._timer) this._timer = setTimeout(() => this.flush(), this._flushMs);
    } finally {
      this._recording = false;
    }
  }

  stateChanged() {
    if (this._client._gaveUp() && this._records.length > 0) {
      if (this._fallback) for (const record of this._records) this._toConsole(record);
      this._records = [];
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  /** Sends what is buffered, in batches, when a connection is open. */
  flush() {
    clearTimeout(this._timer);
    this._timer = null;
    const conn = this._client._conn;
    if (!conn) return;
    while (this._records.length > 0 || this._dropped > 0) {
      const records = this._records.splice(0, this._batchLength());
      const batch = { records, dropped: this._dropped, session: this.session };
      if (!this._client._sendRaw(conn, [TELEMETRY_EVENT, batch])) {
        this._records.unshift(...records);
        return;
      }
      this._dropped = 0;
    }
  }

  /** How many of the buffered records make the next batch: at most `maxBatch`, and at most
   * TELEMETRY_MAX_BATCH_CHARS characters of JSON (but always one). */
  _batchLength() {
    let chars = 0;
    let count = 0;
    for (const record of this._records) {
      if (count >= this._maxBatch) break;
      chars += JSON.stringify(record).length;
      if (count > 0 && chars > TELEMETRY_MAX_BATCH_CHARS) break;
      count += 1;
    }
    return count;
  }

  _toConsole(record) {
    const write = this._originalError ?? this._console?.error;
    if (!write) return;
    write.call(this._console, `[${record.level}] ${record.source}: ${record.message}`, record.fields);
  }
}

// ---------------------------------------------------------------- sockets

function detach(ws) {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onerror = null;
  ws.onclose = null;
}

function closeQuietly(ws, code = 1000, reason = "") {
  try {
    ws.close(code, reason);
  } catch {
    /* not open yet, or already closed */
  }
}

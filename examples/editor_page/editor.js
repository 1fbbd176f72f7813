// The collaborative editor's page (examples/editor.rs): a textarea bound to
// the shared Y.Text of a Yjs document. What is typed becomes Yjs updates,
// sent to the server one at a time; what others type comes back on the
// channel `editor/doc` and is merged, the local caret kept where it was
// (through Yjs relative positions). Offline, edits go on in the local
// document; on every (re)connection the page syncs: it sends its state
// vector, takes what it missed, and sends what the server lacks. The other
// editors are the channel's presence, their carets drawn over the text.
// `window.editor` is what the page's test reads and drives.
import * as Y from "/vendor/yjs.js";
import { Client } from "/sente-lite.js";

const CHANNEL = "editor/doc";
const TEXT = "text";
// Transaction origins: the textarea's own input, and changes from the server.
const TYPED = "typed";
const REMOTE = "remote";
const NAMES = ["ada", "bob", "cy", "dee", "eli", "fay", "gus", "hal", "ivy", "jo"];

const $ = (id) => document.getElementById(id);
const area = $("text");
const overlay = $("overlay");

const name = (() => {
  const given = new URLSearchParams(location.search).get("name");
  if (given) return given;
  const kept = sessionStorage.getItem("editor-name");
  if (kept) return kept;
  const picked = `${NAMES[Math.floor(Math.random() * NAMES.length)]}-${Math.floor(Math.random() * 900 + 100)}`;
  sessionStorage.setItem("editor-name", picked);
  return picked;
})();

/** A colour of its own for each name, the same in every page. */
function colorOf(user) {
  let hash = 2166136261;
  for (let i = 0; i < user.length; i++) hash = Math.imul(hash ^ user.charCodeAt(i), 16777619);
  return `hsl(${(hash >>> 0) % 360} 70% 42%)`;
}

function toBase64(bytes) {
  if (typeof bytes.toBase64 === "function") return bytes.toBase64();
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fromBase64(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

let doc = null;
let ytext = null;
/** Whether the server has had every local change up to now (else the next sync sends them). */
let synced = false;
/** Counts documents and syncs: an answer for an older one is dropped. */
let generation = 0;
/** Local updates waiting for the one in flight. */
let outbox = [];
let inFlight = false;
let offline = false;
/** Whether the notice says that a sync failed (the next one clears it). */
let syncTrouble = false;
let docBytes = null;
let maxDocBytes = null;
/** The selection before a change that did not come from the textarea. */
let selectionBefore = null;
/** Other editors' carets: user -> { anchor, head } (Yjs relative positions). */
const carets = new Map();
/** The channel's presence: `{ user_id, info }`, sorted. */
let members = [];
/** What the server refused, for the test: `{ code, message }`. */
const refusals = [];

const client = new Client(`/ws?name=${encodeURIComponent(name)}`, {
  onState: (state) => {
    if (state !== "open") {
      synced = false;
      outbox = [];
    }
    showState();
  },
  // Every restored subscription (after a reconnect) is followed by a sync;
  // publications missed meanwhile come with it.
  onResubscribe: (channel) => channel === CHANNEL && sync(),
});
client.on("editor/changed", ({ update }) => receive(fromBase64(update)));
client.on("editor/peer-cursor", (cursor) => {
  setCaret(cursor);
  drawCarets();
  showPeers();
});

// ------------------------------------------------------------ the document

function newDoc() {
  doc?.destroy();
  generation++;
  doc = new Y.Doc();
  ytext = doc.getText(TEXT);
  doc.on("update", (update, origin) => {
    if (origin !== REMOTE) queue(update);
  });
  doc.on("beforeTransaction", (txn) => {
    if (txn.origin !== TYPED) selectionBefore = selection();
  });
  doc.on("afterTransaction", (txn) => {
    if (txn.origin !== TYPED) showText(selectionBefore);
    drawCarets();
    showPeers();
    showSize();
  });
  showText(null);
}

/** Applies an update from the server; a gap (changes it follows never came) makes the page sync. */
function receive(update) {
  Y.applyUpdate(doc, update, REMOTE);
  if (synced && (doc.store.pendingStructs || doc.store.pendingDs)) sync();
}

/**
 * The textarea's selection, as relative positions `[anchor, head]`. Each
 * sticks to the character before it (`assoc` -1), so text another editor
 * inserts where the caret is goes after the caret, and whoever is typing
 * there goes on after their own last character, not after the newcomer's.
 */
function selection() {
  const start = Math.min(area.selectionStart, ytext.length);
  const end = Math.min(area.selectionEnd, ytext.length);
  const [anchor, head] = area.selectionDirection === "backward" ? [end, start] : [start, end];
  return [anchor, head].map((index) => Y.createRelativePositionFromTypeIndex(ytext, index, -1));
}

function absolute(position) {
  return Y.createAbsolutePositionFromRelativePosition(position, doc)?.index ?? null;
}

/** Shows the document's text, the caret kept where `kept` (relative positions) says. */
function showText(kept) {
  const text = ytext.toString();
  if (area.value === text) return;
  const top = area.scrollTop;
  area.value = text;
  area.scrollTop = top;
  if (kept) {
    const [anchor, head] = kept.map((p) => absolute(p) ?? text.length);
    if (anchor <= head) area.setSelectionRange(anchor, head, "forward");
    else area.setSelectionRange(head, anchor, "backward");
  }
}

const isHigh = (code) => code >= 0xd800 && code <= 0xdbff;
const isLow = (code) => code >= 0xdc00 && code <= 0xdfff;

// What was typed, pasted or cut: the difference between the text before and
// after, as one delete and one insert.
area.addEventListener("input", () => {
  const before = ytext.toString();
  const after = area.value;
  if (before === after) return;
  const shorter = Math.min(before.length, after.length);
  let start = 0;
  while (start < shorter && before.charCodeAt(start) === after.charCodeAt(start)) start++;
  let end = 0;
  while (end < shorter - start && before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)) end++;
  // A surrogate pair stays whole.
  if (start > 0 && isHigh(before.charCodeAt(start - 1))) start--;
  if (end > 0 && isLow(before.charCodeAt(before.length - end))) end--;
  doc.transact(() => {
    const removed = before.length - start - end;
    if (removed > 0) ytext.delete(start, removed);
    const inserted = after.slice(start, after.length - end);
    if (inserted) ytext.insert(start, inserted);
  }, TYPED);
  sendCaret();
});

// ------------------------------------------------------------ the server

function queue(update) {
  if (!synced) return; // the next sync sends it
  outbox.push(update);
  flush();
}

/** Sends what waits in the outbox, merged, once the update in flight is answered. */
async function flush() {
  if (inFlight || !synced || outbox.length === 0) return;
  const update = outbox.length === 1 ? outbox[0] : Y.mergeUpdates(outbox);
  outbox = [];
  if (maxDocBytes !== null && update.length > maxDocBytes) {
    // Larger than the whole document may be: not sent (nor too long for a message).
    refused("editor/too-large", `the document is limited to ${maxDocBytes} bytes: this change was not saved`);
    return;
  }
  const mine = generation;
  inFlight = true;
  try {
    const saved = await client.request("editor/update", { update: toBase64(update) });
    if (mine === generation) docBytes = saved.doc_bytes;
  } catch (err) {
    if (mine === generation) failed(err);
  } finally {
    inFlight = false;
  }
  showSize();
  flush();
}

/** The server will not take a change: its copy becomes the page's document. */
function refused(code, message) {
  refusals.push({ code, message });
  notice(`Not saved: ${message}. The page now shows the server's copy.`);
  newDoc();
  sync();
}

function failed(err) {
  if (err.name === "RemoteError" && err.code.startsWith("editor/")) {
    refused(err.code, err.message);
  } else {
    // Lost, or no answer in time: the next sync sends what the server lacks.
    synced = false;
    outbox = [];
    if (client.state === "open") sync();
  }
}

/**
 * Sends the page's state vector; applies what the server answers; then
 * sends what the server lacks (edits made offline), before anything newer.
 */
async function sync() {
  synced = false;
  outbox = [];
  const mine = ++generation;
  let reply;
  try {
    reply = await client.request("editor/sync", { state_vector: toBase64(Y.encodeStateVector(doc)) });
  } catch (err) {
    if (mine === generation && client.state === "open") {
      notice(`Could not sync (${err.message}): trying again.`);
      syncTrouble = true;
      setTimeout(() => mine === generation && sync(), 1000);
    }
    return;
  }
  if (mine !== generation) return;
  docBytes = reply.doc_bytes;
  maxDocBytes = reply.max_doc_bytes;
  for (const cursor of reply.cursors) setCaret(cursor);
  Y.applyUpdate(doc, fromBase64(reply.update), REMOTE);
  const missing = Y.encodeStateAsUpdate(doc, fromBase64(reply.state_vector));
  synced = true;
  if (syncTrouble) notice("");
  syncTrouble = false;
  outbox.unshift(missing);
  flush();
  sendCaret(true);
  showState();
}

// ------------------------------------------------------------ carets

let caretTimer = null;
let caretForced = false;
let lastCaret = "";

/** Tells the others where the caret is, at most every 40 ms. */
function sendCaret(force = false) {
  caretForced ||= force;
  if (caretTimer !== null) return;
  caretTimer = setTimeout(() => {
    caretTimer = null;
    if (!synced || client.state !== "open") return;
    const [anchor, head] = selection().map((p) => toBase64(Y.encodeRelativePosition(p)));
    if (`${anchor} ${head}` === lastCaret && !caretForced) return;
    lastCaret = `${anchor} ${head}`;
    caretForced = false;
    try {
      client.send("editor/cursor", { anchor, head });
    } catch {
      // Not connected: the next sync sends it.
    }
  }, 40);
}

for (const event of ["keyup", "mouseup", "select", "focus"]) area.addEventListener(event, () => sendCaret());
document.addEventListener("selectionchange", () => document.activeElement === area && sendCaret());

function setCaret({ user, anchor, head }) {
  if (user === name) return;
  carets.set(user, {
    anchor: Y.decodeRelativePosition(fromBase64(anchor)),
    head: Y.decodeRelativePosition(fromBase64(head)),
  });
}

const present = (user) => members.some((m) => m.user_id === user);

/** Other editors' carets: user -> `{ anchor, head }` indices, or `null` where not known yet. */
function caretIndices(user) {
  const caret = carets.get(user);
  if (!caret) return null;
  const anchor = absolute(caret.anchor);
  const head = absolute(caret.head);
  return anchor === null || head === null ? null : { anchor, head };
}

/** Draws the other editors' carets and selections over the text, in a copy laid out like it. */
function drawCarets() {
  const text = ytext.toString();
  overlay.style.width = `${area.clientWidth}px`;
  overlay.style.height = `${area.clientHeight}px`;
  const marks = [];
  for (const user of carets.keys()) {
    const at = present(user) ? caretIndices(user) : null;
    if (!at) continue;
    const [from, to] = [Math.min(at.anchor, at.head), Math.max(at.anchor, at.head)];
    if (from < to) marks.push({ at: from, open: user }, { at: to, close: user });
    marks.push({ at: at.head, caret: user });
  }
  marks.sort((a, b) => a.at - b.at);
  const parts = [];
  const open = [];
  let pos = 0;
  const upTo = (end) => {
    if (end <= pos) return;
    const chunk = text.slice(pos, end);
    if (open.length > 0) {
      const mark = document.createElement("mark");
      mark.style.background = colorOf(open[open.length - 1]).replace(")", " / 0.25)");
      mark.textContent = chunk;
      parts.push(mark);
    } else {
      parts.push(chunk);
    }
    pos = end;
  };
  for (const mark of marks) {
    upTo(mark.at);
    if (mark.open) open.push(mark.open);
    if (mark.close) open.splice(open.indexOf(mark.close), 1);
    if (mark.caret) {
      const caret = document.createElement("span");
      caret.className = "caret";
      caret.dataset.user = mark.caret;
      caret.style.borderColor = colorOf(mark.caret);
      const label = document.createElement("span");
      label.textContent = mark.caret;
      label.style.background = colorOf(mark.caret);
      caret.append(label);
      parts.push(caret);
    }
  }
  upTo(text.length);
  parts.push("\u200b");
  overlay.replaceChildren(...parts);
  overlay.scrollTop = area.scrollTop;
}

area.addEventListener("scroll", () => {
  overlay.scrollTop = area.scrollTop;
});
new ResizeObserver(() => drawCarets()).observe(area);

/** Line and column (from 1) of `index` in the text. */
function lineColumn(index) {
  const before = ytext.toString().slice(0, index);
  const lines = before.split("\n");
  return `line ${lines.length}, col ${lines[lines.length - 1].length + 1}`;
}

// ------------------------------------------------------------ showing

function showState() {
  const el = $("state");
  const state = offline ? "offline" : client.state === "open" && !synced ? "syncing" : client.state;
  el.dataset.state = state;
  el.textContent = state;
  $("offline").textContent = offline ? "Go online" : "Go offline";
}

function showPeers() {
  $("peers").replaceChildren(
    ...members.map(({ user_id: user }) => {
      const li = document.createElement("li");
      li.dataset.user = user;
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.style.background = colorOf(user);
      const who = document.createElement("span");
      who.textContent = user === name ? `${user} (you)` : user;
      const where = document.createElement("span");
      where.className = "where";
      const at = user === name ? null : caretIndices(user);
      where.textContent = at ? lineColumn(at.head) : "";
      li.append(dot, who, where);
      return li;
    }),
  );
}

function showSize() {
  $("size").textContent =
    docBytes === null ? "" : `Document: ${docBytes.toLocaleString()} of ${maxDocBytes.toLocaleString()} bytes`;
}

function notice(text) {
  $("notice").textContent = text;
}

// ------------------------------------------------------------ start

async function goOffline() {
  offline = true;
  showState();
  await client.disconnect();
  showState();
}

async function goOnline() {
  offline = false;
  showState();
  await client.connect();
}

$("offline").addEventListener("click", () => (offline ? goOnline() : goOffline()));

async function start() {
  $("me").textContent = `You are ${name}`;
  $("me").style.color = colorOf(name);
  newDoc();
  await client.connect();
  await client.subscribe(CHANNEL);
  await sync();
  await client.watchPresence(CHANNEL, (list) => {
    members = list;
    for (const user of carets.keys()) if (!present(user)) carets.delete(user);
    drawCarets();
    showPeers();
  });
}

window.editor = {
  name,
  /** The document's text. */
  text: () => ytext.toString(),
  /** What the textarea shows. */
  value: () => area.value,
  /** `{ connection, synced, offline }`. */
  state: () => ({ connection: client.state, synced, offline, pending: inFlight || outbox.length > 0 }),
  /** `Y.encodeStateAsUpdate` of the document, base64. */
  update: () => toBase64(Y.encodeStateAsUpdate(doc)),
  /** `Y.encodeStateVector` of the document, base64. */
  stateVector: () => toBase64(Y.encodeStateVector(doc)),
  /** `Y.encodeSnapshot(Y.snapshot(doc))`, base64: the state vector and the deletions, in a canonical form. */
  snapshot: () => toBase64(Y.encodeSnapshot(Y.snapshot(doc))),
  /** The editors present: `{ name, self, caret }`, `caret` being `{ anchor, head }` indices or `null`. */
  peers: () => members.map(({ user_id: user }) => ({ name: user, self: user === name, caret: user === name ? null : caretIndices(user) })),
  /** Edits the document as a program would: deletes `remove` characters at `index`, inserts `text`. */
  edit: (index, remove, text) => {
    doc.transact(() => {
      if (remove > 0) ytext.delete(index, remove);
      if (text) ytext.insert(index, text);
    });
  },
  /** What the server refused. */
  refusals: () => [...refusals],
  /** The notice shown under the text. */
  notice: () => $("notice").textContent,
  goOffline,
  goOnline,
  client,
};

start().catch((err) => notice(`Could not start: ${err.message}`));

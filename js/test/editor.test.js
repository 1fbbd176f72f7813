// The collaborative editor (examples/editor.rs) in headless Chromium, against
// the real server run as a process: three pages type at once, with real
// keystrokes and programmatic edits interleaved; one goes offline, edits,
// and comes back while the others edit too; every page and the server end
// with the same document, compared byte for byte (the text, and the state
// vector with the deletions in Yjs's canonical snapshot encoding). Each page
// sees the two others and where their carets are. Malformed, out-of-order and
// oversized updates are refused with the documented errors, and the server
// goes on. A screenshot is saved under the repository's `target/js-tests/`.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import * as Y from "yjs";

import { Client, RemoteError } from "../sente-lite.js";
import { launchChromium } from "./support/chromium.js";
import { ROOT, ServerProcess, buildExamples, eventually, freePort } from "./support/server.js";

const NAMES = ["ada", "bob", "cy"];
// Small enough that the test can pass it; the default is 512 KiB.
const MAX_DOC_BYTES = 16 * 1024;

let server;
let context;
let probe;
const pages = {};

before(async () => {
  const { editor } = buildExamples("editor");
  server = await new ServerProcess(editor, {
    port: await freePort(),
    args: ["--max-doc-bytes", String(MAX_DOC_BYTES)],
  }).start();
  context = await launchChromium({ width: 900, height: 560 });
  for (const name of NAMES) {
    const page = await context.newPage();
    page.problems = [];
    page.on("pageerror", (err) => page.problems.push(err.message));
    await page.goto(`${server.httpUrl}?name=${name}`);
    pages[name] = page;
  }
  for (const page of Object.values(pages)) {
    await page.waitForFunction(() => window.editor?.state().synced, null, { timeout: 10_000 });
  }
  // A client of its own, outside the channel, reads the server's copy.
  probe = new Client(`${server.url}?name=probe`, { WebSocket });
  await probe.connect();
});

after(async () => {
  await probe?.disconnect();
  await context?.close();
  await server?.kill();
});

const call = (name, fn, arg) => pages[name].evaluate(fn, arg);
const text = (name) => call(name, () => window.editor.text());
const serverCopy = () => probe.request("editor/document", null);
const bytes = (base64) => new Uint8Array(Buffer.from(base64, "base64"));

/** Waits until every page has sent all it has, and every page and the server hold the same text. */
async function converged(timeoutMs = 10_000) {
  return eventually(
    async () => {
      const states = await Promise.all(NAMES.map((name) => call(name, () => ({ ...window.editor.state(), text: window.editor.text() }))));
      if (!states.every((s) => s.synced && !s.pending)) return null;
      const { text: shared } = await serverCopy();
      return states.every((s) => s.text === shared) ? shared : null;
    },
    timeoutMs,
    "convergence",
  );
}

/**
 * Types `keys` with the keyboard on `name`'s page, after putting the caret at
 * `where`: "start", "end", or "line-end" (before the first line break).
 */
async function typeAt(name, where, keys) {
  const page = pages[name];
  await page.click("#text");
  if (where === "line-end") {
    await page.evaluate(() => {
      const area = document.getElementById("text");
      const at = area.value.indexOf("\n");
      area.setSelectionRange(at, at);
    });
  } else {
    await page.keyboard.press(where === "start" ? "Control+Home" : "Control+End");
  }
  await page.keyboard.type(keys);
}

/** The runs of text typed in one go, each found whole. */
function assertRuns(shared, runs) {
  for (const run of runs) assert.ok(shared.includes(run), `${JSON.stringify(run)} whole in ${JSON.stringify(shared)}`);
}

test("three pages typing at once converge, and see each other and their carets", async () => {
  for (const name of NAMES) {
    await pages[name].waitForFunction(() => window.editor.peers().length === 3, null, { timeout: 10_000 });
    const peers = await call(name, () => window.editor.peers());
    assert.deepEqual(peers.map((p) => p.name), NAMES);
    assert.deepEqual(peers.filter((p) => p.self).map((p) => p.name), [name]);
  }
  await typeAt("ada", "start", "Shared notes.\n");
  await converged();
  // At once: ada types at the start, bob at the end and cy at the end of the
  // first line, while scripts on bob's and cy's pages insert at the start,
  // where ada types. Each run of keystrokes stays whole: a caret stays after
  // its own last character when text from elsewhere lands at it. (Two people
  // who start typing at one spot, one after the other's first keys arrived,
  // split the first one's run: that is the CRDT's order, so the runs here
  // start at different places.)
  const runs = ["ada was here; ", " bob typed this.", " cy adds more!"];
  const scripts = ["[bob's script] ", "[cy's script] "];
  await Promise.all([
    typeAt("ada", "start", runs[0]),
    typeAt("bob", "end", runs[1]),
    typeAt("cy", "line-end", runs[2]),
    call("bob", (s) => window.editor.edit(0, 0, s), scripts[0]),
    call("cy", (s) => window.editor.edit(0, 0, s), scripts[1]),
  ]);
  const shared = await converged();
  assertRuns(shared, [...runs, ...scripts, "Shared notes. cy adds more!\n bob typed this."]);
  assert.equal(shared.length, "Shared notes.\n".length + runs.join("").length + scripts.join("").length);
  // Each textarea shows the document.
  for (const name of NAMES) assert.equal(await call(name, () => window.editor.value()), shared);

  // Carets: where each page's own caret is, the two others show it.
  await pages.ada.click("#text");
  await pages.ada.keyboard.press("Control+End");
  await pages.ada.keyboard.type("!");
  await converged();
  const adaCaret = await call("ada", () => document.getElementById("text").selectionStart);
  const bobCaret = await call("bob", () => document.getElementById("text").selectionStart);
  for (const [viewer, owner, at] of [["bob", "ada", adaCaret], ["cy", "ada", adaCaret], ["ada", "bob", bobCaret], ["cy", "bob", bobCaret]]) {
    await pages[viewer].waitForFunction(
      ([who, index]) => window.editor.peers().find((p) => p.name === who)?.caret?.head === index,
      [owner, at],
      { timeout: 5000 },
    );
    const drawn = await pages[viewer].locator(`#overlay .caret[data-user="${owner}"]`).count();
    assert.equal(drawn, 1, `${viewer} draws ${owner}'s caret`);
  }
  const where = await pages.bob.locator('#peers li[data-user="ada"] .where').textContent();
  assert.match(where, /^line 2, col \d+$/);
  mkdirSync(join(ROOT, "target", "js-tests"), { recursive: true });
  await pages.bob.screenshot({ path: join(ROOT, "target", "js-tests", "editor.png") });
});

test("edits made offline merge with everyone else's on reconnect", async () => {
  const before = await converged();
  await call("cy", () => window.editor.goOffline());
  await pages.cy.waitForFunction(() => window.editor.state().connection === "closed");
  // Offline, cy deletes the first line and types; meanwhile the others edit.
  const firstLine = before.slice(0, before.indexOf("\n") + 1);
  await call("cy", (n) => window.editor.edit(0, n, ""), firstLine.length);
  await typeAt("cy", "end", "\ncy, offline.");
  await typeAt("ada", "end", "\nada, while cy was away.");
  await call("bob", () => window.editor.edit(0, 0, "bob first. "));
  await pages.ada.waitForFunction(() => window.editor.text().startsWith("bob first. "));
  assert.ok(!(await text("cy")).includes("ada, while cy was away."), "cy is offline: it does not see ada's edit");
  assert.ok((await serverCopy()).text.includes(firstLine), "the server does not see cy's deletion yet");
  await call("cy", () => window.editor.goOnline());
  const shared = await converged();
  assertRuns(shared, ["\ncy, offline.", "\nada, while cy was away.", "bob first. "]);
  assert.ok(!shared.includes(firstLine), "cy's offline deletion reached everyone");
});

test("the final documents are the same, byte for byte", async () => {
  const shared = await converged();
  const copy = await serverCopy();
  // The server's copy, read by Yjs.
  const serverDoc = new Y.Doc();
  Y.applyUpdate(serverDoc, bytes(copy.update));
  assert.equal(serverDoc.getText("text").toString(), shared);
  const serverSnapshot = Buffer.from(Y.encodeSnapshot(Y.snapshot(serverDoc)));
  const serverVector = [...Y.decodeStateVector(bytes(copy.state_vector))].sort();
  assert.deepEqual([...Y.decodeStateVector(Y.encodeStateVector(serverDoc))].sort(), serverVector);
  for (const name of NAMES) {
    const page = await call(name, () => ({
      text: window.editor.text(),
      snapshot: window.editor.snapshot(),
      stateVector: window.editor.stateVector(),
      update: window.editor.update(),
    }));
    assert.ok(Buffer.from(page.text) .equals(Buffer.from(shared)), `${name}'s text`);
    assert.ok(Buffer.from(page.snapshot, "base64").equals(serverSnapshot), `${name}'s state vector and deletions`);
    assert.deepEqual([...Y.decodeStateVector(bytes(page.stateVector))].sort(), serverVector, `${name}'s state vector`);
    // The page's whole document, read again, is the server's.
    const again = new Y.Doc();
    Y.applyUpdate(again, bytes(page.update));
    assert.equal(again.getText("text").toString(), shared);
    assert.ok(Buffer.from(Y.encodeSnapshot(Y.snapshot(again))).equals(serverSnapshot), `${name}'s update`);
  }
});

test("bad updates are refused with their error, and the server goes on", async () => {
  const refusedWith = async (update) => {
    const err = await probe.request("editor/update", { update }).then(
      () => assert.fail("accepted"),
      (e) => e,
    );
    assert.ok(err instanceof RemoteError, String(err));
    return err.code;
  };
  assert.equal(await refusedWith(Buffer.from([0xff, 0xff, 0x03, 0x07]).toString("base64")), "editor/bad-update");
  assert.equal(await refusedWith(Buffer.from("not a Yjs update at all").toString("base64")), "editor/bad-update");
  // An update that follows one the server never got.
  const doc = new Y.Doc();
  doc.getText("text").insert(0, "one");
  const updates = [];
  doc.on("update", (update) => updates.push(update));
  doc.getText("text").insert(3, " two");
  assert.equal(await refusedWith(Buffer.from(updates[0]).toString("base64")), "editor/out-of-order");
  const copy = await serverCopy();
  assert.ok(!copy.text.includes(" two"));

  // A page that pastes more than the document may hold is told, and goes back to the server's copy.
  const before = await converged();
  await call("bob", (n) => window.editor.edit(0, 0, "x".repeat(n)), 6000);
  await pages.bob.waitForFunction(() => !window.editor.state().pending);
  await call("bob", (n) => window.editor.edit(0, 0, "y".repeat(n)), 12_000);
  await pages.bob.waitForFunction(() => window.editor.refusals().length > 0, null, { timeout: 5000 });
  const [refusal] = await call("bob", () => window.editor.refusals());
  assert.equal(refusal.code, "editor/too-large");
  assert.match(refusal.message, new RegExp(`limited to ${MAX_DOC_BYTES} bytes`));
  assert.match(await call("bob", () => window.editor.notice()), /Not saved/);
  let shared = await converged();
  assert.equal(shared, "x".repeat(6000) + before, "the refused paste is gone everywhere; the accepted one stays");
  // Deleting makes room again, and everyone goes on editing.
  await call("ada", (n) => window.editor.edit(0, n, ""), 6000);
  await typeAt("cy", "end", " Still here.");
  shared = await converged();
  assert.equal(shared, `${before} Still here.`);
  for (const name of NAMES) assert.deepEqual(pages[name].problems, [], `${name}'s page errors`);
});

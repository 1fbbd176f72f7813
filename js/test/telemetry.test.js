// The telemetry pipeline (examples/telemetry/) as its users meet it: a page
// in headless Chromium whose error is found, with its session, in the
// session's file and on the live tail page; Node clients whose records are
// all written below the documented rate and whose flood above it is counted;
// a Rust service (examples/telemetry_client.rs) run as its own process; and
// files rotated and held to their bound on disk.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import WebSocket from "ws";

import { Client } from "../sente-lite.js";
import { launchChromium } from "./support/chromium.js";
import { ROOT, ServerProcess, buildExamples, eventually, freePort } from "./support/server.js";

let exes;
let dir;
let server;
let context;
const clients = [];
const servers = [];

before(async () => {
  exes = buildExamples("telemetry", "telemetry_client");
  dir = mkdtempSync(join(tmpdir(), "sente-lite-telemetry-"));
  server = await start(join(dir, "main"), ["--source-level", "console=warn", "--flush-ms", "100"]);
  context = await launchChromium({ width: 1000, height: 700 });
});

after(async () => {
  await Promise.all(clients.map((c) => c.disconnect()));
  await context?.close();
  await Promise.all(servers.map((s) => s.kill()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(logs, args) {
  const s = new ServerProcess(exes.telemetry, { port: await freePort(), args: ["--dir", logs, ...args] });
  s.logs = logs;
  servers.push(s);
  return s.start();
}

function client(s, session, options = {}) {
  const c = new Client(s.url, { WebSocket, telemetry: { console: false, flushMs: 50, session, ...options } });
  clients.push(c);
  return c;
}

/**
 * Every complete line of a session's files, oldest first (`S.2.jsonl`, `S.1.jsonl`, then
 * `S.jsonl`). The server may be writing while this reads, so a last line without its
 * newline is not yet a record and is left for the next read.
 */
function linesOf(logs, key) {
  const files = readdirSync(logs)
    .map((name) => ({ name, n: name === `${key}.jsonl` ? 0 : Number(name.match(new RegExp(`^${key}\\.(\\d+)\\.jsonl$`))?.[1]) }))
    .filter(({ n }) => Number.isInteger(n))
    .sort((a, b) => b.n - a.n);
  return files.flatMap(({ name }) =>
    readFileSync(join(logs, name), "utf8").split("\n").slice(0, -1).filter(Boolean).map((l) => JSON.parse(l)),
  );
}

const records = (lines) => lines.filter((l) => l.type === "record");
const lost = (lines) =>
  lines
    .filter((l) => l.type === "losses")
    .reduce((sum, l) => sum + l.over_budget + l.over_batch_size + l.refused + l.dropped_by_client + l.queue_full, 0);

test("a page's error is found, with its session, in its file and on the tail page", async () => {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(server.httpUrl);
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "open");
  const session = await page.evaluate(() => window.app.session);
  assert.match(session, /^[0-9a-f]{16}$/);

  const tail = await context.newPage();
  tail.on("pageerror", (err) => assert.fail(`tail page: ${err.message}`));
  await tail.goto(`${server.httpUrl}tail?session=${session}`);
  await tail.waitForFunction(() => document.getElementById("state").dataset.state === "open");

  await page.click("#info");
  await page.click("#throw");
  await page.click("#reject");
  await page.click("#console");
  await eventually(() => errors.length === 2, 5000, "the page's own errors");

  const found = await eventually(() => {
    const lines = records(linesOf(server.logs, session));
    return lines.length >= 4 && lines;
  }, 10_000, "the page's records in its file");
  const thrown = found.find((l) => l.source === "window.onerror");
  assert.ok(thrown, JSON.stringify(found));
  assert.equal(thrown.level, "error");
  assert.equal(thrown.session, session);
  assert.match(thrown.message, /checkout failed: cart 1 is empty/);
  assert.match(thrown.fields.file, /app\.js:\d+:\d+$/);
  assert.match(thrown.fields.stack, /checkout failed/);
  const rejected = found.find((l) => l.source === "unhandledrejection");
  assert.match(rejected.message, /payment service timed out/);
  // console.error is an error: `--source-level console=warn` lets it through.
  assert.equal(found.find((l) => l.source === "console").level, "error");
  assert.equal(found.find((l) => l.source === "page").message, "button clicked 1 times");
  assert.deepEqual(found.map((l) => l.seq), found.map((_, i) => i + 1), "numbered in order");

  // The tail page shows the same lines, live.
  await tail.waitForFunction(() => window.tail.lines().some((l) => l.source === "window.onerror"), null, { timeout: 10_000 });
  const shown = await tail.evaluate(() => document.getElementById("lines").textContent);
  assert.match(shown, /checkout failed: cart 1 is empty/);
  assert.match(shown, /payment service timed out/);
  const tailed = await tail.evaluate(() => window.tail.lines());
  assert.deepEqual(tailed.map((l) => l.seq), found.map((l) => l.seq));

  // A tail opened later starts from the file.
  const late = await context.newPage();
  await late.goto(`${server.httpUrl}tail?session=${session}`);
  await late.waitForFunction((n) => window.tail?.lines().length >= n, found.length, { timeout: 10_000 });
  assert.match(await late.evaluate(() => document.getElementById("lines").textContent), /checkout failed/);

  // The sessions list links to it.
  const list = await context.newPage();
  await list.goto(`${server.httpUrl}tail`);
  await list.waitForFunction(() => window.tail.sessions?.length > 0, null, { timeout: 10_000 });
  assert.ok(await list.evaluate((s) => window.tail.sessions.some((x) => x.key === s), session));

  mkdirSync(join(ROOT, "target", "js-tests"), { recursive: true });
  await tail.screenshot({ path: join(ROOT, "target", "js-tests", "telemetry-tail.png") });
  for (const p of [page, tail, late, list]) await p.close();
});

test("below the documented rate every record is written, in order; filtered levels are counted", async () => {
  const c = client(server, "node-steady");
  await c.connect();
  assert.equal(c.telemetrySession, "node-steady");
  for (let i = 1; i <= 200; i++) {
    c.log("info", `step ${i}`, { i }, "node");
    c.log("debug", `detail ${i}`, {}, "node");
    if (i % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const written = await eventually(() => {
    const lines = records(linesOf(server.logs, "node-steady"));
    return lines.length >= 200 && lines;
  }, 10_000, "200 records written");
  assert.equal(written.length, 200, "debug is below --level info");
  assert.deepEqual(written.map((l) => l.message), Array.from({ length: 200 }, (_, i) => `step ${i + 1}`));
  assert.equal(lost(linesOf(server.logs, "node-steady")), 0);
  const stats = await c.request("tail/stats", null);
  assert.ok(stats.filtered >= 200, JSON.stringify(stats));
});

test("a flood above the rate is cut, and every record is either written or counted as lost", async () => {
  const c = client(server, "node-flood", { capacity: 10_000, maxBatch: 100 });
  await c.connect();
  for (let i = 1; i <= 3000; i++) c.log("warn", `flood ${i}`, {}, "node");
  const accounted = await eventually(() => {
    const lines = linesOf(server.logs, "node-flood");
    return records(lines).length + lost(lines) >= 3000 && lines;
  }, 15_000, "every flooded record written or counted");
  const written = records(accounted);
  assert.equal(written.length + lost(accounted), 3000);
  assert.ok(written.length >= 500 && written.length < 1500, `${written.length} written`);
  const losses = accounted.filter((l) => l.type === "losses");
  assert.ok(losses.some((l) => l.over_budget > 0), JSON.stringify(losses));
  // What was written is a run of the first records: the budget cuts the tail.
  assert.deepEqual(written.slice(0, 500).map((l) => l.message), Array.from({ length: 500 }, (_, i) => `flood ${i + 1}`));
});

test("a Rust service's records are filed under the session it prints", async () => {
  const { stdout } = await promisify(execFile)(exes.telemetry_client, ["--url", server.url, "--count", "40", "--per-sec", "200"], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
  });
  const session = stdout.match(/^session ([0-9a-f]{16})$/m)?.[1];
  assert.ok(session, stdout);
  const lines = await eventually(() => {
    const found = records(linesOf(server.logs, session));
    return found.length >= 41 && found;
  }, 10_000, "the service's 41 records");
  assert.equal(lines.length, 41);
  assert.deepEqual(lines.filter((l) => l.level === "warn").map((l) => l.fields.item), ["10", "20", "30", "40"]);
  assert.equal(lines.at(-1).level, "error");
  assert.equal(lines.at(-1).message, "worker stopping");
  assert.ok(lines.every((l) => l.source.startsWith("worker") && l.session === session));
});

test("files rotate past their size and the directory keeps to its bound", async () => {
  const s = await start(join(dir, "bounded"), ["--max-file-bytes", "20000", "--max-files", "3", "--max-disk-bytes", "50000", "--flush-ms", "50"]);
  const early = client(s, "early");
  await early.connect();
  for (let i = 1; i <= 40; i++) early.log("info", `early ${i} ${"e".repeat(400)}`);
  await eventually(() => records(linesOf(s.logs, "early")).length === 40, 10_000, "the early session written");

  const c = client(s, "rotating");
  await c.connect();
  for (let i = 1; i <= 300; i++) {
    c.log("info", `line ${i} ${"r".repeat(500)}`);
    if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await eventually(() => linesOf(s.logs, "rotating").at(-1)?.seq === 300, 15_000, "300 lines written");
  const names = readdirSync(s.logs).sort();
  assert.deepEqual(names.filter((n) => n.startsWith("rotating")), ["rotating.1.jsonl", "rotating.2.jsonl", "rotating.jsonl"]);
  const sizes = names.map((n) => statSync(join(s.logs, n)).size);
  assert.ok(sizes.every((size) => size <= 20000), `${names} ${sizes}`);
  assert.ok(sizes.reduce((a, b) => a + b, 0) <= 50000, `${sizes}`);
  assert.ok(!existsSync(join(s.logs, "early.jsonl")), "the file written longest ago went first");
  // What is left is the newest lines, numbered without a gap.
  const kept = linesOf(s.logs, "rotating");
  assert.equal(kept.at(-1).message.split(" ")[1], "300");
  assert.deepEqual(kept.map((l) => l.seq), kept.map((_, i) => 300 - kept.length + 1 + i));
  const stats = await c.request("tail/stats", null);
  assert.ok(stats.rotated >= 4 && stats.evicted_files >= 1, JSON.stringify(stats));
  assert.equal(stats.disk_bytes, sizes.reduce((a, b) => a + b, 0));
});

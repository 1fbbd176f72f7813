// The live dashboard (examples/dashboard.rs) in headless Chromium, against
// the real server run as a process: the charts' data grows, a reload starts
// from the channel's history instead of empty, and a server killed and
// started again under the page leaves it with what it had, growing again.
// A screenshot is saved under the repository's `target/js-tests/`.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { launchChromium } from "./support/chromium.js";
import { ROOT, ServerProcess, buildExamples, freePort } from "./support/server.js";

let server;
let context;
let page;

before(async () => {
  const { dashboard } = buildExamples("dashboard");
  server = await new ServerProcess(dashboard, { port: await freePort(), args: ["--every-ms", "100"] }).start();
  context = await launchChromium({ width: 1000, height: 720 });
  page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (err) => page.problems.push(err.message));
});

after(async () => {
  await context?.close();
  await server?.kill();
});

const times = () => page.evaluate(() => window.dashboard.times());

function samplesAtLeast(n, timeout = 10_000) {
  return page.waitForFunction((want) => window.dashboard?.times().length >= want, n, { timeout });
}

test("the charts fill as samples arrive, with the page's own round trips", async () => {
  await page.goto(server.httpUrl);
  await page.waitForFunction(() => document.getElementById("state").dataset.state === "open");
  await samplesAtLeast(10);
  const seen = await times();
  assert.ok(seen.every((t, i) => i === 0 || t > seen[i - 1]), "in order, once each");
  await page.waitForFunction(() => window.dashboard.latency() >= 2, null, { timeout: 10_000 });
  // The page's pings are handled by the server, which times them: the later
  // samples carry the handlers' percentiles.
  await page.waitForFunction(() => window.dashboard.handlerTimes().some(([p50, p99]) => p99 > 0 && p99 >= p50), null, { timeout: 10_000 });
  // Something is drawn: the fleet chart has coloured pixels.
  const drawn = await page.evaluate(() => {
    const canvas = document.getElementById("fleet");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
    return painted;
  });
  assert.ok(drawn > 100, `${drawn} pixels drawn`);
  mkdirSync(join(ROOT, "target", "js-tests"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "target", "js-tests", "dashboard.png") });
});

test("a reload starts from the channel's history, not empty", async () => {
  const before = await times();
  await page.reload();
  // At once (before many new samples could arrive), the page has the ones from before.
  await page.waitForFunction((n) => window.dashboard?.times().length >= n, before.length, { timeout: 5000 });
  const after = await times();
  assert.ok(after[0] <= before[0], "the oldest sample from before the reload is back");
  for (const t of before) assert.ok(after.includes(t), `sample ${t} recovered`);
});

test("a server restart leaves the page with its data, and it grows again", async () => {
  const before = await times();
  await server.kill();
  await page.waitForFunction(() => window.dashboard.state() !== "open", null, { timeout: 10_000 });
  await server.start();
  await page.waitForFunction(() => window.dashboard.state() === "open", null, { timeout: 15_000 });
  await samplesAtLeast(before.length + 10, 15_000);
  const after = await times();
  for (const t of before) assert.ok(after.includes(t), `sample ${t} kept across the restart`);
  assert.ok(after[after.length - 1] > before[before.length - 1], "new samples after the restart");
  assert.deepEqual(page.problems, []);
});

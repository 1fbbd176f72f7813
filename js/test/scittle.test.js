// The Scittle page of docs/MIGRATING_FROM_SENTE.md, exactly as the guide
// quotes it, in headless Chromium against the real chat example: served from
// the chat server's origin (so that `/sente-lite.js` and `/ws` are the
// server's own), with Scittle from the npm package in place of the CDN. A
// Node client in the same room hears the page and is heard by it.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import WebSocket from "ws";

import { Client } from "../sente-lite.js";
import { launchChromium } from "./support/chromium.js";
import { ROOT, ServerProcess, buildExamples, eventually, freePort } from "./support/server.js";

const SCITTLE_CDN = "https://cdn.jsdelivr.net/npm/scittle@0.8.33/dist/scittle.js";

let server;
let context;
let bob;

before(async () => {
  const { chat } = buildExamples("chat");
  server = await new ServerProcess(chat, { port: await freePort() }).start();
  // A page the test serves itself counts as a public one, which Chromium
  // would keep from opening a WebSocket to 127.0.0.1; served by the
  // server itself, as in a real deployment, it is local.
  context = await launchChromium({ width: 800, height: 600 }, { args: ["--disable-features=LocalNetworkAccessChecks"] });
});

after(async () => {
  await bob?.disconnect();
  await context?.close();
  await server?.kill();
});

/** The guide's Scittle page: the html block of its Scittle section. */
function guidePage() {
  const guide = readFileSync(`${ROOT}docs/MIGRATING_FROM_SENTE.md`, "utf8");
  const section = guide.slice(guide.indexOf("In a page with **Scittle**"));
  const page = section.match(/```html\n([\s\S]*?)```/)?.[1];
  assert.ok(page, "the guide has a Scittle page");
  return page;
}

test("the guide's Scittle page chats with a Node client through the chat example", async () => {
  const html = guidePage();
  assert.ok(html.includes(SCITTLE_CDN), "the page loads the pinned Scittle");
  const installed = JSON.parse(readFileSync(new URL("../node_modules/scittle/package.json", import.meta.url), "utf8"));
  assert.ok(SCITTLE_CDN.includes(`scittle@${installed.version}/`), `the guide pins the tested Scittle (${installed.version})`);

  bob = new Client(`${server.url}?name=bob`, { WebSocket });
  const heard = [];
  bob.on("chat/message", (msg) => heard.push(`${msg.from}: ${msg.text}`));
  await bob.connect();
  await bob.request("chat/join", { room: "lobby" });

  const page = await context.newPage();
  const logged = [];
  const problems = [];
  page.on("console", (msg) => {
    if (msg.type() === "log") logged.push(msg.text());
    else if (msg.type() === "error") problems.push(msg.text());
  });
  page.on("pageerror", (err) => problems.push(err.message));
  await page.route(SCITTLE_CDN, (route) =>
    route.fulfill({
      contentType: "text/javascript",
      body: readFileSync(new URL("../node_modules/scittle/dist/scittle.js", import.meta.url), "utf8"),
    }),
  );
  await page.route(`${server.httpUrl}scittle.html`, (route) => route.fulfill({ contentType: "text/html", body: html }));
  await page.goto(`${server.httpUrl}scittle.html`);

  await eventually(() => heard.includes("ada: hello from Scittle"), 15_000, "bob hears the Scittle page");
  await eventually(() => logged.includes("ada: hello from Scittle"), 5000, "the page hears itself in the room");
  bob.send("chat/say", { room: "lobby", text: "hi ada" });
  await eventually(() => logged.includes("bob: hi ada"), 5000, "the page hears bob");
  assert.deepEqual(problems, []);
});

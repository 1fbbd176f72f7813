// The chat page in headless Chromium, against the real chat server
// (examples/chat.rs) run as a process: two pages chat, a page's socket drops
// and it gets what was said meanwhile, presence follows joins, a reload and a
// leave, the server is killed and restarted under them (and the pages are
// told what they missed), and a browser error reaches the server's log.
//
// Chromium comes from the system (`/usr/bin/chromium`, or $CHROMIUM), driven
// by playwright-core. A screenshot of the chat page is saved under the
// repository's `target/js-tests/`.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

import { CHROMIUM, launchChromium } from "./support/chromium.js";
import { ROOT, ServerProcess, buildExamples, freePort } from "./support/server.js";

export const SCREENSHOT = join(ROOT, "target", "js-tests", "chat.png");

let server;
let context;

before(async () => {
  const { chat } = buildExamples("chat");
  server = await new ServerProcess(chat, { port: await freePort() }).start();
  context = await launchChromium({ width: 900, height: 640 });
});

after(async () => {
  await context?.close();
  await server?.kill();
});

/** Opens the chat page (or reloads `page`) and joins `room` as `name`. */
async function joinAs(name, room, page = null) {
  const problems = page?.problems ?? [];
  if (page) {
    await page.reload();
  } else {
    page = await context.newPage();
    page.on("pageerror", (err) => problems.push(err.message));
  }
  await page.goto(server.httpUrl);
  await page.getByLabel("Your name").fill(name);
  await page.getByLabel("Room").fill(room);
  await page.getByRole("button", { name: "Join" }).click();
  await page.locator("#chat").waitFor({ state: "visible" });
  await waitForState(page, "open");
  page.problems = problems;
  return page;
}

function waitForState(page, state, timeout = 10_000) {
  return page.waitForFunction((s) => document.getElementById("state").dataset.state === s, state, { timeout });
}

async function say(page, text) {
  await page.getByRole("textbox", { name: "Message", exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

function message(page, text) {
  return page.locator("#messages li p", { hasText: text });
}

/** The texts of the messages a page shows, in order. */
function shownMessages(page) {
  return page.locator("#messages li p").allTextContents();
}

/** The presence changes a page saw. */
function presenceLog(page) {
  return page.evaluate(() => [...window.chat.presenceLog]);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("chat in the browser: two pages, a request, a dropped socket, presence, a server restart, telemetry", { timeout: 150_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}`);
  const ada = await joinAs("ada", "lobby");
  const bob = await joinAs("bob", "lobby");

  await t.test("both see who is online", async () => {
    await ada.locator("#members li", { hasText: "bob" }).waitFor();
    await bob.locator("#members li", { hasText: "ada" }).waitFor();
    await bob.locator("#members li", { hasText: "bob (you)" }).waitFor();
    assert.equal(await ada.locator("#state-text").textContent(), "connected");
  });

  await t.test("a message goes from one page to the other", async () => {
    await say(ada, "hello from ada");
    await message(bob, "hello from ada").waitFor();
    await say(bob, "hi ada, bob here");
    await message(ada, "hi ada, bob here").waitFor();
  });

  await t.test("a request gets its reply", async () => {
    const reply = await bob.evaluate(() => window.chat.client.request("chat/join", { room: "lobby" }));
    assert.deepEqual(reply, { room: "lobby", members: ["ada", "bob"] });
    const handshake = await bob.evaluate(() => window.chat.client.handshake);
    assert.equal(handshake.user_id, "bob");
  });

  await t.test("a page's socket drops: what was said meanwhile appears once, in order", async () => {
    // The socket dies under the page (as a network drop does); bob talks on.
    await ada.evaluate(() => window.chat.client._conn.ws.close());
    const said = [1, 2, 3, 4, 5].map((i) => `said while ada was away ${i}`);
    for (const text of said) await say(bob, text);
    await waitForState(ada, "open", 15_000);
    await message(ada, said.at(-1)).waitFor();
    await say(bob, "and after");
    await message(ada, "and after").waitFor();
    const shown = (await shownMessages(ada)).filter((t) => said.includes(t) || t === "and after");
    assert.deepEqual(shown, [...said, "and after"]);
    assert.equal(await ada.locator("#notice").isHidden(), true, "no gap was reported");
  });

  await t.test("presence: a join, a reload that does not flap, a leave", async () => {
    const cy = await joinAs("cy", "lobby");
    await ada.locator("#members li", { hasText: "cy" }).waitFor();
    assert.ok((await presenceLog(ada)).includes("joined cy"));
    // bob reloads the page and joins again within the presence grace (5 s).
    const before = (await presenceLog(ada)).length;
    await joinAs("bob", "lobby", bob);
    await bob.locator("#members li", { hasText: "ada" }).waitFor();
    await sleep(6_000);
    const during = (await presenceLog(ada)).slice(before);
    assert.ok(!during.some((e) => e.startsWith("left bob")), `bob flapped: ${during}`);
    await ada.locator("#members li", { hasText: "bob" }).waitFor();
    // cy leaves: gone once the grace has passed.
    await cy.getByRole("button", { name: "Leave" }).click();
    await ada.locator("#members li", { hasText: "cy" }).waitFor({ state: "detached", timeout: 10_000 });
    assert.ok((await presenceLog(ada)).includes("left cy"));
    await cy.close();
  });

  await t.test("a screenshot of the chat page", async () => {
    mkdirSync(join(ROOT, "target", "js-tests"), { recursive: true });
    await ada.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(existsSync(SCREENSHOT));
  });

  await t.test("a browser error reaches the server's log", async () => {
    await ada.evaluate(() => {
      setTimeout(() => {
        throw new Error("boom-from-the-browser");
      });
      Promise.reject(new Error("rejected-in-the-browser"));
      console.error("console-error-from-the-browser", { detail: 1 });
    });
    await server.waitForOutput(/boom-from-the-browser/);
    await server.waitForOutput(/rejected-in-the-browser/);
    await server.waitForOutput(/console-error-from-the-browser/);
    const line = server.output.split("\n").find((l) => l.includes("boom-from-the-browser"));
    assert.match(line, /ERROR/);
    assert.match(line, /user_id="?ada/);
    assert.match(line, /window\.onerror/);
  });

  await t.test("the server is killed and restarted: both pages come back, in their room", async () => {
    await server.kill();
    await waitForState(ada, "reconnecting");
    await waitForState(bob, "reconnecting");
    await ada.locator("#notice", { hasText: "reconnecting" }).waitFor();
    await ada.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-reconnecting.png") });
    await say(ada, "ada, sent while away");
    await say(bob, "bob, sent while away");
    await server.start();
    await waitForState(ada, "open", 15_000);
    await waitForState(bob, "open", 15_000);
    // Queued messages go out after the restored subscription: each page sees its own.
    await message(ada, "ada, sent while away").waitFor();
    await message(bob, "bob, sent while away").waitFor();
    await ada.locator("#members li", { hasText: "bob" }).waitFor();
    await bob.locator("#members li", { hasText: "ada" }).waitFor();
    // The restarted server has no memory of the room: the pages are told.
    await ada.locator("#notice", { hasText: "may be missing" }).waitFor();
    await say(ada, "still here?");
    await message(bob, "still here?").waitFor();
    await say(bob, "yes");
    await message(ada, "yes").waitFor();
  });

  assert.deepEqual([...ada.problems, ...bob.problems], [
    "boom-from-the-browser",
    "rejected-in-the-browser",
  ]);
});

test("a refused upgrade in the browser: the probe says why, and the page decides", { timeout: 60_000 }, async () => {
  const page = await context.newPage();
  await page.goto(server.httpUrl);
  const outcome = await page.evaluate(async () => {
    const { Client } = await import("/sente-lite.js");
    // The chat refuses names longer than 32 bytes with 401; the browser's
    // WebSocket shows only a close, the probe shows the status.
    const refused = new Client(`/ws?name=${"x".repeat(40)}`, { reconnect: { initialDelayMs: 20 } });
    const error = await refused.connect().then(() => null, (e) => e);
    // A page that fixes its credentials and retries.
    let name = "y".repeat(40);
    const decided = [];
    const retrying = new Client(async () => `/ws?name=${name}`, {
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
      onRejected: (rejection) => {
        decided.push(rejection.status);
        name = "carol";
        return "retry";
      },
    });
    await retrying.connect();
    const userId = retrying.userId;
    await retrying.disconnect();
    return {
      code: error?.code,
      status: error?.status,
      message: error?.message,
      state: refused.state,
      decided,
      userId,
    };
  });
  await page.close();
  assert.equal(outcome.code, "rejected");
  assert.equal(outcome.status, 401);
  assert.match(outcome.message, /a name is 1 to 32 bytes/);
  assert.equal(outcome.state, "failed");
  assert.deepEqual(outcome.decided, [401]);
  assert.equal(outcome.userId, "carol");
});

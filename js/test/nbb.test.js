// The Sente-style nbb program of docs/MIGRATING_FROM_SENTE.md
// (test/nbb/chat.cljs, quoted there whole) run by nbb against the real test
// server: the JavaScript module used from ClojureScript on Node.js.

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { ROOT } from "./support/server.js";
import { testbed } from "./support/testbed.js";

const { server } = testbed();
const here = (path) => fileURLToPath(new URL(path, import.meta.url));

describe("nbb", () => {
  let s;
  before(async () => {
    s = await server();
  });

  test("the guide's program runs as written", async () => {
    const program = readFileSync(here("./nbb/chat.cljs"), "utf8");
    const guide = readFileSync(`${ROOT}docs/MIGRATING_FROM_SENTE.md`, "utf8");
    assert.ok(guide.includes(program.trim()), "the guide quotes test/nbb/chat.cljs whole");
    const { stdout } = await promisify(execFile)(
      here("../node_modules/.bin/nbb"),
      [here("./nbb/chat.cljs"), `${s.url}?name=nbb`],
      { timeout: 60_000 },
    );
    assert.deepEqual(stdout.trim().split("\n"), [
      "echoed: hello from nbb as nbb",
      "news: pushed to me",
      "asked: nbb answers ready?",
    ]);
  });
});

// The TypeScript declarations: generated from the chat's Rust event types by
// the `ts_export` example, then checked with `tsc` against typed samples.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { schemaHash } from "../sente-lite.js";
import { buildExamples } from "./support/server.js";
import { typecheck } from "./support/tsc.js";

const JS = fileURLToPath(new URL("../", import.meta.url));
const TYPES = fileURLToPath(new URL("./types/", import.meta.url));

test("generated event map types the client: good code compiles, wrong payloads do not", (t) => {
  const { ts_export } = buildExamples("ts_export");
  const dir = mkdtempSync(join(tmpdir(), "sente-lite-ts-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const exported = spawnSync(ts_export, [dir], { encoding: "utf8" });
  assert.equal(exported.status, 0, exported.stderr);
  const generated = readFileSync(join(dir, "events.d.ts"), "utf8");
  assert.match(generated, /export type Joined = \{/);
  assert.match(generated, /"chat\/join": \{ kind: "request"; payload: Join; reply: Joined \};/);
  assert.match(generated, /"chat\/say": \{ kind: "event"; payload: Say \};/);
  assert.match(generated, /"telemetry\/batch": \{ kind: "event"; payload: TelemetryBatch \};/);
  assert.match(
    generated,
    /"room\/\{name\}": \{ params: \{ name: string \}; name: `room\/\$\{string\}`; events: "chat\/message" \};/,
  );

  // The shapes beside the declarations: the JavaScript client's `schema` option.
  const schema = JSON.parse(readFileSync(join(dir, "events.schema.json"), "utf8"));
  assert.equal(schemaHash(schema), schema.schema_hash);
  assert.deepEqual(
    schema.events.map((event) => `${event.id} ${event.kind}`),
    ["chat/join request", "chat/leave request", "chat/message event", "chat/say event"],
  );

  copyFileSync(join(TYPES, "sample.ts"), join(dir, "sample.ts"));
  copyFileSync(join(TYPES, "wrong.ts"), join(dir, "wrong.ts"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const tsc = typecheck(dir, ["sample.ts", "wrong.ts"], { "sente-lite": [join(JS, "sente-lite.d.ts")] });
  const errors = tsc.stdout.split("\n").filter((line) => / error TS\d+/.test(line));
  assert.notEqual(tsc.status, 0, "wrong.ts must not compile");
  assert.equal(errors.length, 1, `only wrong.ts's mistake is an error:\n${tsc.stdout}`);
  assert.match(errors[0], /wrong\.ts\(6,/);
  assert.match(errors[0], /'id' does not exist in type 'Join'/);
});

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

test("generated maps type the client: good code compiles; wrong payloads, channel subscriptions and publications do not", (t) => {
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
  // Each line of wrong.ts marked `// ✗` is exactly one error, and nothing else is.
  const marked = readFileSync(join(TYPES, "wrong.ts"), "utf8")
    .split("\n")
    .flatMap((line, at) => (line.endsWith("// ✗") || line.includes("// ✗ ") ? [at + 1] : []));
  assert.deepEqual(marked, [6, 9, 10, 11, 12]);
  assert.deepEqual(
    errors.map((line) => Number(/wrong\.ts\((\d+),/.exec(line)?.[1])),
    marked,
    `only wrong.ts's marked mistakes are errors:\n${tsc.stdout}`,
  );
  const expected = [
    /'id' does not exist in type 'Join'/,
    /"rooms\/lobby"' is not assignable to parameter of type '`room\/\$\{string\}`'/,
    /'room' does not exist in type '\{ name: string; \}'/,
    /'"chat\/say"' does not exist in type 'ChannelHandlers</,
    /Property 'body' does not exist on type 'ChatMessage'/,
  ];
  expected.forEach((pattern, i) => assert.match(errors[i], pattern));
});

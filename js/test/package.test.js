// The npm package as a user gets it: packed with `npm pack`, installed from
// the tarball into an empty project, imported by its name in Node.js and
// type-checked by its name with `tsc`.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { typecheck } from "./support/tsc.js";

const JS = fileURLToPath(new URL("../", import.meta.url));
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, encoding: "utf8" });
  assert.equal(result.status, 0, `${command} ${args.join(" ")}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

test("the package holds the module, its declarations, the readme and the licenses", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "sente-lite-pack-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const [packed] = JSON.parse(run(NPM, ["pack", "--json", "--pack-destination", dir], JS));
  const files = packed.files.map((file) => file.path).sort();
  assert.deepEqual(files, [
    "LICENSE-APACHE",
    "LICENSE-MIT",
    "README.md",
    "package.json",
    "sente-lite.d.ts",
    "sente-lite.js",
  ]);
  const manifest = JSON.parse(readFileSync(join(JS, "package.json"), "utf8"));
  assert.equal(packed.name, "sente-lite");
  assert.equal(manifest.license, "MIT OR Apache-2.0");
  assert.deepEqual(manifest.dependencies ?? {}, {}, "the client has no runtime dependencies");

  // Installed into an empty project from the tarball alone (no registry).
  const project = join(dir, "app");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  run(NPM, ["install", "--offline", "--no-audit", "--no-fund", join(dir, packed.filename)], project);

  writeFileSync(
    join(project, "main.js"),
    [
      'import { Client, PROTOCOL_VERSION, SUBPROTOCOL, schemaHash } from "sente-lite";',
      "class NoSocket {}",
      'const client = new Client("ws://127.0.0.1:1/ws", { WebSocket: NoSocket });',
      "console.log(JSON.stringify({ state: client.state, version: PROTOCOL_VERSION, SUBPROTOCOL, empty: schemaHash({ events: [] }) }));",
    ].join("\n"),
  );
  const printed = JSON.parse(run(process.execPath, ["main.js"], project));
  assert.deepEqual(printed, {
    state: "closed",
    version: 1,
    SUBPROTOCOL: "sente-lite.json.v1",
    empty: "cbf29ce484222325",
  });

  // Its declarations are found by the package's name, and they type the client.
  writeFileSync(
    join(project, "typed.ts"),
    [
      'import { Client, type ConnectionState } from "sente-lite";',
      'const client = new Client("ws://127.0.0.1:1/ws");',
      "export const state: ConnectionState = client.state;",
      "// @ts-expect-error: the state is one of six names",
      'export const wrong: ConnectionState = "sleeping";',
    ].join("\n"),
  );
  const tsc = typecheck(project, ["typed.ts"]);
  assert.equal(tsc.status, 0, tsc.stdout);
});

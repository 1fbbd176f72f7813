// The Yjs bundle the editor example serves (examples/editor_page/vendor/yjs.js)
// is what js/scripts/bundle-yjs.js makes from the Yjs of package-lock.json:
// rebuilt here and compared byte for byte, so that it cannot drift from the
// pinned version (run the script to update it after changing the version).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

import { BUNDLE, bundleYjs } from "../scripts/bundle-yjs.js";

test("the committed Yjs bundle is the one the script makes", async () => {
  const committed = readFileSync(BUNDLE, "utf8");
  const version = createRequire(import.meta.url)("yjs/package.json").version;
  assert.ok(committed.startsWith(`/*\n * Yjs ${version} `), `the bundle's header names Yjs ${version}`);
  const made = await bundleYjs();
  assert.ok(made === committed, "examples/editor_page/vendor/yjs.js is stale: run `node js/scripts/bundle-yjs.js`");
});

test("the bundle exports what the page uses", async () => {
  const Y = await import(BUNDLE);
  for (const name of [
    "Doc",
    "applyUpdate",
    "encodeStateAsUpdate",
    "encodeStateVector",
    "mergeUpdates",
    "snapshot",
    "encodeSnapshot",
    "createRelativePositionFromTypeIndex",
    "createAbsolutePositionFromRelativePosition",
    "encodeRelativePosition",
    "decodeRelativePosition",
  ]) {
    assert.equal(typeof Y[name], "function", name);
  }
  const doc = new Y.Doc();
  doc.getText("text").insert(0, "bundled");
  assert.equal(doc.getText("text").toString(), "bundled");
});

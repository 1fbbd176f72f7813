// Bundles Yjs (and the parts of lib0 it uses) into one minified ES module,
// the one the collaborative editor example serves to its page
// (`examples/editor_page/vendor/yjs.js`), so that the example's binary needs
// neither a CDN nor node_modules. The versions are those of js/package-lock.json.
//
//   node js/scripts/bundle-yjs.js          rewrites the committed file
//   node js/scripts/bundle-yjs.js OUT      writes OUT instead
//
// `js/test/editor-bundle.test.js` checks that the committed file is what this
// script makes.

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const JS = fileURLToPath(new URL("..", import.meta.url));
const MODULES = new URL("../node_modules/", import.meta.url);

/** The bundle's default place, in the repository. */
export const BUNDLE = fileURLToPath(new URL("../../examples/editor_page/vendor/yjs.js", import.meta.url));

function installed(name) {
  const dir = new URL(`${name}/`, MODULES);
  const { version, license } = JSON.parse(readFileSync(new URL("package.json", dir), "utf8"));
  const licenseText = readFileSync(new URL("LICENSE", dir), "utf8").trim();
  return { name, version, license, licenseText };
}

/** The bundle's text: a header naming what it holds, then the minified module. */
export async function bundleYjs() {
  const packages = [installed("yjs"), installed("lib0")];
  const result = await build({
    stdin: { contents: 'export * from "yjs";\n', resolveDir: JS, sourcefile: "yjs-bundle.js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "none",
    charset: "ascii",
    write: false,
    logLevel: "silent",
  });
  const header = [
    `Yjs ${packages[0].version} with lib0 ${packages[1].version}, bundled into one ES module`,
    "for the collaborative editor example (examples/editor.rs).",
    "Regenerate with `npm ci --prefix js && node js/scripts/bundle-yjs.js`.",
    "",
    ...packages.flatMap(({ name, version, license, licenseText }) => [
      `${name} ${version}, licence ${license}:`,
      "",
      ...licenseText.split("\n").map((line) => `  ${line}`.trimEnd()),
      "",
    ]),
  ];
  const comment = `/*\n${header.map((line) => ` * ${line}`.trimEnd()).join("\n")}\n */\n`;
  return comment + result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? BUNDLE;
  writeFileSync(out, await bundleYjs());
  console.log(`wrote ${out}`);
}

// Type-checks TypeScript files with the test tools' `tsc`, strictly, as a
// project of ES modules for Node.js and browsers would.

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const TSC = fileURLToPath(new URL("../../node_modules/typescript/bin/tsc", import.meta.url));

/**
 * Writes `dir/tsconfig.json` for `files` (with `paths`, when given, to map
 * module names) and runs `tsc` on it: its exit status and output.
 */
export function typecheck(dir, files, paths = undefined) {
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: "es2022",
        lib: ["es2022", "dom"],
        module: "nodenext",
        moduleResolution: "nodenext",
        types: [],
        ...(paths ? { paths } : {}),
      },
      files,
    }),
  );
  const tsc = spawnSync(process.execPath, [TSC, "-p", dir, "--pretty", "false"], { encoding: "utf8" });
  return { status: tsc.status, stdout: tsc.stdout };
}

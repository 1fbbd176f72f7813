// Copies the repository's license texts into the package before `npm pack`
// and `npm publish` (npm leaves symbolic links out of a package).
import { copyFileSync } from "node:fs";

for (const name of ["LICENSE-MIT", "LICENSE-APACHE"]) {
  copyFileSync(new URL(`../../${name}`, import.meta.url), new URL(`../${name}`, import.meta.url));
}

// Headless Chromium for the page tests: the system's (`/usr/bin/chromium`,
// Debian's `chromium`, or $CHROMIUM) driven by playwright-core, in a fresh
// profile that `close()` removes.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A browser context with a window of `viewport`; `close()` ends it and removes its profile.
 * `args` are more command-line switches.
 */
export async function launchChromium(viewport, { args = [] } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "sente-lite-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...ARGS, ...args],
    viewport,
  });
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    rmSync(profile, { recursive: true, force: true });
  };
  return context;
}

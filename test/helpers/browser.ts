// Debian's chromium, driven by playwright-core (issue 26). scripts/install-deps installs both; no browser
// is ever downloaded. A missing browser is one clear failure, never a silent skip.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/** Where the browser binary is: $MIRRORBALL_CHROMIUM, or Debian's. */
export function chromiumPath(): string {
  const path = process.env.MIRRORBALL_CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(path)) {
    throw new Error(`no browser at ${path}: run scripts/install-deps (it installs Debian's chromium), or set MIRRORBALL_CHROMIUM`);
  }
  return path;
}

/** A headless chromium. The caller closes it. */
export async function launchBrowser(): Promise<Browser> {
  // --no-sandbox: CI and these machines run tests as root, where chromium refuses its sandbox.
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox'] });
}

/** The folder screenshots go to, kept with the test output (test-results/screenshots, ignored by git). */
export function screenshotDir(): string {
  const dir = join('test-results', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

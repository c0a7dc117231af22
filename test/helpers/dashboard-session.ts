// The dashboard's browser tests' common part: `up FILE --web 0` started, the page it prints opened in Debian's
// chromium and connected, the test's body run, and on the way out (a failure's screenshot first) the browser
// closed and `up` ended.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Page } from 'playwright-core';
import { launchBrowser, screenshotDir } from './browser.js';
import { CLI } from './run-process.js';

/** Polls `condition` every 100 ms; fails naming `what` (and `detail()`) after `timeoutMs`. */
export async function until(what: string, condition: () => Promise<boolean>, timeoutMs: number, detail: () => Promise<string> = async () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`waited ${timeoutMs / 1000} s for ${what}\n${await detail()}`);
    await sleep(100);
  }
}

export interface DashboardSession {
  up: ChildProcess;
  /** What `up` printed so far, both streams. */
  output(): string;
  page: Page;
  /** Script errors the page threw. */
  errors: string[];
  /** The folder for screenshots. */
  shots: string;
}

/**
 * Runs `body` against `up FILE --run-dir RUN-DIR --web 0` with its page open and connected (after at most
 * `addressMs` for `up` to print the page's address). A failure saves `NAME-failed.png` before it is thrown.
 */
export function withDashboard(file: string, runDir: string, name: string, addressMs: number, body: (s: DashboardSession) => Promise<void>): Promise<void> {
  return withPage(['up', file, '--run-dir', runDir, '--web', '0'], name, addressMs, body);
}

/** The same for any command line that serves the dashboard and prints its address (`run … --web 0` too). */
export async function withPage(argv: readonly string[], name: string, addressMs: number, body: (s: DashboardSession) => Promise<void>): Promise<void> {
  const up = spawn(process.execPath, [CLI, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  up.stdout!.setEncoding('utf8').on('data', (t: string) => { output += t; });
  up.stderr!.setEncoding('utf8').on('data', (t: string) => { output += t; });
  const browser = await launchBrowser();
  const shots = screenshotDir();
  let page: Page | undefined;
  try {
    await until('the dashboard\'s address', async () => /dashboard \S+/.test(output) || up.exitCode !== null, addressMs);
    const url = /dashboard (\S+)/.exec(output)?.[1];
    assert.ok(url !== undefined, output);
    const opened = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
    page = opened;
    const errors: string[] = [];
    opened.on('pageerror', (error) => errors.push(error.message));
    await opened.goto(url);
    await until('the page to connect', async () => (await opened.locator('#status').innerText()) === 'connected', 30_000, () => opened.locator('#status').innerText());
    await body({ up, output: () => output, page: opened, errors, shots });
  } catch (error) {
    await page?.screenshot({ path: join(shots, `${name}-failed.png`), fullPage: true }).catch(() => {});
    throw error;
  } finally {
    await browser.close();
    up.kill('SIGTERM');
    await new Promise((resolve) => { if (up.exitCode !== null) resolve(null); else up.once('exit', resolve); });
  }
}

// The static page of `mirrorball web build`, served by `web serve`, boots the built guest in a real browser
// (Debian's chromium) to its shell prompt; a command typed into the page's terminal is answered there, and
// the dashboard's views of where time goes and the NUMA map follow the tab's machine.
// Booting takes about 6 s of an idle host's time in the browser; the waits below leave room for a loaded one.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { launchBrowser, screenshotDir } from '../helpers/browser.js';
import { CLI } from '../helpers/run-process.js';

const skip = findBuiltGuest() === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const PROMPT = 'mirrorball:/# ';
/** Host time to reach the prompt: about 6 s on an idle host, generous for one shared with other test runs. */
const BOOT_TIMEOUT_MS = 150_000;

/** `web serve` on a free port: resolves to its address once it printed it. */
function serve(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, 'web', 'serve', '--dir', dir, '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const line = /^(http:\/\/\S+)\n/.exec(text);
      if (line !== null) resolve({ child, url: line[1]! });
    });
    child.once('exit', (code) => reject(new Error(`web serve exited (${code})`)));
  });
}

/**
 * The folder as a host that cannot set headers serves it (no COOP, no COEP): the page is then not cross-origin
 * isolated. Only for this test's own files (paths are normalized and kept under `dir`, nothing more).
 */
async function serveWithoutIsolation(dir: string): Promise<{ server: Server; url: string }> {
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };
  const server = createServer((request, response) => {
    const path = normalize(decodeURIComponent((request.url ?? '/').split('?')[0]!)).replace(/^(\.\.[/\\])+/, '');
    const file = path === '/' ? 'index.html' : path;
    try {
      const body = readFileSync(join(dir, file));
      response.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
      response.end(body);
    } catch {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${address.port}/` };
}

async function waitForPrompt(page: Page, errors: string[], shot: string): Promise<void> {
  try {
    await page.waitForFunction((prompt) => (globalThis as unknown as { mirrorballTab?: { transcript(): string } }).mirrorballTab?.transcript().includes(prompt),
      PROMPT, { timeout: BOOT_TIMEOUT_MS, polling: 250 });
  } catch (error) {
    await page.screenshot({ path: join(screenshotDir(), shot) });
    throw new Error(`no shell prompt in the page: ${String(error)}; page errors: ${errors.join('; ')}; progress: ${await page.textContent('#progress')}`);
  }
}

function transcript(page: Page): Promise<string> {
  return page.evaluate(() => (globalThis as unknown as { mirrorballTab: { transcript(): string } }).mirrorballTab.transcript());
}

describe('Mirrorball in a browser tab', { skip }, () => {
  let dir: string;
  let server: { child: ChildProcess; url: string };
  let browser: Browser;
  const errors: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mb-web-tab-'));
    const built = spawnSync(process.execPath, [CLI, 'web', 'build', '--out', join(dir, 'page')], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    server = await serve(join(dir, 'page'));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    server?.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('boots the guest to its shell prompt and answers a command typed into the terminal', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(server.url);
    assert.equal(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated), true, 'web serve\'s headers make the page cross-origin isolated');
    const shots = screenshotDir();
    assert.equal(await page.textContent('#notice'), '', 'no notice about isolation');
    await waitForPrompt(page, errors, 'web-tab-boot-failed.png');
    const booted = await transcript(page);
    assert.match(booted, /Linux version 6\.1/);
    assert.match(booted, /Run \/init as init process/);
    await page.screenshot({ path: join(shots, 'web-tab-prompt.png') });

    // Typed as a person would: keys into xterm, which hands them to the worker's UART.
    await page.click('#terminal');
    await page.keyboard.type('echo $((6 * 7))-answer; uname -m\n');
    await page.waitForFunction(() => /\n42-answer\r?\nriscv64\r?\n/.test((globalThis as unknown as { mirrorballTab: { transcript(): string } }).mirrorballTab.transcript()),
      undefined, { timeout: 60_000, polling: 250 });
    await page.screenshot({ path: join(shots, 'web-tab-command.png') });

    // The progress line and the statistics view follow the machine.
    assert.match(await page.textContent('#progress') ?? '', /^[\d,]+ instructions · guest \d+\.\d\d s · /);
    const stats = await page.$$eval('#stats tr', (rows) => Object.fromEntries(rows.map((r) => [r.querySelector('th')!.textContent, r.querySelector('td')!.textContent])));
    assert.deepEqual(Object.keys(stats), ['instructions per second', 'guest time', 'host time', 'harts']);
    assert.match(stats['harts']!, /^1 \(\d busy\)$/);
    assert.ok(Number.parseFloat(stats['guest time']!) > 0.3, `guest time ${stats['guest time']}`);

    // The dashboard's views, fed by the tab's machine: where time goes for the machine and its hart take samples
    // as time goes on (a command keeps the guest busy meanwhile), and the NUMA map shows the node with its hart.
    type Samples = { machine: number; harts: number[] };
    const samples = (): Promise<Samples> => page.evaluate(() => (globalThis as unknown as { mirrorballTab: { samples(): Samples } }).mirrorballTab.samples());
    const first = await samples();
    await page.keyboard.type('i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo busy-done\n');
    await page.waitForFunction(() => (globalThis as unknown as { mirrorballTab: { transcript(): string } }).mirrorballTab.transcript().includes('\nbusy-done'),
      undefined, { timeout: 60_000, polling: 250 });
    await page.waitForTimeout(1000);
    const later = await samples();
    assert.equal(later.harts.length, 1);
    assert.ok(later.machine > first.machine + 3 && later.harts[0]! > first.harts[0]! + 3, `the charts did not take samples: ${JSON.stringify([first, later])}`);
    const legend = await page.locator('#machine-charts .u-legend').innerText();
    assert.match(legend, /guest user[\s\S]*guest kernel[\s\S]*idle/);
    assert.doesNotMatch(legend, /monitor/, 'no monitor runs in the tab');
    assert.equal(await page.locator('#numa-map .node').count(), 1);
    assert.equal(await page.locator('#numa-map .cpu').count(), 1);
    assert.match(await page.locator('#numa-map .cpu .vcpu').innerText(), /^(running|wfi|off)$/);
    await page.screenshot({ path: join(shots, 'web-tab-views.png'), fullPage: true });

    // Leaving the shell powers the guest off: the worker's machine stops and the page says why.
    await page.keyboard.type('exit\n');
    await page.locator('#progress', { hasText: 'the guest powered off (status 0)' }).waitFor({ timeout: 60_000 });
    assert.deepEqual(errors, []);
  });

  it('refuses a bad machine in its address with one line on the page', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${server.url}?smp=99`);
      await page.locator('#progress.error').waitFor({ timeout: 30_000 });
      assert.equal(await page.textContent('#progress'), 'error: ?smp=99: a whole number from 1 to 32, please');
    } finally {
      await page.close();
    }
  });

  it('boots without cross-origin isolation too (RAM a plain ArrayBuffer), and says so', { timeout: BOOT_TIMEOUT_MS + 60_000 }, async () => {
    const plain = await serveWithoutIsolation(join(dir, 'page'));
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    try {
      await page.goto(plain.url);
      assert.equal(await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated: boolean }).crossOriginIsolated), false);
      await waitForPrompt(page, pageErrors, 'web-tab-not-isolated-failed.png');
      assert.match(await page.textContent('#notice') ?? '', /not cross-origin isolated/);
      await page.screenshot({ path: join(screenshotDir(), 'web-tab-not-isolated.png') });
      assert.deepEqual(pageErrors, []);
    } finally {
      await page.close();
      await new Promise((resolve) => plain.server.close(resolve));
    }
  });
});

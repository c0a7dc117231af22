// The NUMA policy's moves as events on the control socket (docs/control.md, "Page events"): `up` with a VM of
// the built guest whose pages are spread round-robin over two nodes, the policy on the TLB-miss signal (fast
// mode), so that booting Linux makes it move and copy pages; each event names the VM, a page of its memory and
// two different nodes, and no more events come than the policy's counts say it did. The dashboard's NUMA map,
// open in chromium meanwhile, draws them as they come (a screenshot shows the arrows).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { launchBrowser, screenshotDir } from '../helpers/browser.js';
import { Client } from '../helpers/control-client.js';
import { CLI } from '../helpers/run-process.js';

const skip = findBuiltGuest() === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'mb-page-events-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 2 ** 20;
/** Where the guest's RAM starts (the virt board's). */
const RAM_BASE = 0x8000_0000;

function within<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`waited ${ms / 1000} s for ${what}`)), ms); })])
    .finally(() => clearTimeout(timer));
}

describe('page events', { skip }, () => {
  it('the policy\'s moves come as PAGE_MIGRATED and PAGE_REPLICATED events as it makes them', { timeout: 150_000 }, async () => {
    const file = join(dir, 'numa.yaml');
    writeFileSync(file, 'machine:\n  nodes: 2\n  smp: 2\n  memory: 512M\nmonitor:\n  placement: round-robin\n  policySignal: tlb-misses\n' +
      '  policy:\n    tlbHotMisses: 2\nvms:\n  - name: web\n    smp: 2\n    memory: 96M\n');
    const runDir = join(dir, 'run');
    const up = spawn(process.execPath, [CLI, 'up', file, '--run-dir', runDir, '--web', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    up.stdout!.setEncoding('utf8').on('data', (t: string) => { output += t; });
    up.stderr!.setEncoding('utf8').on('data', (t: string) => { output += t; });
    const browser = await launchBrowser();
    try {
      const client = await Client.connect(join(runDir, 'control.sock'), up);
      await within('the dashboard\'s address', (async () => { while (!/dashboard \S+/.test(output)) await new Promise((r) => setTimeout(r, 100)); })(), 30_000);
      const page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
      await page.goto(/dashboard (\S+)/.exec(output)![1]!);
      await client.next((m) => 'QMP' in m);
      assert.deepEqual(await client.execute('qmp_capabilities'), { return: {} });
      const isMove = (m: Record<string, unknown>): boolean => m.event === 'PAGE_MIGRATED' || m.event === 'PAGE_REPLICATED';
      const events: Record<string, unknown>[] = [];
      // The first few, as the policy makes them while the guest boots.
      while (events.length < 5) events.push(await within(`page events (output so far: ${output})`, client.next(isMove), 100_000));
      const counts = (await client.execute('query-cpus')).return as { policy: { migratedTo: number[]; replicatedTo: number[] } };
      for (const e of events) {
        const data = e.data as { vm: string; page: number; pages: number; from: number; to: number };
        assert.equal(data.vm, 'web');
        assert.ok(data.pages === 1 || data.pages === 512, JSON.stringify(data));
        assert.ok(Number.isInteger(data.page) && data.page % 4096 === 0 && data.page >= RAM_BASE && data.page + data.pages * 4096 <= RAM_BASE + 96 * MiB, JSON.stringify(data));
        assert.ok([0, 1].includes(data.from) && [0, 1].includes(data.to) && data.from !== data.to, JSON.stringify(data));
        assert.ok(typeof (e.timestamp as { seconds: number }).seconds === 'number');
      }
      // Every event is a move the policy counted (the counts come after the events that were sent).
      const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
      const migrated = events.filter((e) => e.event === 'PAGE_MIGRATED').length;
      const replicated = events.length - migrated;
      assert.ok(sum(counts.policy.migratedTo) >= migrated && sum(counts.policy.replicatedTo) >= replicated, JSON.stringify({ counts, migrated, replicated }));
      // The page got them too and drew them: its hook counts the moves it was told of, its list shows them.
      const moves = (): Promise<{ migrated: number; replicated: number }> =>
        page.evaluate(() => (globalThis as unknown as { mirrorball: { moves(): { migrated: number; replicated: number } } }).mirrorball.moves());
      await within('the page to draw a move', (async () => { for (;;) { const m = await moves(); if (m.migrated + m.replicated > 0) return; await new Promise((r) => setTimeout(r, 100)); } })(), 30_000);
      assert.match(await page.locator('#policy-events li').first().innerText(), /web (page 0x[0-9a-f]+|\d+ pages from 0x[0-9a-f]+) (migrated|replicated) node \d → \d/);
      await page.screenshot({ path: join(screenshotDir(), 'dashboard-page-events.png'), fullPage: true });
      assert.deepEqual(await client.execute('quit'), { return: {} });
      client.socket.end();
    } finally {
      await browser.close();
      if (up.exitCode === null) up.kill('SIGTERM');
      await new Promise((resolve) => { if (up.exitCode !== null) resolve(null); else up.once('exit', resolve); });
    }
  });
});

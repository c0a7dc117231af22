// The dashboard in a real browser (Debian's chromium through playwright-core) against `up --web` with two
// VMs of the built guest: a command typed into one console and its answer read back, the VM list and the
// charts updating, a VM stopped from the page and started again. Screenshots go to the helper's folder.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { until, withDashboard, withPage } from '../helpers/dashboard-session.js';

const skip = findBuiltGuest() === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'mb-dashboard-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

/** The text a VM's terminal shows (xterm's DOM rows). */
function screen(page: Page, vm: string): Promise<string> {
  return page.locator(`.console[data-vm="${vm}"] .xterm-rows`).innerText();
}


const state = (page: Page, vm: string): Promise<string> => page.locator(`#vm-table tr[data-vm="${vm}"] td.state`).innerText();
const samples = (page: Page): Promise<{ vms: Record<string, number>; cpus: Record<string, number> }> =>
  // The page's own hook (web/dashboard/main.ts); `globalThis` is the window there.
  page.evaluate(() => (globalThis as unknown as { mirrorball: { samples(): { vms: Record<string, number>; cpus: Record<string, number> } } }).mirrorball.samples());

describe('the dashboard in a browser', { skip }, () => {
  it('shows the VMs and charts, takes typing in a console, stops a VM and starts it again', { timeout: 180_000 }, async () => {
    const file = join(dir, 'two.yaml');
    writeFileSync(file, 'machine:\n  topology: uma\n  smp: 2\n  memory: 512M\nvms:\n  - name: web\n    memory: 96M\n  - name: db\n    memory: 96M\n');
    await withDashboard(file, join(dir, 'run'), 'dashboard', 60_000, async ({ page, errors, shots }) => {
      assert.equal(new URL(page.url()).hash, '', 'the token is taken out of the address bar');
      assert.deepEqual([await state(page, 'web'), await state(page, 'db')], ['running', 'running']);

      // Both consoles reach the shell; one takes a command typed into it.
      for (const vm of ['web', 'db']) await until(`${vm}'s shell prompt`, async () => (await screen(page, vm)).includes('mirrorball:/# '), 90_000, () => screen(page, vm));
      await page.locator('.console[data-vm="web"] .xterm-screen').click();
      await page.keyboard.type('echo dash-$((6*7))\n');
      await until('the answer in web\'s console', async () => (await screen(page, 'web')).includes('dash-42'), 30_000, () => screen(page, 'web'));
      assert.ok(!(await screen(page, 'db')).includes('dash-42'), 'db\'s console did not get web\'s typing');

      // The charts take samples as time goes on, per VM and per physical CPU; the VM list has memory in it.
      const first = await samples(page);
      await sleep(1500);
      const later = await samples(page);
      for (const key of ['web', 'db']) assert.ok(later.vms[key]! > first.vms[key]! + 3, `vm ${key}'s chart: ${JSON.stringify([first, later])}`);
      for (const key of ['0', '1']) assert.ok(later.cpus[key]! > first.cpus[key]! + 3, `cpu ${key}'s chart: ${JSON.stringify([first, later])}`);
      // Where time goes splits the monitor's share by kind: a booted Linux has world switches and exits of several kinds.
      const bands = await page.evaluate(() => (globalThis as unknown as { mirrorball: { bands(): Record<string, string[]> } }).mirrorball.bands());
      for (const chart of ['vm web', 'vm db', 'cpu 0', 'cpu 1']) {
        const kinds = (bands[chart] ?? []).filter((b) => b.startsWith('monitor: ') && b !== 'monitor: other');
        assert.ok(kinds.length >= 2, `${chart}'s bands: ${JSON.stringify(bands[chart])}`);
        assert.deepEqual(bands[chart]!.slice(0, 2), ['guest user', 'guest kernel']);
      }
      const row = await page.locator('#vm-table tr[data-vm="web"]').innerText();
      assert.match(row, /web\s+running\s+1\s+96\.0M\s+[1-9][\d.]*M\s+[\d.]+M\s+[\d.]+M\s+0\s+0/, row);
      assert.equal(await page.locator('#numa-map .cpu').count(), 2);
      await page.screenshot({ path: join(shots, 'dashboard-running.png'), fullPage: true });

      // Stop db from the page, then start it again: the list follows, and db boots to its shell anew.
      await page.locator('#vm-table tr[data-vm="db"] button.stop').click();
      await until('db stopped', async () => (await state(page, 'db')) === 'stopped', 10_000);
      assert.equal(await state(page, 'web'), 'running');
      await page.screenshot({ path: join(shots, 'dashboard-stopped.png'), fullPage: true });
      await page.locator('#vm-table tr[data-vm="db"] button.start').click();
      await until('db running again', async () => (await state(page, 'db')) === 'running', 10_000);
      await until('db\'s console to start afresh', async () => !(await screen(page, 'db')).includes('mirrorball:/# '), 10_000, () => screen(page, 'db'));
      await until('db\'s shell prompt again', async () => (await screen(page, 'db')).includes('mirrorball:/# '), 90_000, () => screen(page, 'db'));
      await page.screenshot({ path: join(shots, 'dashboard-restarted.png'), fullPage: true });
      assert.deepEqual(errors, [], 'no script errors on the page');
    });
  });

  it('with run --web: the one machine\'s console, and where its harts\' time goes', { timeout: 120_000 }, async () => {
    await withPage(['run', '--smp', '2', '--web', '0'], 'dashboard-run', 60_000, async ({ page, errors, shots }) => {
      await until('the machine\'s shell prompt', async () => (await screen(page, 'machine')).includes('mirrorball:/# '), 90_000, () => screen(page, 'machine'));
      const first = await samples(page);
      await sleep(1500);
      const later = await samples(page);
      for (const key of ['0', '1']) assert.ok((later.cpus[key] ?? 0) > (first.cpus[key] ?? 0) + 3, `hart ${key}'s chart: ${JSON.stringify([first, later])}`);
      assert.deepEqual(later.vms, {});
      await page.screenshot({ path: join(shots, 'dashboard-run.png'), fullPage: true });
      assert.deepEqual(errors, [], 'no script errors on the page');
    });
  });
});

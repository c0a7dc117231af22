// The dashboard's cells and faults in a real browser (Debian's chromium through playwright-core): `up --web`
// on a machine of two cells with a VM of the built guest confined to each. The page shows which cells each VM
// depends on; the cells table's fail button for cell 1 fails that cell, and the page shows its VM ending while
// the other VM runs on. Screenshots go to the helper's folder.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { until, withDashboard } from '../helpers/dashboard-session.js';

const skip = findBuiltGuest() === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'mb-dashboard-cells-')); });
after(() => rmSync(dir, { recursive: true, force: true }));


const vmCell = (page: Page, vm: string, column: number): Promise<string> => page.locator(`#vm-table tr[data-vm="${vm}"] td`).nth(column).innerText();
const cellCell = (page: Page, cell: number, column: number): Promise<string> => page.locator(`#cell-table tr[data-cell="${cell}"] td`).nth(column).innerText();
/** The VM table's columns: name, state, vCPUs, memory, private, shared, reserved, node, cells. */
const STATE = 1;
const CELLS = 8;
/** The cells table's: cell, nodes, CPUs, state, the VMs that depend on it. */
const CELL_STATE = 3;
const DEPENDENTS = 4;

describe('the dashboard\'s cells and faults in a browser', { skip }, () => {
  it('shows the cells each VM depends on; failing a cell from the page ends its VM and not the other', { timeout: 90_000 }, async () => {
    const file = join(dir, 'cells.yaml');
    writeFileSync(file, 'machine:\n  nodes: 2\n  smp: 2\n  memory: 512M\n  cells: 2\nvms:\n  - name: left\n    memory: 96M\n    cell: 0\n  - name: right\n    memory: 96M\n    cell: 1\n');
    await withDashboard(file, join(dir, 'run'), 'dashboard-cells', 30_000, async ({ page, errors, shots, output }) => {
      // Each VM is confined to its cell: the VM table and the cells table say so.
      await until('the cells table', async () => (await page.locator('#cell-table tr[data-cell]').count()) === 2, 10_000);
      assert.deepEqual([await vmCell(page, 'left', STATE), await vmCell(page, 'right', STATE)], ['running', 'running']);
      assert.deepEqual([await vmCell(page, 'left', CELLS), await vmCell(page, 'right', CELLS)], ['0', '1']);
      await until('the VMs that depend on each cell', async () => (await cellCell(page, 0, DEPENDENTS)) === 'left' && (await cellCell(page, 1, DEPENDENTS)) === 'right', 10_000,
        async () => `${await cellCell(page, 0, DEPENDENTS)} / ${await cellCell(page, 1, DEPENDENTS)}`);
      assert.deepEqual([await cellCell(page, 0, CELL_STATE), await cellCell(page, 1, CELL_STATE)], ['up', 'up']);
      // Both guests are running code before the fault (their consoles have output).
      await until('both consoles to print', async () => {
        const texts = await Promise.all(['left', 'right'].map((vm) => page.locator(`.console[data-vm="${vm}"] .xterm-rows`).innerText()));
        return texts.every((t) => t.trim().length > 0);
      }, 30_000);
      await page.screenshot({ path: join(shots, 'dashboard-cells-before.png'), fullPage: true });

      // Fail cell 1 from the page: right, which depends on it, ends; left runs on.
      await page.locator('#cell-table tr[data-cell="1"] button.fail-cell').click();
      await until('right to end', async () => (await vmCell(page, 'right', STATE)) !== 'running', 30_000, async () => `${await vmCell(page, 'right', STATE)}\n${output()}`);
      assert.equal(await vmCell(page, 'right', STATE), 'stopped');
      assert.match(await page.locator('#vm-table tr[data-vm="right"] td.state').getAttribute('title') ?? '', /hardware fault: cell 1 failed/);
      await until('cell 1 shown failed', async () => (await cellCell(page, 1, CELL_STATE)) !== 'up', 10_000);
      assert.match(await cellCell(page, 1, CELL_STATE), /node 1/);
      assert.equal(await cellCell(page, 1, DEPENDENTS), '–');
      assert.ok(await page.locator('#cell-table tr[data-cell="1"] button.fail-cell').isDisabled(), 'a failed cell cannot be failed again');
      assert.match(await page.locator('#fault-result').innerText(), /injected: node 1/);
      // left is still running a second later, and its cell is up.
      await sleep(1000);
      assert.equal(await vmCell(page, 'left', STATE), 'running');
      assert.equal(await cellCell(page, 0, CELL_STATE), 'up');
      assert.equal(await cellCell(page, 0, DEPENDENTS), 'left');
      await page.screenshot({ path: join(shots, 'dashboard-cells-after.png'), fullPage: true });
      assert.deepEqual(errors, [], 'no script errors on the page');
    });
  });
});

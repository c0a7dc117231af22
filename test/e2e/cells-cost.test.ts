// End to end: the cost of cells (issue 22, item 7), small: overhead's quick workloads in the same VM on numa4x2
// under one cell and under 4, the VM confined to one of them.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { BAR, PLOT_SVG, RESULTS_JSON, RESULTS_TABLE, runCellsCost } from '../../src/experiments/cells-cost.js';
import { QUICK_WORKLOADS } from '../../src/experiments/overhead.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('the cost of cells', { skip }, () => {
  it('cells-cost --quick: every workload computes the same under 4 cells as under one, within the bar of simulated time and monitor cycles', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mb-cells-cost-'));
    try {
      const results = await runCellsCost({ guest: guest!, outDir: out, workloads: QUICK_WORKLOADS });
      assert.deepEqual(results.map((r) => r.workload), QUICK_WORKLOADS.map((w) => w.name));
      for (const r of results) {
        assert.equal(r.monolithic.checksum, r.cells.checksum, `${r.workload}: the checksums differ`);
        // Simulated time, so the bound holds whatever the host: measured 1.000 for every workload in fast mode
        // (docs/experiments.md "cells-cost"). Before the cell scheduler gave the monitor the same vCPU from
        // pick and lastOn, every round was a world switch under cells: 1.15 to 1.43, monitor cycles ×5 to ×11.
        const bound = 1 + BAR;
        assert.ok(r.time.median <= bound, `${r.workload}: under cells the VM took ${r.time.median} of one cell's time (bound ${bound})`);
        assert.ok(r.time.median >= 1 / bound, `${r.workload}: under cells the VM took ${r.time.median} of one cell's time`);
        assert.ok(r.monitor.median <= bound, `${r.workload}: under cells the monitor took ${r.monitor.median} of one cell's cycles (bound ${bound})`);
        assert.ok(r.monolithic.breakdown.monitor > 0, `${r.workload}: no monitor cycles charged`);
        // A confined VM's vCPUs keep their CPUs: no more world switches than under one cell.
        const switches = (exits: Record<string, number>): number => exits['world-switch'] ?? 0;
        assert.ok(switches(r.cells.exits) <= switches(r.monolithic.exits) + 2,
          `${r.workload}: ${switches(r.cells.exits)} world switches under cells, ${switches(r.monolithic.exits)} under one`);
      }
      const table = readFileSync(join(out, RESULTS_TABLE), 'utf8');
      for (const w of QUICK_WORKLOADS) assert.match(table, new RegExp(`^\\| ${w.name} `, 'm'));
      const json = JSON.parse(readFileSync(join(out, RESULTS_JSON), 'utf8')) as { cells: number; machine: { nodes: unknown[] } };
      assert.equal(json.cells, 4);
      assert.equal(json.machine.nodes.length, 4);
      assert.ok(existsSync(join(out, PLOT_SVG)), 'no plot');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

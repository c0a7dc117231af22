// End to end: Cellular Disco's balancing (issue 22, item 6), quick: the six VMs arriving on flash8 under
// one cell, 4 static cells and 4 balanced cells, one seed, a short window.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { PLOT_SVG, QUICK_WINDOW_MS, RESULTS_JSON, RESULTS_TABLE, runBalance } from '../../src/experiments/balance.js';
import { CELL_MIGRATION } from '../../src/monitor/cell-scheduler.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('experiment balance', { skip }, () => {
  it('balance --quick: every case runs the load with the right checksums, every gang whole machine-wide, balancing no worse than static, moves counted and charged by kind', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mb-balance-'));
    try {
      // runBalance throws unless every unit of work printed its kind's one checksum, seed 0 the reference's.
      const result = await runBalance({ guest: guest!, outDir: out, windowMs: QUICK_WINDOW_MS, repeat: 1 });
      const json = JSON.parse(readFileSync(join(out, RESULTS_JSON), 'utf8')) as { cases: { name: string; utilization: number }[] };
      assert.deepEqual(json.cases.map((c) => c.name), ['one-cell', 'static', 'balanced']);
      for (const c of result.cases) {
        const run = c.runs[0]!;
        assert.ok(c.utilization > 0 && c.utilization <= 1, `${c.name}: utilization ${c.utilization}`);
        assert.equal(json.cases.find((x) => x.name === c.name)!.utilization, c.utilization);
        for (const vm of run.vms) {
          // The gang invariant over every pick, machine-wide: a VM's runnable vCPUs run all together or not at all,
          // the raytrace VMs, dealt over the 4 cells, included (their slots, gang-slots.ts).
          assert.equal(vm.partialRounds, 0, `${c.name}: ${vm.name} ran part of its runnable vCPUs in ${vm.partialRounds} of ${vm.multiRounds} rounds`);
          if (vm.kind === 'raytrace') assert.ok(vm.work > 0, `${c.name}: ${vm.name} rendered no frame`);
        }
        // Moves by kind, each with its cost: a move across cells at least the handoff; none without a balancer.
        const m = run.migrations;
        assert.ok(m.cell.cycles >= m.cell.count * CELL_MIGRATION.handoff, `${c.name}: ${m.cell.count} moves across cells cost ${m.cell.cycles} cycles`);
        if (c.name !== 'balanced') assert.equal(m.cell.count, 0, `${c.name}: a vCPU moved across cells without a balancer`);
        if (c.name !== 'balanced') assert.equal(run.borrowing.pagesBorrowed, 0);
        assert.ok(m.node.count === 0 || m.node.cycles > 0, `${c.name}: moves across nodes cost nothing`);
      }
      // Balancing may not cost utilization against static partitioning, and must move something to earn it.
      const util = (name: string): number => result.cases.find((c) => c.name === name)!.utilization;
      assert.ok(util('balanced') >= util('static'), `balanced ${util('balanced')} < static ${util('static')}`);
      assert.ok(result.cases.find((c) => c.name === 'balanced')!.runs[0]!.migrations.cell.count > 0, 'the balancers moved nothing');
      const table = readFileSync(join(out, RESULTS_TABLE), 'utf8');
      for (const name of ['one-cell', 'static', 'balanced']) assert.match(table, new RegExp(`^\\| ${name} `, 'm'));
      assert.ok(existsSync(join(out, PLOT_SVG)), 'no plot');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

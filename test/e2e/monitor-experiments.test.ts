// End to end: the monitor's experiments, small: overhead (--quick) and many-vms with 1 and 2 VMs.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { PLOT_SVG as MANY_SVG, QUICK_PMAKE, RESULTS_TABLE as MANY_TABLE, runManyVms } from '../../src/experiments/many-vms.js';
import { PLOT_SVG, QUICK_WORKLOADS, RESULTS_JSON, RESULTS_TABLE, runOverhead, TARGET, type OverheadResult } from '../../src/experiments/overhead.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

/**
 * `overhead --quick` (fast mode), run once for the two overhead tests: the timing-mode test compares with its
 * raytrace row, which a run of raytrace alone computes the same (every measured run restores the same
 * warmed-up guest, with the same input seed), so it is not run a second time.
 */
let quick: Promise<{ out: string; results: OverheadResult[] }> | undefined;
function quickOverhead(): Promise<{ out: string; results: OverheadResult[] }> {
  quick ??= (async () => {
    const out = mkdtempSync(join(tmpdir(), 'mb-overhead-'));
    return { out, results: await runOverhead({ guest: guest!, outDir: out, workloads: QUICK_WORKLOADS }) };
  })();
  return quick;
}

describe('the monitor\'s experiments', { skip }, () => {
  after(async () => {
    const done = await quick?.catch(() => undefined);
    if (done !== undefined) rmSync(done.out, { recursive: true, force: true });
  });

  it('overhead --quick: every workload bare and in a VM, same results, the VM charged its monitor cycles', async () => {
    const { out, results } = await quickOverhead();
    assert.deepEqual(results.map((r) => r.workload), QUICK_WORKLOADS.map((w) => w.name));
    for (const r of results) {
      assert.equal(r.bare.checksum, r.vm.checksum, `${r.workload}: the checksums differ`);
      assert.ok(r.bare.guestSeconds > 0 && r.vm.guestSeconds > 0, `${r.workload}: no elapsed time`);
      // The runs are deterministic, so the bound is set by measurement (fast mode, quick sizes: cpubench 1.002,
      // raytrace 1.035, pmake 0.957, dbbench 1.009 with the cost table of docs/monitor.md) at the issue's
      // targets for each kind: a monitor that costs more than it should crosses it. Below, the VM may be
      // faster than bare by where the guest's idle moments fall (pmake), not by more.
      const bound = 1 + TARGET[r.kind];
      assert.ok(r.simulatedRatio <= bound, `${r.workload}: the VM took ${r.simulatedRatio} of bare's time (bound ${bound})`);
      assert.ok(r.simulatedRatio > 0.9, `${r.workload}: the VM took ${r.simulatedRatio} of bare's time`);
      assert.ok(r.vm.breakdown.monitor > 0, `${r.workload}: no monitor cycles charged`);
      assert.equal(r.bare.breakdown.monitor, 0, `${r.workload}: bare Linux charged monitor cycles`);
      assert.ok(r.vm.secondLevelHits > 0 && r.vm.secondLevelHits <= r.vm.tlbMisses, `${r.workload}: ${r.vm.secondLevelHits} L2TLB hits of ${r.vm.tlbMisses} misses`);
    }
    const table = readFileSync(join(out, RESULTS_TABLE), 'utf8');
    for (const w of QUICK_WORKLOADS) assert.match(table, new RegExp(`^\\| ${w.name} `, 'm'));
    assert.ok(existsSync(join(out, RESULTS_JSON)), 'no results.json');
    assert.match(readFileSync(join(out, PLOT_SVG), 'utf8'), /^<svg /m);
  });

  it('overhead in timing mode: bare and VM both charged by the cache model, the VM on top its monitor cycles', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mb-overhead-timing-'));
    try {
      const workloads = QUICK_WORKLOADS.filter((w) => w.name === 'raytrace');
      const fast = (await quickOverhead()).results.filter((r) => r.workload === 'raytrace');
      assert.equal(fast.length, 1);
      const [r] = await runOverhead({ guest: guest!, outDir: join(out, 'timing'), workloads, mode: 'timing', repeat: 3 });
      assert.equal(r!.bareRuns.length, 3);
      assert.equal(r!.vmRuns.length, 3);
      const median = (runs: number[]): number => [...runs].sort((a, b) => a - b)[1]!;
      assert.equal(r!.bare.guestSeconds, median(r!.bareRuns), 'the result is the median run');
      assert.equal(r!.vm.guestSeconds, median(r!.vmRuns), 'the result is the median run');
      // Run k has input seed k + 1: the first one is the fast run's, and each seed computes its own result.
      assert.equal(r!.checksums[0], fast[0]!.bare.checksum, 'timing mode changed the result');
      assert.equal(new Set(r!.checksums).size, 3, `the seeds changed nothing: ${r!.checksums.join(', ')}`);
      assert.equal(r!.vm.checksum, r!.checksums[r!.vmRuns.indexOf(r!.vm.guestSeconds)], 'the VM changed the result');
      // The ratio is the median of the seeds' own ratios.
      assert.equal(r!.ratios.length, 3);
      assert.equal(r!.simulatedRatio, median(r!.ratios));
      assert.equal(fast[0]!.bare.memoryCycles + fast[0]!.vm.memoryCycles, 0, 'fast mode charged memory cycles');
      assert.ok(r!.bare.memoryCycles > 0 && r!.vm.memoryCycles > 0, `memory cycles bare ${r!.bare.memoryCycles}, VM ${r!.vm.memoryCycles}`);
      assert.ok(r!.vm.breakdown.monitor > 0, 'no monitor cycles charged in timing mode');
      // The memory stalls make both runs slower than in fast mode.
      assert.ok(r!.bare.guestSeconds > fast[0]!.bare.guestSeconds && r!.vm.guestSeconds > fast[0]!.vm.guestSeconds,
        `bare ${r!.bare.guestSeconds} s timing vs ${fast[0]!.bare.guestSeconds} s fast; VM ${r!.vm.guestSeconds} vs ${fast[0]!.vm.guestSeconds}`);
      const json = JSON.parse(readFileSync(join(out, 'timing', RESULTS_JSON), 'utf8')) as { mode: string; repeat: number };
      assert.equal(json.mode, 'timing');
      assert.equal(json.repeat, 3);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('many-vms with 1 and 2 VMs: independent VMs on free CPUs boot and run exactly as one alone does', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mb-many-'));
    try {
      const [one, two] = await runManyVms({ guest: guest!, outDir: out, counts: [1, 2], pmake: QUICK_PMAKE });
      assert.equal(one!.vms, 1);
      assert.equal(two!.vms, 2);
      // Four vCPUs on eight CPUs: nobody waits, and the runs are deterministic.
      assert.equal(two!.bootSimulatedMs, one!.bootSimulatedMs);
      assert.deepEqual(two!.pmakeGuestMs, [one!.pmakeGuestMs[0], one!.pmakeGuestMs[0]]);
      assert.equal(new Set([...one!.checksums, ...two!.checksums]).size, 1);
      // Machine memory follows what the guests touched: about twice as much for two.
      assert.ok(two!.machineMiBInUse > 1.8 * one!.machineMiBInUse && two!.machineMiBInUse < 2.2 * one!.machineMiBInUse,
        `${one!.machineMiBInUse} MiB for one VM, ${two!.machineMiBInUse} for two`);
      // A booted VM that ran pmake touched about 32 MiB of its 128 (measured): one that reserved or touched
      // all its memory, or a fill that took a block where a page was asked, would cross this.
      assert.ok(one!.machineMiBInUse < 48, `one VM of 128 MiB uses ${one!.machineMiBInUse} MiB of machine memory`);
      // Sharing equal pages: two VMs booted from the same kernel and initramfs need less than one does unshared.
      assert.ok(one!.machineMiBShared < one!.machineMiBInUse, `one VM: ${one!.machineMiBShared} MiB shared of ${one!.machineMiBInUse}`);
      assert.ok(two!.machineMiBShared < one!.machineMiBInUse, `two VMs: ${two!.machineMiBShared} MiB shared, one VM unshared ${one!.machineMiBInUse}`);
      assert.match(readFileSync(join(out, MANY_TABLE), 'utf8'), /^\| +2 \| +4 \|/m);
      assert.match(readFileSync(join(out, MANY_SVG), 'utf8'), /^<svg /m);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

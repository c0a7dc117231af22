import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  caseName, checksumProblems, FIXED_WORK_MEMORY, referenceKey, seedRatios, fixedWorkSvg, fixedWorkTable, FULL_COUNTS, FULL_JOB, QUICK_JOB, splitJob, type FixedWorkCaseResult,
} from './fixed-work.js';

describe('splitJob', () => {
  it('divides the files, the 8 CPUs and the memory exactly, -j the VM\'s vCPUs', () => {
    assert.deepEqual(splitJob({ files: 64, lines: 200 }, 0), { vms: 0, command: 'pmake -j 8 -n 64 -l 200', vcpus: 8, memoryBytes: FIXED_WORK_MEMORY, files: 64 });
    assert.deepEqual(splitJob({ files: 64, lines: 200 }, 1), { vms: 1, command: 'pmake -j 8 -n 64 -l 200', vcpus: 8, memoryBytes: FIXED_WORK_MEMORY, files: 64 });
    assert.deepEqual(splitJob({ files: 64, lines: 200 }, 4), { vms: 4, command: 'pmake -j 2 -n 16 -l 200', vcpus: 2, memoryBytes: FIXED_WORK_MEMORY / 4, files: 16 });
    assert.deepEqual(splitJob({ files: 64, lines: 200 }, 8), { vms: 8, command: 'pmake -j 1 -n 8 -l 200', vcpus: 1, memoryBytes: FIXED_WORK_MEMORY / 8, files: 8 });
  });

  it('keeps the total work: files × VMs is the job, vCPUs × VMs the machine, for the full and quick sizes', () => {
    for (const job of [FULL_JOB, QUICK_JOB]) {
      for (const vms of FULL_COUNTS) {
        const s = splitJob(job, vms);
        assert.equal(s.files * vms, job.files);
        assert.equal(s.vcpus * vms, 8);
        assert.equal(s.memoryBytes * vms, FIXED_WORK_MEMORY);
      }
    }
  });

  it('refuses a split that would change the work or the machine', () => {
    assert.throws(() => splitJob({ files: 12, lines: 10 }, 8), /12 files do not split evenly over 8 VMs/);
    assert.throws(() => splitJob({ files: 64, lines: 10 }, 3), /3 VMs do not divide/);
    assert.throws(() => splitJob({ files: 64, lines: 10 }, 16), /16 VMs do not divide/);
  });

  it('names the cases', () => {
    assert.equal(caseName(splitJob(FULL_JOB, 0)), 'bare');
    assert.equal(caseName(splitJob(FULL_JOB, 1)), '1 VM × 8');
    assert.equal(caseName(splitJob(FULL_JOB, 4)), '4 VMs × 2');
  });
});

/** A case of one run with seed 1 (references: files → checksum, with seed 1). */
function result(vms: number, cycles: number, sums: string[], b = { user: 0, kernel: 0, monitor: 0, idle: 0 }, references: Record<string, string> = {}): FixedWorkCaseResult {
  const s = splitJob({ files: 16, lines: 100 }, vms);
  const run = {
    seed: 1, machineCycles: cycles, breakdown: b, runHostSeconds: 2,
    runs: sums.map((checksum) => ({ guestMs: (cycles / 1e5) * 0.9, checksum, linkedBytes: 1000 / Math.max(1, vms) })),
  };
  return {
    vms, vcpus: s.vcpus, memoryBytes: s.memoryBytes, command: s.command, ...run, seeds: [run], bootHostSeconds: 3,
    references: Object.fromEntries(Object.entries(references).map(([files, sum]) => [referenceKey(Number(files), 1), sum])),
  };
}

/** `r` with more runs: seed k + 2 takes `cycles[k]` and computes `sums[k]` in every VM. */
function withSeeds(r: FixedWorkCaseResult, more: { cycles: number; sum: string }[]): FixedWorkCaseResult {
  const seeds = [...r.seeds, ...more.map((m, k) => ({ ...r.seeds[0]!, seed: k + 2, machineCycles: m.cycles, runs: r.runs.map((x) => ({ ...x, checksum: m.sum })) }))];
  return { ...r, seeds };
}

describe('checksumProblems', () => {
  const bare = result(0, 1e6, ['aaaa'], undefined, { 8: 'bbbb', 4: 'cccc' });

  it('accepts every VM agreeing with the same command on bare Linux', () => {
    assert.deepEqual(checksumProblems([bare, result(1, 1e6, ['aaaa']), result(2, 1e6, ['bbbb', 'bbbb']), result(4, 1e6, ['cccc', 'cccc', 'cccc', 'cccc'])]), []);
  });

  it('names a VM that disagrees, one whose part has no reference, and a run with no bare case', () => {
    assert.deepEqual(checksumProblems([bare, result(2, 1e6, ['bbbb', 'dddd'])]), ['2 VMs × 4, vm1, seed 1: `pmake -j 4 -n 8 -l 100 -S 1` computed dddd, bare Linux bbbb']);
    assert.deepEqual(checksumProblems([bare, result(1, 1e6, ['eeee'])]), ['1 VM × 8, vm0, seed 1: `pmake -j 8 -n 16 -l 100 -S 1` computed eeee, bare Linux aaaa']);
    assert.match(checksumProblems([bare, result(8, 1e6, Array(8).fill('ffff'))])[0]!, /no reference checksum for 2 files/);
    assert.deepEqual(checksumProblems([result(2, 1e6, ['bbbb', 'bbbb'])]), ['no bare case to check against']);
  });

  it('checks every seed against bare Linux\'s run of the same seed, and refuses seeds that changed nothing', () => {
    const bare3 = withSeeds(bare, [{ cycles: 1e6, sum: 'a2' }, { cycles: 1e6, sum: 'a3' }]);
    const one3 = withSeeds(result(1, 1e6, ['aaaa']), [{ cycles: 1e6, sum: 'a2' }, { cycles: 1e6, sum: 'a3' }]);
    assert.deepEqual(checksumProblems([bare3, one3]), []);
    const wrong = withSeeds(result(1, 1e6, ['aaaa']), [{ cycles: 1e6, sum: 'a2' }, { cycles: 1e6, sum: 'a2' }]);
    assert.deepEqual(checksumProblems([bare3, wrong]), ['1 VM × 8, vm0, seed 3: `pmake -j 8 -n 16 -l 100 -S 3` computed a2, bare Linux a3']);
    assert.match(checksumProblems([bare3, result(1, 1e6, ['aaaa'])])[0]!, /1 runs, bare Linux 3/);
    const same = withSeeds(bare, [{ cycles: 1e6, sum: 'aaaa' }]);
    assert.deepEqual(checksumProblems([same]), ['every input seed computed the same: the runs did not differ']);
  });

  it('gives each seed\'s time over bare\'s with the same seed', () => {
    const bare3 = withSeeds(result(0, 100, ['a']), [{ cycles: 200, sum: 'b' }, { cycles: 400, sum: 'c' }]);
    const vm3 = withSeeds(result(2, 50, ['x', 'x']), [{ cycles: 200, sum: 'y' }, { cycles: 300, sum: 'z' }]);
    assert.deepEqual(seedRatios(vm3, bare3), [0.5, 1, 0.75]);
    assert.match(fixedWorkTable([bare3, vm3]), /^\| 2 VMs × 4 +\| `pmake -j 4 -n 8 -l 100` +\| +0\.0 \| 0\.750 \(0\.500–1\.000\) +\|/m);
  });
});

describe('fixedWorkTable and fixedWorkSvg', () => {
  // Bare: 1 ms on 8 CPUs = 800 k cycles in all; two VMs: 0.75 ms.
  const bare = result(0, 100_000, ['aaaa'], { user: 200_000, kernel: 300_000, monitor: 0, idle: 300_000 }, { 8: 'bbbb' });
  const two = result(2, 75_000, ['bbbb', 'bbbb'], { user: 200_000, kernel: 250_000, monitor: 40_000, idle: 110_000 });
  const table = fixedWorkTable([bare, two]);

  it('gives time over bare and each kind of cycle over bare\'s cycles in all CPUs, summing to the time ratio', () => {
    assert.match(table, /^\| bare +\| `pmake -j 8 -n 16 -l 100` +\| +1\.0 \| +1\.000 \| 0\.250 \| +0\.375 \| +0\.000 \| 0\.375 \| 1\.000 \|/m);
    assert.match(table, /^\| 2 VMs × 4 +\| `pmake -j 4 -n 8 -l 100` +\| +0\.8 \| +0\.750 \| 0\.250 \| +0\.313 \| +0\.050 \| 0\.138 \| 0\.750 \|/m);
    assert.match(table, /\| 0\.7–0\.7 +\| +1\.000 \|/, 'the VMs\' pmake times as a range, and their linked bytes together against bare\'s');
  });

  it('draws a stacked bar per case, normalized to bare, with the line at 1.0', () => {
    const svg = fixedWorkSvg([bare, two], { files: 16, lines: 100 });
    assert.match(svg, /^<svg /m);
    for (const label of ['bare', '2 VMs × 4', 'guest user', 'guest kernel', 'monitor', 'idle']) assert.ok(svg.includes(`>${label}</text>`), label);
    assert.ok(svg.includes('>1.000</text>') && svg.includes('>0.750</text>'), 'each bar\'s total is its time over bare\'s');
    assert.match(svg, /stroke-dasharray="4 3"/);
    assert.ok(svg.includes('>1.0</text>'), 'the reference line is labelled 1.0');
  });
});

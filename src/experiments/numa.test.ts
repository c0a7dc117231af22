// The numa experiment's arithmetic: the gap closed, local misses, the breakdown, and the checks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_POLICY } from '../monitor/numa-policy.js';
import { caseDirectory, caseSpecs, FAST_PLACEMENT_CASE, kernelText, TLB_SIGNAL_CASE, numaSvg, numaTable, scalePolicy, summarize, type NumaCaseResult, type NumaRun } from './numa.js';

function run(seed: number, timeMs: number, checksum = `c${seed}`, local = 10, remote = 90): NumaRun {
  return {
    seed, timeMs, checksum, busyCycles: 1000, stallLocal: 100, stallRemote: 300, monitorCycles: 50,
    missesLocal: local, missesRemote: remote, migrated: 0, replicated: 2, collapsed: 1, hostSeconds: 1, kernelTextPages: 10, kernelTextReplicated: seed,
  };
}

function caseOf(name: NumaCaseResult['name'], times: number[], sums?: string[]): NumaCaseResult {
  return { name, bootHostSeconds: 1, workloads: [{ name: 'w', command: 'w -n 1', runs: times.map((t, k) => run(k + 1, t, sums?.[k])) }] };
}

test('the gap closed is (numa − policy) / (numa − uma) of the median runs; local misses and the breakdown come from the median run', () => {
  const [w] = summarize([caseOf('numa', [150, 160, 170]), caseOf('policy', [120, 118, 130]), caseOf('uma', [100, 101, 99])]);
  assert.equal(w!.gapClosed, (160 - 120) / (160 - 100));
  assert.equal(w!.numaOverUma, 1.6);
  const numa = w!.cases[0]!;
  assert.deepEqual(numa.timeRangeMs, [150, 170]);
  assert.equal(numa.localMissPercent, 10);
  assert.deepEqual(numa.breakdown, { execution: 550, localStall: 100, remoteStall: 300, monitor: 50 });
  assert.match(numaTable([w!]), /^\| w +\| policy +\| 120\.000 \(118\.0–130\.0\) +\| +10\.0 % \| +0\.550 \| +0\.100 \| +0\.300 \| +0\.050 \| +0 \| +2 \| +1 \| 0\.67 +\|/m);
  assert.match(numaSvg([w!]), /^<svg /m);
});

test('a case that computed something else for a seed is refused', () => {
  assert.throws(() => summarize([caseOf('numa', [1, 2]), caseOf('policy', [1, 2], ['c1', 'x']), caseOf('uma', [1, 2])]),
    /w with seed 2 computed c2 and x in the cases/);
});

test('the policy cases scale its thresholds, not its share; the gap closed is given for each', () => {
  assert.deepEqual(scalePolicy(DEFAULT_POLICY, 0.5), { hotMisses: 8, tlbHotMisses: 1, sharedHotMisses: 16, tlbSharedHotMisses: 0, migrateShare: 0.75, writeSharedWrites: 4, intervalRounds: 128, moveLimit: 2, freezeIntervals: 4, blockPages: 0, coalescePages: 0, replicateGroupPages: 8 });
  assert.deepEqual(scalePolicy({ ...DEFAULT_POLICY, moveLimit: 1, freezeIntervals: 0 }, 0.1).moveLimit, 1);
  assert.deepEqual(caseSpecs(DEFAULT_POLICY, [1, 0.5, 2]).map((c) => [c.name, c.policy?.hotMisses, c.uniform]),
    [['numa', undefined, false], ['policy', 16, false], ['policy ×0.5', 8, false], ['policy ×2', 32, false], ['uma', undefined, true]]);
  // The TLB-miss signal's case: the policy itself, on the other signal, before uma.
  assert.deepEqual(caseSpecs(DEFAULT_POLICY, [1], true).map((c) => [c.name, c.signal, c.policy?.tlbHotMisses]),
    [['numa', undefined, undefined], ['policy', undefined, 2], [TLB_SIGNAL_CASE, 'tlb-misses', 2], [FAST_PLACEMENT_CASE, 'tlb-misses', 2], ['uma', undefined, undefined]]);
  // The fast-mode placement case is the only one whose policy is off while it is measured.
  assert.deepEqual(caseSpecs(DEFAULT_POLICY, [1], true).filter((c) => c.placeInFastMode === true).map((c) => c.name), [FAST_PLACEMENT_CASE]);
  const [w] = summarize([caseOf('numa', [160]), caseOf('policy', [130]), caseOf('policy ×2', [145]), caseOf('uma', [100])]);
  assert.deepEqual(w!.gapClosedBy, { policy: 0.5, 'policy ×2': 0.25 });
  assert.match(numaTable([w!]), /^\| w +\| policy ×2 +\| .*\| 0\.25 +\|/m);
});

test('each case\'s statistics go to a directory named after it', () => {
  assert.deepEqual(['numa', 'policy', 'policy ×0.5', 'policy ×2', 'policy, TLB misses', FAST_PLACEMENT_CASE, 'uma'].map(caseDirectory),
    ['numa', 'policy', 'policy-x0.5', 'policy-x2', 'policy-tlb-misses', 'policy-fast-mode-placement', 'uma']);
});

test('the kernel\'s code is found in /proc/iomem as guest page numbers; a guest without the line is an error', () => {
  const iomem = [
    '80000000-8003ffff : Reserved',
    '80200000-bfffffff : System RAM',
    '  80202000-80c01fff : Kernel image',
    '    80202000-80813fff : Kernel code',
    '    80a00000-80b6ffff : Kernel rodata',
  ].join('\n');
  const pages = kernelText(iomem);
  assert.equal(pages[0], 0x202);
  assert.equal(pages.length, 0x813 - 0x202 + 1);
  assert.throws(() => kernelText('80200000-bfffffff : System RAM'), /no "Kernel code" line/);
});

// The numa-large-pages experiment's figures from its runs: medians and ranges, large groups before and after,
// and a case that computed something else refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NumaCaseResult, NumaRun } from './numa.js';
import { largePagesSvg, largePagesTable, summarizeLargePages } from './numa-large-pages.js';

function run(seed: number, timeMs: number, tlbRefills: number, largeGroups: number, checksum = `c${seed}`): NumaRun {
  return {
    seed, timeMs, checksum, busyCycles: 1000, stallLocal: 100, stallRemote: 300, monitorCycles: 50, missesLocal: 30, missesRemote: 70,
    migrated: 5, replicated: 0, collapsed: 0, hostSeconds: 1, kernelTextPages: 10, kernelTextReplicated: 0,
    large: { tlbRefills, largeGroups, largeGroupsAtStart: 22, groupsBroken: seed === 1 ? 10 : 0, blocksMoved: seed, blocksCoalesced: 0, blockCycles: 1e6 * seed, breakCycles: 0,
      groupCopies: 0, groupsCollapsed: 0, groupsReplicated: 0, groupCycles: 0 },
  };
}

function caseOf(name: string, runs: NumaRun[]): { result: NumaCaseResult; largeGroupsBefore: number } {
  return { result: { name, bootHostSeconds: 1, workloads: [{ name: 'engineering', command: 'engineering', runs }] }, largeGroupsBefore: 22 };
}

test('each case\'s figure is the median of its runs with their range; large groups before and after', () => {
  const cases = summarizeLargePages([
    caseOf('home', [run(1, 120, 24_000, 22), run(2, 110, 25_000, 22), run(3, 140, 26_000, 23)]),
    caseOf('policy + blocks', [run(1, 100, 40_000, 12), run(2, 90, 48_000, 12), run(3, 95, 44_000, 14)]),
  ]);
  assert.deepEqual(cases[0]!.timeMs, { median: 120, min: 110, max: 140 });
  assert.deepEqual(cases[1]!.tlbRefills, { median: 44_000, min: 40_000, max: 48_000 });
  assert.deepEqual(cases[1]!.blocksMoved, { median: 2, min: 1, max: 3 });
  assert.equal(cases[1]!.localMissPercent.median, 30);
  assert.match(largePagesTable(cases), /^\| policy \+ blocks +\| 95\.0 \(90\.0–100\.0\) +\| +30\.0 +\| 44000 \(40000–48000\) +\| 22 → 12 \(12–14\) /m);
  assert.match(largePagesSvg(cases, 'engineering'), /<svg[^>]*>/);
});

test('a case whose run computed another checksum is refused', () => {
  assert.throws(() => summarizeLargePages([caseOf('home', [run(1, 120, 1, 1)]), caseOf('policy', [run(1, 100, 1, 1, 'other')])]), /computed c1 and other/);
});

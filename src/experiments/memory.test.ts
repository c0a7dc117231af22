// The memory experiment's checks and report without a guest: outputs checked seed by seed against each
// other, VMs that did not differ refused, the table and figure drawn from made-up runs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MemoryCaseResult, MemorySample, Sharing } from './memory-case.js';
import { memoryFigureSvg, memoryTable } from './memory-report.js';
import { checkOutputs, type MemoryResults } from './memory.js';

const sample = (inUse: number): MemorySample => ({
  ms: 1000, inUse, mapped: inUse * 2, privatePages: inUse - 10, sharedPages: 10, cacheOnly: 0,
  savedBy: { zero: inUse / 2, disk: inUse / 4, kernel: inUse / 4 - 10, content: 10, other: 0 }, reserved: 0, running: 2,
});

function run(sharing: Sharing, sums: string[], seedBase = 17): MemoryCaseResult {
  return {
    vms: sums.length, sharing, seedBase, machineMemory: 2 ** 30,
    outcomes: sums.map((checksum, i) => ({ name: `vm${i}`, seed: seedBase + i, checksum, pmakeMs: 300 + i, stopped: null })),
    spanMs: 400, end: sample(4000), peakInUse: 4100, series: [], scan: null, cowBreaks: 3, hostSeconds: 1,
  };
}

test('outputs must agree seed by seed across cases and differ between seeds', () => {
  checkOutputs([run('off', ['a', 'b']), run('content', ['a', 'b']), run('disk', ['a'])]);
  assert.throws(() => checkOutputs([run('off', ['a', 'b']), run('content', ['a', 'c'])]), /seed 18 computed different results/);
  assert.throws(() => checkOutputs([run('off', ['a', 'a'])]), /did not differ/);
  // A VM stopped for want of memory has no output to check.
  const stopped = run('content', ['a', 'b']);
  stopped.outcomes[1] = { ...stopped.outcomes[1]!, checksum: null, pmakeMs: null, stopped: 'out of memory' };
  checkOutputs([run('off', ['a', 'b']), stopped]);
});

test('the table and the figure show every case, its memory split and its time against off', () => {
  const summary = (vms: number, sharing: Sharing, machineMiB: number): MemoryResults['cases'][number] => ({
    vms, sharing, scanCostScale: 1, machineMiB, machineMiBRange: [machineMiB - 1, machineMiB + 1], pmakeMs: 300, pmakeMsRange: [299, 305],
    ...(sharing === 'off' ? {} : { pmakeVsOff: 1.02, pmakeVsOffRange: [1.01, 1.04] as [number, number] }),
    mappedMiB: 60, privateMiB: 20, sharedMiB: 5, cacheOnlyMiB: 1, savedMiB: { zero: 20, disk: 8, kernel: 6, content: 1, other: 0 },
    peakMiB: 40, cowBreaks: 12, scannerCycles: 5e6, scannerCharged: 4e6, scannerIdleCycles: 1e6, runs: [],
  });
  const results: MemoryResults = { cases: [summary(1, 'off', 30), summary(2, 'off', 60), summary(1, 'content', 14), summary(2, 'content', 20)], perExtraVm: { off: 30, content: 6 } };
  const table = memoryTable(results);
  assert.match(table, /^\| +2 \| content +\| 20\.0 \(19\.0–21\.0\) +\| +1\.43 \|/m);
  assert.match(table, /1\.020 \(1\.010–1\.040\)/);
  assert.match(table, /MiB per extra VM.*off 30\.0, content 6\.0/);
  const svg = memoryFigureSvg(results);
  assert.match(svg, /^<svg /m);
  for (const name of ['2 VMs, content', 'saved: zero', 'saved: disk', 'saved: kernel', 'saved: content']) assert.ok(svg.includes(name), name);
});

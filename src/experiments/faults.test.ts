// The faults campaign without a guest: the injections drawn from a seed (never node 0), the figures counted from
// made-up injections against their ground truth, and the table and histogram drawn from them.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { InjectionResult, VmFate } from './faults-case.js';
import { expectedMd5, workCommand } from './faults-case.js';
import { faultsHistogramSvg, faultsTable } from './faults-report.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drawInjections, percentile, summarize, writeFaultsOutputs, RESULTS_JSON, RESULTS_TABLE } from './faults.js';

test('injections are a function of the seed, of every kind, on every node (node 0 included: cells)', () => {
  const a = drawInjections(1, 300);
  assert.deepEqual(drawInjections(1, 300), a);
  assert.notDeepEqual(drawInjections(2, 300), a);
  assert.deepEqual(drawInjections(1, 6), a.slice(0, 6), 'a quick campaign is the start of the full one');
  assert.deepEqual([...new Set(a.map((r) => r.fault.kind))].sort(), ['cpu', 'line', 'link', 'node', 'page', 'router']);
  assert.ok(a.some((r) => r.fault.kind === 'node' && r.fault.node === 0) && a.some((r) => r.fault.kind === 'router' && r.fault.node === 0), 'node 0 and its router are drawn');
  for (const { fault, offset } of a) {
    if (fault.kind === 'node' || fault.kind === 'router') assert.ok(fault.node >= 0 && fault.node <= 3, JSON.stringify(fault));
    if (fault.kind === 'page' || fault.kind === 'line') assert.ok(fault.address >= 0x8000_0000 && fault.address < 0x8000_0000 + 512 * 2 ** 20);
    assert.ok(offset >= 0 && offset < 100 * 100_000);
  }
});

test('the work\'s checksum is computed here as the guest prints it', () => {
  assert.equal(workCommand(5), 'seq 5 3004 | md5sum');
  const numbers = Array.from({ length: 3000 }, (_, i) => `${i + 5}\n`).join('');
  assert.equal(expectedMd5(5), createHash('md5').update(numbers).digest('hex'));
});

test('percentiles are nearest-rank', () => {
  assert.equal(percentile([], 99), null);
  assert.equal(percentile([3, 1, 2], 50), 2);
  assert.equal(percentile(Array.from({ length: 200 }, (_, i) => i), 99), 197);
});

const fate = (name: string, o: Partial<VmFate> = {}): VmFate => ({
  name, shape: name.startsWith('c') ? 'confined' : 'spanning', dependent: false, lost: false, reason: null, rounds: 1, wrong: 0, checkedAfterFault: true, ...o,
});

function injection(index: number, fault: string, vms: VmFate[], recoveryMs: number | null, touched: number[]): InjectionResult {
  return {
    index, fault, kind: fault.split(' ')[0] as InjectionResult['kind'], offsetMs: 10, appliedAt: 1000,
    truth: { nodes: [], cpus: [], page: null, touched, dependents: vms.filter((v) => v.dependent).map((v) => ({ vm: v.name, reasons: ['x'] })) },
    vms, detectMs: recoveryMs, agreementMs: recoveryMs === null ? null : 0, cleanupMs: recoveryMs === null ? null : 0, handleMs: recoveryMs === null ? null : 0, recoveryMs, hostSeconds: 5,
    whole: { stopped: index === 1 ? ['s1'] : [], partsRepaired: 1, replaced: vms.filter((v) => v.lost).map((v) => v.name), hostSeconds: 0.3 },
  };
}

test('the figures count lost VMs against the ground truth, and survivors by their checksums', () => {
  const lost = { lost: true, rounds: 0, reason: 'hardware fault: x' };
  const runs = [
    injection(0, 'node 2', [fate('c0'), fate('c2', { dependent: true, ...lost }), fate('s0', { dependent: true, ...lost })], 0, [2]),
    // c1 lost without depending (its home is node 1, the fault touched node 3): counted independent and away.
    injection(1, 'cpu 6', [fate('c1', lost), fate('c3', { wrong: 1 }), fate('s1', { dependent: true })], 0, [3]),
    injection(2, 'page 0x80000000', [fate('c0'), fate('s0')], null, [0]),
  ];
  const r = summarize(runs, 1, { bootSeconds: 1, bootCached: true, injectionSeconds: { median: 5, p99: 5, count: 3 }, wholeSeconds: { median: 0.3, p99: 0.3, count: 3 }, totalSeconds: 16 });
  assert.equal(r.injections, 3);
  assert.equal(r.independentVmsLost, 1);
  assert.equal(r.dependentVmsLost, 2);
  assert.equal(r.dependentVmsKept, 1);
  assert.equal(r.confinedLostAway, 1);
  assert.equal(r.survivors, 5);
  assert.equal(r.survivorsCorrect, 4);
  assert.deepEqual(r.recoveryMs, { median: 0, p99: 0, count: 2 });
  assert.equal(r.undetected, 1);
  assert.equal(r.vmsReplaced, 3);
  assert.equal(r.keptStopped, 1);
  const table = faultsTable(r, true);
  assert.match(table, /independent VMs lost \(must be 0\) +\| 1 +\|/);
  assert.match(table, /VMs made again between injections \(kept dependents stopped\) +\| 3 \(1\) +\|/);
  assert.match(table, /\| +2 \| cpu 6 +\| +10\.0 \| s1 +\| c1! +\| 1\/2 /);
  const svg = faultsHistogramSvg(r);
  assert.match(svg, /^<svg /m);
  assert.ok(svg.includes('nothing read'));
});

test('a campaign stopped midway has written what it did so far, saying how far it got', () => {
  const lost = { lost: true, rounds: 0, reason: 'hardware fault: x' };
  const runs = [injection(0, 'node 2', [fate('c0'), fate('c2', { dependent: true, ...lost })], 0, [2])];
  const host = { bootSeconds: 1, bootCached: true, injectionSeconds: { median: 5, p99: 5, count: 1 }, wholeSeconds: { median: 0.3, p99: 0.3, count: 1 }, totalSeconds: 6 };
  const out = mkdtempSync(join(tmpdir(), 'mb-faults-partial-'));
  try {
    writeFaultsOutputs(out, summarize(runs, 1, host), 10);
    const partial = JSON.parse(readFileSync(join(out, RESULTS_JSON), 'utf8')) as { planned: number; complete: boolean; injections: number };
    assert.deepEqual([partial.planned, partial.complete, partial.injections], [10, false, 1]);
    assert.match(readFileSync(join(out, RESULTS_TABLE), 'utf8'), /^So far: 1 of 10 injections/);
    writeFaultsOutputs(out, summarize(runs, 1, host), 1);
    const done = JSON.parse(readFileSync(join(out, RESULTS_JSON), 'utf8')) as { complete: boolean };
    assert.equal(done.complete, true);
    assert.doesNotMatch(readFileSync(join(out, RESULTS_TABLE), 'utf8'), /So far/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

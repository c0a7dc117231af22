// Tests of the timing model: cycles charged per access, counters, statistics and determinism.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { StatsRegistry, formatStatsText } from './stats.js';
import { TimingModel, type TimingModelOptions } from './timing-model.js';

const BASE = 0x80000000;
const MiB = 1024 * 1024;
const NODE0 = BASE;
const NODE1 = BASE + 16 * MiB;
const LOCAL = 30;
const REMOTE = 60;

/** Two nodes of 16 MiB with one CPU each, a 256-byte 2-way cache of 32-byte lines. */
function twoNodes(overrides: Partial<TimingModelOptions> = {}): TimingModel {
  return new TimingModel({
    cpuNode: [0, 1],
    nodes: [{ base: NODE0, size: 16 * MiB }, { base: NODE1, size: 16 * MiB }],
    latencies: { hitCycles: 1, missCycles: [[LOCAL, REMOTE], [REMOTE, LOCAL]], uncachedCycles: 5, tlbLevelCycles: 4 },
    cache: { sizeBytes: 256, ways: 2, lineBytes: 32 },
    ...overrides,
  });
}

test('hits, local and remote misses, upgrades and MMIO cost what the latencies say', () => {
  const t = twoNodes();
  assert.equal(t.chargeAccess(0, NODE0 + 0x40, false), LOCAL, 'miss to its own node');
  assert.equal(t.chargeAccess(0, NODE1 + 0x40, false), REMOTE, 'miss to the other node');
  assert.equal(t.chargeAccess(0, NODE1 + 0x44, false), 1, 'hit');
  assert.equal(t.chargeAccess(1, NODE1 + 0x40, false), LOCAL, 'CPU 1 reads the same line from its own node');
  assert.equal(t.chargeAccess(0, NODE1 + 0x48, true), REMOTE, 'upgrade: a directory transaction at the home node');
  assert.equal(t.chargeAccess(1, NODE1 + 0x40, false), LOCAL, 're-read after invalidation');
  assert.equal(t.chargeAccess(1, 0x10000000, true), 5, 'MMIO is uncached');

  assert.deepEqual([t.accesses(0), t.accesses(1)], [4, 2]);
  assert.deepEqual([...t.hits], [1, 0]);
  assert.deepEqual([...t.missesLocal], [1, 2]);
  assert.deepEqual([...t.missesRemote], [1, 0]);
  assert.deepEqual([...t.upgrades], [1, 0]);
  assert.deepEqual([...t.uncached], [0, 1]);
  assert.deepEqual([...t.caches.invalidationsReceived], [0, 1]);
  assert.deepEqual([...t.stallCycles], [LOCAL + REMOTE + REMOTE, LOCAL + LOCAL + 5]);
  // Split by where the home node is: CPU 0's upgrade at node 1 is remote; MMIO is neither.
  assert.deepEqual([...t.stallLocal], [LOCAL, LOCAL + LOCAL]);
  assert.deepEqual([...t.stallRemote], [REMOTE + REMOTE, 0]);
  assert.deepEqual([t.memoryCycles(0), t.memoryCycles(1)], [LOCAL + REMOTE + 1 + REMOTE, LOCAL + LOCAL + 5]);
  assert.deepEqual([...t.linesRead], [1, 3]);
  assert.deepEqual([...t.linesWritten], [0, 1], 'CPU 0\'s dirty line went home when CPU 1 re-read it');
});

test('misses and upgrades are counted per page and per requesting node', () => {
  const t = twoNodes();
  const hot: [number, number][] = [];
  t.counters.onHotPage(2, (page, node) => hot.push([page, node]));
  t.chargeAccess(0, NODE1 + 0x100, false); // miss from node 0
  t.chargeAccess(0, NODE1 + 0x104, false); // hit: not counted
  t.chargeAccess(1, NODE1 + 0x100, false); // miss from node 1
  t.chargeAccess(0, NODE1 + 0x100, true); // upgrade from node 0
  const page = t.counters.pageOf(NODE1);
  assert.deepEqual(t.counters.countsOf(page), [2, 1]);
  assert.deepEqual(hot, [[page, 0]]);
});

test('a dirty line evicted from the cache is written back to its home node', () => {
  const t = twoNodes();
  t.chargeAccess(0, NODE1, true); // set 0, Modified
  t.chargeAccess(0, NODE0 + 128, false); // set 0
  t.chargeAccess(0, NODE0 + 256, false); // set 0: evicts the dirty line of node 1
  assert.deepEqual([...t.linesWritten], [0, 1]);
});

test('an access given as node and offset costs the same as by physical address', () => {
  const byAddress = twoNodes();
  const byOffset = twoNodes();
  const trace: [number, number, boolean][] = [[0, 0x40, false], [1, 16 * MiB + 0x40, true], [0, 16 * MiB + 0x48, false], [0, 0x40, true]];
  for (const [cpu, offset, write] of trace) {
    const node = offset >= 16 * MiB ? 1 : 0;
    assert.equal(byOffset.chargeRamAccess(cpu, node, offset - node * 16 * MiB, write), byAddress.chargeAccess(cpu, BASE + offset, write));
  }
  assert.deepEqual(byOffset.counters.countsOf(byOffset.counters.pageOf(NODE1)), [1, 1]);
  assert.deepEqual([...byOffset.linesWritten], [...byAddress.linesWritten]);
});

test('TLB refills cost per level walked', () => {
  const t = twoNodes();
  assert.equal(t.chargeTlbRefill(1, 3), 12);
  assert.equal(t.chargeTlbRefill(1, 4), 16);
  assert.deepEqual([...t.tlbRefills], [0, 2]);
  assert.deepEqual([...t.tlbCycles], [0, 28]);
  assert.equal(t.memoryCycles(1), 28);
});

test('the home node of an address follows the node layout', () => {
  const t = twoNodes();
  assert.deepEqual([BASE - 1, NODE0, NODE1 - 1, NODE1, NODE1 + 16 * MiB - 1, NODE1 + 16 * MiB].map((a) => t.homeNode(a)), [-1, 0, 0, 1, 1, -1]);
});

test('statistics are registered per CPU and per node, and reset zeroes them', () => {
  const t = twoNodes();
  const stats = new StatsRegistry();
  t.registerStats(stats);
  t.chargeAccess(0, NODE1, false);
  t.chargeTlbRefill(0, 3);
  const byName = new Map(stats.snapshot().map((s) => [s.name, s]));
  assert.deepEqual(byName.get('system.cpu0.cache.missesRemote'), {
    kind: 'scalar', name: 'system.cpu0.cache.missesRemote', description: 'Misses served by another node\'s memory', unit: 'Count', value: 1,
  });
  assert.equal((byName.get('system.cpu0.tlb.refillCycles') as { value: number }).value, 12);
  const bytes = byName.get('system.memory.bytes');
  assert.ok(bytes?.kind === 'vector');
  assert.deepEqual([bytes.values, bytes.total], [[0, 32], 32]);
  stats.reset();
  assert.ok(stats.snapshot().every((s) => (s.kind === 'scalar' ? s.value : s.total) === 0));
  assert.equal(t.counters.total(t.counters.pageOf(NODE1)), 1, 'the monitor\'s miss counters survive a stats reset');
});

test('the same accesses give identical statistics', () => {
  const access = fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 4095 }), fc.boolean());
  fc.assert(fc.property(fc.array(access, { maxLength: 200 }), (trace) => {
    const texts = [twoNodes(), twoNodes()].map((t) => {
      const stats = new StatsRegistry();
      t.registerStats(stats);
      // Offsets straddle the boundary between the two nodes.
      for (const [cpu, offset, write] of trace) t.chargeAccess(cpu, NODE1 - 2048 + offset, write);
      return formatStatsText(stats.snapshot());
    });
    assert.equal(texts[0], texts[1]);
  }), { numRuns: 20 });
});

test('parameters report what is in force, and bad options are refused with every problem', () => {
  const p = twoNodes().parameters();
  assert.deepEqual(p.cache, { sizeBytes: 256, ways: 2, lineBytes: 32 });
  assert.equal(p.pageBytes, 4096);
  assert.deepEqual(p.latencies.missCycles, [[LOCAL, REMOTE], [REMOTE, LOCAL]]);
  assert.throws(
    () => twoNodes({
      cpuNode: [0, 2],
      nodes: [{ base: NODE0, size: 16 * MiB }, { base: NODE1 + 4096, size: 16 * MiB }],
      latencies: { hitCycles: -1, missCycles: [[1]], uncachedCycles: 0, tlbLevelCycles: 0 },
    }),
    /CPUs 1 are on no node; node 1's memory does not follow node 0's; missCycles must be a 2x2 matrix; every latency/,
  );
});

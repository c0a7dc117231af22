// Tests of the statistics registry and its gem5-text and JSON writers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { STATS_BEGIN, STATS_END, StatsRegistry, formatStatValue, formatStatsJson, formatStatsText } from './stats.js';

function sample(): StatsRegistry {
  const stats = new StatsRegistry();
  const perNode = new Float64Array([3, 1]);
  stats.vector('system.mem.fills', 'Lines filled from each node', 'Count', ['node0', 'node1'], () => perNode);
  const hits = stats.counter('system.cpu0.cache.hits', 'Cache hits', 'Count');
  hits.value = 42;
  stats.scalar('system.cpu0.cache.missRate', 'Misses per access', 'Ratio', () => 1 / 3);
  stats.onReset(() => perNode.fill(0));
  return stats;
}

test('snapshots are ordered by name whatever the registration order', () => {
  const a = sample();
  const b = new StatsRegistry();
  b.scalar('system.cpu0.cache.missRate', 'Misses per access', 'Ratio', () => 1 / 3);
  b.counter('system.cpu0.cache.hits', 'Cache hits', 'Count').value = 42;
  b.vector('system.mem.fills', 'Lines filled from each node', 'Count', ['node0', 'node1'], () => [3, 1]);
  assert.deepEqual(a.snapshot().map((s) => s.name), ['system.cpu0.cache.hits', 'system.cpu0.cache.missRate', 'system.mem.fills']);
  assert.equal(formatStatsText(a.snapshot()), formatStatsText(b.snapshot()));
  assert.equal(formatStatsJson(a.snapshot()), formatStatsJson(b.snapshot()));
});

test('stats.txt has gem5\'s layout: name, value, pdf, cdf, # description (unit)', () => {
  const text = formatStatsText(sample().snapshot());
  const expected = [
    '',
    STATS_BEGIN,
    `${'system.cpu0.cache.hits'.padEnd(40)} ${'42'.padStart(12)} ${''.padStart(10)} ${''.padStart(10)} # Cache hits (Count)`,
    `${'system.cpu0.cache.missRate'.padEnd(40)} ${'0.333333'.padStart(12)} ${''.padStart(10)} ${''.padStart(10)} # Misses per access (Ratio)`,
    `${'system.mem.fills::node0'.padEnd(40)} ${'3'.padStart(12)} ${'75.00%'.padStart(10)} ${'75.00%'.padStart(10)} # Lines filled from each node (Count)`,
    `${'system.mem.fills::node1'.padEnd(40)} ${'1'.padStart(12)} ${'25.00%'.padStart(10)} ${'100.00%'.padStart(10)} # Lines filled from each node (Count)`,
    `${'system.mem.fills::total'.padEnd(40)} ${'4'.padStart(12)} ${''.padStart(10)} ${''.padStart(10)} # Lines filled from each node (Count)`,
    '',
    STATS_END,
    '',
  ].join('\n');
  assert.equal(text, expected);
});

test('stats.json holds the same values keyed by name', () => {
  const json = JSON.parse(formatStatsJson(sample().snapshot()));
  assert.deepEqual(Object.keys(json), ['system.cpu0.cache.hits', 'system.cpu0.cache.missRate', 'system.mem.fills']);
  assert.deepEqual(json['system.cpu0.cache.hits'], { value: 42, unit: 'Count', description: 'Cache hits' });
  assert.deepEqual(json['system.mem.fills'], { values: { node0: 3, node1: 1 }, total: 4, unit: 'Count', description: 'Lines filled from each node' });
});

test('reset zeroes counters and externally kept counts, not computed values', () => {
  const stats = sample();
  stats.reset();
  const values = stats.snapshot().map((s) => (s.kind === 'scalar' ? s.value : s.total));
  assert.deepEqual(values, [0, 1 / 3, 0]);
});

test('values print as gem5 prints them', () => {
  assert.deepEqual([0, 12, 0.5, NaN, Infinity, -Infinity].map(formatStatValue), ['0', '12', '0.500000', 'nan', 'inf', '-inf']);
  const stats = new StatsRegistry();
  stats.vector('empty', 'Nothing yet', 'Count', ['a'], () => [0]);
  assert.match(formatStatsText(stats.snapshot()), /empty::a +0 +nan% +nan% # Nothing yet \(Count\)/);
});

test('bad names, labels, duplicates and vector lengths are refused', () => {
  const stats = new StatsRegistry();
  stats.scalar('a.b', 'x', 'Count', () => 0);
  assert.throws(() => stats.scalar('a.b', 'x', 'Count', () => 0), /registered twice/);
  assert.throws(() => stats.scalar('a..b', 'x', 'Count', () => 0), /dotted identifiers/);
  assert.throws(() => stats.scalar('1a', 'x', 'Count', () => 0), /dotted identifiers/);
  assert.throws(() => stats.vector('v', 'x', 'Count', ['ok', 'not ok'], () => [0, 0]), /'not ok'/);
  assert.throws(() => stats.vector('w', 'x', 'Count', ['a', 'a'], () => [0, 0]), /distinct/);
  stats.vector('u', 'x', 'Count', ['a', 'b'], () => [1]);
  assert.throws(() => stats.snapshot(), /read 1 values for 2 labels/);
  assert.equal(stats.has('a.b'), true);
  assert.equal(stats.read('a.b'), 0);
  assert.throws(() => stats.read('u'), /no scalar statistic u/);
  assert.throws(() => stats.read('missing'), /no scalar statistic missing/);
});

// Tests of the topology presets, the distance-matrix parser and the latencies derived from distances.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MachineConfigError, layoutMachine } from './address-map.js';
import {
  DEFAULT_LOCAL_MISS_CYCLES, FLASH_REMOTE_DISTANCE, TOPOLOGY_PRESETS, describePreset, distanceProblems, latenciesFromDistances,
  nanosecondsToCycles, parseDistanceMatrix, timingModelFor, topologyPreset,
} from './topology.js';

const MiB = 1024 * 1024;

function problemsOf(f: () => unknown): readonly string[] {
  try {
    f();
  } catch (error) {
    assert.ok(error instanceof MachineConfigError);
    return error.problems;
  }
  assert.fail('expected a MachineConfigError');
}

test('the presets are flash8, numa4x2 and uma, each described', () => {
  assert.deepEqual(TOPOLOGY_PRESETS, ['flash8', 'numa4x2', 'uma']);
  for (const name of TOPOLOGY_PRESETS) assert.ok((describePreset(name) ?? '').length > 0);
  assert.equal(describePreset('nope'), undefined);
});

test('the default latencies are FLASH\'s 300 ns local and 900 ns remote at 100 MHz', () => {
  assert.equal(DEFAULT_LOCAL_MISS_CYCLES, 30);
  assert.equal(nanosecondsToCycles(900), 90);
  assert.equal(FLASH_REMOTE_DISTANCE, 30);
});

test('flash8: 8 nodes of one CPU, remote misses three times the local ones', () => {
  const { config, latencies } = topologyPreset('flash8', 512 * MiB);
  assert.equal(config.harts, 8);
  assert.deepEqual(config.nodes.map((n) => [n.memoryBytes, n.harts]), Array.from({ length: 8 }, (_, i) => [64 * MiB, [i]]));
  assert.deepEqual(latencies.missCycles[0], [30, 90, 90, 90, 90, 90, 90, 90]);
  assert.deepEqual(latencies.missCycles[5]![5], 30);
  assert.equal(layoutMachine(config).nodes.length, 8);
});

test('numa4x2: 4 nodes of two consecutive CPUs on a 2x2 mesh', () => {
  const { config, latencies } = topologyPreset('numa4x2', 1024 * MiB);
  assert.deepEqual(config.nodes.map((n) => n.harts), [[0, 1], [2, 3], [4, 5], [6, 7]]);
  assert.deepEqual(config.distances, [[10, 20, 20, 30], [20, 10, 30, 20], [20, 30, 10, 20], [30, 20, 20, 10]]);
  assert.deepEqual(latencies.missCycles[0], [30, 60, 60, 90]);
  assert.deepEqual(layoutMachine(config).hartNode, [0, 0, 1, 1, 2, 2, 3, 3]);
});

test('uma: one node with as many CPUs as asked for; the ideal machine charges every miss the local latency', () => {
  assert.equal(topologyPreset('uma', 64 * MiB).config.harts, 1);
  const { config, latencies } = topologyPreset('uma', 64 * MiB, { harts: 4 });
  assert.deepEqual(config.nodes, [{ memoryBytes: 64 * MiB, harts: [0, 1, 2, 3] }]);
  assert.deepEqual(latencies.missCycles, [[30]]);
  const ideal = topologyPreset('numa4x2', 256 * MiB, { uniformLatency: true });
  assert.ok(ideal.latencies.missCycles.flat().every((c) => c === 30));
  assert.deepEqual(ideal.config.distances?.[0], [10, 20, 20, 30], 'the guest still sees the real distances');
});

test('latencies scale with distance / 10 from the local latency', () => {
  const l = latenciesFromDistances([[10, 15], [15, 10]], 40);
  assert.deepEqual(l.missCycles, [[40, 60], [60, 40]]);
  assert.equal(l.hitCycles, 0);
  assert.ok(l.tlbLevelCycles > 0 && l.uncachedCycles > 0);
});

test('preset mistakes are all reported at once', () => {
  assert.deepEqual(problemsOf(() => topologyPreset('flash9', 64 * MiB)), ["no topology 'flash9'; the presets are flash8, numa4x2, uma"]);
  assert.deepEqual(problemsOf(() => topologyPreset('flash8', 64 * MiB + 4096, { harts: 4, localMissCycles: -1 })), [
    'topology flash8 has 8 harts, not 4',
    `memory (${64 * MiB + 4096} bytes) must split into 8 equal whole numbers of 4 KiB pages`,
    'local miss latency must be at least 0 cycles, not -1',
    'node 0 has 8 MiB of memory; each node needs at least 16 MiB',
    'node 1 has 8 MiB of memory; each node needs at least 16 MiB',
    'node 2 has 8 MiB of memory; each node needs at least 16 MiB',
    'node 3 has 8 MiB of memory; each node needs at least 16 MiB',
    'node 4 has 8 MiB of memory; each node needs at least 16 MiB',
    'node 5 has 8 MiB of memory; each node needs at least 16 MiB',
    'node 6 has 8 MiB of memory; each node needs at least 16 MiB',
    'node 7 has 8 MiB of memory; each node needs at least 16 MiB',
  ]);
  assert.deepEqual(problemsOf(() => topologyPreset('numa4x2', 256 * MiB, { distances: [[10, 20], [20, 10]] })), [
    'distances must be a 4x4 matrix (one row and column per node)',
  ]);
});

test('a distance matrix parses from numactl --hardware output', () => {
  const numactl = ['node distances:', 'node   0   1   2', '  0:  10  20  30', '  1:  20  10  20', '  2:  30  20  10', ''].join('\n');
  assert.deepEqual(parseDistanceMatrix(numactl), [[10, 20, 30], [20, 10, 20], [30, 20, 10]]);
});

test('a distance matrix parses from compact forms', () => {
  assert.deepEqual(parseDistanceMatrix('10,20;20,10'), [[10, 20], [20, 10]]);
  assert.deepEqual(parseDistanceMatrix('10 21/21 10'), [[10, 21], [21, 10]]);
  assert.deepEqual(parseDistanceMatrix('10'), [[10]]);
  const flash = topologyPreset('numa4x2', 256 * MiB, { distances: parseDistanceMatrix('10,40,40,40;40,10,40,40;40,40,10,40;40,40,40,10') });
  assert.deepEqual(flash.latencies.missCycles[3], [120, 120, 120, 30]);
});

test('distance matrix mistakes are all reported', () => {
  assert.deepEqual(problemsOf(() => parseDistanceMatrix('10,x;2.5,10')), ["row 0: 'x' is not a whole number", "row 1: '2.5' is not a whole number"]);
  assert.deepEqual(problemsOf(() => parseDistanceMatrix('0: 10 20\n2: 20 10')), ['row 1 is labelled 2']);
  assert.deepEqual(problemsOf(() => parseDistanceMatrix(' ; ')), ['the distance matrix is empty']);
  assert.deepEqual(problemsOf(() => parseDistanceMatrix('10,20;20')), ['the distance matrix has 2 rows, so every row needs 2 values (rows 1 do not)']);
  assert.deepEqual(problemsOf(() => parseDistanceMatrix('11,20;30,10')), [
    'distance from node 0 to itself must be 10, not 11',
    'distances must be symmetric: node 0 to 1 is 20 but node 1 to 0 is 30',
  ]);
  assert.deepEqual(distanceProblems([[10, 20], [30, 10]]), ['distances must be symmetric: node 0 to 1 is 20 but node 1 to 0 is 30']);
  assert.deepEqual(distanceProblems([[10, 300], [300, 10]]), ['distance from node 0 to node 1 must be an integer from 11 to 255, not 300', 'distance from node 1 to node 0 must be an integer from 11 to 255, not 300']);
});

test('a timing model for a laid-out preset charges remote misses by node', () => {
  const { config, latencies } = topologyPreset('numa4x2', 256 * MiB);
  const layout = layoutMachine(config);
  const model = timingModelFor(layout, latencies);
  assert.equal(model.cpus, 8);
  assert.equal(model.chargeAccess(0, layout.nodes[3]!.base, false), 90, 'hart 0 on node 0 to node 3: two hops');
  assert.equal(model.chargeAccess(7, layout.nodes[3]!.base + 4096, false), 30, 'hart 7 is on node 3');
});

// chooseTopology: --topology presets, --nodes, --smp and --distances, and the one-line errors for mistakes.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from './options.js';
import { chooseTopology, evenTopology } from './topology-options.js';

const GiB = 2 ** 30;

describe('chooseTopology', () => {
  it('takes a preset\'s CPUs when --smp is not given, and accepts an --smp that agrees', () => {
    const numa = chooseTopology({ topology: 'numa4x2' }, GiB);
    assert.equal(numa.name, 'numa4x2');
    assert.equal(numa.config.harts, 8);
    assert.deepEqual(numa.config.nodes.map((n) => n.harts), [[0, 1], [2, 3], [4, 5], [6, 7]]);
    assert.equal(chooseTopology({ topology: 'flash8', smp: '8' }, GiB).config.nodes.length, 8);
    assert.equal(chooseTopology({ topology: 'uma', smp: '3' }, GiB).config.harts, 3);
  });

  it('derives miss latencies from the distances: remote is local x distance / 10', () => {
    const { latencies } = chooseTopology({ topology: 'flash8' }, GiB);
    assert.equal(latencies.missCycles[0]![0], 30);
    assert.equal(latencies.missCycles[0]![1], 90);
    const even = chooseTopology({ nodes: '2', smp: '2', distances: '10,40;40,10' }, GiB);
    assert.deepEqual(even.config.distances, [[10, 40], [40, 10]]);
    assert.deepEqual(even.latencies.missCycles, [[30, 120], [120, 30]]);
  });

  it('defaults to one node and one hart, as before --topology existed', () => {
    const plain = chooseTopology({}, GiB);
    assert.deepEqual(plain.config, evenTopology(1, GiB, 1));
  });

  it('refuses each mistake with one line naming the option', () => {
    const cases: [Parameters<typeof chooseTopology>[0], number, RegExp][] = [
      [{ topology: 'numa4x2', nodes: '4' }, GiB, /--topology and --nodes cannot be used together/],
      [{ topology: 'mesh9' }, GiB, /--topology must be one of flash8, numa4x2, uma, not 'mesh9'/],
      [{ topology: 'numa4x2', smp: '4' }, GiB, /numa4x2 has 8 harts, not 4/],
      [{ topology: 'flash8' }, 64 * 2 ** 20, /-m must be at least 128M/],
      [{ topology: 'uma', distances: '10,20;20,10' }, GiB, /--topology uma: .*1x1|--topology uma: /],
      [{ distances: '10,20;x,10' }, GiB, /--distances: .*'x'/],
      [{ nodes: '2', smp: '2', distances: '10' }, GiB, /--distances has 1 row.* 2 nodes/],
      [{ nodes: '3', smp: '2' }, GiB, /--nodes 3 needs at least 3 harts/],
    ];
    for (const [flags, memory, pattern] of cases) {
      assert.throws(() => chooseTopology(flags, memory), (e: unknown) => e instanceof UsageError && pattern.test(e.message) && !e.message.includes('\n'),
        JSON.stringify(flags));
    }
  });
});

// chooseTopology: --topology presets, --nodes, --smp and --distances, and the one-line errors for mistakes.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from './options.js';
import { chooseTopology, evenTopology, parseCacheSpec } from './topology-options.js';

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
      [{ topology: 'flash8' }, 64 * 2 ** 20, /^-m asks for 64 MiB of RAM, too little: --topology flash8 has 8 nodes of at least 16 MiB each; -m must be at least 128M$/],
      [{}, 1024, /^-m asks for 1 KiB of RAM, too little: the machine needs at least 16 MiB; -m must be at least 16M$/],
      [{ nodes: '2', smp: '2' }, 20 * 2 ** 20, /^-m asks for 20 MiB of RAM, too little: --nodes 2 makes 2 nodes of at least 16 MiB each; -m must be at least 32M$/],
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

describe('--cache and --local-miss', () => {
  it('takes any of size, ways and line, the rest from the defaults', () => {
    assert.deepEqual(parseCacheSpec('size=64K,ways=4,line=64'), { sizeBytes: 65536, ways: 4, lineBytes: 64 });
    assert.deepEqual(parseCacheSpec('size=2M'), { sizeBytes: 2 * 2 ** 20, ways: 2, lineBytes: 128 });
    assert.deepEqual(parseCacheSpec('line=32'), { sizeBytes: 2 ** 20, ways: 2, lineBytes: 32 });
  });

  it('names every mistake in one line', () => {
    assert.throws(() => parseCacheSpec('size=3K,colour=red'), (e: Error) =>
      e instanceof UsageError && e.message === "--cache: 'colour=red' is not size=BYTES, ways=N or line=BYTES");
    assert.throws(() => parseCacheSpec('size=3K'), (e: Error) => e.message === '--cache: cache sizeBytes must be a power of two, not 3072');
    assert.throws(() => parseCacheSpec('ways=lots'), /ways 'lots' is not a number/);
    assert.throws(() => parseCacheSpec('size=256,ways=4,line=128'), /cannot hold 4 ways of 128-byte lines/);
  });

  it('scales every latency from the local miss', () => {
    const { latencies } = chooseTopology({ topology: 'numa4x2', localMiss: '50' }, 256 * 2 ** 20);
    assert.deepEqual(latencies.missCycles[0], [50, 100, 100, 150]);
    const even = chooseTopology({ nodes: '2', smp: '2', localMiss: '10' }, 256 * 2 ** 20);
    assert.deepEqual(even.latencies.missCycles, [[10, 20], [20, 10]]);
    assert.throws(() => chooseTopology({ localMiss: '-1' }, 256 * 2 ** 20), /--local-miss must be an integer from 0 to 10000/);
  });
});

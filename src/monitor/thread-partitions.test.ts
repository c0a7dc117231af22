// `threads: N` under `up`: how the machine splits into one part per thread, and where the VMs go.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { PartitionError, placeVms, splitMachine } from './thread-partitions.js';

const MiB = 2 ** 20;

describe('thread partitions', () => {
  it('splits one node evenly: its CPUs, and its memory in whole 2 MiB blocks', () => {
    const parts = splitMachine({ harts: 4, nodes: [{ memoryBytes: 1001 * MiB, harts: [0, 1, 2, 3] }] }, 2);
    assert.deepEqual(parts.map((p) => p.cpus), [[0, 1], [2, 3]]);
    assert.deepEqual(parts.map((p) => p.memoryBytes), [500 * MiB, 500 * MiB]);
    for (const p of parts) {
      assert.deepEqual(p.config, { harts: 2, nodes: [{ memoryBytes: 500 * MiB, harts: [0, 1] }] });
      layoutMachine(p.config);
    }
  });

  it('gives whole nodes when the threads divide them, each part its CPUs renumbered and its nodes\' distances', () => {
    const distances = [[10, 20, 30, 40], [20, 10, 50, 60], [30, 50, 10, 70], [40, 60, 70, 10]];
    const nodes = [0, 1, 2, 3].map((n) => ({ memoryBytes: (n + 1) * 64 * MiB, harts: [2 * n, 2 * n + 1] }));
    const parts = splitMachine({ harts: 8, nodes, distances }, 2);
    assert.deepEqual(parts.map((p) => p.nodes), [[0, 1], [2, 3]]);
    assert.deepEqual(parts.map((p) => p.cpus), [[0, 1, 2, 3], [4, 5, 6, 7]]);
    assert.deepEqual(parts[1]!.config, { harts: 4, nodes: [{ memoryBytes: 192 * MiB, harts: [0, 1] }, { memoryBytes: 256 * MiB, harts: [2, 3] }], distances: [[10, 70], [70, 10]] });
    assert.deepEqual(parts.map((p) => p.memoryBytes), [192 * MiB, 448 * MiB]);
    for (const p of parts) layoutMachine(p.config);
    assert.equal(splitMachine({ harts: 8, nodes, distances }, 1)[0]!.config.harts, 8);
  });

  it('refuses a split it cannot make, in one sentence', () => {
    const uma = { harts: 3, nodes: [{ memoryBytes: 512 * MiB, harts: [0, 1, 2] }] };
    assert.throws(() => splitMachine(uma, 2), new PartitionError('2 threads must divide the machine\'s 3 CPUs (each thread gets as many)'));
    assert.throws(() => splitMachine(uma, 4), new PartitionError('4 threads need 4 CPUs at least, and the machine has 3'));
    const three = { harts: 3, nodes: [0, 1, 2].map((n) => ({ memoryBytes: 64 * MiB, harts: [n] })) };
    assert.throws(() => splitMachine(three, 2), new PartitionError('2 threads must divide the machine\'s 3 nodes, or the machine must have one node'));
  });

  it('places each VM on the part it fits in with the most memory left, so equal VMs alternate', () => {
    const parts = splitMachine({ harts: 2, nodes: [{ memoryBytes: 2048 * MiB, harts: [0, 1] }] }, 2);
    const vms = Array.from({ length: 8 }, (_, i) => ({ name: `vm${i}`, memoryBytes: 128 * MiB }));
    assert.deepEqual(placeVms(parts, vms), [0, 1, 0, 1, 0, 1, 0, 1]);
    assert.deepEqual(placeVms(parts, [{ name: 'big', memoryBytes: 900 * MiB }, { name: 'a', memoryBytes: 64 * MiB }, { name: 'b', memoryBytes: 64 * MiB }]), [0, 1, 1]);
    assert.throws(() => placeVms(parts, [{ name: 'huge', memoryBytes: 1500 * MiB }]),
      new PartitionError('vm huge: 1500 MiB is more than a thread\'s part of the machine (1024 MiB with 2 threads)'));
    // Parts of different sizes: a VM goes only where it fits.
    const uneven = splitMachine({ harts: 2, nodes: [{ memoryBytes: 64 * MiB, harts: [0] }, { memoryBytes: 512 * MiB, harts: [1] }] }, 2);
    assert.deepEqual(placeVms(uneven, [{ name: 'a', memoryBytes: 16 * MiB }, { name: 'b', memoryBytes: 128 * MiB }, { name: 'c', memoryBytes: 128 * MiB }]), [1, 1, 1]);
  });
});

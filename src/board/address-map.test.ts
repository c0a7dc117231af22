// Tests of the board address map and of topology validation and layout.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  boardRegions,
  CLINT,
  layoutMachine,
  MachineConfigError,
  MAX_HARTS,
  PLIC,
  PLIC_CONTEXTS_PER_HART,
  plicSpan,
  RAM_BASE,
  TEST_DEVICE,
  UART0,
  virtioSlot,
  type MachineConfig,
} from './address-map.js';

const MiB = 1024 * 1024;

test('the fixed windows are those of QEMU virt', () => {
  assert.deepEqual([TEST_DEVICE.base, TEST_DEVICE.size], [0x100000, 0x1000]);
  assert.deepEqual([CLINT.base, CLINT.size], [0x2000000, 0x10000]);
  assert.deepEqual([PLIC.base, PLIC.size], [0xc000000, 0x600000]);
  assert.deepEqual([UART0.base, UART0.size, UART0.irq], [0x10000000, 0x100, 10]);
  assert.deepEqual(virtioSlot(0), { name: 'virtio0', base: 0x10001000, size: 0x1000, irq: 1 });
  assert.deepEqual(virtioSlot(7), { name: 'virtio7', base: 0x10008000, size: 0x1000, irq: 8 });
  assert.throws(() => virtioSlot(8), RangeError);
  assert.equal(RAM_BASE, 0x80000000);
});

test('the PLIC window holds the contexts of the largest machine', () => {
  assert.equal(plicSpan(MAX_HARTS * PLIC_CONTEXTS_PER_HART), 0x240000);
  assert.ok(plicSpan(MAX_HARTS * PLIC_CONTEXTS_PER_HART) <= PLIC.size);
});

test('windows are sorted, disjoint, below RAM, and interrupt sources are distinct', () => {
  const regions = boardRegions();
  for (let i = 1; i < regions.length; i++) assert.ok(regions[i - 1]!.base + regions[i - 1]!.size <= regions[i]!.base);
  assert.ok(regions.every((r) => r.base + r.size <= RAM_BASE));
  const irqs = regions.flatMap((r) => (r.irq === undefined ? [] : [r.irq]));
  assert.equal(new Set(irqs).size, irqs.length);
  assert.deepEqual(new Set(regions.map((r) => r.name)).size, regions.length);
});

test('node memories are laid one after another from RAM_BASE', () => {
  const layout = layoutMachine({
    harts: 4,
    nodes: [
      { memoryBytes: 64 * MiB, harts: [1, 0] },
      { memoryBytes: 32 * MiB, harts: [2, 3] },
    ],
  });
  assert.deepEqual(
    layout.nodes.map((n) => [n.id, n.base, n.size, n.harts]),
    [
      [0, 0x80000000, 64 * MiB, [0, 1]],
      [1, 0x84000000, 32 * MiB, [2, 3]],
    ],
  );
  assert.deepEqual(layout.hartNode, [0, 0, 1, 1]);
  assert.deepEqual(layout.distances, [
    [10, 20],
    [20, 10],
  ]);
  assert.equal(layout.ramEnd, 0x86000000);
});

test('explicit distances are kept', () => {
  const distances = [
    [10, 15, 30],
    [15, 10, 15],
    [30, 15, 10],
  ];
  const nodes = [0, 1, 2].map((h) => ({ memoryBytes: 16 * MiB, harts: [h] }));
  assert.deepEqual(layoutMachine({ harts: 3, nodes, distances }).distances, distances);
});

function problemsOf(config: MachineConfig): readonly string[] {
  try {
    layoutMachine(config);
  } catch (e) {
    assert.ok(e instanceof MachineConfigError);
    return e.problems;
  }
  assert.fail('configuration was accepted');
}

test('each mistake gets its own message', () => {
  assert.deepEqual(problemsOf({ harts: 0, nodes: [{ memoryBytes: 16 * MiB, harts: [] }] }), [
    'harts must be an integer from 1 to 32, not 0',
  ]);
  assert.deepEqual(problemsOf({ harts: 33, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }] }), [
    'harts must be an integer from 1 to 32, not 33',
  ]);
  assert.deepEqual(problemsOf({ harts: 1, nodes: [] }), ['there must be at least one node', 'hart 0 belongs to no node']);
  assert.deepEqual(problemsOf({ harts: 1, nodes: [{ memoryBytes: 8 * MiB, harts: [0] }] }), [
    'node 0 has 8 MiB of memory; each node needs at least 16 MiB',
  ]);
  assert.deepEqual(problemsOf({ harts: 1, nodes: [{ memoryBytes: 8 * 1024 * MiB, harts: [0] }] }), [
    'node 0 has 8 GiB of memory; at most 4 GiB per node',
  ]);
  assert.deepEqual(problemsOf({ harts: 1, nodes: [{ memoryBytes: 16 * MiB + 1, harts: [0] }] }), [
    'node 0 memory (16777217 bytes) must be a multiple of 4 KiB',
  ]);
  assert.deepEqual(
    problemsOf({
      harts: 3,
      nodes: [
        { memoryBytes: 16 * MiB, harts: [0, 5] },
        { memoryBytes: 16 * MiB, harts: [0] },
      ],
    }),
    [
      'node 0 lists hart 5, but harts are numbered 0 to 2',
      'hart 0 is listed in node 0 and again in node 1',
      'harts 1, 2 belong to no node',
    ],
  );
});

test('distance mistakes: shape, diagonal, range, symmetry', () => {
  const nodes = [0, 1].map((h) => ({ memoryBytes: 16 * MiB, harts: [h] }));
  assert.deepEqual(problemsOf({ harts: 2, nodes, distances: [[10, 20]] }), [
    'distances must be a 2x2 matrix (one row and column per node)',
  ]);
  assert.deepEqual(
    problemsOf({
      harts: 2,
      nodes,
      distances: [
        [11, 20],
        [20, 10],
      ],
    }),
    ['distance from node 0 to itself must be 10, not 11'],
  );
  assert.deepEqual(
    problemsOf({
      harts: 2,
      nodes,
      distances: [
        [10, 10],
        [256, 10],
      ],
    }),
    [
      'distance from node 0 to node 1 must be an integer from 11 to 255, not 10',
      'distance from node 1 to node 0 must be an integer from 11 to 255, not 256',
    ],
  );
  assert.deepEqual(
    problemsOf({
      harts: 2,
      nodes,
      distances: [
        [10, 20],
        [30, 10],
      ],
    }),
    ['distances must be symmetric: node 0 to 1 is 20 but node 1 to 0 is 30'],
  );
});

test('any valid topology lays out contiguous, page-aligned nodes covering every hart once', () => {
  const config = fc
    .record({ harts: fc.integer({ min: 1, max: MAX_HARTS }), nodeCount: fc.integer({ min: 1, max: 8 }), seed: fc.nat() })
    .chain(({ harts, nodeCount }) =>
      fc.record({
        harts: fc.constant(harts),
        owner: fc.array(fc.integer({ min: 0, max: nodeCount - 1 }), { minLength: harts, maxLength: harts }),
        pages: fc.array(fc.integer({ min: 4096, max: 8192 }), { minLength: nodeCount, maxLength: nodeCount }),
      }),
    );
  fc.assert(
    fc.property(config, ({ harts, owner, pages }) => {
      const nodes = pages.map((p, id) => ({ memoryBytes: p * 4096, harts: owner.flatMap((o, h) => (o === id ? [h] : [])) }));
      const layout = layoutMachine({ harts, nodes });
      let expect = RAM_BASE;
      for (const n of layout.nodes) {
        assert.equal(n.base, expect);
        assert.equal(n.base % 4096, 0);
        expect += n.size;
      }
      assert.equal(layout.ramEnd, expect);
      assert.deepEqual(layout.hartNode, owner);
    }),
  );
});

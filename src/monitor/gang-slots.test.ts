// The spanning gangs' slots (gang-slots.ts): first-fit packing into rows, a row of its own for a part too large
// for its cell, the row for confined VMs only when they share a cell with a spanning gang, and the rotation.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gangSlots, slotAt } from './gang-slots.js';

const FOUR_CELLS_OF_TWO = [2, 2, 2, 2];
const oneEach = (vm: number): { vm: number; parts: { cell: number; vcpus: number }[] } => ({ vm, parts: [0, 1, 2, 3].map((cell) => ({ cell, vcpus: 1 })) });

test('gangs that fit together in every cell share a row; a third that does not gets the next; the confined VMs get a row of their own', () => {
  // The balance experiment's shape: two 4-vCPU VMs dealt one vCPU to each of 4 cells of 2 CPUs.
  assert.deepEqual(gangSlots([oneEach(1), oneEach(0)], FOUR_CELLS_OF_TWO, new Set()), [[0, 1]]);
  assert.deepEqual(gangSlots([oneEach(0), oneEach(1)], FOUR_CELLS_OF_TWO, new Set([1])), [[0, 1], []]);
  assert.deepEqual(gangSlots([oneEach(0), oneEach(1), oneEach(5)], FOUR_CELLS_OF_TWO, new Set()), [[0, 1], [5]]);
  // A confined VM in a cell no spanning gang uses needs no row: that cell's slots are all its VMs' anyway.
  assert.deepEqual(gangSlots([{ vm: 3, parts: [{ cell: 0, vcpus: 2 }, { cell: 1, vcpus: 1 }] }], FOUR_CELLS_OF_TWO, new Set([2])), [[3]]);
});

test('a gang whose part is larger than its cell is alone there in its row; gangs of other cells may share the row', () => {
  const big = { vm: 0, parts: [{ cell: 0, vcpus: 3 }, { cell: 1, vcpus: 2 }] };
  const other = { vm: 1, parts: [{ cell: 0, vcpus: 1 }, { cell: 1, vcpus: 1 }] };
  const apart = { vm: 2, parts: [{ cell: 2, vcpus: 1 }, { cell: 3, vcpus: 1 }] };
  assert.deepEqual(gangSlots([big, other, apart], FOUR_CELLS_OF_TWO, new Set()), [[0, 2], [1]]);
});

test('the rotation: slots of equal length in turn from time 0, the same for every cell that asks', () => {
  assert.deepEqual([0, 99, 100, 250, 399, 400].map((t) => slotAt(t, 100, 4)), [0, 0, 1, 2, 3, 0]);
  assert.equal(slotAt(12345, 100, 0), -1);
});

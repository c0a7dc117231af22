// The modelled TLB on a bare machine: what counts as a TLB miss. A satp write does not lose another
// address space's entries, one entry serves loads and stores, a 2 MiB leaf takes one entry, a store to a
// clean page walks again, and a fence of one address space keeps global entries.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RAM_BASE } from './address-map.js';
import { Machine } from './machine.js';
import { enterSv39, GuestPageTables, PTE_A, PTE_R, PTE_RW, PTE_W, readU64 } from '../../test/helpers/vm-program.js';

const PAGE = 4096;
const VA = 0x4000_0000;
/** A 2 MiB-aligned virtual address mapped by one 2 MiB leaf. */
const VA_LARGE = 0x4040_0000;
const PTE_G = 32n;

function pagedHart() {
  const machine = new Machine({ config: { harts: 1, nodes: [{ memoryBytes: 16 << 20, harts: [0] }] }, builtinSbi: false, translate: false });
  const dma = machine.bus.guestMemory();
  const tables = new GuestPageTables(dma, RAM_BASE + 0x10_0000);
  for (let k = 0; k < 8; k++) tables.map(VA + k * PAGE, RAM_BASE + 0x20_0000 + k * PAGE, PTE_RW);
  const clean = tables.map(VA + 8 * PAGE, RAM_BASE + 0x20_8000, PTE_R | PTE_W | PTE_A);
  tables.map(VA + 9 * PAGE, RAM_BASE + 0x20_9000, PTE_RW | PTE_G);
  tables.map(VA_LARGE, RAM_BASE + 0x40_0000, PTE_RW, 1);
  const h = machine.harts[0]!;
  enterSv39(h, tables.root, 1);
  /** Misses the accesses `touch` makes. */
  const misses = (touch: () => void): number => {
    const before = h.tlbMisses;
    touch();
    return h.tlbMisses - before;
  };
  return { h, dma, clean, misses };
}

test('switching to another ASID and back finds the first address space\'s entries still there', () => {
  const { h, misses } = pagedHart();
  assert.equal(misses(() => { h.load32(VA); h.load32(VA + PAGE); }), 2);
  h.satpAsid = 2;
  h.satpChanged();
  // A store: its entry goes to another way than the loads' (ways are direct-mapped, one per kind of access).
  assert.equal(misses(() => h.store32(VA, 5)), 1, 'ASID 2 used an entry walked in ASID 1');
  h.satpAsid = 1;
  h.satpChanged();
  assert.equal(misses(() => { h.load32(VA); h.load32(VA + PAGE); }), 0, 'the satp write lost ASID 1\'s entries');
});

test('one entry serves a load and a store of a dirty page; a store to a clean one walks again to set D', () => {
  const { h, dma, clean, misses } = pagedHart();
  assert.equal(misses(() => { h.load32(VA + 2 * PAGE); h.store32(VA + 2 * PAGE + 4, 7); }), 1);
  assert.equal(misses(() => h.load32(VA + 8 * PAGE)), 1);
  assert.equal(readU64(dma, clean) & 128n, 0n, 'a load set D');
  assert.equal(misses(() => h.store32(VA + 8 * PAGE, 1)), 1, 'a store to a clean page used the load\'s entry');
  assert.equal(readU64(dma, clean) & 128n, 128n, 'the store\'s walk did not set D');
  assert.equal(misses(() => h.store32(VA + 8 * PAGE + 4, 2)), 0);
});

test('a 2 MiB leaf takes one entry for all its pages', () => {
  const { h, misses } = pagedHart();
  assert.equal(misses(() => { for (const k of [0, 5, 200, 511]) h.load32(VA_LARGE + k * PAGE); }), 1);
  assert.equal(misses(() => h.store32(VA_LARGE + 300 * PAGE, 3)), 0, 'a store to another page of the leaf missed');
  // A fence of one address inside it drops the whole leaf's entry.
  h.sfenceVma(VA_LARGE + 7 * PAGE, undefined);
  assert.equal(misses(() => h.load32(VA_LARGE + 100 * PAGE)), 1);
});

test('a fence of one address space drops its entries and keeps global ones', () => {
  const { h, misses } = pagedHart();
  assert.equal(misses(() => { h.load32(VA); h.load32(VA + 9 * PAGE); }), 2);
  h.sfenceVma(undefined, 1);
  assert.equal(misses(() => h.load32(VA + 9 * PAGE)), 0, 'the fence of ASID 1 dropped a global entry');
  assert.equal(misses(() => h.load32(VA)), 1, 'the fence of ASID 1 left one of its entries');
});

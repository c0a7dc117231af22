// Tests of content-based sharing without a guest: equal pages merge (within a VM and across VMs), unequal
// and held pages do not, a second pass finds nothing more, and what each guest page holds never changes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine, RAM_BASE } from '../board/address-map.js';
import { ACCESS_WRITE } from '../memory/bus.js';
import { FREE, MachineMemory, PAGE } from './machine-memory.js';
import { mergeIdenticalPages } from './page-sharing.js';
import { Pmap } from './pmap.js';

const MiB = 2 ** 20;

function pageBytes(memory: MachineMemory, pmap: Pmap, gppn: number): Uint8Array {
  const mpn = pmap.lookup(gppn);
  return memory.regionOf(mpn).u8.slice(memory.offsetOf(mpn), memory.offsetOf(mpn) + PAGE);
}

test('equal pages merge within and across VMs; unequal and held ones stay; contents never change', () => {
  const memory = new MachineMemory(layoutMachine({ harts: 1, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }] }));
  const pmaps = [1, 2].map((vm) => new Pmap(memory, { vm, base: RAM_BASE, size: 8 * PAGE, homeNode: 0, shootDown: () => {} }));
  // Contents by (VM, page): 'z' zero, 'x' and 'y' two patterns, '-' untouched.
  const layout = ['zxxy-zzx', 'xzyy-xzz'];
  const fill = (c: string): number => (c === 'x' ? 0x11 : c === 'y' ? 0x22 : 0);
  layout.forEach((row, v) => [...row].forEach((c, gppn) => {
    if (c === '-') return;
    const pmap = pmaps[v]!;
    pmap.resolveFault(gppn, ACCESS_WRITE);
    const mpn = pmap.lookup(gppn);
    memory.regionOf(mpn).u8.fill(fill(c), memory.offsetOf(mpn), memory.offsetOf(mpn) + PAGE);
  }));
  pmaps[1]!.hold(7);
  const before = pmaps.map((p) => Array.from({ length: 8 }, (_, g) => (p.lookup(g) === FREE ? undefined : pageBytes(memory, p, g))));
  const result = mergeIdenticalPages(memory, pmaps);
  // 14 mapped pages, one held: 13 scanned; three distinct contents remain (z, x, y), plus the held page.
  assert.equal(result.scanned, 13);
  assert.equal(result.pagesBefore, 14);
  assert.equal(result.pagesAfter, 4);
  assert.equal(result.merged, 10);
  pmaps.forEach((p, v) => before[v]!.forEach((bytes, g) => {
    if (bytes !== undefined && !(v === 1 && g === 7)) assert.deepEqual(pageBytes(memory, p, g), bytes, `VM ${v} page ${g} changed`);
  }));
  assert.equal(pmaps[0]!.lookup(1), pmaps[1]!.lookup(0), 'the x pages of both VMs are one machine page');
  assert.notEqual(pmaps[1]!.lookup(7), pmaps[1]!.lookup(1), 'a held page was merged');
  assert.equal(mergeIdenticalPages(memory, pmaps).merged, 0, 'a second pass merged more');
  // A write to a merged page gets a private copy: the other users keep the old bytes.
  const shared = pmaps[0]!.lookup(0);
  pmaps[0]!.resolveFault(0, ACCESS_WRITE);
  assert.notEqual(pmaps[0]!.lookup(0), shared);
  assert.equal(pmaps[0]!.lookup(5), shared);
});

test('more zero pages than a machine page can have users: the merge starts a second zero page instead of failing', () => {
  // 0xffff users is the memmap's limit (16 bits): 70 000 zero guest pages (every freed page of eight guests
  // that zero what they free) once made the merge throw and end the VM.
  const pages = 70_000;
  const memory = new MachineMemory(layoutMachine({ harts: 1, nodes: [{ memoryBytes: 320 * MiB, harts: [0] }] }));
  const pmap = new Pmap(memory, { vm: 1, base: RAM_BASE, size: pages * PAGE, homeNode: 0, shootDown: () => {} });
  for (let gppn = 0; gppn < pages; gppn++) pmap.resolveFault(gppn, ACCESS_WRITE);
  const result = mergeIdenticalPages(memory, [pmap]);
  assert.equal(result.merged, pages - 2, 'every zero page but the two shared ones merged');
  assert.equal(memory.pagesInUse(), 2);
  assert.ok(Math.max(...[0, pages - 1].map((g) => memory.users[pmap.lookup(g)]!)) <= 0xffff);
});

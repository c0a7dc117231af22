// Issue 20, item 8: sharing never lets one VM see another's write. Several VMs' guest pages are written and
// read at random by their CPUs (through the bus and the pmap, faulting as a hart would) and by DMA (a
// device's view of memory), while disk blocks are read through the page cache (mapped or copied), the
// one-pass merge and the scanner merge equal pages, and the page cache lets go of what it alone holds.
// Every read, and every page at the end, must hold what that VM last put there.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PAGE } from './machine-memory.js';
import { Monitor } from './monitor.js';
import type { BlockPageHook } from '../devices/virtio/blk.js';
import { GuestPages } from '../../test/helpers/guest-pages.js';

const MiB = 2 ** 20;
const VMS = 3;
/** Guest pages the test touches in each VM (of its 16 MiB). */
const PAGES = 24;
const BLOCKS = 6;
const quiet = (): void => {};

/** A disk block's bytes: block 0 is zero (it meets the zero pages), the others a pattern of their number. */
function blockBytes(block: number): Uint8Array {
  const bytes = new Uint8Array(PAGE);
  if (block > 0) for (let i = 0; i < PAGE; i += 64) bytes[i] = block;
  return bytes;
}

/** Whole pages are filled with one of a few values, so that many are equal and merge. */
const fillValue = fc.constantFrom(0, 0, 1, 2, 3);

type Op =
  | { kind: 'cpu-fill'; vm: number; page: number; value: number }
  | { kind: 'cpu-poke'; vm: number; page: number; offset: number; value: number }
  | { kind: 'cpu-read'; vm: number; page: number }
  | { kind: 'dma-write'; vm: number; page: number; offset: number; length: number; value: number }
  | { kind: 'dma-read'; vm: number; page: number }
  | { kind: 'disk-read'; vm: number; page: number; block: number }
  | { kind: 'merge' }
  | { kind: 'scan'; pages: number }
  | { kind: 'trim' };

const vmIndex = fc.integer({ min: 0, max: VMS - 1 });
const page = fc.integer({ min: 0, max: PAGES - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('cpu-fill' as const), vm: vmIndex, page, value: fillValue }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('cpu-poke' as const), vm: vmIndex, page, offset: fc.integer({ min: 0, max: PAGE - 8 }), value: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('cpu-read' as const), vm: vmIndex, page }) },
  // DMA may cross into the next page (the last page has none after it in the test's range, but the VM has).
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('dma-write' as const), vm: vmIndex, page, offset: fc.integer({ min: 0, max: PAGE - 1 }), length: fc.integer({ min: 1, max: PAGE + 64 }), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dma-read' as const), vm: vmIndex, page }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('disk-read' as const), vm: vmIndex, page, block: fc.integer({ min: 0, max: BLOCKS - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('merge' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('scan' as const), pages: fc.integer({ min: 1, max: 3 * PAGES }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('trim' as const) }) },
);


test('no VM ever sees another\'s write, whatever is shared, merged, mapped from the page cache or written by DMA', () => {
  fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 120 }), fc.boolean(), (ops, optOut) => {
    const monitor = new Monitor({ config: { harts: 2, nodes: [{ memoryBytes: 128 * MiB, harts: [0, 1] }] }, log: quiet, scan: { pagesPerSecond: 1, cpu: 1 } });
    // With optOut, the last VM shares nothing with the others (share: false).
    const vms = Array.from({ length: VMS }, (_, i) => monitor.createVm({
      name: `vm${i}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, sharing: !(optOut && i === VMS - 1),
    }));
    const hooks: (BlockPageHook | undefined)[] = vms.map((vm) => monitor.diskHook(vm, 'base'));
    const pages = new GuestPages(vms);
    for (const o of ops) {
      switch (o.kind) {
        case 'cpu-fill':
          pages.cpuFill(o.vm, o.page, o.value);
          break;
        case 'cpu-poke':
          pages.cpuPoke(o.vm, o.page, o.offset, o.value);
          break;
        case 'cpu-read':
          pages.cpuRead(o.vm, o.page);
          break;
        case 'dma-write':
          pages.dmaWrite(o.vm, o.page, o.offset, o.length, o.value);
          break;
        case 'dma-read':
          pages.dmaRead(o.vm, o.page);
          break;
        case 'disk-read':
          // What virtio-blk does with a whole, aligned block of the base: map it if the hook can, else copy and offer.
          pages.diskRead(o.vm, o.page, o.block, blockBytes(o.block), hooks[o.vm]);
          break;
        case 'merge':
          monitor.sharePages();
          break;
        case 'scan':
          // Machine time for `pages` visits at 1 page a second.
          monitor.scanner!.afterRound(monitor.cycles += o.pages * 1e9, vms.map((vm) => ({ pmap: vm.pmap, sharesWithOthers: vm.sharesWithOthers })));
          break;
        case 'trim':
          monitor.pageCache.trim();
          break;
      }
    }
    vms.forEach((vm, v) => {
      // A DMA write may run two pages past the last page picked.
      for (let gppn = 0; gppn < PAGES + 2; gppn++) pages.dmaRead(v, gppn, 'at the end');
    });
    // An opted-out VM shares no machine page with another VM.
    if (optOut) {
      const last = vms[VMS - 1]!;
      for (let gppn = 0; gppn <= PAGES; gppn++) {
        const mpn = last.pmap.lookup(gppn);
        if (mpn >= 0) assert.ok(monitor.memory.usersOf(mpn).every((u) => u.vm === last.id), `vm${VMS - 1} (share: false) shares page ${gppn} with another VM`);
      }
    }
    const m = monitor.memoryAccount().machine;
    assert.equal(m.mapped - m.saved + m.cacheOnly, m.inUse, `the account does not add up: ${JSON.stringify(m)}`);
    assert.equal(m.inUse + m.reserved + m.monitor + m.replicas + m.lent + m.free, m.total);
  }), { numRuns: 150 });
});

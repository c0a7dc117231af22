// Issue 22, item 5: monitor-level paging never changes what a guest sees. Several VMs write and read pages at
// random through the monitor's guest-page fault (as a vCPU would) and by DMA, while pages are shared (content
// merges, the page cache), held, dropped by the guest, on a machine whose memory leaves the VMs a few dozen
// pages: the pager writes pages out and reads them back all the time. Every read, and every page at the end,
// must hold what that VM last put there; the memory account adds up; the swap slots go when the VMs end.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RAM_BASE } from '../board/address-map.js';
import { ACCESS_WRITE, type Access } from '../memory/bus.js';
import { FREE, PAGE } from './machine-memory.js';
import { Monitor } from './monitor.js';
import { MemorySwapStore } from './swap-store.js';
import type { VirtualMachine } from './vm.js';
import type { BlockPageHook } from '../devices/virtio/blk.js';
import { GuestPages, type PageView } from '../../test/helpers/guest-pages.js';
import type { MonitorOptions } from './monitor-options.js';

const MiB = 2 ** 20;
const VMS = 3;
/** Guest pages the test touches in each VM (of its 16 MiB): 3 × 24 against the machine's BUDGET. */
const PAGES = 24;
/** Pages of machine memory the VMs have between them (the rest is the pager's reserve). */
const BUDGET = 30;
const BLOCKS = 4;
const SLOTS = 4096;
const quiet = (): void => {};

const config: MonitorOptions['config'] = { harts: 1, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }] };
const vmSpec = (i: number, optOut: boolean) => ({ name: `vm${i}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, secondLevelEntries: 64, sharing: !(optOut && i === VMS - 1) });

/** Free pages once the VMs are made, without paging: the reserve that leaves the VMs BUDGET pages is this less BUDGET. */
function freeAfterVms(): number {
  const m = new Monitor({ config, log: quiet });
  for (let i = 0; i < VMS; i++) m.createVm(vmSpec(i, false));
  return m.memory.pagesFree(0);
}

function blockBytes(block: number): Uint8Array {
  const bytes = new Uint8Array(PAGE);
  if (block > 0) for (let i = 0; i < PAGE; i += 64) bytes[i] = block;
  return bytes;
}

const fillValue = fc.constantFrom(0, 0, 1, 2, 3);

type Op =
  | { kind: 'cpu-fill'; vm: number; page: number; value: number }
  | { kind: 'cpu-poke'; vm: number; page: number; offset: number; value: number }
  | { kind: 'cpu-read'; vm: number; page: number }
  | { kind: 'dma-write'; vm: number; page: number; offset: number; length: number; value: number }
  | { kind: 'dma-read'; vm: number; page: number }
  | { kind: 'disk-read'; vm: number; page: number; block: number }
  | { kind: 'hold'; vm: number; page: number }
  | { kind: 'drop'; vm: number; page: number }
  | { kind: 'merge' }
  | { kind: 'round' };

const vmIndex = fc.integer({ min: 0, max: VMS - 1 });
const page = fc.integer({ min: 0, max: PAGES - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('cpu-fill' as const), vm: vmIndex, page, value: fillValue }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('cpu-poke' as const), vm: vmIndex, page, offset: fc.integer({ min: 0, max: PAGE - 8 }), value: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('cpu-read' as const), vm: vmIndex, page }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('dma-write' as const), vm: vmIndex, page, offset: fc.integer({ min: 0, max: PAGE - 1 }), length: fc.integer({ min: 1, max: PAGE + 64 }), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dma-read' as const), vm: vmIndex, page }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('disk-read' as const), vm: vmIndex, page, block: fc.integer({ min: 0, max: BLOCKS - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('hold' as const), vm: vmIndex, page }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), vm: vmIndex, page }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('merge' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('round' as const) }) },
);

/**
 * The bytes guest page `gppn` of `vm` shows to an access of kind `access`, faulting through the monitor's exit
 * handler as a vCPU would: an exit answered WAIT (the vCPU waits for the swap device) is taken again, as the
 * vCPU's instruction is once it runs again.
 */
function cpuPage(vm: VirtualMachine, gppn: number, access: Access): PageView {
  const address = RAM_BASE + gppn * PAGE;
  for (let attempt = 0; attempt < 6; attempt++) {
    const region = vm.machine.bus.resolveRam(address, access);
    if (region !== undefined) return { u8: region.u8, offset: vm.machine.bus.resolvedOffset };
    vm.handleExit(0, { kind: 'guest-page-fault', cause: access === ACCESS_WRITE ? 23 : 21, gpa: address, va: address, access, needs: access, implicit: false });
    assert.equal(vm.outOfMemory, undefined, 'the machine ran out with paging on');
  }
  throw new Error(`guest page ${gppn} never became accessible`);
}

let pagedOut = 0;
let pagedIn = 0;
let sharedOut = 0;

test('with paging, every VM reads back its own last write, whatever is shared, held, dropped or written by DMA; the slots go with the VMs', () => {
  const reserve = freeAfterVms() - BUDGET;
  fc.assert(fc.property(fc.array(op, { minLength: 20, maxLength: 200, size: 'max' }), fc.boolean(), (ops, optOut) => {
    const store = new MemorySwapStore(SLOTS);
    const monitor = new Monitor({ config, log: quiet, swap: { store, reservePages: reserve, batchPages: 2 } });
    const pager = monitor.pager!;
    const vms = Array.from({ length: VMS }, (_, i) => monitor.createVm(vmSpec(i, optOut)));
    const hooks: (BlockPageHook | undefined)[] = vms.map((vm) => monitor.diskHook(vm, 'base'));
    const pages = new GuestPages(vms, cpuPage);
    const held = new Set<string>();
    /** A held page is given back before the test's own access (the monitor would make the access wait). */
    const release = (v: number, gppn: number): void => {
      for (const g of [gppn, gppn + 1]) {
        if (!held.delete(`${v}:${g}`)) continue;
        // Held pages are never evicted.
        assert.notEqual(vms[v]!.pmap.lookup(g), FREE, `vm${v} page ${g} lost its machine page while held`);
        vms[v]!.pmap.unhold(g);
      }
    };
    for (const o of ops) {
      if ('vm' in o) release(o.vm, o.page);
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
          pages.diskRead(o.vm, o.page, o.block, blockBytes(o.block), hooks[o.vm]);
          break;
        case 'hold':
          // What a page on its way somewhere looks like to the pager: held, it must stay.
          if (vms[o.vm]!.pmap.lookup(o.page) !== FREE) {
            vms[o.vm]!.pmap.hold(o.page);
            held.add(`${o.vm}:${o.page}`);
          }
          break;
        case 'drop':
          // The guest gave the page back (the balloon's free-page reporting): its contents are gone, a zero page next.
          vms[o.vm]!.pmap.unmap(o.page);
          pages.forget(o.vm, [o.page]);
          break;
        case 'merge':
          monitor.sharePages();
          break;
        case 'round':
          // The round's end: a safe point where the pager makes room.
          pager.makeRoom();
          break;
      }
      if (store.used > 0 && vms.some((vm) => vm.pmap.pagesShared > 0)) sharedOut++;
    }
    for (const key of [...held]) {
      const [v, g] = key.split(':').map(Number);
      release(v!, g!);
    }
    vms.forEach((vm, v) => {
      // A DMA write may run two pages past the last page picked.
      for (let gppn = 0; gppn < PAGES + 2; gppn++) pages.dmaRead(v, gppn, 'at the end');
    });
    // Each slot in use is one some guest page waits for, and each guest page in the store has its slot.
    const slots = new Set<number>();
    for (const vm of vms) for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
      const slot = pager.slotOf(vm.id, gppn);
      if (slot < 0) continue;
      assert.equal(vm.pmap.lookup(gppn), FREE, `vm${vm.id} page ${gppn} is in slot ${slot} and mapped too`);
      slots.add(slot);
    }
    assert.equal(store.used, slots.size);
    const m = monitor.memoryAccount().machine;
    assert.equal(m.mapped - m.saved + m.cacheOnly, m.inUse, `the account does not add up: ${JSON.stringify(m)}`);
    assert.equal(m.inUse + m.reserved + m.monitor + m.replicas + m.lent + m.free, m.total);
    pagedOut += pager.totals.pagesOut;
    pagedIn += pager.totals.pagesIn;
    for (const vm of vms) monitor.stopVm(vm);
    assert.equal(store.used, 0, 'swap slots left after every VM ended');
    assert.equal(pager.swapped(), 0);
  }), { numRuns: 120 });
  // The runs did page, shared pages included: a test that never wrote a page out would prove nothing.
  assert.ok(pagedOut > 1000 && pagedIn > 500, `pages written ${pagedOut}, read back ${pagedIn}`);
  assert.ok(sharedOut > 0, 'no run had shared pages and pages in the store at once');
});

// The pager (pager.ts): second-chance FIFO, a shared page written once, zero pages not written, held pages kept,
// a full store stopping the VM that needed a page with one line, the slots gone with the VMs, what ps shows.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RAM_BASE } from '../board/address-map.js';
import { ACCESS_READ, ACCESS_WRITE, PERM_NONE, type Access } from '../memory/bus.js';
import { FREE, PAGE } from './machine-memory.js';
import { Monitor } from './monitor.js';
import { MemorySwapStore } from './swap-store.js';
import type { VirtualMachine } from './vm.js';
import { summarizeVm } from './accounting.js';
import { memoryReport } from '../control/monitor-commands.js';
import { psTable } from '../cli/vm-commands.js';
import type { VmListing } from '../control/monitor-commands.js';
import { saveMonitor } from './monitor-snapshot.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
const config = { harts: 1, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }] };
const spec = (name: string) => ({ name, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, secondLevelEntries: 64 });

/** A monitor whose VMs (`names`) have `budget` machine pages between them before the pager must evict. */
function machine(names: string[], budget: number, slots = 1024): { monitor: Monitor; vms: VirtualMachine[]; store: MemorySwapStore } {
  const probe = new Monitor({ config, log: quiet });
  for (const n of names) probe.createVm(spec(n));
  const store = new MemorySwapStore(slots);
  const monitor = new Monitor({ config, log: quiet, swap: { store, reservePages: probe.memory.pagesFree(0) - budget, batchPages: 0 } });
  return { monitor, vms: names.map((n) => monitor.createVm(spec(n))), store };
}

/** Touches guest page `gppn` as a vCPU would (its exits handled, a wait for the store taken again). */
function touch(vm: VirtualMachine, gppn: number, access: Access, value?: number): number {
  const address = RAM_BASE + gppn * PAGE;
  for (let attempt = 0; attempt < 6; attempt++) {
    const region = vm.machine.bus.resolveRam(address, access);
    if (region !== undefined) {
      const at = vm.machine.bus.resolvedOffset;
      if (value !== undefined) region.u8.fill(value, at, at + PAGE);
      return region.u8[at]!;
    }
    vm.handleExit(0, { kind: 'guest-page-fault', cause: access === ACCESS_WRITE ? 23 : 21, gpa: address, va: address, access, needs: access, implicit: false });
    if (vm.outOfMemory !== undefined) throw new Error(vm.outOfMemory);
  }
  throw new Error(`guest page ${gppn} never became accessible`);
}

describe('the pager', () => {
  it('evicts the oldest page not used since the hand passed, and gives a used one a second chance', () => {
    // Room for four pages: the reserve is reached at the fourth, and the fifth's fault makes room.
    const { monitor, vms: [vm] } = machine(['a'], 3);
    const pager = monitor.pager!;
    for (let g = 0; g < 4; g++) touch(vm!, g, ACCESS_WRITE, g + 1);
    // The fifth page needs room: the hand finds all four used, takes their permission (a second chance) and
    // comes round to the oldest, page 0, which no one used since.
    touch(vm!, 4, ACCESS_WRITE, 5);
    assert.equal(pager.slotOf(vm!.id, 0), 0);
    assert.deepEqual([1, 2, 3].map((g) => vm!.pmap.permission(g)), [PERM_NONE, PERM_NONE, PERM_NONE]);
    // Page 1 is used (a soft fault gives its permission back and marks it); the next eviction passes it over.
    assert.equal(touch(vm!, 1, ACCESS_READ), 2);
    assert.equal(vm!.exits.get('guest-page-fault.reference'), 1);
    touch(vm!, 5, ACCESS_WRITE, 6);
    assert.notEqual(vm!.pmap.lookup(1), FREE);
    assert.ok(pager.slotOf(vm!.id, 2) >= 0, 'page 2, unused, went next');
    // Read back at the fault, with its contents.
    assert.equal(touch(vm!, 0, ACCESS_READ), 1);
    assert.equal(pager.slotOf(vm!.id, 0), -1);
    assert.equal(vm!.exits.get('guest-page-fault.swap-in'), 1);
  });

  it('writes a page shared by two VMs once, reads it back once and maps it to both', () => {
    const { monitor, vms: [a, b], store } = machine(['a', 'b'], 4);
    touch(a!, 0, ACCESS_WRITE, 7);
    touch(b!, 3, ACCESS_WRITE, 7);
    monitor.sharePages();
    assert.equal(a!.pmap.lookup(0), b!.pmap.lookup(3));
    // Room for nothing more: new pages push the shared one out.
    for (let g = 10; g < 16; g++) touch(a!, g, ACCESS_WRITE, g);
    const slot = monitor.pager!.slotOf(a!.id, 0);
    assert.ok(slot >= 0);
    assert.equal(monitor.pager!.slotOf(b!.id, 3), slot, 'both sharers wait for the one slot');
    const out = monitor.pager!.totals.pagesOut;
    assert.equal(touch(b!, 3, ACCESS_READ), 7);
    // One read, and the other sharer maps the same page without reading again.
    assert.equal(a!.pmap.lookup(0), b!.pmap.lookup(3));
    assert.equal(monitor.pager!.slotOf(a!.id, 0), -1);
    assert.equal(monitor.pager!.totals.pagesIn, 1);
    assert.equal(touch(a!, 0, ACCESS_READ), 7);
    assert.equal(monitor.pager!.totals.pagesIn, 1);
    // Copy-on-write still: a write gets a's own page, b keeps 7.
    touch(a!, 0, ACCESS_WRITE, 9);
    assert.equal(touch(b!, 3, ACCESS_READ), 7);
    assert.ok(monitor.pager!.totals.pagesOut >= out);
    assert.equal(store.used, [a!, b!].reduce((n, vm) => n + monitor.pager!.swapped(vm.id), 0));
  });

  it('drops a zero page without writing it: the next touch is a fresh zero page', () => {
    const { monitor, vms: [vm], store } = machine(['a'], 2);
    touch(vm!, 0, ACCESS_WRITE, 0);
    for (let g = 1; g < 4; g++) touch(vm!, g, ACCESS_WRITE, g);
    assert.equal(vm!.pmap.lookup(0), FREE);
    assert.equal(monitor.pager!.slotOf(vm!.id, 0), -1);
    assert.ok(monitor.pager!.totals.zeroDropped >= 1);
    assert.equal(touch(vm!, 0, ACCESS_READ), 0);
    assert.equal(store.used, monitor.pager!.swapped(vm!.id));
  });

  it('never evicts a held page', () => {
    const { vms: [vm] } = machine(['a'], 3);
    touch(vm!, 0, ACCESS_WRITE, 1);
    vm!.pmap.hold(0);
    for (let g = 1; g < 8; g++) touch(vm!, g, ACCESS_WRITE, g + 1);
    assert.notEqual(vm!.pmap.lookup(0), FREE);
  });

  it('forgets the slot of a page the guest drops, and frees every slot when the VM ends', () => {
    const { monitor, vms: [vm], store } = machine(['a'], 2);
    for (let g = 0; g < 6; g++) touch(vm!, g, ACCESS_WRITE, g + 1);
    const swapped = monitor.pager!.swapped(vm!.id);
    assert.ok(swapped >= 3 && store.used === swapped);
    const gone = [0, 1, 2, 3].find((g) => monitor.pager!.slotOf(vm!.id, g) >= 0)!;
    vm!.pmap.unmap(gone);
    assert.equal(store.used, swapped - 1);
    assert.equal(touch(vm!, gone, ACCESS_READ), 0, 'a dropped page comes back zero');
    monitor.stopVm(vm!);
    assert.equal(store.used, 0);
  });

  it('stops the VM that needs a page when the store is full, with one line', () => {
    const { monitor, vms: [vm] } = machine(['a'], 2, 2);
    assert.throws(() => { for (let g = 0; g < 8; g++) touch(vm!, g, ACCESS_WRITE, g + 1); }, /^Error: swap full: memory has all its 2 pages in use$/);
    monitor.runRound();
    assert.equal(vm!.state, 'stopped');
    assert.equal(vm!.reason, 'swap full: memory has all its 2 pages in use');
  });

  it('shows each VM\'s swapped pages in ps, query-memory and the summary; a snapshot with pages in the store is refused', () => {
    const { monitor, vms: [vm] } = machine(['a'], 2);
    for (let g = 0; g < 6; g++) touch(vm!, g, ACCESS_WRITE, g + 1);
    const summary = summarizeVm(vm!);
    assert.equal(summary.pagesSwapped, monitor.pager!.swapped(vm!.id));
    assert.ok(summary.pagesOut! >= summary.pagesSwapped!);
    assert.match(psTable([{ ...summary, console: '' } as VmListing]), /SWAPPED/);
    const report = memoryReport(monitor);
    assert.equal(report.swap?.vms[0]?.swapped, summary.pagesSwapped);
    assert.equal(report.swap?.used, summary.pagesSwapped);
    assert.throws(() => saveMonitor(monitor), /the VMs have \d+ pages in the swap file: a snapshot does not keep them yet/);
    // Without paging, ps has no such column.
    const plain = new Monitor({ config, log: quiet });
    assert.doesNotMatch(psTable([{ ...summarizeVm(plain.createVm(spec('p'))), console: '' } as VmListing]), /SWAPPED/);
  });
});

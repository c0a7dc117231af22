// The balloon's free page reports and inflated pages, interleaved at random with guest writes and reads, DMA,
// content merges, page-cache mappings, large pages and replicas: no VM sees another's data, a page given reads
// back as zero, and the memmap's user counts and the machine's page counts add up after every step.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RAM_BASE } from '../board/address-map.js';
import { ACCESS_WRITE } from '../memory/bus.js';
import { BLOCK_PAGES, FREE, MONITOR, PAGE, REPLICA } from './machine-memory.js';
import { Monitor } from './monitor.js';
import type { VirtualMachine } from './vm.js';
import { GuestPages, resolvedPage } from '../../test/helpers/guest-pages.js';

const MiB = 2 ** 20;
const VMS = 3;
/** Pages the test touches: the first few of group 0, and all of group 1 (so it can become a large page). */
const SMALL = 8;
const GROUP = 1;
const quiet = (): void => {};

const vmIndex = fc.integer({ min: 0, max: VMS - 1 });
// Few pages, so that ops meet on the same ones: the first of group 0, and a few of group 1 at both its ends.
const page = fc.oneof(fc.integer({ min: 0, max: SMALL - 1 }), fc.constantFrom(0, 1, 2, 3, BLOCK_PAGES - 2, BLOCK_PAGES - 1).map((k) => GROUP * BLOCK_PAGES + k));
const fillValue = fc.constantFrom(0, 1, 2, 3);

type Op =
  | { kind: 'fill'; vm: number; page: number; value: number }
  | { kind: 'poke'; vm: number; page: number; offset: number; value: number }
  | { kind: 'read'; vm: number; page: number }
  | { kind: 'fill-group'; vm: number; value: number }
  | { kind: 'disk-read'; vm: number; page: number; block: number }
  | { kind: 'merge' }
  | { kind: 'replicate'; vm: number; page: number }
  | { kind: 'replicate-group'; vm: number }
  | { kind: 'report'; vm: number; page: number; pages: number }
  | { kind: 'inflate'; vm: number; pages: number[] }
  | { kind: 'deflate'; vm: number; pages: number[] };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('fill' as const), vm: vmIndex, page, value: fillValue }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('poke' as const), vm: vmIndex, page, offset: fc.integer({ min: 0, max: PAGE - 1 }), value: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('read' as const), vm: vmIndex, page }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fill-group' as const), vm: vmIndex, value: fillValue }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('disk-read' as const), vm: vmIndex, page, block: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('merge' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('replicate' as const), vm: vmIndex, page }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('replicate-group' as const), vm: vmIndex }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('report' as const), vm: vmIndex, page, pages: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(BLOCK_PAGES)) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('inflate' as const), vm: vmIndex, pages: fc.array(page, { minLength: 1, maxLength: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deflate' as const), vm: vmIndex, pages: fc.array(page, { minLength: 1, maxLength: 6 }) }) },
);

function blockBytes(block: number): Uint8Array {
  return new Uint8Array(PAGE).fill(block);
}


/** Every machine page's users are exactly the guest pages that map it and the page cache; the machine's pages add up. */
function checkCounts(monitor: Monitor, vms: readonly VirtualMachine[]): void {
  const memory = monitor.memory;
  const expected = new Map<number, number>();
  for (const vm of vms) {
    for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
      const mpn = vm.pmap.lookup(gppn);
      if (mpn !== FREE) expected.set(mpn, (expected.get(mpn) ?? 0) + 1);
    }
  }
  let inUse = 0;
  for (let mpn = 0; mpn < memory.totalPages; mpn++) {
    const users = (expected.get(mpn) ?? 0) + (monitor.pageCache.holds(mpn) ? 1 : 0);
    // The monitor's own pages and replicas have their owner's one use.
    if (users === 0 && (memory.owner[mpn] === MONITOR || memory.owner[mpn] === REPLICA)) continue;
    if (memory.users[mpn] !== users) assert.fail(`machine page ${mpn} has ${memory.users[mpn]} users in the memmap, ${users} by the pmaps and the page cache`);
    if (users > 0) inUse++;
  }
  // Every replica is a copy of a mapped page: a page given back took its copies with it.
  let copies = 0;
  for (const vm of vms) {
    for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
      const r = vm.pmap.replicasOf(gppn);
      if (r === undefined) continue;
      if (vm.pmap.lookup(gppn) === FREE) assert.fail(`${vm.name} page ${gppn} has replicas but no machine page`);
      copies += r.filter((mpn) => mpn !== FREE).length;
    }
  }
  assert.equal(memory.replicaPages(), copies, 'replica pages');
  const m = monitor.memoryAccount().machine;
  assert.equal(m.inUse, inUse, 'pages in use');
  assert.equal(m.mapped - m.saved + m.cacheOnly, m.inUse, `the account does not add up: ${JSON.stringify(m)}`);
  assert.equal(m.inUse + m.reserved + m.monitor + m.replicas + m.lent + m.free, m.total);
}

test('balloon reports and inflates take pages back without showing any VM another\'s data, and the counts add up', () => {
  fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 60 }), (ops) => {
    const monitor = new Monitor({ config: { harts: 2, nodes: [{ memoryBytes: 64 * MiB, harts: [0] }, { memoryBytes: 64 * MiB, harts: [1] }] }, log: quiet });
    const vms = Array.from({ length: VMS }, (_, i) => monitor.createVm({ name: `vm${i}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, balloon: true, homeNode: 0 }));
    const hooks = vms.map((vm) => monitor.diskHook(vm, 'base'));
    const pages = new GuestPages(vms);
    for (const o of ops) {
      switch (o.kind) {
        case 'fill':
          pages.cpuFill(o.vm, o.page, o.value);
          break;
        case 'poke':
          pages.cpuPoke(o.vm, o.page, o.offset, o.value);
          break;
        case 'read':
          pages.cpuRead(o.vm, o.page);
          break;
        case 'fill-group':
          // Every page of the group touched: it becomes one large page if its block held.
          pages.dmaFill(o.vm, GROUP * BLOCK_PAGES, BLOCK_PAGES, o.value);
          break;
        case 'disk-read':
          pages.diskRead(o.vm, o.page, o.block, blockBytes(o.block), hooks[o.vm]);
          break;
        case 'merge':
          monitor.sharePages();
          break;
        case 'replicate':
          // Made writable first (a private page, not copy-on-write), as a page the policy would replicate is.
          resolvedPage(vms[o.vm]!, o.page, ACCESS_WRITE);
          pages.track(o.vm, o.page);
          vms[o.vm]!.pmap.replicate(o.page, [1]);
          break;
        case 'replicate-group':
          vms[o.vm]!.pmap.replicateGroup(GROUP, [1]);
          break;
        case 'report': {
          const vm = vms[o.vm]!;
          const first = o.pages === BLOCK_PAGES ? GROUP * BLOCK_PAGES : o.page;
          const given = Array.from({ length: Math.min(o.pages, vm.pmap.pages - first) }, (_, k) => first + k);
          vm.balloon!.report([{ address: RAM_BASE + first * PAGE, length: given.length * PAGE }]);
          pages.forget(o.vm, given);
          for (const gppn of given) assert.equal(vm.pmap.lookup(gppn), FREE, `vm${o.vm} page ${gppn} still mapped after its report`);
          pages.dmaRead(o.vm, first, 'a reported page read again');
          break;
        }
        case 'inflate':
          vms[o.vm]!.balloon!.inflate(o.pages.map((p) => RAM_BASE + p * PAGE));
          pages.forget(o.vm, o.pages);
          break;
        case 'deflate':
          vms[o.vm]!.balloon!.deflate(o.pages.map((p) => RAM_BASE + p * PAGE));
          break;
      }
      checkCounts(monitor, vms);
      assert.ok(vms.every((vm) => vm.balloon!.takeOwed(0) >= 0));
    }
    vms.forEach((vm, v) => {
      for (const gppn of [...Array.from({ length: SMALL }, (_, k) => k), GROUP * BLOCK_PAGES, (GROUP + 1) * BLOCK_PAGES - 1]) {
        pages.dmaRead(v, gppn, 'at the end');
      }
      for (const gppn of pages.written(v)) pages.dmaRead(v, gppn, 'at the end');
    });
    checkCounts(monitor, vms);
  }), { numRuns: 100 });
});

test('a report frees a private page, drops only this VM\'s use of a shared one, and is charged to the vCPU', () => {
  const monitor = new Monitor({ config: { harts: 1, nodes: [{ memoryBytes: 64 * MiB, harts: [0] }] }, log: quiet });
  const [a, b] = [0, 1].map((i) => monitor.createVm({ name: `vm${i}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, balloon: true }));
  const memA = a!.machine.bus.guestMemory();
  const memB = b!.machine.bus.guestMemory();
  memA.write(RAM_BASE, new Uint8Array(PAGE).fill(7));
  memB.write(RAM_BASE, new Uint8Array(PAGE).fill(7));
  memA.write(RAM_BASE + PAGE, new Uint8Array(PAGE).fill(9));
  monitor.sharePages();
  const shared = a!.pmap.lookup(0);
  assert.equal(b!.pmap.lookup(0), shared, 'merged');
  const before = monitor.memory.pagesInUse();
  a!.balloon!.report([{ address: RAM_BASE, length: 2 * PAGE }]);
  assert.equal(monitor.memory.pagesInUse(), before - 1, 'only the private page went back to the machine');
  assert.equal(monitor.memory.users[shared], 1, 'the shared page lost one user');
  assert.deepEqual(memB.read(RAM_BASE, 4), new Uint8Array(4).fill(7), 'the other VM still sees its data');
  assert.deepEqual(memA.read(RAM_BASE, 4), new Uint8Array(4), 'the reported page reads as zeros');
  const account = a!.balloon!.account;
  assert.deepEqual([account.reports, account.reportedPages, account.unmapped, account.freed], [1, 2, 2, 1]);
  const owed = a!.balloon!.takeOwed(0);
  assert.equal(owed, 100 + 2 * 40, 'one request and two pages at the default costs');
  assert.equal(a!.balloon!.takeOwed(0), 0, 'charged once');
  assert.equal(account.cycles, owed);
});

// What vCPUs' TLBs hold of a VM's pmap: a moved or dropped page leaves no entry behind, at either level, on
// any vCPU; a world switch leaves the second level to refill the first; a group of 512 guest pages placed in
// one machine block takes one large entry until one of its pages moves.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { layoutMachine, RAM_BASE } from '../board/address-map.js';
import type { Hart } from '../cpu/hart.js';
import { TLB_INVALID, type SecondLevelTlb, type Tlb } from '../cpu/tlb.js';
import { BLOCK_PAGES, FREE, MachineMemory, PAGE } from './machine-memory.js';
import { ACCESS_READ } from '../memory/bus.js';
import { VirtualMachine } from './vm.js';
import { enterSv39, GuestPageTables, machinePageWords, PTE_RW, writeU64 } from '../../test/helpers/vm-program.js';

const MiB = 2 ** 20;

// ---- shootdown: a moved page leaves no TLB entry behind, at either level, on any vCPU ----

/** Machine addresses of the pages the valid entries of `tlb` map. */
function mappedPages(tlb: Tlb | SecondLevelTlb): number[] {
  const pages: number[] = [];
  for (let i = 0; i < tlb.tag.length; i++) {
    const region = tlb.mem[i];
    if (tlb.tag[i] === TLB_INVALID || region === undefined) continue;
    pages.push(tlb.tag[i]! * PAGE + tlb.delta[i]! + region.base);
  }
  return pages;
}

/** Every (level, virtual page, machine page) the vCPU's TLBs hold, first level (fast path) and second. */
function tlbEntries(h: Hart): { level: 1 | 2; vpn: number; machine: number }[] {
  const out: { level: 1 | 2; vpn: number; machine: number }[] = [];
  const add = (level: 1 | 2, tlb: Tlb | SecondLevelTlb): void => {
    for (let i = 0; i < tlb.tag.length; i++) {
      const region = tlb.mem[i];
      if (tlb.tag[i] === TLB_INVALID || region === undefined) continue;
      out.push({ level, vpn: tlb.tag[i]!, machine: tlb.tag[i]! * PAGE + tlb.delta[i]! + region.base });
    }
  };
  for (const set of h.tlbSets) for (const t of [set.read, set.write, set.exec]) add(1, t);
  for (const level of h.secondLevel!.levels) for (const t of level) add(2, t);
  return out;
}

function holdsMachinePage(h: Hart, machine: number, level?: 1 | 2): boolean {
  return tlbEntries(h).some((e) => e.machine === machine && (level === undefined || e.level === level));
}

const VA = 0x4000_0000;
const SFENCE_VMA_ALL = 0x12000073;
/** sfence.vma a0, x0 */
const SFENCE_VMA_A0 = 0x12050073;

/** A VM of `vcpus` vCPUs in S-mode under an Sv39 table mapping VA + k pages to guest pages `targets[k]`. */
function pagedVm(vcpus: number, targets: readonly number[]) {
  const layout = layoutMachine({
    harts: 3,
    nodes: [{ memoryBytes: 16 * MiB, harts: [0] }, { memoryBytes: 16 * MiB, harts: [1] }, { memoryBytes: 16 * MiB, harts: [2] }],
    distances: [[10, 20, 30], [20, 10, 20], [30, 20, 10]],
  });
  const memory = new MachineMemory(layout);
  const vm = new VirtualMachine(memory, { id: 4, name: 'paged', vcpus, memoryBytes: 16 * MiB, homeNode: 0, console: () => {}, translate: false });
  const dma = vm.machine.bus.guestMemory();
  const tables = new GuestPageTables(dma, RAM_BASE + 0x10_0000);
  const ptes = targets.map((gppn, k) => tables.map(VA + k * PAGE, RAM_BASE + gppn * PAGE, PTE_RW));
  for (const h of vm.vcpus) enterSv39(h, tables.root);
  const machineAddress = (gppn: number): number => memory.addressOf(vm.pmap.lookup(gppn));
  return { memory, vm, dma, tables, ptes, machineAddress };
}

test('a migrated page is shot down from both TLB levels of every vCPU, exactly, and loads find it on its new node', () => {
  // VA+0 and VA+1 both map guest page 300 (an alias); VA+2 maps guest page 301.
  const { memory, vm, dma, machineAddress } = pagedVm(2, [300, 300, 301]);
  const [h0, h1] = vm.vcpus as [Hart, Hart];
  dma.writeU32(RAM_BASE + 300 * PAGE + 8, 0x1234_5678);
  dma.writeU32(RAM_BASE + 301 * PAGE + 8, 0x0bad_cafe);
  assert.equal(h0.load32(VA + 8), 0x1234_5678);
  assert.equal(h0.load32(VA + 2 * PAGE + 8), 0x0bad_cafe);
  assert.equal(h1.load32(VA + PAGE + 8), 0x1234_5678);
  h1.store32(VA + 12, 77);
  const old = machineAddress(300);
  const other = machineAddress(301);
  assert.equal(memory.nodeOf(vm.pmap.lookup(300)), 0);
  for (const h of [h0, h1]) {
    assert.ok(holdsMachinePage(h, old, 1) && holdsMachinePage(h, old, 2), 'the test\'s loads put the page in both levels');
  }

  const mpn = vm.pmap.migrate(300, 2);
  assert.equal(memory.nodeOf(mpn), 2);
  for (const h of [h0, h1]) {
    assert.ok(!holdsMachinePage(h, old), `vCPU ${h.id} still maps the old machine page`);
  }
  assert.ok(holdsMachinePage(h0, other, 1) && holdsMachinePage(h0, other, 2), 'the shootdown took entries of another page');

  // The same data, from the new page; a store through the alias lands there too, not in the freed page.
  assert.equal(h0.load32(VA + 8), 0x1234_5678);
  assert.equal(h1.load32(VA + 12), 77);
  h1.store32(VA + PAGE + 16, 99);
  assert.equal(dma.readU32(RAM_BASE + 300 * PAGE + 16), 99);
  assert.equal(memory.regionOf(vm.pmap.lookup(300)).view.getUint32(memory.offsetOf(vm.pmap.lookup(300)) + 16, true), 99);
  const oldMpn = (old - RAM_BASE) / PAGE;
  assert.equal(memory.owner[oldMpn], FREE);
  assert.ok(machinePageWords(memory, oldMpn)[4] !== 99, 'a store went to the old page');
  assert.ok(holdsMachinePage(h0, machineAddress(300), 1) && holdsMachinePage(h1, machineAddress(300), 2), 'the TLBs do not hold the new page');

  // Unmapping also shoots down; the next access gets a new, zeroed page.
  const before = machineAddress(301);
  vm.pmap.unmap(301);
  assert.ok(!holdsMachinePage(h0, before), 'an unmapped page is still in the TLB');
  assert.equal(h0.load32(VA + 2 * PAGE + 8), 0);
});

test('after a world switch\'s flush the second level refills the first without a walk; SFENCE.VMA empties both', () => {
  const { vm, dma, ptes, machineAddress } = pagedVm(1, [300, 301, 302]);
  const h = vm.vcpus[0]!;
  dma.writeU32(RAM_BASE + 300 * PAGE, 300);
  dma.writeU32(RAM_BASE + 301 * PAGE, 301);
  dma.writeU32(RAM_BASE + 302 * PAGE, 302);
  assert.equal(h.load32(VA), 300);
  assert.equal(h.load32(VA + PAGE), 301);
  // The guest changes VA's PTE to guest page 302 without a fence: only a walk would see it.
  writeU64(dma, ptes[0]!, (BigInt(RAM_BASE / PAGE + 302) << 10n) | PTE_RW | 1n);

  h.flushFirstLevel();
  assert.ok(!holdsMachinePage(h, machineAddress(300), 1) && holdsMachinePage(h, machineAddress(300), 2), 'flushFirstLevel should empty the first level and keep the second');
  const misses = h.tlbMisses;
  const hits = h.secondLevelHits;
  assert.equal(h.load32(VA), 300, 'the refill walked the table instead of using the second level');
  assert.equal(h.tlbMisses, misses + 1);
  assert.equal(h.secondLevelHits, hits + 1);
  assert.equal(h.load32(VA + 4), 0, 'a second load of the page is a first-level hit');
  assert.equal(h.tlbMisses, misses + 1);

  // SFENCE.VMA of one address drops that page at both levels and keeps the others.
  h.setReg(10, VA);
  h.execute(SFENCE_VMA_A0, h.pc, 4);
  assert.ok(!tlbEntries(h).some((e) => e.vpn === VA / PAGE), 'sfence.vma VA left an entry of VA');
  assert.ok(tlbEntries(h).some((e) => e.vpn === VA / PAGE + 1 && e.level === 2), 'sfence.vma VA dropped the entry of VA+1');
  assert.equal(h.load32(VA), 302, 'after the fence the walk sees the new PTE');
  assert.equal(h.secondLevelHits, hits + 1);

  // SFENCE.VMA of everything empties both levels.
  h.execute(SFENCE_VMA_ALL, h.pc, 4);
  assert.deepEqual(tlbEntries(h), []);
  assert.equal(h.load32(VA + PAGE), 301);
  assert.equal(h.secondLevelHits, hits + 1, 'after a full fence a refill must walk');
  h.flushTlb();
  assert.deepEqual(tlbEntries(h), []);
});

test('property: under random accesses, migrations, unmaps, replications (of a page, of a whole group), collapses and flushes, every TLB entry of every vCPU maps what the pmap maps', () => {
  // Eight virtual pages over five guest pages (VA+5..7 alias guest pages 300..302).
  const targets = [300, 301, 302, 303, 304, 300, 301, 302];
  const step = fc.oneof(
    fc.record({ kind: fc.constant('load' as const), vcpu: fc.nat(2), page: fc.nat(7), word: fc.nat(1023) }),
    fc.record({ kind: fc.constant('store' as const), vcpu: fc.nat(2), page: fc.nat(7), word: fc.nat(1023), value: fc.integer() }),
    fc.record({ kind: fc.constant('migrate' as const), page: fc.nat(4), node: fc.nat(2) }),
    fc.record({ kind: fc.constant('unmap' as const), page: fc.nat(4) }),
    fc.record({ kind: fc.constant('switch' as const), vcpu: fc.nat(2) }),
    fc.record({ kind: fc.constant('sfence' as const), vcpu: fc.nat(2) }),
    fc.record({ kind: fc.constant('replicate' as const), page: fc.nat(4) }),
    fc.record({ kind: fc.constant('replicate-group' as const) }),
    fc.record({ kind: fc.constant('dma' as const), page: fc.nat(4), word: fc.nat(1023), value: fc.integer() }),
  );
  let groupsReplicated = 0;
  fc.assert(
    fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
      const { memory, vm, dma, machineAddress } = pagedVm(3, targets);
      // vCPU n runs on node n: the monitor sets the reader node before running it, so it reads node n's copies.
      const on = (vcpu: number): Hart => {
        vm.pmap.readerNode = vcpu;
        return vm.vcpus[vcpu]!;
      };
      // The guest's view: a word per (guest page, word) written so far.
      const model = new Map<string, number>();
      for (const s of steps) {
        switch (s.kind) {
          case 'load': {
            const gppn = targets[s.page]!;
            assert.equal(on(s.vcpu).load32(VA + s.page * PAGE + s.word * 4), model.get(`${gppn}:${s.word}`) ?? 0);
            break;
          }
          case 'store':
            on(s.vcpu).store32(VA + s.page * PAGE + s.word * 4, s.value);
            model.set(`${targets[s.page]}:${s.word}`, s.value | 0);
            break;
          case 'migrate': {
            const gppn = 300 + s.page;
            if (vm.pmap.lookup(gppn) === FREE) break;
            const old = machineAddress(gppn);
            vm.pmap.migrate(gppn, s.node);
            for (const h of vm.vcpus) assert.ok(!holdsMachinePage(h, old), `vCPU ${h.id} maps guest page ${gppn}'s old machine page`);
            break;
          }
          case 'unmap': {
            const gppn = 300 + s.page;
            vm.pmap.unmap(gppn);
            for (const key of [...model.keys()]) if (key.startsWith(`${gppn}:`)) model.delete(key);
            break;
          }
          case 'switch':
            vm.vcpus[s.vcpu]!.flushFirstLevel();
            break;
          case 'sfence':
            vm.vcpus[s.vcpu]!.execute(SFENCE_VMA_ALL, vm.vcpus[s.vcpu]!.pc, 4);
            break;
          case 'replicate':
            if (vm.pmap.lookup(300 + s.page) !== FREE) vm.pmap.replicate(300 + s.page, [0, 1, 2]);
            break;
          case 'replicate-group': {
            // Group 0 (the pages above and the page tables) wholly touched first, as a guest that uses all of it.
            for (let gppn = 0; gppn < BLOCK_PAGES; gppn++) if (vm.pmap.lookup(gppn) === FREE) vm.pmap.resolveFault(gppn, ACCESS_READ);
            if (vm.pmap.replicateGroup(0, [0, 1, 2]).length > 0) groupsReplicated++;
            break;
          }
          case 'dma':
            // A device writes the page (collapsing any copies of it), as the guest sees it.
            dma.writeU32(RAM_BASE + (300 + s.page) * PAGE + s.word * 4, s.value);
            model.set(`${300 + s.page}:${s.word}`, s.value | 0);
            break;
        }
        // Coherence: each entry for VA+k maps the machine page the pmap gives guest page targets[k] now, or its
        // copy on the vCPU's node if it has one there.
        for (const h of vm.vcpus) {
          for (const e of tlbEntries(h)) {
            const k = e.vpn - VA / PAGE;
            if (k < 0 || k >= targets.length) continue; // page-table pages are not loaded through the TLB here
            const mpn = vm.pmap.lookup(targets[k]!);
            assert.notEqual(mpn, FREE, `vCPU ${h.id} level ${e.level} maps VA+${k} whose guest page has no machine page`);
            const copy = vm.pmap.replicasOf(targets[k]!)?.[h.id] ?? FREE;
            assert.equal(e.machine, memory.addressOf(copy === FREE ? mpn : copy), `vCPU ${h.id} level ${e.level} maps VA+${k} to a stale machine page`);
          }
        }
      }
    }),
    { numRuns: 150 },
  );
  assert.ok(groupsReplicated > 0, 'no run replicated the group whole');
});

// ---- large pages: a group of 512 guest pages in one machine block ----

const BLOCK_BYTES = BLOCK_PAGES * PAGE;

test('a group of 512 guest pages all placed in its block is one large page: one TLB entry, until a page moves', () => {
  const { memory, vm, dma, tables } = pagedVm(1, [300]);
  const h = vm.vcpus[0]!;
  const VA_LARGE = 0x4060_0000;
  // Group 2 (guest pages 1024..1535) behind one 2 MiB leaf.
  tables.map(VA_LARGE, RAM_BASE + 2 * BLOCK_BYTES, PTE_RW, 1);
  const group = 2;
  for (let k = 0; k < BLOCK_PAGES - 1; k++) dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + k) * PAGE, 1000 + k);
  const block = vm.pmap.lookup(group * BLOCK_PAGES);
  assert.equal(memory.addressOf(block) % BLOCK_BYTES, 0, 'the block is not 2 MiB aligned');
  for (let k = 0; k < BLOCK_PAGES - 1; k++) assert.equal(vm.pmap.lookup(group * BLOCK_PAGES + k), block + k, `guest page ${k} of the group is out of place`);
  assert.equal(vm.pmap.largeBlock(group), -1, 'a group with a page not placed yet is a large page');
  assert.equal(memory.pagesReserved(), vm.pmap.pagesReserved);
  const misses = (touch: () => void): number => {
    const before = h.tlbMisses;
    touch();
    return h.tlbMisses - before;
  };
  assert.equal(misses(() => { for (const k of [0, 1, 2]) h.load32(VA_LARGE + k * PAGE); }), 3, 'pages placed one by one took one entry');

  dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + BLOCK_PAGES - 1) * PAGE, 1000 + BLOCK_PAGES - 1);
  assert.equal(vm.pmap.largeBlock(group), memory.addressOf(block));
  h.flushTlb();
  assert.equal(misses(() => { for (const k of [0, 100, 511]) assert.equal(h.load32(VA_LARGE + k * PAGE), 1000 + k); }), 1);
  const large = (): number[] => [
    ...h.tlbModel.large.entries().map((e) => e.base),
    ...h.secondLevel!.levels.flat().flatMap((t) => t.large.entries().map((e) => e.base)),
  ];
  assert.deepEqual(large(), [memory.addressOf(block), memory.addressOf(block)], 'one large entry at each level');

  // After a world switch the second level's large entry refills any page of the group without a walk.
  h.flushFirstLevel();
  const hits = h.secondLevelHits;
  assert.equal(misses(() => assert.equal(h.load32(VA_LARGE + 400 * PAGE), 1400)), 1);
  assert.equal(h.secondLevelHits, hits + 1, 'the refill walked');

  // Moving one page scatters the group for good and shoots its large entries down, at both levels.
  h.store32(VA_LARGE + 7 * PAGE + 4, 77);
  vm.pmap.migrate(group * BLOCK_PAGES + 7, 1);
  assert.equal(vm.pmap.largeBlock(group), -1);
  assert.deepEqual(large(), [], 'a large entry of a scattered block is left');
  assert.equal(h.load32(VA_LARGE + 7 * PAGE + 4), 77, 'the moved page lost a store');
  assert.equal(misses(() => { h.load32(VA_LARGE + 8 * PAGE); h.load32(VA_LARGE + 9 * PAGE); }), 2);
  assert.deepEqual(large(), [], 'a walk over a scattered group made a large entry');
});

test('dropping a page of a group gives the pages it had not placed back to the machine', () => {
  const { memory, vm, dma } = pagedVm(1, [300]);
  const group = 3;
  for (let k = 0; k < 10; k++) dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + k) * PAGE, k + 1);
  const reserved = memory.pagesReserved();
  assert.equal(reserved, vm.pmap.pagesReserved);
  const free = memory.pagesFree(0);
  vm.pmap.unmap(group * BLOCK_PAGES + 3);
  assert.equal(memory.pagesReserved(), reserved - (BLOCK_PAGES - 10), 'the group\'s unplaced pages stayed reserved');
  assert.equal(memory.pagesFree(0), free + (BLOCK_PAGES - 10) + 1);
  // Later pages of the group come one by one, and the others keep their contents.
  dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + 20) * PAGE, 5);
  assert.equal(memory.pagesReserved(), reserved - (BLOCK_PAGES - 10));
  assert.equal(dma.readU32(RAM_BASE + (group * BLOCK_PAGES + 9) * PAGE), 10);
  assert.equal(dma.readU32(RAM_BASE + (group * BLOCK_PAGES + 3) * PAGE), 0, 'a dropped page came back with contents');
  vm.end('stopped', 'test');
  assert.equal(memory.pagesReserved(), 0, 'an ended VM left pages reserved');
  assert.equal(memory.pagesInUse(), 0);
});

// ---- a large group replicated whole: one large entry per node, on that node's copy ----

test('a group replicated whole: each node\'s vCPU maps its node\'s copy with one large entry, and a write collapses every copy', () => {
  const { memory, vm, dma, tables } = pagedVm(3, [300]);
  const VA_LARGE = 0x4060_0000;
  const group = 2;
  tables.map(VA_LARGE, RAM_BASE + group * BLOCK_BYTES, PTE_RW, 1);
  for (let k = 0; k < BLOCK_PAGES; k++) dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + k) * PAGE, 1000 + k);
  const master = vm.pmap.lookup(group * BLOCK_PAGES);
  assert.equal(vm.pmap.largeBlock(group), memory.addressOf(master));
  const harts = vm.vcpus;
  /** vCPU n runs on node n (as the monitor sets the reader node before each run). */
  const on = <T>(n: number, f: (h: Hart) => T): T => {
    vm.pmap.readerNode = n;
    return f(harts[n]!);
  };
  for (let n = 0; n < 3; n++) on(n, (h) => h.load32(VA_LARGE));
  const largeBases = (h: Hart): number[] => [
    ...h.tlbModel.large.entries().map((e) => e.base),
    ...h.secondLevel!.levels.flat().flatMap((t) => t.large.entries().map((e) => e.base)),
  ];
  assert.deepEqual(largeBases(harts[1]!), [memory.addressOf(master), memory.addressOf(master)]);

  const free = [memory.pagesFree(1), memory.pagesFree(2)];
  const copies = vm.pmap.replicateGroup(group, [0, 1, 2]);
  assert.equal(copies.length, 2, 'no copy on the master\'s own node, one on each other');
  assert.deepEqual(copies.map((c) => memory.nodeOf(c)), [1, 2]);
  for (const c of copies) assert.equal(memory.addressOf(c) % BLOCK_BYTES, 0, 'a copy block is not 2 MiB aligned');
  assert.equal(memory.replicaPages(), 2 * BLOCK_PAGES, 'the copy blocks are not counted as replicas');
  assert.deepEqual([memory.pagesFree(1), memory.pagesFree(2)], [free[0]! - BLOCK_PAGES, free[1]! - BLOCK_PAGES]);
  for (let k = 0; k < BLOCK_PAGES; k++) {
    for (const c of copies) assert.deepEqual(machinePageWords(memory, c + k), machinePageWords(memory, master + k), `page ${k} of a copy differs`);
  }
  for (const h of harts) assert.deepEqual(largeBases(h), [], 'a large entry of the master was left writable');
  const blockOn = [memory.addressOf(master), memory.addressOf(copies[0]!), memory.addressOf(copies[1]!)];
  for (let n = 0; n < 3; n++) {
    on(n, (h) => {
      assert.equal(vm.pmap.largeBlock(group), blockOn[n], `node ${n} is not given its own block`);
      const before = h.tlbMisses;
      for (const k of [0, 200, 511]) assert.equal(h.load32(VA_LARGE + k * PAGE), 1000 + k);
      assert.equal(h.tlbMisses - before, 1, `node ${n}'s vCPU needed more than one entry for the group`);
      assert.deepEqual(largeBases(h), [blockOn[n], blockOn[n]], `node ${n}'s vCPU does not map its node's copy`);
      assert.ok(tlbEntries(h).every((e) => Math.floor(e.machine / BLOCK_BYTES) !== Math.floor(blockOn[(n + 1) % 3]! / BLOCK_BYTES)), 'another node\'s copy is mapped');
    });
  }

  // vCPU 1 writes through its node's copy: every copy goes, from every vCPU's TLBs, and the write lands in the master.
  on(1, (h) => h.store32(VA_LARGE + 7 * PAGE + 4, 77));
  assert.equal(vm.pmap.groupCopiesOf(group), undefined);
  assert.equal(memory.replicaPages(), 0, 'copies were not given back');
  assert.deepEqual([memory.pagesFree(1), memory.pagesFree(2)], free);
  for (const h of harts) {
    for (const c of copies) assert.ok(!tlbEntries(h).some((e) => e.machine >= memory.addressOf(c) && e.machine < memory.addressOf(c) + BLOCK_BYTES), `vCPU ${h.id} still maps a copy`);
    assert.ok(!largeBases(h).some((b) => b !== memory.addressOf(master)), `vCPU ${h.id} still has a large entry of a copy`);
  }
  assert.equal(vm.pmap.largeBlock(group), memory.addressOf(master), 'the collapsed group is not one large page again');
  for (let n = 0; n < 3; n++) on(n, (h) => assert.equal(h.load32(VA_LARGE + 7 * PAGE + 4), 77, `node ${n} reads stale data`));
  assert.equal(vm.pmap.takeWrittenGroup(group), true, 'the write was not marked');
  assert.equal(vm.pmap.takeWrittenGroup(group), false, 'the mark was not taken');

  // A device's DMA write collapses them too, and every vCPU then reads what it wrote.
  const again = vm.pmap.replicateGroup(group, [1, 2]);
  assert.equal(again.length, 2);
  for (let n = 0; n < 3; n++) on(n, (h) => assert.equal(h.load32(VA_LARGE + 9 * PAGE), 1009));
  dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + 9) * PAGE, 4242);
  assert.equal(vm.pmap.groupCopiesOf(group), undefined, 'a DMA write left the copies');
  assert.equal(memory.replicaPages(), 0);
  for (let n = 0; n < 3; n++) on(n, (h) => assert.equal(h.load32(VA_LARGE + 9 * PAGE), 4242, `node ${n} reads stale data after DMA`));
  assert.equal(vm.pmap.takeWrittenGroup(group), true);

  // Memory running short gives the copies back first.
  vm.pmap.replicateGroup(group, [1]);
  assert.equal(vm.pmap.dropReplicas(), BLOCK_PAGES);
  assert.equal(memory.replicaPages(), 0);
  assert.equal(vm.pmap.largeBlock(group), memory.addressOf(master));
  assert.equal(vm.pmap.takeWrittenGroup(group), false, 'giving copies back is no write');
});

test('a group that is no large page, or has a page shared, held or replicated alone, is not replicated whole', () => {
  const { memory, vm, dma } = pagedVm(1, [300]);
  const group = 2;
  for (let k = 0; k < BLOCK_PAGES - 1; k++) dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + k) * PAGE, k);
  assert.deepEqual(vm.pmap.replicateGroup(group, [1]), [], 'a group with a page not placed was replicated');
  dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + BLOCK_PAGES - 1) * PAGE, 1);
  vm.pmap.hold(group * BLOCK_PAGES + 3);
  assert.deepEqual(vm.pmap.replicateGroup(group, [1]), [], 'a group with a held page was replicated');
  vm.pmap.unhold(group * BLOCK_PAGES + 3);
  dma.writeU32(RAM_BASE + (group * BLOCK_PAGES + 3) * PAGE, 1);
  assert.equal(vm.pmap.replicateGroup(group, [1]).length, 1);
  // Replicating one of its pages alone, or migrating one, ends the whole-group copies first.
  assert.deepEqual(vm.pmap.replicate(group * BLOCK_PAGES + 5, [2]), [], 'a page of a group replicated whole got a copy of its own');
  vm.pmap.migrate(group * BLOCK_PAGES + 5, 2);
  assert.equal(vm.pmap.groupCopiesOf(group), undefined);
  assert.equal(memory.replicaPages(), 0);
  assert.equal(dma.readU32(RAM_BASE + (group * BLOCK_PAGES + 5) * PAGE), 5);
  assert.deepEqual(vm.pmap.replicateGroup(group, [1]), [], 'a scattered group was replicated');
});

// Tests of memory virtualization: the pmap and memmap agree under random touches, migrations, unmaps and
// releases; pages come from the right node, start zeroed and keep their contents when they move; a pmap
// resolves nothing outside its VM's RAM; and with 2 MiB blocks every page is used, reserved or free once.
// What vCPUs' TLBs hold of a pmap is in vcpu-tlb.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { layoutMachine, RAM_BASE, type MachineLayout } from '../board/address-map.js';
import { ACCESS_WRITE, Bus, PERM_NONE, PERM_R, PERM_RWX } from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';
import { DmaError } from '../memory/guest-memory.js';
import { BLOCK_PAGES, FREE, MachineMemory, OutOfMachineMemory, PAGE } from './machine-memory.js';
import { Pmap } from './pmap.js';
import { machinePageWords } from '../../test/helpers/vm-program.js';

const MiB = 2 ** 20;

/** Guest page `gppn` of `pmap` for writing, given its machine page first if it has none (as a guest-page fault would). */
function touch(pmap: Pmap, gppn: number): RamRegion {
  const region = pmap.page(gppn, ACCESS_WRITE);
  if (region !== undefined) return region;
  pmap.resolveFault(gppn, ACCESS_WRITE);
  return pmap.page(gppn, ACCESS_WRITE)!;
}

// ---- a model of machine memory, independent of MachineMemory's own bookkeeping ----

/** A machine of tiny nodes (a hand-made layout: layoutMachine insists on 16 MiB nodes). */
function tinyLayout(nodePages: readonly number[], distances: readonly (readonly number[])[]): MachineLayout {
  let base = RAM_BASE;
  const nodes = nodePages.map((pages, id) => {
    const node = { id, base, size: pages * PAGE, harts: [id] };
    base += pages * PAGE;
    return node;
  });
  return { harts: nodes.length, nodes, distances, hartNode: nodes.map((n) => n.id), ramEnd: base };
}

/** Symmetric distances, 10 on the diagonal, 11..255 elsewhere, from `raw` values. */
function distanceMatrix(nodes: number, raw: readonly number[]): number[][] {
  const d: number[][] = Array.from({ length: nodes }, (_, i) => Array.from({ length: nodes }, (_, j) => (i === j ? 10 : 0)));
  let k = 0;
  for (let i = 0; i < nodes; i++) {
    for (let j = i + 1; j < nodes; j++) {
      d[i]![j] = d[j]![i] = raw[k++ % raw.length]!;
    }
  }
  return d;
}

/** The node of machine page `mpn`, from the node sizes alone. */
function nodeOfPage(nodePages: readonly number[], mpn: number): number {
  let first = 0;
  for (let n = 0; n < nodePages.length; n++) {
    if (mpn < first + nodePages[n]!) return n;
    first += nodePages[n]!;
  }
  throw new Error(`machine page ${mpn} is beyond the machine`);
}

/** The node a page for `from` must come from: the nearest (then lowest-numbered) with a free page, or undefined. */
function expectedNode(distances: readonly (readonly number[])[], free: readonly number[], from: number): number | undefined {
  const order = free.map((_, n) => n).sort((a, b) => distances[from]![a]! - distances[from]![b]! || a - b);
  return order.find((n) => free[n]! > 0);
}

/** A nonzero word for word `w` of a page's contents, version `v` of guest page `gppn` of VM `vm`. */
function signature(vm: number, gppn: number, version: number, w: number): number {
  return (Math.imul(vm + 1, 0x9e3779b1) ^ Math.imul(gppn + 1, 0x85ebca6b) ^ Math.imul(version + 1, 0xc2b2ae35) ^ Math.imul(w, 0x27d4eb2f)) | 1;
}

interface VmUnderTest {
  vm: number;
  pmap: Pmap;
  /** The contents' version of each guest page with a machine page. */
  mapped: Map<number, number>;
  shootDowns: number[];
  released: boolean;
}

function writeSignature(v: VmUnderTest, gppn: number, version: number): void {
  const region = touch(v.pmap, gppn);
  const words = v.pmap.pageOffset / 4;
  for (let w = 0; w < PAGE / 4; w++) region.i32[words + w] = signature(v.vm, gppn, version, w);
}

/** Words 0 and 1023 and two others: cheap enough to check every page after every step. */
const SAMPLED_WORDS = [0, 1, 517, 1023];

/**
 * The invariants: memmap and pmaps agree both ways, no machine page is used twice, the counts match, every
 * page sits where its number says and holds what was last written to its guest page.
 */
function checkInvariants(memory: MachineMemory, nodePages: readonly number[], vms: readonly VmUnderTest[]): void {
  const users = new Map<number, { vm: number; gppn: number }>();
  const perNode = nodePages.map(() => 0);
  for (const v of vms) {
    let count = 0;
    for (let gppn = 0; gppn < v.pmap.pages; gppn++) {
      const mpn = v.pmap.lookup(gppn);
      const version = v.mapped.get(gppn);
      if (mpn === FREE) {
        assert.equal(version, undefined, `VM ${v.vm}: guest page ${gppn} lost its machine page`);
        continue;
      }
      assert.notEqual(version, undefined, `VM ${v.vm}: guest page ${gppn} has machine page ${mpn} it should not have`);
      assert.ok(Number.isInteger(mpn) && mpn >= 0 && mpn < memory.totalPages, `VM ${v.vm}: guest page ${gppn} maps to ${mpn}`);
      const other = users.get(mpn);
      assert.equal(other, undefined, `machine page ${mpn} is used by VM ${v.vm} page ${gppn} and by ${JSON.stringify(other)}`);
      users.set(mpn, { vm: v.vm, gppn });
      assert.equal(memory.owner[mpn], v.vm, `memmap owner of machine page ${mpn}`);
      assert.equal(memory.guestPage[mpn], gppn, `memmap guest page of machine page ${mpn}`);
      const node = nodeOfPage(nodePages, mpn);
      perNode[node]!++;
      count++;
      assert.equal(memory.regionOf(mpn), memory.regions[node], `machine page ${mpn} is in node ${node}'s region`);
      const first = nodePages.slice(0, node).reduce((a, b) => a + b, 0);
      assert.equal(memory.offsetOf(mpn), (mpn - first) * PAGE);
      assert.equal(memory.addressOf(mpn), RAM_BASE + mpn * PAGE);
      const words = machinePageWords(memory, mpn);
      for (const w of SAMPLED_WORDS) {
        assert.equal(words[w], signature(v.vm, gppn, version!, w), `VM ${v.vm} page ${gppn} (machine ${mpn}) word ${w}`);
      }
    }
    assert.equal(v.pmap.pagesInUse, count, `VM ${v.vm}'s pagesInUse`);
  }
  for (let mpn = 0; mpn < memory.totalPages; mpn++) {
    const user = users.get(mpn);
    if (memory.owner[mpn] === FREE) {
      assert.equal(user, undefined, `machine page ${mpn} is free in the memmap but mapped`);
      assert.equal(memory.guestPage[mpn], FREE);
    } else {
      assert.deepEqual(user, { vm: memory.owner[mpn], gppn: memory.guestPage[mpn] }, `memmap entry of machine page ${mpn} is not what the pmaps map`);
    }
  }
  nodePages.forEach((pages, n) => {
    assert.equal(memory.pagesInUse(n), perNode[n], `pages in use on node ${n}`);
    assert.equal(memory.pagesFree(n), pages - perNode[n]! - memory.pagesReserved(n), `pages free on node ${n}`);
  });
  assert.equal(memory.pagesInUse(), users.size);
}

type Op =
  | { kind: 'touch'; vm: number; page: number }
  | { kind: 'rewrite'; vm: number; page: number }
  | { kind: 'migrate'; vm: number; page: number; node: number }
  | { kind: 'unmap'; vm: number; page: number }
  | { kind: 'home'; vm: number; node: number }
  | { kind: 'release'; vm: number };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('touch' as const), vm: fc.nat(3), page: fc.nat(15) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rewrite' as const), vm: fc.nat(3), page: fc.nat(15) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('migrate' as const), vm: fc.nat(3), page: fc.nat(15), node: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unmap' as const), vm: fc.nat(3), page: fc.nat(15) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('home' as const), vm: fc.nat(3), node: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), vm: fc.nat(3) }) },
);

const machineArbitrary = fc.record({
  nodePages: fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 2, maxLength: 4 }),
  distances: fc.array(fc.integer({ min: 11, max: 60 }), { minLength: 6, maxLength: 6 }),
  vms: fc.array(fc.record({ pages: fc.integer({ min: 1, max: 12 }), home: fc.nat(3) }), { minLength: 1, maxLength: 4 }),
});

test('property: memmap and pmaps agree, pages are zeroed, placed by distance, moved with their contents, all given back', () => {
  fc.assert(
    fc.property(machineArbitrary, fc.array(opArbitrary, { maxLength: 80 }), (machine, ops) => {
      const { nodePages } = machine;
      const nodes = nodePages.length;
      const distances = distanceMatrix(nodes, machine.distances);
      const memory = new MachineMemory(tinyLayout(nodePages, distances));
      const vms: VmUnderTest[] = machine.vms.map((spec, i) => {
        const shootDowns: number[] = [];
        // VM ids are not their positions, so that a mix-up of the two shows.
        const vm = 10 + i;
        return {
          vm,
          pmap: new Pmap(memory, { vm, base: RAM_BASE, size: spec.pages * PAGE, homeNode: spec.home % nodes, shootDown: (a) => shootDowns.push(a) }),
          mapped: new Map<number, number>(),
          shootDowns,
          released: false,
        };
      });
      let version = 0;
      const used = nodePages.map(() => 0);
      const free = (): number[] => nodePages.map((p, n) => p - used[n]!);
      checkInvariants(memory, nodePages, vms);
      for (const op of ops) {
        const v = vms[op.vm % vms.length]!;
        const gppn = 'page' in op ? op.page % v.pmap.pages : 0;
        const shootDownsBefore = vms.map((x) => x.shootDowns.length);
        switch (op.kind) {
          case 'touch':
          case 'rewrite': {
            if (v.released) {
              assert.throws(() => touch(v.pmap, gppn), /ended/);
              break;
            }
            const fresh = !v.mapped.has(gppn);
            const node = fresh ? expectedNode(distances, free(), v.pmap.homeNode) : undefined;
            if (fresh && node === undefined) {
              assert.throws(() => touch(v.pmap, gppn), OutOfMachineMemory);
              break;
            }
            const region = touch(v.pmap, gppn);
            const mpn = v.pmap.lookup(gppn);
            assert.equal(region, memory.regionOf(mpn));
            assert.equal(v.pmap.pageOffset, memory.offsetOf(mpn));
            if (fresh) {
              assert.equal(nodeOfPage(nodePages, mpn), node, `a page for home node ${v.pmap.homeNode} with free ${free()}`);
              used[node!]!++;
              assert.ok(machinePageWords(memory, mpn).every((w) => w === 0), `a new page (machine ${mpn}) is not zero`);
              v.mapped.set(gppn, ++version);
              writeSignature(v, gppn, version);
            } else if (op.kind === 'rewrite') {
              v.mapped.set(gppn, ++version);
              writeSignature(v, gppn, version);
            }
            break;
          }
          case 'migrate': {
            const target = op.node % nodes;
            if (!v.mapped.has(gppn)) {
              assert.throws(() => v.pmap.migrate(gppn, target), /no machine page/);
              assert.deepEqual(v.shootDowns.length, shootDownsBefore[op.vm % vms.length]);
              break;
            }
            // Fresh contents, so that a copy of anything else would show.
            v.mapped.set(gppn, ++version);
            writeSignature(v, gppn, version);
            const old = v.pmap.lookup(gppn);
            const before = machinePageWords(memory, old).slice();
            const node = expectedNode(distances, free(), target);
            if (node === undefined) {
              assert.throws(() => v.pmap.migrate(gppn, target), OutOfMachineMemory);
              assert.equal(v.pmap.lookup(gppn), old);
              break;
            }
            const mpn = v.pmap.migrate(gppn, target);
            assert.notEqual(mpn, old);
            assert.equal(v.pmap.lookup(gppn), mpn);
            assert.equal(nodeOfPage(nodePages, mpn), node, `migrated to node ${target} with free ${free()}`);
            used[node]!++;
            used[nodeOfPage(nodePages, old)]!--;
            assert.deepEqual(machinePageWords(memory, mpn), before, 'the moved page lost its contents');
            assert.deepEqual(v.shootDowns.slice(shootDownsBefore[op.vm % vms.length]), [RAM_BASE + old * PAGE], 'the old page was shot down once');
            assert.equal(memory.owner[old], FREE);
            break;
          }
          case 'unmap': {
            const old = v.pmap.lookup(gppn);
            v.pmap.unmap(gppn);
            if (v.mapped.delete(gppn)) {
              used[nodeOfPage(nodePages, old)]!--;
              assert.deepEqual(v.shootDowns.slice(shootDownsBefore[op.vm % vms.length]), [RAM_BASE + old * PAGE], 'the dropped page was shot down once');
            }
            break;
          }
          case 'home':
            v.pmap.homeNode = op.node % nodes;
            break;
          case 'release': {
            for (const g of v.mapped.keys()) used[nodeOfPage(nodePages, v.pmap.lookup(g))]!--;
            const inUse = memory.pagesInUse();
            v.pmap.release();
            assert.equal(memory.pagesInUse(), inUse - v.mapped.size, 'release gives every page back');
            v.mapped.clear();
            v.released = true;
            assert.throws(() => touch(v.pmap, 0), /ended/);
            break;
          }
        }
        // Nobody else's pages were shot down.
        vms.forEach((x, i) => {
          if (x !== v) assert.equal(x.shootDowns.length, shootDownsBefore[i], `VM ${x.vm} got a shootdown for VM ${v.vm}'s ${op.kind}`);
        });
        checkInvariants(memory, nodePages, vms);
      }
      // Releasing everything empties the machine.
      for (const v of vms) {
        v.pmap.release();
        v.mapped.clear();
      }
      checkInvariants(memory, nodePages, vms);
      assert.equal(memory.pagesInUse(), 0);
      assert.ok(memory.owner.every((o) => o === FREE), 'the memmap names a user after every VM released its memory');
    }),
    { numRuns: 300 },
  );
});

test('pages fill the home node first, then the nearest nodes in distance order, and a full machine throws', () => {
  // Node 0's neighbours by distance: node 2 (15), node 3 (20), node 1 (40).
  const distances = [[10, 40, 15, 20], [40, 10, 30, 30], [15, 30, 10, 25], [20, 30, 25, 10]];
  const memory = new MachineMemory(tinyLayout([2, 3, 2, 1], distances));
  const pmap = new Pmap(memory, { vm: 1, base: RAM_BASE, size: 9 * PAGE, homeNode: 0, shootDown: () => {} });
  const nodes = Array.from({ length: 8 }, (_, gppn) => {
    touch(pmap, gppn);
    return memory.nodeOf(pmap.lookup(gppn));
  });
  assert.deepEqual(nodes, [0, 0, 2, 2, 3, 1, 1, 1]);
  assert.throws(() => touch(pmap, 8), OutOfMachineMemory);
  assert.equal(pmap.lookup(8), FREE);
  assert.equal(pmap.pagesInUse, 8);
  // A page given back on node 2 is the next one node 0's VM gets.
  pmap.unmap(3);
  touch(pmap, 8);
  assert.equal(memory.nodeOf(pmap.lookup(8)), 2);
});

test('a page one VM gave back reads as zero in the next VM that gets it', () => {
  const memory = new MachineMemory(tinyLayout([1, 1], [[10, 20], [20, 10]]));
  const a = new Pmap(memory, { vm: 1, base: RAM_BASE, size: PAGE, homeNode: 0, shootDown: () => {} });
  const b = new Pmap(memory, { vm: 2, base: RAM_BASE, size: PAGE, homeNode: 0, shootDown: () => {} });
  const region = touch(a, 0);
  region.u8.fill(0xa5, a.pageOffset, a.pageOffset + PAGE);
  const mpn = a.lookup(0);
  a.release();
  touch(b, 0);
  assert.equal(b.lookup(0), mpn, 'the freed page on the home node is reused');
  assert.ok(machinePageWords(memory, mpn).every((w) => w === 0), 'VM 1\'s data is visible to VM 2');
});

// ---- a pmap behind a bus: nothing outside the VM's window ----

test('property: through the bus a pmap resolves only its own pages, and a DMA outside them changes nothing', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.record({ write: fc.boolean(), offset: fc.integer({ min: -2 * PAGE, max: 8 * PAGE }), length: fc.integer({ min: 1, max: 3 * PAGE }) }), { maxLength: 30 }),
      (pages, accesses) => {
        const memory = new MachineMemory(tinyLayout([8, 8], [[10, 20], [20, 10]]));
        const pmap = new Pmap(memory, { vm: 3, base: RAM_BASE + 4 * PAGE, size: pages * PAGE, homeNode: 1, shootDown: () => {} });
        const bus = new Bus();
        bus.addPagedRam(pmap);
        // The monitor's answer to DMA into a page the VM never touched: its first machine page.
        bus.dmaFault = (address, access) => pmap.resolveFault(Math.floor((address - pmap.base) / PAGE), access) !== 'wait';
        const dma = bus.guestMemory();
        const end = pmap.base + pmap.size;
        assert.equal(bus.resolveRam(pmap.base - 1), undefined);
        assert.equal(bus.resolveRam(end), undefined);
        assert.equal(pmap.pagesInUse, 0, 'looking outside filled a page');
        // What the VM's memory holds, byte by byte (zero until written).
        const model = new Uint8Array(pmap.size);
        let stamp = 0;
        for (const { write, offset, length } of accesses) {
          const address = pmap.base + offset;
          const inside = offset >= 0 && offset + length <= pmap.size;
          assert.equal(bus.isRam(address, length), inside);
          const filled: number = pmap.pagesInUse;
          const data = new Uint8Array(length).map((_, k) => ((stamp + k) % 251) + 1);
          stamp++;
          if (!inside) {
            assert.throws(() => (write ? dma.write(address, data) : dma.read(address, length)), DmaError);
            assert.equal(pmap.pagesInUse, filled, 'a refused DMA filled pages');
          } else if (write) {
            dma.write(address, data);
            model.set(data, offset);
          } else {
            assert.deepEqual(dma.read(address, length), model.subarray(offset, offset + length));
          }
        }
        // What the VM's pages hold is the model; no machine page beyond its size is its.
        for (let gppn = 0; gppn < pmap.pages; gppn++) {
          const mpn = pmap.lookup(gppn);
          const bytes = mpn === FREE ? new Uint8Array(PAGE) : memory.regionOf(mpn).u8.subarray(memory.offsetOf(mpn), memory.offsetOf(mpn) + PAGE);
          assert.deepEqual(bytes, model.subarray(gppn * PAGE, (gppn + 1) * PAGE));
        }
        for (let mpn = 0; mpn < memory.totalPages; mpn++) {
          if (memory.owner[mpn] === FREE) continue;
          assert.equal(memory.owner[mpn], 3);
          assert.ok(memory.guestPage[mpn]! < pmap.pages, `machine page ${mpn} holds guest page ${memory.guestPage[mpn]} of a ${pmap.pages}-page VM`);
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('a write to a replicated page the monitor had protected further collapses it and allows the write', () => {
  const layout = layoutMachine({ harts: 2, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }, { memoryBytes: 16 * MiB, harts: [1] }] });
  const memory = new MachineMemory(layout);
  const pmap = new Pmap(memory, { vm: 1, base: RAM_BASE, size: 4 * MiB, homeNode: 0, shootDown: () => {} });
  for (const allows of [PERM_NONE, PERM_R]) {
    const gppn = allows === PERM_NONE ? 3 : 4;
    touch(pmap, gppn).u8[0] = 1;
    pmap.protect(gppn, allows);
    assert.equal(pmap.replicate(gppn, [1]).length, 1);
    assert.equal(pmap.resolveFault(gppn, ACCESS_WRITE), 'collapse');
    assert.notEqual(pmap.page(gppn, ACCESS_WRITE), undefined, `a write to a page protected to ${allows} faults again after the collapse`);
    assert.equal(pmap.permission(gppn), PERM_RWX);
    assert.equal(pmap.replicasOf(gppn), undefined);
  }
});

test('a pmap asked for a page outside its size refuses and changes nothing', () => {
  const memory = new MachineMemory(tinyLayout([4, 4], [[10, 20], [20, 10]]));
  const pmap = new Pmap(memory, { vm: 1, base: RAM_BASE, size: 2 * PAGE, homeNode: 0, shootDown: () => {} });
  touch(pmap, 0);
  for (const index of [-1, 2, 3, 1.5, Number.NaN]) {
    assert.throws(() => touch(pmap, index), `page(${index})`);
    assert.throws(() => pmap.migrate(index, 1), `migrate(${index})`);
    assert.throws(() => pmap.unmap(index), `unmap(${index})`);
  }
  assert.equal(pmap.pagesInUse, 1);
  assert.equal(memory.pagesInUse(), 1);
  assert.equal(memory.pagesInUse(0), 1);
  assert.equal(memory.owner.filter((o) => o !== FREE).length, 1);
});

// ---- large pages: blocks of 512 machine pages for groups of 512 guest pages ----

const BLOCK_BYTES = BLOCK_PAGES * PAGE;

type BlockOp =
  | { kind: 'touch'; vm: number; group: number; page: number; count: number }
  | { kind: 'migrate'; vm: number; group: number; page: number; node: number }
  | { kind: 'unmap'; vm: number; group: number; page: number }
  | { kind: 'moveGroup'; vm: number; group: number; node: number }
  | { kind: 'release'; vm: number };

test('property: with blocks, every page is used, reserved or free exactly once, a large page maps its block in order, and a group moved whole keeps its contents', () => {
  const op: fc.Arbitrary<BlockOp> = fc.oneof(
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('moveGroup' as const), vm: fc.nat(2), group: fc.nat(2), node: fc.nat(2) }) },
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('touch' as const), vm: fc.nat(2), group: fc.nat(2), page: fc.nat(511), count: fc.integer({ min: 1, max: 600 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('migrate' as const), vm: fc.nat(2), group: fc.nat(2), page: fc.nat(511), node: fc.nat(2) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('unmap' as const), vm: fc.nat(2), group: fc.nat(2), page: fc.nat(511) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), vm: fc.nat(2) }) },
  );
  const machine = fc.record({
    // Nodes not a whole number of blocks, so that blocks must be aligned past their starts.
    nodePages: fc.array(fc.integer({ min: 600, max: 1700 }), { minLength: 2, maxLength: 3 }),
    vms: fc.array(fc.record({ pages: fc.integer({ min: 300, max: 1300 }), home: fc.nat(2) }), { minLength: 1, maxLength: 3 }),
  });
  fc.assert(
    fc.property(machine, fc.array(op, { maxLength: 25 }), (m, ops) => {
      const nodes = m.nodePages.length;
      const distances = distanceMatrix(nodes, [20, 30, 25]);
      const memory = new MachineMemory(tinyLayout(m.nodePages, distances));
      // Room for every VM: the monitor reserves their memory up front.
      let room = m.nodePages.reduce((a, b) => a + b, 0);
      // (and one page more, for a migration to land before the old page is freed)
      const vms = m.vms.filter((spec) => (room -= spec.pages) > 0).map((spec, i) => ({
        pmap: new Pmap(memory, { vm: i, base: RAM_BASE, size: spec.pages * PAGE, homeNode: spec.home % nodes, shootDown: () => {} }),
        released: false,
      }));
      const check = (): void => {
        const seen = new Set<number>();
        let reserved = 0;
        for (const [id, v] of vms.entries()) {
          if (v.released) continue;
          reserved += v.pmap.pagesReserved;
          for (let gppn = 0; gppn < v.pmap.pages; gppn++) {
            const mpn = v.pmap.lookup(gppn);
            if (mpn === FREE) continue;
            assert.ok(!seen.has(mpn), `machine page ${mpn} used twice`);
            seen.add(mpn);
            assert.equal(memory.owner[mpn], id);
            assert.equal(memory.guestPage[mpn], gppn);
          }
          for (let group = 0; group * BLOCK_PAGES < v.pmap.pages; group++) {
            const block = v.pmap.largeBlock(group);
            if (block < 0) continue;
            assert.equal(block % BLOCK_BYTES, 0, `VM ${id} group ${group}: block at ${block.toString(16)} is not aligned`);
            assert.ok((group + 1) * BLOCK_PAGES <= v.pmap.pages, 'a short last group is a large page');
            for (let k = 0; k < BLOCK_PAGES; k++) {
              assert.equal(memory.addressOf(v.pmap.lookup(group * BLOCK_PAGES + k)), block + k * PAGE, `VM ${id} group ${group} page ${k} is out of its block`);
            }
          }
        }
        assert.equal(memory.pagesReserved(), reserved, 'the machine\'s reserved count is not the pmaps\'');
        assert.equal(memory.pagesInUse(), seen.size);
        m.nodePages.forEach((pages, n) => {
          assert.equal(memory.pagesInUse(n) + memory.pagesReserved(n) + memory.pagesFree(n), pages, `node ${n}: used + reserved + free`);
        });
      };
      for (const o of ops) {
        const v = vms[o.vm % vms.length];
        if (v === undefined || (v.released && o.kind !== 'release')) continue;
        const at = (group: number, page: number): number => (group * BLOCK_PAGES + page) % v.pmap.pages;
        switch (o.kind) {
          case 'touch':
            for (let k = 0; k < o.count; k++) touch(v.pmap, at(o.group, o.page + k));
            break;
          case 'migrate':
            if (v.pmap.lookup(at(o.group, o.page)) !== FREE) v.pmap.migrate(at(o.group, o.page), o.node % nodes);
            break;
          case 'unmap':
            v.pmap.unmap(at(o.group, o.page));
            break;
          case 'moveGroup': {
            // Each mapped page of the group marked with its number; they must come out the other side.
            const group = o.group % Math.ceil(v.pmap.pages / BLOCK_PAGES);
            const pages = v.pmap.wholeGroup(group) ?? [];
            for (const gppn of pages) machinePageWords(memory, v.pmap.lookup(gppn))[7] = gppn + 1;
            const moved = v.pmap.moveGroup(group, o.node % nodes);
            if (moved === undefined) break;
            assert.deepEqual(moved.map((x) => x.gppn), pages);
            const block = v.pmap.blockOf(group);
            assert.equal(memory.nodeOf(block), o.node % nodes);
            for (const gppn of pages) {
              assert.equal(v.pmap.lookup(gppn), block + (gppn % BLOCK_PAGES));
              assert.equal(machinePageWords(memory, v.pmap.lookup(gppn))[7], gppn + 1, `page ${gppn} lost its contents`);
            }
            for (let k = 0; k < BLOCK_PAGES; k++) {
              if (v.pmap.lookup(group * BLOCK_PAGES + k) === FREE) assert.ok(machinePageWords(memory, block + k).every((w) => w === 0), 'a reserved page is not zero');
            }
            break;
          }
          case 'release':
            if (!v.released) v.pmap.release();
            v.released = true;
            break;
        }
        check();
      }
      for (const v of vms) if (!v.released) v.pmap.release();
      assert.equal(memory.pagesReserved() + memory.pagesInUse(), 0, 'pages are left after every VM released its memory');
    }),
    { numRuns: 200 },
  );
});

test('a free aligned block is found among freed pages once the node\'s never-used memory is gone, never over a page in use', () => {
  // One node of 3 blocks and a bit: a block for each of two pmaps' groups, then none never used.
  const memory = new MachineMemory(tinyLayout([3 * BLOCK_PAGES + 100], [[10]]));
  const a = new Pmap(memory, { vm: 0, base: RAM_BASE, size: 2 * BLOCK_BYTES, homeNode: 0, shootDown: () => {} });
  for (let gppn = 0; gppn < 2 * BLOCK_PAGES; gppn++) touch(a, gppn).u8[0] = 1;
  assert.ok(a.largeBlock(0) >= 0 && a.largeBlock(1) >= 0);
  const b = new Pmap(memory, { vm: 1, base: RAM_BASE, size: BLOCK_BYTES, homeNode: 0, shootDown: () => {} });
  touch(b, 0);
  assert.ok(b.largeBlock(0) < 0 && b.blockOf(0) >= 0, 'b\'s group has its block, not yet full');
  assert.equal(memory.freeBlocks(0), 0);
  // a's first group goes page by page, but for one page: no block is wholly free yet.
  const first = a.blockOf(0);
  for (let gppn = 1; gppn < BLOCK_PAGES; gppn++) a.unmap(gppn);
  assert.equal(memory.freeBlocks(0), 0);
  const c = new Pmap(memory, { vm: 2, base: RAM_BASE, size: BLOCK_BYTES, homeNode: 0, shootDown: () => {} });
  touch(c, 0);
  assert.equal(c.blockOf(0), -1, 'a block over a page in use');
  c.release();
  a.unmap(0);
  assert.equal(memory.freeBlocks(0), 1);
  // Now it is free, and zero again when it comes back as a block.
  const d = new Pmap(memory, { vm: 3, base: RAM_BASE, size: BLOCK_BYTES, homeNode: 0, shootDown: () => {} });
  touch(d, 5);
  assert.equal(d.blockOf(0), first);
  for (let k = 0; k < BLOCK_PAGES; k++) assert.ok(machinePageWords(memory, first + k).every((w) => w === 0), `page ${k} of the freed block is not zero`);
  // With d in the only free block, a's second group finds none to move into, and nothing changes.
  assert.equal(a.moveGroup(1, 0), undefined);
  assert.ok(a.largeBlock(1) >= 0);
});

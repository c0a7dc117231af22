// One cell's part of Disco's NUMA policy: the decisions for the hot pages on its nodes (migrate, replicate, leave
// alone), and what it remembers of them: each page's moves and freezes, and its large-page groups' (large-pages.ts).
// With several cells each cell has one, made through the cells' revocable objects (docs/numa-policy.md, "Cells").

import type { Hart } from '../cpu/hart.js';
import { KIND_NUMA_POLICY } from '../cpu/monitor-kinds.js';
import type { MemoryTiming } from '../cpu/memory-timing.js';
import type { MissCounters } from '../timing/miss-counters.js';
import { LargePagePolicy, type CellScope, type LargePageState } from './large-pages.js';
import { FREE, OutOfMachineMemory } from './machine-memory.js';
import { touchPage } from './monitor-data.js';
import { MoveRecords, type MoveRecord, type MoveRecordsState } from './move-records.js';
import type { NumaPolicyParameters, PolicyHost } from './numa-policy.js';
import type { LeftWhy, PolicyTally } from './policy-tally.js';
import type { VirtualMachine } from './vm.js';

/** One cell's policy state as plain data (snapshots): its pages' records (keys VM id × 2^32 + guest page) and its groups'. */
export interface CellPolicyState extends MoveRecordsState {
  large: LargePageState;
}

/** The cell a policy state acts for (`CellScope`), and where a page's record goes when the page moves to another cell's node. */
export interface CellPolicyScope extends CellScope {
  handOverPage(key: number, node: number, record: MoveRecord): void;
}

/**
 * The decisions of one cell, for each hot page whose machine page lies on one of its nodes (the driver,
 * `NumaPolicy`, dispatches them by node):
 * - a page of one VM read by several nodes, none with `migrateShare` of its misses, and not written in this
 *   interval or the one before, is replicated: a read-only copy on each node that reads it (`Pmap.replicate`);
 *   a write collapses the copies (`Pmap.resolveFault`);
 * - a page of one VM whose misses come mostly (`migrateShare`) from one node other than its own moves there,
 *   through `Pmap.migrate` (every mapping shot down first, the copy then made), its counts with it;
 * - a page written from two nodes or more (`writeSharedWrites`) in this interval or the one before stays:
 *   moving it only moves whose misses are remote;
 * - a page moved or replicated `moveLimit` times is frozen for `freezeIntervals` intervals.
 * A move is charged to a vCPU of the VM that runs on the destination node (else its first), as monitor
 * cycles: the cost table's `pageCopy` for the handler, its reads of the old page and writes of the new one
 * through that CPU's cache, the memmap and pmap entries, and an IPI (`ipi`) per other vCPU whose TLB held it.
 *
 * What a cell reads of the memmap (a page's users, owner and guest page) is only of the hot pages on its own
 * nodes: each node's memmap entries are its cell's. A move's destination page on another cell's node (a VM
 * spanning cells) is taken through `MachineMemory`'s allocation, which asks that cell over the bus first
 * (`memory.lend`); the cache references a move charges for the destination's memmap entry are the timing
 * model's, not a read of that cell's state.
 */
export class CellPolicy {
  /** Per guest page: moves so far, and the interval until which it is frozen. */
  private readonly records = new MoveRecords();
  /** Whole 2 MiB groups moved, replicated and made one block again (large-pages.ts). */
  private readonly large: LargePagePolicy;

  constructor(private readonly host: PolicyHost, private readonly counters: MissCounters, private readonly tally: PolicyTally, private readonly cell: CellPolicyScope) {
    this.large = new LargePagePolicy(host, counters, {
      chargedVcpu: (vm, node) => this.chargedVcpu(vm, node),
      copyCost: (vm, h, from, to, ipis) => this.copyCost(vm, h, from, to, ipis),
      spent: (vm, cycles) => this.tally.spent(vm.id, cycles),
    }, tally, cell);
  }

  /**
   * Hot page `mpn` (on one of the cell's nodes): its whole 2 MiB group moves as one block if the group is hot as
   * a whole (large-pages.ts); else the 4 KiB decision (`consider`), whose cost counts as breaking a large page
   * when it scatters one.
   */
  considerWithLargePages(mpn: number, p: NumaPolicyParameters, interval: number): void {
    if (this.large.considerGroup(mpn, p, interval)) return;
    const large = this.large.largeGroupOf(mpn);
    const cycles = this.tally.counts.cycles;
    this.consider(mpn, p, interval);
    if (large !== undefined) this.large.afterSmallMove(large, this.tally.counts.cycles - cycles);
  }

  /** At each round's end, after the hot pages: the cell's groups replicated whole, and re-coalescing (large-pages.ts). */
  afterRound(p: NumaPolicyParameters, interval: number): void {
    this.large.afterRound(p, interval);
  }

  private consider(mpn: number, p: NumaPolicyParameters, interval: number): void {
    const memory = this.host.memory;
    const vm = this.vmOf(mpn);
    if (vm === undefined) {
      this.tally.counts.leftOther++;
      return;
    }
    const mine = this.tally.of(vm.id);
    const counts = this.counters.countsOf(mpn);
    const total = counts.reduce((a, b) => a + b, 0);
    const writers = this.counters.writersOf(mpn);
    if ((writers & (writers - 1)) !== 0 && this.counters.writesTo(mpn) >= p.writeSharedWrites) {
      this.left(vm, 'leftWriteShared');
      return;
    }
    const gppn = memory.guestPage[mpn]!;
    const key = gppnKey(vm, gppn);
    if (this.records.frozen(key, interval)) {
      this.left(vm, 'leftFrozen');
      return;
    }
    // Replicated, then written: its copies were made for nothing, and a page written now and then would be
    // copied again after every quiet spell. It stays where it is for a freeze.
    if (vm.pmap.takeWrittenReplica(gppn)) {
      this.records.freeze(key, interval + p.freezeIntervals);
      this.left(vm, 'leftFrozen');
      return;
    }
    let best = 0;
    for (let n = 1; n < counts.length; n++) if (counts[n]! > counts[best]!) best = n;
    const readers = counts.flatMap((c, n) => (c > 0 ? [n] : []));
    // Replicated already: the nodes with a copy read their own, so misses on the master come from its own node
    // and from nodes without a copy. However one of those dominates, the page is still read-shared: moving it
    // would throw every copy away. The nodes without one get a copy (once nobody wrote it for a while).
    const copies = vm.pmap.replicasOf(gppn);
    if (copies !== undefined) {
      const missing = readers.filter((n) => n !== memory.nodeOf(mpn) && copies[n] === FREE);
      if (missing.length > 0 && this.counters.intervalsSinceWrite(mpn) >= 2) this.replicate(vm, mpn, gppn, missing, key, p, interval);
      else this.left(vm, 'leftOther');
      return;
    }
    // Read by several nodes, none of them with most of the misses, and not written for a whole interval (a write
    // to a line other nodes read is a miss or an upgrade, so it shows): a copy on every node that reads it. A
    // page written once, when its data was made, is copied once the writing stops.
    if (counts[best]! < p.migrateShare * total && readers.length >= 2 && this.counters.intervalsSinceWrite(mpn) >= 2) {
      this.replicate(vm, mpn, gppn, readers, key, p, interval);
      return;
    }
    // A VM confined to a cell never moves out of it (docs/cells.md).
    if (best === memory.nodeOf(mpn) || counts[best]! < p.migrateShare * total || !memory.allows(vm.id, best)) {
      this.left(vm, 'leftOther');
      return;
    }
    const h = this.chargedVcpu(vm, best);
    const mark = vm.tlbShootdowns.slice();
    let to: number;
    try {
      to = vm.pmap.migrate(gppn, best);
    } catch (error) {
      if (!(error instanceof OutOfMachineMemory)) throw error;
      this.left(vm, 'leftOther');
      return;
    }
    let cycles = this.copyCost(vm, h, mpn, to, vm.shootdownIpis(mark, h.id));
    const timing = h.memoryTiming;
    const cpu = this.host.lastCpu(vm, h);
    if (timing !== undefined && cpu >= 0) {
      // Both pages' memmap entries and the pmap entry change too.
      const memmap = this.host.memmap;
      cycles += memmap.entry(timing, cpu, mpn, true) + memmap.entry(timing, cpu, to, true) + vm.tables.pmapEntry(timing, cpu, vm.pmap.base + gppn * 4096, true);
    }
    h.chargeMonitor(cycles, KIND_NUMA_POLICY);
    for (const c of [this.tally.counts, mine]) {
      c.migratedTo[memory.nodeOf(to)]!++;
      c.cycles += cycles;
    }
    this.counters.movePage(mpn, to);
    this.tally.onMove?.({ kind: 'migrated', vm: vm.id, address: vm.pmap.base + gppn * 4096, pages: 1, from: memory.nodeOf(mpn), to: memory.nodeOf(to) });
    this.records.moved(key, p, interval);
    // A spanning VM's page moved to another cell's node (memory that cell lent): its record goes with it, as its
    // counts did, so that the page's moves and freeze are the same wherever it lies.
    const node = memory.nodeOf(to);
    if (!this.cell.holds(node)) this.cell.handOverPage(key, node, this.records.take(key));
  }

  /**
   * Copies of `vm`'s page `gppn` (machine page `mpn`) on the nodes of `readers` without one. Each copy is
   * charged to a vCPU on its node (the table's `pageCopy`, the master's lines read and the copy's written
   * through that CPU's cache, the copy's memmap entry), and the shootdown of the master's mappings to the
   * first: an IPI per other vCPU. The master stays, so its record stays in this cell.
   */
  private replicate(vm: VirtualMachine, mpn: number, gppn: number, readers: readonly number[], key: number, p: NumaPolicyParameters, interval: number): void {
    const memory = this.host.memory;
    const mark = vm.tlbShootdowns.slice();
    const made = vm.pmap.replicate(gppn, readers);
    if (made.length === 0) {
      this.left(vm, 'leftOther');
      return;
    }
    const mine = this.tally.of(vm.id);
    made.forEach((copy, i) => {
      const node = memory.nodeOf(copy);
      const h = this.chargedVcpu(vm, node);
      let cycles = this.copyCost(vm, h, mpn, copy, i === 0 ? vm.shootdownIpis(mark, h.id) : 0);
      const timing = h.memoryTiming;
      const cpu = this.host.lastCpu(vm, h);
      if (timing !== undefined && cpu >= 0) cycles += this.host.memmap.entry(timing, cpu, copy, true);
      h.chargeMonitor(cycles, KIND_NUMA_POLICY);
      // A copy's page counted misses for whatever it held before.
      this.counters.resetPage(copy);
      for (const c of [this.tally.counts, mine]) {
        c.replicatedTo[node]!++;
        c.cycles += cycles;
      }
      this.tally.onMove?.({ kind: 'replicated', vm: vm.id, address: vm.pmap.base + gppn * 4096, pages: 1, from: memory.nodeOf(mpn), to: node });
    });
    this.counters.resetPage(mpn);
    this.records.moved(key, p, interval);
  }

  /** The running VM whose one private page `mpn` is, or undefined (free, the monitor's, shared). */
  private vmOf(mpn: number): VirtualMachine | undefined {
    const memory = this.host.memory;
    if (memory.users[mpn] !== 1) return undefined;
    const owner = memory.owner[mpn]!;
    if (owner < 0) return undefined;
    const vm = this.host.vms.find((v) => v.id === owner);
    return vm !== undefined && vm.state === 'running' && vm.pmap.lookup(memory.guestPage[mpn]!) === mpn ? vm : undefined;
  }

  /** A vCPU of `vm` that last ran on `node` (it asked for the page), else the first. */
  private chargedVcpu(vm: VirtualMachine, node: number): Hart {
    return vm.vcpus.find((h) => {
      const cpu = this.host.lastCpu(vm, h);
      return cpu >= 0 && this.host.nodeOfCpu(cpu) === node;
    }) ?? vm.vcpus[0]!;
  }

  /**
   * What copying machine page `from` to `to` costs vCPU `h` of `vm`, which does it: the table's `pageCopy`,
   * `ipis` IPIs for the shootdown before it (one per other vCPU whose TLB held the page), and in timing mode
   * the old page's lines read and the new one's written, through the cache of the CPU it last ran on (`lastCpu`).
   */
  private copyCost(vm: VirtualMachine, h: Hart, from: number, to: number, ipis: number): number {
    const { costs, memory } = this.host;
    let cycles = costs.pageCopy + ipis * costs.ipi;
    const timing: MemoryTiming | undefined = h.memoryTiming;
    const cpu = this.host.lastCpu(vm, h);
    if (timing !== undefined && cpu >= 0) {
      cycles += touchPage(memory, timing, cpu, from, false) + touchPage(memory, timing, cpu, to, true);
    }
    return cycles;
  }

  private left(vm: VirtualMachine, why: LeftWhy): void {
    this.tally.left(vm.id, why);
  }

  /** A page's record another cell handed over with the page (`CellPolicyScope.handOverPage`). */
  adoptPage(key: number, record: MoveRecord): void {
    this.records.put(key, record);
  }

  /** A group's record another cell handed over with its block. */
  adoptGroup(key: number, record: MoveRecord): void {
    this.large.adoptGroup(key, record);
  }

  /** The VMs (ids) this cell keeps a record of: of their pages, and of their groups (a restore's checks). */
  vmsRecorded(): number[] {
    return [...new Set([...this.records.keys(), ...this.large.keys()].map((key) => Math.floor(key / 2 ** 32)))];
  }

  saveState(): CellPolicyState {
    return { ...this.records.save(), large: this.large.saveState() };
  }

  /** Puts back what `saveState` returned (the caller has checked every value). */
  restoreState(s: CellPolicyState): void {
    this.records.restore(s);
    this.large.restoreState(s.large);
  }
}

function gppnKey(vm: VirtualMachine, gppn: number): number {
  return vm.id * 2 ** 32 + gppn;
}

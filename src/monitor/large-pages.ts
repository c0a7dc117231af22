// The NUMA policy's large pages: a 2 MiB group hot as a whole from one other node moves there as one block, a large
// group several nodes read and nobody writes is replicated whole, and a scattered group whose pages are all on one
// node again is made one block there (docs/numa-policy.md).

import type { Hart } from '../cpu/hart.js';
import { KIND_NUMA_POLICY } from '../cpu/monitor-kinds.js';
import type { MissCounters } from '../timing/miss-counters.js';
import { BLOCK_PAGES, FREE, PAGE } from './machine-memory.js';
import { MoveRecords, type MoveRecord, type MoveRecordsState } from './move-records.js';
import type { PolicyHost } from './numa-policy.js';
import type { PolicyTally } from './policy-tally.js';
import type { VirtualMachine } from './vm.js';

/** The large-page part of the policy's parameters (`NumaPolicyParameters` holds them). */
export interface LargePageParameters {
  /**
   * Pages of a 2 MiB group that one other node must have missed on (with `migrateShare` of the group's misses)
   * for the whole group to move there as one block; 0: groups never move whole.
   */
  blockPages: number;
  /** Pages of a scattered group on one node that must have been missed on for it to be made one block again; 0: never. */
  coalescePages: number;
  /**
   * Pages of a large group that two nodes or more must have missed on, none of its pages written in this interval
   * or the one before, for the group to be replicated whole (per-node 2 MiB copies); 0: never.
   */
  replicateGroupPages: number;
  migrateShare: number;
  writeSharedWrites: number;
  moveLimit: number;
  freezeIntervals: number;
}

/** What the policy did with large pages, in all or per VM. */
export interface LargePageCounts {
  /** Groups moved whole, by destination node. */
  blocksMovedTo: number[];
  /** Scattered groups made one block again, by node. */
  coalescedOn: number[];
  /** Pages copied by those. */
  pagesCopied: number;
  /** Group moves and re-coalescings given up: no free aligned block on the node. */
  noBlock: number;
  /** Large groups the policy's 4 KiB moves and replications broke, and what those cost. */
  broken: number;
  breakCycles: number;
  moveCycles: number;
  coalesceCycles: number;
  /** Copy blocks made of large groups replicated whole, by the copy's node. */
  groupsReplicatedOn: number[];
  /** Groups replicated whole whose copies went (a write, memory running short, a page of it changed). */
  groupsCollapsed: number;
  /** Of those, the ones a write collapsed. */
  groupsCollapsedByWrites: number;
  /** Cycles the whole-group copies cost (in the policy's cycles too). */
  replicateCycles: number;
}

export function noLargePageCounts(nodes: number): LargePageCounts {
  return {
    blocksMovedTo: new Array<number>(nodes).fill(0), coalescedOn: new Array<number>(nodes).fill(0), pagesCopied: 0, noBlock: 0,
    broken: 0, breakCycles: 0, moveCycles: 0, coalesceCycles: 0,
    groupsReplicatedOn: new Array<number>(nodes).fill(0), groupsCollapsed: 0, groupsCollapsedByWrites: 0, replicateCycles: 0,
  };
}

export function copyLargePageCounts(c: LargePageCounts): LargePageCounts {
  return { ...c, blocksMovedTo: [...c.blocksMovedTo], coalescedOn: [...c.coalescedOn], groupsReplicatedOn: [...c.groupsReplicatedOn] };
}

/** One cell's large-page state as plain data (snapshots, inside the cell's policy state); keys are VM id × 2^32 + group. */
export interface LargePageState extends MoveRecordsState {
  /** The interval the last sweep for re-coalescing ran in. */
  swept: number;
  /** The keys of the groups this cell replicated whole and has not seen collapse yet. */
  replicated: Float64Array;
}

/** The cell a large-page policy acts for: which nodes are its own, and where a group's record goes when its block moves to another cell's node. */
export interface CellScope {
  readonly id: number;
  holds(node: number): boolean;
  /** Group `key`'s record, for the cell of `node` (a spanning VM's group moved there). */
  handOverGroup(key: number, node: number, record: MoveRecord): void;
}

/** What the large-page policy borrows from the NUMA policy: who pays for a move, and what a page's copy costs. */
export interface MoveCharging {
  chargedVcpu(vm: VirtualMachine, node: number): Hart;
  copyCost(vm: VirtualMachine, h: Hart, from: number, to: number, ipis: number): number;
  /** `cycles` more of the policy's work for `vm` (`monitor.policy.cycles`). */
  spent(vm: VirtualMachine, cycles: number): void;
}

/**
 * Linux maps all its RAM with 2 MiB pages, and a group of 512 guest pages in one aligned machine block is one
 * TLB entry (`Pmap.largeBlock`). Moving one 4 KiB page of it scatters it. This part of the policy moves whole
 * groups instead where the group is hot as a whole (`considerGroup`, before the 4 KiB decision), and at each
 * interval's end makes scattered groups whose pages are all on one node one block again (`afterRound`). Each
 * moved page is charged as a 4 KiB move is (`MoveCharging.copyCost`: the table's `pageCopy`, its lines read and
 * written through the cache, its memmap entries and pmap entry), with one IPI per other vCPU whose TLB held
 * any page of the group (one shootdown for the block).
 *
 * One per cell (cell-policy.ts): it decides for the hot pages on its cell's nodes, re-coalesces the groups that
 * come together on them, and keeps the records of those groups; what it did goes to the machine's `PolicyTally`.
 */
export class LargePagePolicy {
  private swept = 0;
  private readonly records = new MoveRecords();
  /** The groups replicated whole (keys), in the order they were: each round looks whether they still are. */
  private readonly replicated = new Set<number>();

  constructor(private readonly host: PolicyHost, private readonly counters: MissCounters, private readonly charging: MoveCharging,
    private readonly tally: PolicyTally, private readonly cell: CellScope) {}

  /** What the whole machine's policy did with groups (the statistics). */
  private get counts(): LargePageCounts {
    return this.tally.large.counts;
  }

  /**
   * Hot page `mpn`: if its group can move whole (`Pmap.wholeGroup`), is not frozen, none of its pages is
   * write-shared, `migrateShare` of the group's misses come from one node other than the block's, and that
   * node missed on `blockPages` of its pages, the group moves there as one block. Returns true if it did.
   */
  considerGroup(mpn: number, p: LargePageParameters, interval: number): boolean {
    if (p.blockPages === 0 && p.replicateGroupPages === 0) return false;
    const found = this.groupOf(mpn);
    if (found === undefined) return false;
    const { vm, group } = found;
    const key = vm.id * 2 ** 32 + group;
    // Replicated whole already: its pages are never moved or copied alone; nodes still reading the master get copies.
    if (vm.pmap.groupCopiesOf(group) !== undefined) {
      this.replicateGroup(vm, group, key, p, interval);
      return true;
    }
    if (this.records.frozen(key, interval)) return false;
    if (p.replicateGroupPages > 0 && this.replicateGroup(vm, group, key, p, interval)) return true;
    if (p.blockPages === 0) return false;
    const pages = vm.pmap.wholeGroup(group);
    if (pages === undefined) return false;
    const nodes = this.counters.nodes;
    const totals = new Array<number>(nodes).fill(0);
    const missed = new Array<number>(nodes).fill(0);
    for (const gppn of pages) {
      const page = vm.pmap.lookup(gppn);
      const writers = this.counters.writersOf(page);
      if ((writers & (writers - 1)) !== 0 && this.counters.writesTo(page) >= p.writeSharedWrites) return false;
      this.counters.countsOf(page).forEach((c, n) => {
        totals[n]! += c;
        if (c > 0) missed[n]!++;
      });
    }
    let best = 0;
    for (let n = 1; n < nodes; n++) if (totals[n]! > totals[best]!) best = n;
    const total = totals.reduce((a, b) => a + b, 0);
    const block = vm.pmap.blockOf(group);
    if (block >= 0 && this.host.memory.nodeOf(block) === best) return false;
    if (totals[best]! < p.migrateShare * total || missed[best]! < p.blockPages) return false;
    if (!this.move(vm, group, best, 'move')) return false;
    this.records.moved(key, p, interval);
    // A spanning VM's group moved to another cell's node (memory that cell lent): its record goes with it.
    if (!this.cell.holds(best)) this.cell.handOverGroup(key, best, this.records.take(key));
    return true;
  }

  /**
   * Replicates `vm`'s large group `group` whole if several nodes read it and nobody writes it: no page of it
   * written in this interval or the one before (a write to a line other nodes read shows, as a miss or an
   * upgrade), and `replicateGroupPages` of its pages missed on from two nodes or more. Every other node that
   * missed on any page of it gets a copy block (`Pmap.replicateGroup`); for a group replicated already, the nodes
   * still missing on its master get one. Each copied page is charged as a move's is (`MoveCharging.copyCost` and
   * the copy's memmap entry) to a vCPU on the copy's node, and the first copy one IPI per other vCPU whose TLB
   * held any page of the group (one shootdown of the master block). True if a copy was made.
   */
  private replicateGroup(vm: VirtualMachine, group: number, key: number, p: LargePageParameters, interval: number): boolean {
    const pmap = vm.pmap;
    const existing = pmap.groupCopiesOf(group);
    if (existing === undefined && !pmap.canReplicateGroup(group)) return false;
    const nodes = this.counters.nodes;
    const missed = new Array<number>(nodes).fill(0);
    let shared = 0;
    for (let gppn = group * BLOCK_PAGES; gppn < (group + 1) * BLOCK_PAGES; gppn++) {
      const page = pmap.lookup(gppn);
      if (this.counters.intervalsSinceWrite(page) < 2) return false;
      let readers = 0;
      this.counters.countsOf(page).forEach((c, n) => {
        if (c === 0) return;
        readers++;
        missed[n]!++;
      });
      if (readers >= 2) shared++;
    }
    const master = pmap.blockOf(group);
    const home = this.host.memory.nodeOf(master);
    const wanted = missed.flatMap((m, n) => (m > 0 && n !== home && (existing === undefined || existing[n] === FREE) ? [n] : []));
    if (wanted.length === 0 || (existing === undefined && shared < p.replicateGroupPages)) return false;
    const mark = vm.tlbShootdowns.slice();
    const made = pmap.replicateGroup(group, wanted);
    const mine = this.countsOf(vm);
    if (made.length === 0) {
      this.counts.noBlock++;
      mine.noBlock++;
      return false;
    }
    const memory = this.host.memory;
    made.forEach((copy, i) => {
      const node = memory.nodeOf(copy);
      const h = this.charging.chargedVcpu(vm, node);
      let cycles = i === 0 && existing === undefined ? vm.shootdownIpis(mark, h.id) * this.host.costs.ipi : 0;
      const timing = h.memoryTiming;
      const cpu = this.host.lastCpu(vm, h);
      for (let k = 0; k < BLOCK_PAGES; k++) {
        cycles += this.charging.copyCost(vm, h, master + k, copy + k, 0);
        if (timing !== undefined && cpu >= 0) cycles += this.host.memmap.entry(timing, cpu, copy + k, true);
        // A copy's page counted misses for whatever it held before.
        this.counters.resetPage(copy + k);
      }
      h.chargeMonitor(cycles, KIND_NUMA_POLICY);
      this.charging.spent(vm, cycles);
      for (const c of [this.counts, mine]) {
        c.groupsReplicatedOn[node]!++;
        c.replicateCycles += cycles;
      }
      this.tally.onMove?.({ kind: 'replicated', vm: vm.id, address: pmap.base + group * BLOCK_PAGES * PAGE, pages: BLOCK_PAGES, from: home, to: node });
    });
    // Misses from now on say who still reads the master.
    for (let k = 0; k < BLOCK_PAGES; k++) this.counters.resetPage(master + k);
    if (existing === undefined) {
      this.replicated.add(key);
      this.records.moved(key, p, interval);
    }
    return true;
  }

  /**
   * Each round: the groups replicated whole whose copies went since (a write, memory running short, a page of it
   * changed) are counted, and one a write collapsed is frozen for `freezeIntervals`: its copies were made for
   * nothing, and a group written now and then would be copied again after every quiet spell.
   */
  private sweepCollapsed(p: LargePageParameters, interval: number): void {
    if (this.replicated.size === 0) return;
    for (const key of this.replicated) {
      const id = Math.floor(key / 2 ** 32);
      const group = key % 2 ** 32;
      const vm = this.host.vms.find((v) => v.id === id);
      if (vm !== undefined && vm.state === 'running' && vm.pmap.groupCopiesOf(group) !== undefined) continue;
      this.replicated.delete(key);
      const written = vm !== undefined && vm.state === 'running' && vm.pmap.takeWrittenGroup(group);
      if (written) this.records.freeze(key, interval + p.freezeIntervals);
      const counts = vm === undefined ? [this.counts] : [this.counts, this.countsOf(vm)];
      for (const c of counts) {
        c.groupsCollapsed++;
        if (written) c.groupsCollapsedByWrites++;
      }
    }
  }

  /** The VM and group of private page `mpn` if that group is one large page now, else undefined (the 4 KiB decision may break it). */
  largeGroupOf(mpn: number): { vm: VirtualMachine; group: number } | undefined {
    const found = this.groupOf(mpn);
    return found !== undefined && found.vm.pmap.largeBlock(found.group) >= 0 ? found : undefined;
  }

  /** After the 4 KiB decision on a page of a group that was large (`largeGroupOf`), which cost `cycles`: counts it if it broke the group. */
  afterSmallMove(was: { vm: VirtualMachine; group: number }, cycles: number): void {
    if (was.vm.pmap.largeBlock(was.group) >= 0) return;
    for (const c of [this.counts, this.countsOf(was.vm)]) {
      c.broken++;
      c.breakCycles += cycles;
    }
  }

  /**
   * At the first round of each interval (`interval` is the policy's): every running VM's scattered groups whose
   * 512 pages are all on one node, `coalescePages` of them missed on lately, and not frozen, are made one block
   * on that node again. A real monitor would keep a count of each group's pages per node as it moves them, so
   * the sweep itself is not charged; the copies are. A cell sweeps the VMs that may use its nodes (its own and
   * those spanning it) and makes one block only of the groups that came together on one of its nodes.
   */
  afterRound(p: LargePageParameters, interval: number): void {
    this.sweepCollapsed(p, interval);
    if (interval === this.swept) return;
    this.swept = interval;
    if (p.coalescePages === 0) return;
    for (const vm of this.host.vms) {
      if (vm.state !== 'running' || !vm.cells.includes(this.cell.id)) continue;
      for (let group = 0; group < vm.pmap.groups; group++) {
        if (!vm.pmap.scatteredOnOneNode(group)) continue;
        const node = this.host.memory.nodeOf(vm.pmap.lookup(group * BLOCK_PAGES));
        if (!this.cell.holds(node)) continue;
        const key = vm.id * 2 ** 32 + group;
        if (this.records.frozen(key, interval)) continue;
        let missed = 0;
        for (let gppn = group * BLOCK_PAGES; gppn < (group + 1) * BLOCK_PAGES; gppn++) if (this.counters.total(vm.pmap.lookup(gppn)) > 0) missed++;
        if (missed < p.coalescePages) continue;
        if (this.move(vm, group, node, 'coalesce')) this.records.moved(key, p, interval);
      }
    }
  }

  /** Moves `vm`'s group `group` into a block on `node` and charges it; false if it could not (no free block there). */
  private move(vm: VirtualMachine, group: number, node: number, why: 'move' | 'coalesce'): boolean {
    if (vm.pmap.wholeGroup(group) === undefined) return false;
    const h = this.charging.chargedVcpu(vm, node);
    const mark = vm.tlbShootdowns.slice();
    const moved = vm.pmap.moveGroup(group, node);
    const mine = this.countsOf(vm);
    if (moved === undefined) {
      this.counts.noBlock++;
      mine.noBlock++;
      return false;
    }
    // One shootdown for the group: an IPI per other vCPU whose TLB held any of its pages.
    let cycles = vm.shootdownIpis(mark, h.id) * this.host.costs.ipi;
    const timing = h.memoryTiming;
    const cpu = this.host.lastCpu(vm, h);
    for (const { gppn, from, to } of moved) {
      cycles += this.charging.copyCost(vm, h, from, to, 0);
      if (timing !== undefined && cpu >= 0) {
        const memmap = this.host.memmap;
        cycles += memmap.entry(timing, cpu, from, true) + memmap.entry(timing, cpu, to, true) + vm.tables.pmapEntry(timing, cpu, vm.pmap.base + gppn * PAGE, true);
      }
      this.counters.movePage(from, to);
    }
    h.chargeMonitor(cycles, KIND_NUMA_POLICY);
    this.charging.spent(vm, cycles);
    for (const c of [this.counts, mine]) {
      if (why === 'move') {
        c.blocksMovedTo[node]!++;
        c.moveCycles += cycles;
      } else {
        c.coalescedOn[node]!++;
        c.coalesceCycles += cycles;
      }
      c.pagesCopied += moved.length;
    }
    // A coalescing gathers a group on the node most of it is on already: a move all the same, from that node.
    const from = this.host.memory.nodeOf(moved[0]!.from);
    this.tally.onMove?.({ kind: 'migrated', vm: vm.id, address: vm.pmap.base + group * BLOCK_PAGES * PAGE, pages: BLOCK_PAGES, from, to: node });
    return true;
  }

  /** The running VM and group of private page `mpn`, or undefined (free, the monitor's, shared, a replica). */
  private groupOf(mpn: number): { vm: VirtualMachine; group: number } | undefined {
    const memory = this.host.memory;
    if (memory.users[mpn] !== 1 || memory.owner[mpn]! < 0) return undefined;
    const vm = this.host.vms.find((v) => v.id === memory.owner[mpn]);
    const gppn = memory.guestPage[mpn]!;
    if (vm === undefined || vm.state !== 'running' || vm.pmap.lookup(gppn) !== mpn) return undefined;
    return { vm, group: Math.floor(gppn / BLOCK_PAGES) };
  }

  private countsOf(vm: VirtualMachine): LargePageCounts {
    return this.tally.largeOf(vm.id);
  }

  /** A group's record another cell handed over with its block (`CellScope.handOverGroup`). */
  adoptGroup(key: number, record: MoveRecord): void {
    this.records.put(key, record);
  }

  /** The keys of the groups with a record here, and of those replicated whole (a restore's checks). */
  keys(): number[] {
    return [...this.records.keys(), ...this.replicated];
  }

  saveState(): LargePageState {
    return { swept: this.swept, ...this.records.save(), replicated: Float64Array.from(this.replicated) };
  }

  restoreState(s: LargePageState): void {
    this.swept = s.swept;
    this.records.restore(s);
    this.replicated.clear();
    for (const key of s.replicated) this.replicated.add(key);
  }
}

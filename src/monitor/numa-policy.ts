// Disco's NUMA policy: hot pages found by the machine's per-page miss counters, migrated at round boundaries
// to the node that misses on them, or replicated on the nodes that read them (docs/numa-policy.md).

import { LocalityHistory, type LocalityState } from './locality-history.js';
import type { MissCounters } from '../timing/miss-counters.js';
import type { MemoryTiming } from '../cpu/memory-timing.js';
import type { Hart } from '../cpu/hart.js';
import { FREE, type MachineMemory, OutOfMachineMemory } from './machine-memory.js';
import { touchPage, type MemmapTable } from './monitor-data.js';
import type { MonitorCosts } from './costs.js';
import type { VirtualMachine } from './vm.js';
import { LargePagePolicy, type LargePageState } from './large-pages.js';

/** What the policy counts: the machine's cache misses per page (timing mode), or the vCPUs' TLB misses (any mode). */
export type PolicySignal = 'cache-misses' | 'tlb-misses';
export const POLICY_SIGNALS: readonly PolicySignal[] = ['cache-misses', 'tlb-misses'];

/** The policy's parameters: one set serves every workload (the experiments show them halved and doubled). */
export interface NumaPolicyParameters {
  /** Misses to a page from one node, within an interval, that make it hot (Disco's trigger). */
  hotMisses: number;
  /**
   * The same trigger on the TLB-miss signal (`tlb-misses`): a TLB miss is rarer than a cache miss (one per page
   * brought into the TLB, against one per line brought into the cache).
   */
  tlbHotMisses: number;
  /**
   * Misses to a page from all nodes together, within an interval, that make it hot as well (0: off): a page
   * every node reads a little, each under `hotMisses`, costs as many remote misses as one node reading it a lot.
   */
  sharedHotMisses: number;
  /** The same on the TLB-miss signal (0: off). */
  tlbSharedHotMisses: number;
  /** The share of a hot page's misses one other node must have for the page to move there. */
  migrateShare: number;
  /** Write misses and upgrades from two nodes or more that make a page write-shared: it stays where it is. */
  writeSharedWrites: number;
  /** Rounds (of 4096 machine cycles) between the counters' decay (every count halved). */
  intervalRounds: number;
  /** Moves after which a page is frozen where it is, for `freezeIntervals` intervals. */
  moveLimit: number;
  freezeIntervals: number;
  /**
   * Large pages (large-pages.ts): pages of a 2 MiB group one other node must have missed on for the group to
   * move there whole, as one block (0: never), and pages of a scattered group on one node that must have been
   * missed on for it to be made one block again (0: never).
   */
  blockPages: number;
  coalescePages: number;
  /**
   * Pages of a large 2 MiB group that two nodes or more must have missed on, with no page of it written in this
   * interval or the one before, for the whole group to be replicated as per-node 2 MiB blocks (0: never).
   */
  replicateGroupPages: number;
}

/**
 * Our values, not Disco's (it gives none for FLASH): a page missed 16 times from one node in about 10 ms of
 * machine time (256 rounds), three quarters of its misses from that node; 8 write misses from two nodes make
 * it write-shared; a page moved 4 times stays put for 8 intervals. The trigger was 128 at first, which moved
 * almost nothing in `experiment numa --quick` (a page's 32 lines miss once each and then stay cached); 16 and 4
 * closed 0.80 and 0.75 of Engineering's gap there, so 16 it is, for every workload (docs/numa-policy.md).
 */
export const DEFAULT_POLICY: NumaPolicyParameters = {
  hotMisses: 16,
  tlbHotMisses: 2,
  sharedHotMisses: 32,
  tlbSharedHotMisses: 0,
  migrateShare: 0.75,
  writeSharedWrites: 8,
  intervalRounds: 256,
  moveLimit: 4,
  freezeIntervals: 8,
  // Off until measured on more than Engineering (docs/numa-policy.md, "Large pages").
  blockPages: 0,
  coalescePages: 0,
  // On Engineering's quick run the kernel's text group has 18 pages read from several nodes when its first page
  // gets hot: 8 replicates it with room to spare; only groups no one wrote for two intervals qualify at all.
  replicateGroupPages: 8,
};

/** Checks a parameter set; returns the problems (none: usable). */
export function policyProblems(p: NumaPolicyParameters): string[] {
  const problems: string[] = [];
  const whole = (name: keyof NumaPolicyParameters, min: number): void => {
    if (!Number.isInteger(p[name]) || p[name] < min) problems.push(`${name} must be a whole number of at least ${min}, not ${p[name]}`);
  };
  whole('hotMisses', 1);
  whole('tlbHotMisses', 1);
  whole('sharedHotMisses', 0);
  whole('tlbSharedHotMisses', 0);
  whole('writeSharedWrites', 1);
  whole('intervalRounds', 1);
  whole('moveLimit', 1);
  whole('freezeIntervals', 0);
  whole('blockPages', 0);
  whole('coalescePages', 0);
  whole('replicateGroupPages', 0);
  const most = Math.max(p.blockPages, p.coalescePages, p.replicateGroupPages);
  if (most > 512) problems.push(`blockPages, coalescePages and replicateGroupPages count pages of a 2 MiB group: at most 512, not ${most}`);
  if (!(p.migrateShare > 0.5 && p.migrateShare <= 1)) problems.push(`migrateShare must be above 0.5 and at most 1, not ${p.migrateShare}`);
  return problems;
}

/** What the policy did, per VM and in all. */
export interface PolicyCounts {
  /** Pages moved, by destination node. */
  migratedTo: number[];
  /** Copies made of read-shared pages, by the node of the copy. */
  replicatedTo: number[];
  /** Hot pages left alone: write-shared, frozen, already home, shared between VMs, or with no clear node. */
  leftWriteShared: number;
  leftFrozen: number;
  leftOther: number;
  /** Cycles charged for the policy's work (copies, shootdowns, bookkeeping). */
  cycles: number;
}

function noCounts(nodes: number): PolicyCounts {
  return { migratedTo: new Array<number>(nodes).fill(0), replicatedTo: new Array<number>(nodes).fill(0), leftWriteShared: 0, leftFrozen: 0, leftOther: 0, cycles: 0 };
}

/** The policy as plain data (snapshots): its parameters, whether it acts, its clock, and what it did and remembers. */
export interface PolicyState {
  parameters: NumaPolicyParameters;
  enabled: boolean;
  rounds: number;
  interval: number;
  /** Local and remote misses per interval (`LocalityHistory`), and the counts at the last interval's end. */
  locality: LocalityState;
  missesAtInterval: { local: number; remote: number };
  /** (key, moves) and (key, interval) pairs; a key is VM id × 2^32 + guest page. */
  moves: Float64Array;
  frozenUntil: Float64Array;
  counts: PolicyCounts;
  perVm: { vm: number; counts: PolicyCounts }[];
  large: LargePageState;
}

/** What the policy needs of the monitor. */
export interface PolicyHost {
  readonly memory: MachineMemory;
  readonly memmap: MemmapTable;
  readonly costs: MonitorCosts;
  readonly vms: readonly VirtualMachine[];
  /** The node of physical CPU `cpu`. */
  nodeOfCpu(cpu: number): number;
  /** The physical CPU vCPU `h` of `vm` ran on last (-1: never). */
  lastCpu(vm: VirtualMachine, h: Hart): number;
  /** Machine time, in cycles. */
  now(): number;
  /** The signal's misses so far: on the page's own node (local) and from others (remote). */
  signalMisses(): { local: number; remote: number };
}

/**
 * Runs at round boundaries (a safe point: no vCPU is inside an instruction). Every `intervalRounds` rounds it
 * halves the counters (and queues again the pages still hot); each round it takes the pages that became hot
 * and decides, per page:
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
 */
export class NumaPolicy {
  readonly counts: PolicyCounts;
  readonly perVm = new Map<number, PolicyCounts>();
  private rounds = 0;
  private interval = 0;
  /** Local and remote misses interval by interval (the signal's): `stats`' local misses over time. */
  readonly locality = new LocalityHistory();
  private missesAtInterval = { local: 0, remote: 0 };
  /** Per guest page (`gppnKey`): moves so far, and the interval until which it is frozen. */
  private readonly moves = new Map<number, number>();
  private readonly frozenUntil = new Map<number, number>();

  private current: NumaPolicyParameters;
  private on = true;
  /** Whole 2 MiB groups moved and made one block again (large-pages.ts). */
  readonly large: LargePagePolicy;

  /**
   * `parameters` must be usable (`policyProblems` finds nothing: Monitor.setPolicy checks); `counters` count
   * `signal`'s events.
   */
  constructor(private readonly host: PolicyHost, private readonly counters: MissCounters, parameters: NumaPolicyParameters, readonly signal: PolicySignal = 'cache-misses') {
    this.current = { ...parameters };
    this.counts = noCounts(counters.nodes);
    counters.queueHot(...this.triggers(parameters));
    this.missesAtInterval = host.signalMisses();
    this.large = new LargePagePolicy(host, counters, {
      chargedVcpu: (vm, node) => this.chargedVcpu(vm, node),
      copyCost: (vm, h, from, to, ipis) => this.copyCost(vm, h, from, to, ipis),
      spent: (vm, cycles) => {
        this.counts.cycles += cycles;
        this.countsOf(vm).cycles += cycles;
      },
    });
  }

  /** The triggers of the policy's signal: from one node, and from all nodes together. */
  private triggers(p: NumaPolicyParameters): [number, number] {
    return this.signal === 'tlb-misses' ? [p.tlbHotMisses, p.tlbSharedHotMisses] : [p.hotMisses, p.sharedHotMisses];
  }

  /** The parameters in force. */
  get parameters(): NumaPolicyParameters {
    return { ...this.current };
  }

  /** Whether the policy acts (it keeps its counts while off). */
  get enabled(): boolean {
    return this.on;
  }

  /** New parameters (usable ones, as for the constructor) from the next round on; turns the policy on. */
  setParameters(parameters: NumaPolicyParameters): void {
    this.current = { ...parameters };
    this.on = true;
    this.counters.queueHot(...this.triggers(parameters));
  }

  /** Turns the policy off: no page is queued or moved until `setParameters`. */
  disable(): void {
    this.on = false;
    this.counters.queueHot(0);
    this.counters.takeHot();
  }

  saveState(): PolicyState {
    const pairs = (map: ReadonlyMap<number, number>): Float64Array => Float64Array.from([...map].flat());
    const copy = (c: PolicyCounts): PolicyCounts => ({ ...c, migratedTo: [...c.migratedTo], replicatedTo: [...c.replicatedTo] });
    return {
      parameters: this.parameters, enabled: this.on, rounds: this.rounds, interval: this.interval,
      locality: this.locality.saveState(), missesAtInterval: { ...this.missesAtInterval },
      moves: pairs(this.moves), frozenUntil: pairs(this.frozenUntil), counts: copy(this.counts),
      perVm: [...this.perVm].map(([vm, counts]) => ({ vm, counts: copy(counts) })), large: this.large.saveState(),
    };
  }

  /**
   * Puts back what `saveState` returned into a policy made with the same parameters (the caller has checked
   * every value), turning it off if it was.
   */
  restoreState(s: PolicyState): void {
    this.rounds = s.rounds;
    this.interval = s.interval;
    this.locality.restoreState(s.locality);
    this.missesAtInterval = { ...s.missesAtInterval };
    const fill = (map: Map<number, number>, pairs: Float64Array): void => {
      map.clear();
      for (let i = 0; i + 1 < pairs.length; i += 2) map.set(pairs[i]!, pairs[i + 1]!);
    };
    fill(this.moves, s.moves);
    fill(this.frozenUntil, s.frozenUntil);
    Object.assign(this.counts, { ...s.counts, migratedTo: [...s.counts.migratedTo], replicatedTo: [...s.counts.replicatedTo] });
    this.perVm.clear();
    for (const { vm, counts } of s.perVm) this.perVm.set(vm, { ...counts, migratedTo: [...counts.migratedTo], replicatedTo: [...counts.replicatedTo] });
    this.large.restoreState(s.large);
    if (!s.enabled) this.disable();
  }

  afterRound(): void {
    if (!this.on) return;
    if (++this.rounds % this.current.intervalRounds === 0) {
      this.interval++;
      this.counters.decay();
      this.sampleLocality();
    }
    for (const mpn of this.counters.takeHot()) this.considerWithLargePages(mpn);
    this.large.afterRound(this.current, this.interval);
  }

  /**
   * Hot page `mpn`: its whole 2 MiB group moves as one block if the group is hot as a whole (large-pages.ts);
   * else the 4 KiB decision (`consider`), whose cost counts as breaking a large page when it scatters one.
   */
  private considerWithLargePages(mpn: number): void {
    if (this.large.considerGroup(mpn, this.current, this.interval)) return;
    const large = this.large.largeGroupOf(mpn);
    const cycles = this.counts.cycles;
    this.consider(mpn);
    if (large !== undefined) this.large.afterSmallMove(large, this.counts.cycles - cycles);
  }

  /** Adds the interval that just ended to `locality` (counts that went back, a statistics reset, start again). */
  private sampleLocality(): void {
    const now = this.host.signalMisses();
    const was = this.missesAtInterval;
    const since = (key: 'local' | 'remote'): number => (now[key] >= was[key] ? now[key] - was[key] : now[key]);
    this.locality.add(this.host.now(), since('local'), since('remote'));
    this.missesAtInterval = { ...now };
  }

  private consider(mpn: number): void {
    const memory = this.host.memory;
    const vm = this.vmOf(mpn);
    if (vm === undefined) {
      this.counts.leftOther++;
      return;
    }
    const mine = this.countsOf(vm);
    const counts = this.counters.countsOf(mpn);
    const total = counts.reduce((a, b) => a + b, 0);
    const writers = this.counters.writersOf(mpn);
    if ((writers & (writers - 1)) !== 0 && this.counters.writesTo(mpn) >= this.current.writeSharedWrites) {
      this.left(vm, 'leftWriteShared');
      return;
    }
    const gppn = memory.guestPage[mpn]!;
    const key = gppnKey(vm, gppn);
    if ((this.frozenUntil.get(key) ?? -1) >= this.interval) {
      this.left(vm, 'leftFrozen');
      return;
    }
    // Replicated, then written: its copies were made for nothing, and a page written now and then would be
    // copied again after every quiet spell. It stays where it is for a freeze.
    if (vm.pmap.takeWrittenReplica(gppn)) {
      this.frozenUntil.set(key, this.interval + this.current.freezeIntervals);
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
      if (missing.length > 0 && this.counters.intervalsSinceWrite(mpn) >= 2) this.replicate(vm, mpn, gppn, missing, key);
      else this.left(vm, 'leftOther');
      return;
    }
    // Read by several nodes, none of them with most of the misses, and not written for a whole interval (a write
    // to a line other nodes read is a miss or an upgrade, so it shows): a copy on every node that reads it. A
    // page written once, when its data was made, is copied once the writing stops.
    if (counts[best]! < this.current.migrateShare * total && readers.length >= 2 && this.counters.intervalsSinceWrite(mpn) >= 2) {
      this.replicate(vm, mpn, gppn, readers, key);
      return;
    }
    // A VM confined to a cell never moves out of it (docs/cells.md).
    if (best === memory.nodeOf(mpn) || counts[best]! < this.current.migrateShare * total || !memory.allows(vm.id, best)) {
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
    h.chargeMonitor(cycles);
    for (const c of [this.counts, mine]) {
      c.migratedTo[memory.nodeOf(to)]!++;
      c.cycles += cycles;
    }
    this.counters.movePage(mpn, to);
    this.moved(key);
  }

  /** One more move (or replication) of a guest page; at `moveLimit` it is frozen. */
  private moved(key: number): void {
    const moves = (this.moves.get(key) ?? 0) + 1;
    this.moves.set(key, moves);
    if (moves >= this.current.moveLimit) {
      this.frozenUntil.set(key, this.interval + this.current.freezeIntervals);
      this.moves.set(key, 0);
    }
  }

  /**
   * Copies of `vm`'s page `gppn` (machine page `mpn`) on the nodes of `readers` without one. Each copy is
   * charged to a vCPU on its node (the table's `pageCopy`, the master's lines read and the copy's written
   * through that CPU's cache, the copy's memmap entry), and the shootdown of the master's mappings to the
   * first: an IPI per other vCPU.
   */
  private replicate(vm: VirtualMachine, mpn: number, gppn: number, readers: readonly number[], key: number): void {
    const memory = this.host.memory;
    const mark = vm.tlbShootdowns.slice();
    const made = vm.pmap.replicate(gppn, readers);
    if (made.length === 0) {
      this.left(vm, 'leftOther');
      return;
    }
    const mine = this.countsOf(vm);
    made.forEach((copy, i) => {
      const node = memory.nodeOf(copy);
      const h = this.chargedVcpu(vm, node);
      let cycles = this.copyCost(vm, h, mpn, copy, i === 0 ? vm.shootdownIpis(mark, h.id) : 0);
      const timing = h.memoryTiming;
      const cpu = this.host.lastCpu(vm, h);
      if (timing !== undefined && cpu >= 0) cycles += this.host.memmap.entry(timing, cpu, copy, true);
      h.chargeMonitor(cycles);
      // A copy's page counted misses for whatever it held before.
      this.counters.resetPage(copy);
      for (const c of [this.counts, mine]) {
        c.replicatedTo[node]!++;
        c.cycles += cycles;
      }
    });
    this.counters.resetPage(mpn);
    this.moved(key);
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

  private countsOf(vm: VirtualMachine): PolicyCounts {
    let c = this.perVm.get(vm.id);
    if (c === undefined) {
      c = noCounts(this.counters.nodes);
      this.perVm.set(vm.id, c);
    }
    return c;
  }

  private left(vm: VirtualMachine, why: 'leftWriteShared' | 'leftFrozen' | 'leftOther'): void {
    this.counts[why]++;
    this.countsOf(vm)[why]++;
  }
}

function gppnKey(vm: VirtualMachine, gppn: number): number {
  return vm.id * 2 ** 32 + gppn;
}

// Disco's NUMA policy: hot pages found by the machine's per-page miss counters, migrated at round boundaries
// to the node that misses on them, or replicated on the nodes that read them (docs/numa-policy.md). This is its
// driver: the clock, the counters' decay and the hot queue, which are the machine's; each cell decides for the
// hot pages on its own nodes (cell-policy.ts).

import { LocalityHistory, type LocalityState } from './locality-history.js';
import type { MissCounters } from '../timing/miss-counters.js';
import type { Hart } from '../cpu/hart.js';
import type { MachineMemory } from './machine-memory.js';
import type { MemmapTable } from './monitor-data.js';
import type { MonitorCosts } from './costs.js';
import type { VirtualMachine } from './vm.js';
import { copyLargePageCounts, type LargePageCounts } from './large-pages.js';
import { CellPolicy, type CellPolicyState } from './cell-policy.js';
import { copyCounts, PolicyTally, type PolicyCounts } from './policy-tally.js';
import { DeadCellError, type CellObjects } from './revocable.js';

export type { PolicyCounts };

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

/** The policy as plain data (snapshots): its parameters, whether it acts, its clock, what it did, and each cell's state. */
export interface PolicyState {
  parameters: NumaPolicyParameters;
  enabled: boolean;
  rounds: number;
  interval: number;
  /** Local and remote misses per interval (`LocalityHistory`), and the counts at the last interval's end. */
  locality: LocalityState;
  missesAtInterval: { local: number; remote: number };
  counts: PolicyCounts;
  perVm: { vm: number; counts: PolicyCounts }[];
  /** What it did with whole groups (large-pages.ts), in all and per VM. */
  large: { counts: LargePageCounts; perVm: { vm: number; counts: LargePageCounts }[] };
  /** Each cell's records of its pages and groups, by cell id (one with one cell). */
  cells: CellPolicyState[];
}

/** What the policy needs of the monitor. */
export interface PolicyHost {
  readonly memory: MachineMemory;
  readonly memmap: MemmapTable;
  readonly costs: MonitorCosts;
  readonly vms: readonly VirtualMachine[];
  /** The cell of each node (all 0 with one cell). */
  readonly cellOfNode: readonly number[];
  /** The cells' revocable objects (several cells): each cell's policy state is made through them. */
  readonly objects?: CellObjects;
  /** True while the cells recover from a fault (cell-recovery.ts): no cell acts. */
  paused(): boolean;
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
 * halves the counters (and queues again the pages still hot); each round it takes the pages that became hot,
 * in the order they did, and hands each to the policy state of the cell whose node holds it (`CellPolicy`,
 * cell-policy.ts, which decides: migrate, replicate, or leave it), then lets each live cell look at its large
 * groups. Reading the machine's miss counters, their decay and the hot queue are the hardware's, not a cell's,
 * so they stay here, with the clock; so do the statistics (`PolicyTally`). With several cells each cell's state
 * is made through the cells' revocable objects: once a cell has failed, its state throws `DeadCellError`, the
 * hot pages on its nodes are left (its memory is given up), and the other cells go on. While the cells recover,
 * no cell acts and the hot pages wait in the queue. With one cell there is one state and no proxy: the policy
 * is what it was before cells, move for move.
 */
export class NumaPolicy {
  /** What the policy did, in all and per VM (the statistics). */
  readonly tally: PolicyTally;
  private rounds = 0;
  private interval = 0;
  /** Local and remote misses interval by interval (the signal's): `stats`' local misses over time. */
  readonly locality = new LocalityHistory();
  private missesAtInterval = { local: 0, remote: 0 };
  /** Each cell's state, by cell id: proxies that throw once the cell has failed (several cells). */
  private readonly cellStates: CellPolicy[];

  private current: NumaPolicyParameters;
  private on = true;

  /**
   * `parameters` must be usable (`policyProblems` finds nothing: Monitor.setPolicy checks); `counters` count
   * `signal`'s events.
   */
  constructor(private readonly host: PolicyHost, private readonly counters: MissCounters, parameters: NumaPolicyParameters, readonly signal: PolicySignal = 'cache-misses') {
    this.current = { ...parameters };
    this.tally = new PolicyTally(counters.nodes);
    counters.queueHot(...this.triggers(parameters));
    this.missesAtInterval = host.signalMisses();
    const cells = Math.max(...host.cellOfNode) + 1;
    this.cellStates = Array.from({ length: cells }, (_, id) => this.makeCellState(id, cells));
  }

  /** Cell `id`'s policy state, empty: through the cells' revocable objects with several cells. */
  private makeCellState(id: number, cells: number): CellPolicy {
    const host = this.host;
    const state = new CellPolicy(host, this.counters, this.tally, {
      id,
      holds: (node) => host.cellOfNode[node] === id,
      // What goes with a page or a block moved to another cell's node: that cell keeps its record from now on.
      handOverPage: (key, node, record) => this.cellStates[host.cellOfNode[node]!]!.adoptPage(key, record),
      handOverGroup: (key, node, record) => this.cellStates[host.cellOfNode[node]!]!.adoptGroup(key, record),
    });
    if (cells === 1 || host.objects === undefined) return state;
    // A policy turned on after a cell failed: that cell gets none.
    return host.objects.isRevoked(id) ? failedCellState(id) : host.objects.create(id, state);
  }

  /**
   * Cell `cell`, failed, rejoins (readmitted among the revocable objects: cells.md, "Repair"): its policy state
   * is made again, empty, as its new generation. Its old state keeps throwing.
   */
  readmitCell(cell: number): void {
    this.cellStates[cell] = this.makeCellState(cell, this.cellStates.length);
  }

  /** The triggers of the policy's signal: from one node, and from all nodes together. */
  private triggers(p: NumaPolicyParameters): [number, number] {
    return this.signal === 'tlb-misses' ? [p.tlbHotMisses, p.tlbSharedHotMisses] : [p.hotMisses, p.sharedHotMisses];
  }

  /** What the policy did, in all (the statistics). */
  get counts(): PolicyCounts {
    return this.tally.counts;
  }

  /** What it did per VM. */
  get perVm(): ReadonlyMap<number, PolicyCounts> {
    return this.tally.perVm;
  }

  /** What it did with whole 2 MiB groups, in all and per VM (large-pages.ts). */
  get large(): PolicyTally['large'] {
    return this.tally.large;
  }

  /** Cell `cell`'s policy state (with several cells a proxy: it throws DeadCellError once the cell has failed). */
  cell(cell: number): CellPolicy {
    const state = this.cellStates[cell];
    if (state === undefined) throw new RangeError(`no cell ${cell}: there are cells 0 to ${this.cellStates.length - 1}`);
    return state;
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

  /** The whole state; every cell must be live (a snapshot of a machine that had faults is refused before). */
  saveState(): PolicyState {
    const large = this.tally.large;
    return {
      parameters: this.parameters, enabled: this.on, rounds: this.rounds, interval: this.interval,
      locality: this.locality.saveState(), missesAtInterval: { ...this.missesAtInterval },
      counts: copyCounts(this.tally.counts), perVm: [...this.tally.perVm].map(([vm, counts]) => ({ vm, counts: copyCounts(counts) })),
      large: { counts: copyLargePageCounts(large.counts), perVm: [...large.perVm].map(([vm, counts]) => ({ vm, counts: copyLargePageCounts(counts) })) },
      // Copied out of each cell's state: with several cells what its methods return are its proxies.
      cells: this.cellStates.map((state) => plainCellState(state.saveState())),
    };
  }

  /**
   * Puts back what `saveState` returned into a policy made with the same parameters and cells (the caller has
   * checked every value), turning it off if it was.
   */
  restoreState(s: PolicyState): void {
    if (s.cells.length !== this.cellStates.length) throw new RangeError(`the policy's state has ${s.cells.length} cells' parts, the policy ${this.cellStates.length}`);
    this.rounds = s.rounds;
    this.interval = s.interval;
    this.locality.restoreState(s.locality);
    this.missesAtInterval = { ...s.missesAtInterval };
    const t = this.tally;
    Object.assign(t.counts, copyCounts(s.counts));
    t.perVm.clear();
    for (const { vm, counts } of s.perVm) t.perVm.set(vm, copyCounts(counts));
    Object.assign(t.large.counts, copyLargePageCounts(s.large.counts));
    t.large.perVm.clear();
    for (const { vm, counts } of s.large.perVm) t.large.perVm.set(vm, copyLargePageCounts(counts));
    s.cells.forEach((cell, id) => this.cellStates[id]!.restoreState(cell));
    if (!s.enabled) this.disable();
  }

  afterRound(): void {
    if (!this.on) return;
    if (++this.rounds % this.current.intervalRounds === 0) {
      this.interval++;
      this.counters.decay();
      this.sampleLocality();
    }
    // A cell the survivors may yet leave out still has its state until they decide: the pages wait.
    if (this.host.paused()) return;
    const objects = this.host.objects;
    for (const mpn of this.counters.takeHot()) {
      const cell = this.host.cellOfNode[this.host.memory.nodeOf(mpn)]!;
      // A failed cell's memory is given up, and so is its state: the page is left.
      if (objects?.isRevoked(cell) === true) this.tally.counts.leftOther++;
      else this.cellStates[cell]!.considerWithLargePages(mpn, this.current, this.interval);
    }
    this.cellStates.forEach((state, cell) => {
      if (objects?.isRevoked(cell) !== true) state.afterRound(this.current, this.interval);
    });
  }

  /** Adds the interval that just ended to `locality` (counts that went back, a statistics reset, start again). */
  private sampleLocality(): void {
    const now = this.host.signalMisses();
    const was = this.missesAtInterval;
    const since = (key: 'local' | 'remote'): number => (now[key] >= was[key] ? now[key] - was[key] : now[key]);
    this.locality.add(this.host.now(), since('local'), since('remote'));
    this.missesAtInterval = { ...now };
  }
}

/** The state of a cell that had failed before the policy was made: touching it throws, as a revoked state does. */
function failedCellState(cell: number): CellPolicy {
  return new Proxy({} as CellPolicy, { get: () => { throw new DeadCellError(cell); } });
}

/** A cell's saved state as plain arrays of its own (not the cell's proxies). */
function plainCellState(s: CellPolicyState): CellPolicyState {
  const { large } = s;
  return {
    moves: Float64Array.from(s.moves), frozenUntil: Float64Array.from(s.frozenUntil),
    large: { swept: large.swept, moves: Float64Array.from(large.moves), frozenUntil: Float64Array.from(large.frozenUntil), replicated: Float64Array.from(large.replicated) },
  };
}

export type { CellPolicyState };

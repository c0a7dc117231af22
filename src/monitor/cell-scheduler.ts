// Run queues per cell (Cellular Disco: each cell schedules its own CPUs). With several cells the monitor's
// scheduler is one `Scheduler` per cell over that cell's CPUs, each made through the cells' revocable
// objects (revocable.ts), so that a failed cell's run queues throw on any access; this class routes each
// call to the cell that owns the CPU or the vCPU, and never reaches into a failed cell (docs/cells.md).
//
// - A VM confined to a cell is in that cell's scheduler alone. A VM that spans cells has each vCPU in one of
//   them, dealt round-robin by index from its home node's cell (`cellOfVcpu`), so that vCPU 0 runs where its
//   devices and the monitor's data for it are, and every cell it spans runs part of it; each cell keeps its
//   own virtual time for its part. With gang scheduling a spanning VM whose vCPUs fit in its home cell's CPUs
//   is scheduled there whole.
// - Gangs across cells (gang scheduling, a VM larger than a cell): the cells run its parts at the same time by
//   a fixed rotation of time slots that each cell derives from the placement, which all know (gang-slots.ts,
//   Ousterhout's matrix): slots of `quantumRounds` rounds on the machine's clock, the spanning gangs packed
//   into rows where they fit together, and one row for the VMs confined to the cells they use. In its slot each
//   cell it spans runs every runnable vCPU of its part first and fills the CPUs left with its own VMs; outside
//   it, none runs any of it. No message per round, and no cell waits for another, so nothing can deadlock. A
//   vCPU in WFI is idle, not part of what must run together: it runs when woken, in its gang's next slot.
// - The balancers (cell-balancers.ts) read the cells' run queues and move vCPUs through `move`.
// - The idle balancer (`idleBalance`, Cellular Disco's; off by default): a vCPU left waiting in one cell's run
//   queue while another cell has a CPU its pick left idle moves to the nearest such cell, and runs there from
//   the next round. The VM now depends on that cell too (the monitor records it). With gangs a VM confined to a
//   cell moves whole, all its vCPUs, to the nearest cell whose pick left idle CPUs for every one of them; a
//   spanning gang never moves.
// - The periodic balancer (`balancePeriodRounds`, Cellular Disco's; off by default): every period it walks a
//   binary tree over the cells (leaves in id order) from the root, comparing each node's two subtrees by their
//   load, the runnable vCPUs per CPU averaged over the period. Where a move from the heavier side's most loaded
//   cell to the lighter side's least loaded narrows the gap, it makes it, and it never splits a VM across cells
//   to do it: without gangs one vCPU, of a VM already scheduled in the target cell or the only vCPU of a VM;
//   with gangs a whole VM confined to the cell, all its vCPUs (one whose vCPUs wait first, then by id).
// - With one cell it is exactly one `Scheduler` over every CPU, numbered as the machine numbers them.
// - The whole state saved (`saveState`) keeps the machine's CPU numbering and one record per VM, as with one
//   cell, plus each cell's virtual times (`cellTimes`) when there are several.

import { DEFAULT_HANDLER_CYCLES, DEFAULT_LATENCY, type CellBus } from './cell-bus.js';
import type { CellObjects } from './revocable.js';
import { balanceIdle, balancePeriodic, type BalancerView } from './cell-balancers.js';
import { gangSlots, slotAt } from './gang-slots.js';
import { SECOND_LEVEL_ENTRY_BYTES } from './monitor-data.js';
import { DEFAULT_QUANTUM_ROUNDS, Scheduler, type SchedVcpu, type SchedVmOptions, type SchedulerState, type SchedulerVmState } from './scheduler.js';

/**
 * What moving a vCPU to another cell costs, in cycles (documented parameters, docs/cells.md): the cells' handoff
 * (the bus's round trip for `sched.give`: 2 × 300 + 100 with its defaults, cell-bus.ts; `handoff` without a
 * bus), and copying the vCPU's state and its second-level TLB to the new cell at the page copy's rate (a load
 * and a store per 8-byte word: 256 cycles a KiB, costs.ts). The caches and first-level TLB the vCPU finds cold
 * there cost what the timing model charges as it runs (nothing in fast mode).
 */
export const CELL_MIGRATION = { handoff: 2 * DEFAULT_LATENCY + DEFAULT_HANDLER_CYCLES, cyclesPerKiB: 256, stateBytes: 1024, secondLevelEntryBytes: SECOND_LEVEL_ENTRY_BYTES } as const;

/** A move's cycles: `handoff` (the bus's round trip, when the move went through it) and the copies. */
export function cellMigrationCycles(secondLevelEntries: number, handoff: number = CELL_MIGRATION.handoff, costs: { cyclesPerKiB: number; stateBytes: number; secondLevelEntryBytes: number } = CELL_MIGRATION): number {
  return handoff + Math.ceil((costs.cyclesPerKiB * (costs.stateBytes + secondLevelEntries * costs.secondLevelEntryBytes)) / 1024);
}

/** The request a cell makes of another for some of its vCPUs, of one VM (a balancer's move), and the op's name. */
interface GiveArgs { vm: number; indices: number[] }
const GIVE = 'sched.give';

export interface CellSchedulerOptions {
  /** The NUMA node of each physical CPU (its length is the number of CPUs). */
  pcpuNodes: readonly number[];
  quantumRounds?: number;
  /** Gang scheduling in every cell (scheduler.ts). */
  gang?: boolean;
  /** The CPUs of each cell, disjoint (default: one cell of every CPU). */
  cells?: readonly (readonly number[])[];
  /** The cells' revocable objects: each cell's scheduler is made through them (several cells only). */
  objects?: CellObjects;
  /** The idle balancer between cells (default off). */
  idleBalance?: boolean;
  /** The periodic balancer between cells: rounds between its runs (default 0: off). */
  balancePeriodRounds?: number;
  /** The distance between two nodes (the machine's table): which cell is nearest (default |a − b|). */
  nodeDistance?: (a: number, b: number) => number;
  /**
   * The cells' bus (several cells): a balancer's move is the taking cell's request to the giving one, which
   * takes the vCPU out of its own run queue (at most once); without, the move is made directly.
   */
  bus?: CellBus;
  /**
   * Simulated time, for the bus's requests and the spanning gangs' slots (default: the rounds picked so far
   * times `roundCycles`).
   */
  now?: () => number;
  /** Cycles of a round (the machine's slice, 4096): a slot lasts `quantumRounds` of them. */
  roundCycles?: number;
}

/** A round's cycles when the caller does not say (board/machine.ts's SLICE). */
const ROUND_CYCLES = 4096;

/** A vCPU moved to another cell by a balancer, at a pick, and what the handoff between the cells cost. */
export interface CellMigration {
  vm: number;
  index: number;
  from: number;
  to: number;
  handoff: number;
}

export interface CellVmOptions extends SchedVmOptions {
  /** The cells the VM is placed in (default the first); with one, its vCPUs run only on that cell's CPUs. */
  cells?: readonly number[];
}

/** Where each vCPU of a VM is scheduled (several cells): the cell of each, by index. */
export interface VcpuCells {
  id: number;
  cells: Int32Array;
}

/** The periodic balancer's period so far: its rounds, and each cell's runnable vCPUs summed over them. */
export interface BalancePeriod {
  rounds: number;
  loads: Float64Array;
}

/** The whole state: with several cells, each cell's virtual times, every vCPU's cell and the balancer's period too. */
export type CellSchedulerState = SchedulerState & { cellTimes?: CellTimes[]; vcpuCells?: VcpuCells[]; period?: BalancePeriod };

/** One cell's virtual times, beside the whole state (several cells). */
export interface CellTimes {
  virtualTimeFloor: number;
  /** Per VM with vCPUs in the cell: its id, its virtual time there, and whether it was runnable last round there. */
  vms: { id: number; virtualTime: number; runnableLastRound: boolean }[];
}

interface Part {
  readonly cell: number;
  /** The VM's vCPUs this cell schedules, by index, ascending. */
  readonly indices: number[];
}

export class CellScheduler {
  private readonly pcpuNodes: readonly number[];
  private readonly cellCpus: readonly (readonly number[])[];
  /** Per CPU: its cell and its number in that cell's scheduler. */
  private readonly cpuCell: number[];
  private readonly localOf: number[];
  private readonly schedulers: Scheduler[];
  private readonly parts = new Map<number, Part[]>();
  /** Each VM's vCPUs, by index. */
  private readonly vcpusOf = new Map<number, SchedVcpu[]>();
  private readonly retired = new Set<number>();
  /** Each VM's share and home node, for its vCPUs that move. */
  private readonly shares = new Map<number, number | undefined>();
  private readonly homes = new Map<number, number | undefined>();
  private migrations: CellMigration[] = [];
  /** The spanning gangs' slots (gang-slots.ts), made again whenever the placement or the CPUs change. */
  private rows: number[][] | undefined;
  private rounds = 0;
  /** Migrations so far (each cell's parts then differ from how `addVm` dealt them). */
  migrated = 0;

  constructor(private readonly options: CellSchedulerOptions) {
    this.pcpuNodes = [...options.pcpuNodes];
    const all = this.pcpuNodes.map((_, p) => p);
    this.cellCpus = options.cells === undefined || options.cells.length <= 1 ? [all] : options.cells.map((c) => [...c].sort((a, b) => a - b));
    this.cpuCell = all.map(() => -1);
    this.localOf = all.map(() => -1);
    this.cellCpus.forEach((cpus, cell) => cpus.forEach((p, local) => {
      if (this.cpuCell[p] !== -1) throw new Error(`scheduler: CPU ${p} is in two cells`);
      this.cpuCell[p] = cell;
      this.localOf[p] = local;
    }));
    if (this.cpuCell.some((c) => c < 0)) throw new Error('scheduler: every CPU must be in a cell');
    this.loadSums.push(...this.cellCpus.map(() => 0));
    this.view = this.makeView();
    const period = options.balancePeriodRounds ?? 0;
    if (!(Number.isInteger(period) && period >= 0)) throw new RangeError(`scheduler: the balancer's period must be a whole number of rounds, not ${period}`);
    this.schedulers = this.cellCpus.map((cpus, cell) => {
      const scheduler = new Scheduler({ pcpuNodes: cpus.map((p) => this.pcpuNodes[p]!), quantumRounds: options.quantumRounds, gang: options.gang });
      return this.cellCpus.length > 1 && options.objects !== undefined ? options.objects.create(cell, scheduler) : scheduler;
    });
    // A cell gives up a vCPU of its own run queue when another asks (a balancer's move): counted, so at most once.
    if (options.bus !== undefined && this.cellCpus.length > 1) {
      for (let cell = 0; cell < this.cellCpus.length; cell++) {
        options.bus.handle<GiveArgs, boolean>(cell, GIVE, (args) => this.give(cell, args));
      }
    }
  }

  /** Whether each cell gang-schedules (scheduler.ts). */
  get gang(): boolean {
    return this.options.gang === true;
  }

  addVm(vm: number, vcpus: readonly SchedVcpu[], options: CellVmOptions = {}): void {
    if (this.parts.has(vm)) throw new Error(`scheduler: VM ${vm} is already added`);
    const cells = options.cells ?? [0];
    if (cells.length === 0) throw new Error(`scheduler: VM ${vm} is in no cell`);
    for (const c of cells) if (!(Number.isInteger(c) && c >= 0 && c < this.cellCpus.length)) throw new RangeError(`scheduler: there is no cell ${c}`);
    const sorted = [...vcpus].sort((a, b) => a.index - b.index);
    const parts: Part[] = [];
    const start = this.homePlace(cells, options.homeNode);
    // A gang runs together only within one cell: with gangs, a VM whose vCPUs fit in its home cell's CPUs is
    // scheduled there whole, whatever cells its memory spans.
    const whole = this.gang && sorted.length <= this.cellCpus[cells[start]!]!.length;
    cells.forEach((cell, k) => {
      const mine = whole ? (k === start ? sorted : []) : sorted.filter((_, i) => (start + i) % cells.length === k);
      if (mine.length === 0) return;
      const home = options.homeNode !== undefined && this.cellCpus[cell]!.some((p) => this.pcpuNodes[p] === options.homeNode) ? options.homeNode : undefined;
      this.live(cell).addVm(vm, mine, { share: options.share, homeNode: home });
      parts.push({ cell, indices: mine.map((v) => v.index) });
    });
    this.parts.set(vm, parts);
    // A gang over several cells runs in its slots only (gang-slots.ts).
    if (this.gang && parts.length > 1) for (const part of parts) this.live(part.cell).setSlotted(vm, true);
    this.rows = undefined;
    this.shares.set(vm, options.share);
    this.homes.set(vm, options.homeNode);
    this.vcpusOf.set(vm, sorted);
  }

  /**
   * The cell `addVm` deals vCPU `index` of a VM of `vcpus` vCPUs in `cells` with home node `homeNode` to: the
   * (h + index mod k)-th of its k cells, h being its home node's cell's place among them (0 when none is); with
   * gangs, the h-th for every vCPU when they all fit in its CPUs.
   */
  cellOfVcpu(cells: readonly number[], homeNode: number | undefined, index: number, vcpus = 1): number {
    const start = this.homePlace(cells, homeNode);
    if (this.gang && vcpus <= this.cellCpus[cells[start]!]!.length) return cells[start]!;
    return cells[(start + index) % cells.length]!;
  }

  private homePlace(cells: readonly number[], homeNode: number | undefined): number {
    if (homeNode === undefined) return 0;
    const place = cells.findIndex((c) => this.cellCpus[c]?.some((p) => this.pcpuNodes[p] === homeNode) === true);
    return Math.max(0, place);
  }

  removeVm(vm: number): void {
    const parts = this.parts.get(vm);
    if (parts === undefined) throw new Error(`scheduler: there is no VM ${vm} to remove`);
    // A failed cell's part is left where it is: its state is gone with it.
    for (const part of parts) if (!this.revoked(part.cell)) this.schedulers[part.cell]!.removeVm(vm);
    this.parts.delete(vm);
    this.rows = undefined;
    this.shares.delete(vm);
    this.homes.delete(vm);
    this.vcpusOf.delete(vm);
  }

  /** Each cell picks for its own CPUs; a failed cell's CPUs run nothing. */
  pick(): (SchedVcpu | undefined)[] {
    const next: (SchedVcpu | undefined)[] = this.pcpuNodes.map(() => undefined);
    const inSlot = this.inSlot();
    this.rounds++;
    this.schedulers.forEach((scheduler, cell) => {
      if (this.revoked(cell)) return;
      const picked = scheduler.pick(inSlot);
      for (let local = 0; local < picked.length; local++) next[this.cellCpus[cell]![local]!] = this.own(picked[local]);
    });
    if (this.options.idleBalance === true && this.cellCpus.length > 1) {
      const idle = new Map(this.view.live().map((c) => [c, this.cellCpus[c]!.filter((p) => next[p] === undefined && !this.retired.has(p)).length]));
      balanceIdle(this.view, idle, this.options.nodeDistance ?? ((a: number, b: number) => Math.abs(a - b)));
    }
    const period = this.options.balancePeriodRounds ?? 0;
    if (period > 0 && this.cellCpus.length > 1) {
      this.schedulers.forEach((scheduler, cell) => {
        if (this.revoked(cell)) return;
        this.loadSums[cell]! += this.cellCpus[cell]!.filter((p) => next[p] !== undefined).length + scheduler.waiting.length;
      });
      if (++this.periodRounds >= period) {
        balancePeriodic(this.view, this.loadSums.map((sum) => sum / this.periodRounds));
        this.periodRounds = 0;
        this.loadSums.fill(0);
      }
    }
    return next;
  }

  /** The spanning gangs' rows, in rotation (gang-slots.ts; none without gangs or spanning gangs). */
  get slots(): readonly (readonly number[])[] {
    if (this.rows === undefined) {
      const gangs = this.gang ? [...this.parts].filter(([, parts]) => parts.length > 1).map(([vm, parts]) => ({ vm, parts: parts.map((p) => ({ cell: p.cell, vcpus: p.indices.length })) })) : [];
      // A failed cell's part never runs again (its VM ends): it takes no room.
      const capacity = this.cellCpus.map((cpus, cell) => (this.revoked(cell) ? Infinity : cpus.filter((p) => !this.retired.has(p)).length));
      const confinedIn = new Set([...this.parts.values()].filter((parts) => parts.length === 1).map((parts) => parts[0]!.cell));
      this.rows = gangSlots(gangs, capacity, confinedIn);
    }
    return this.rows;
  }

  /** The spanning VMs whose slot this round is: the same in every cell, from the machine's clock. */
  private inSlot(): ReadonlySet<number> | undefined {
    const rows = this.slots;
    if (rows.length === 0) return undefined;
    const roundCycles = this.options.roundCycles ?? ROUND_CYCLES;
    const now = this.options.now?.() ?? this.rounds * roundCycles;
    return new Set(rows[slotAt(now, (this.options.quantumRounds ?? DEFAULT_QUANTUM_ROUNDS) * roundCycles, rows.length)]);
  }

  /** Per cell, the runnable vCPUs summed over the rounds of the period so far. */
  private readonly loadSums: number[] = [];
  private periodRounds = 0;

  /** What the balancers (cell-balancers.ts) read, and their moves (made with the options, in the constructor). */
  private readonly view: BalancerView;

  private makeView(): BalancerView {
    return {
      gang: this.gang,
      live: () => this.cellCpus.map((_, c) => c).filter((c) => !this.revoked(c)),
      cpus: (cell) => this.cellCpus[cell]!.filter((p) => !this.retired.has(p)).length,
      nodeOf: (cell) => this.pcpuNodes[this.cellCpus[cell]![0]!]!,
      // The cell's list hands out its proxies: the monitor's own objects.
      waiting: (cell) => this.schedulers[cell]!.waiting.map((v) => this.own(v)!),
      parts: () => this.parts,
      vcpus: (vm) => this.vcpusOf.get(vm)!,
      move: (vm, indices, from, to) => this.move(vm, indices, from, to),
    };
  }

  /** The vCPUs the balancers moved since the last call. */
  takeMigrations(): CellMigration[] {
    const taken = this.migrations;
    this.migrations = [];
    return taken;
  }

  /** The cell CPU `pcpu` is in. */
  cellOfCpu(pcpu: number): number {
    return this.cpuCell[this.checkPcpu(pcpu)]!;
  }

  /** The cell vCPU `index` of VM `vm` is scheduled in now. */
  cellOf(vm: number, index: number): number {
    const part = this.partsOf(vm).find((p) => p.indices.includes(index));
    if (part === undefined) throw new Error(`scheduler: VM ${vm} has no vCPU ${index}`);
    return part.cell;
  }

  /**
   * vCPUs `indices` of VM `vm` go from cell `from`'s run queue to cell `to`'s, all or none: with a bus, `to` asks
   * `from` for them in one request, and only if `from` gave them up (it answered, and still had every one) does
   * `to` take them. Each is a move of its own, paid by its vCPU (the handoff, and its copies). Returns whether
   * they moved.
   */
  private move(vm: number, indices: number[], from: number, to: number): boolean {
    let handoff: number = CELL_MIGRATION.handoff;
    const bus = this.options.bus;
    if (bus !== undefined) {
      const answer = bus.call<boolean>(to, from, GIVE, { vm, indices } satisfies GiveArgs, { now: this.options.now?.() ?? 0 });
      if (!answer.ok || !answer.value) return false;
      handoff = answer.cycles;
    } else if (!this.give(from, { vm, indices })) return false;
    for (const index of indices) {
      // The taking cell holds the monitor's own vCPU, never a proxy read out of the giving cell's state: that
      // nested a proxy per move, and tied the new cell's run queue to the old cell's life (cell-scheduler.test.ts).
      this.take(this.vcpusOf.get(vm)!.find((v) => v.index === index)!, to);
      this.migrations.push({ vm, index, from, to, handoff });
      this.migrated++;
    }
    return true;
  }

  /** Cell `to` takes vCPU `v` into its run queue (another gave it up). */
  private take(v: SchedVcpu, to: number): void {
    const parts = this.partsOf(v.vm);
    const target = parts.find((p) => p.cell === to);
    if (target === undefined) parts.push({ cell: to, indices: [v.index] });
    else {
      target.indices.push(v.index);
      target.indices.sort((a, b) => a - b);
    }
    // A cell that holds the VM's home node places its vCPUs there, as `addVm` does.
    const home = this.homes.get(v.vm);
    const homeHere = home !== undefined && this.cellCpus[to]!.some((p) => this.pcpuNodes[p] === home);
    this.schedulers[to]!.addVcpu(v, { share: this.shares.get(v.vm), homeNode: homeHere ? home : undefined });
    this.rows = undefined;
  }

  /** Cell `cell` gives up vCPUs `args` of its run queue (another cell takes them): false, giving none, if it no longer has them all. */
  private give(cell: number, args: GiveArgs): boolean {
    const parts = this.parts.get(args.vm);
    const source = parts?.find((p) => p.cell === cell);
    if (parts === undefined || source === undefined || !args.indices.every((index) => source.indices.includes(index))) return false;
    for (const index of args.indices) {
      source.indices.splice(source.indices.indexOf(index), 1);
      this.schedulers[cell]!.removeVcpu(args.vm, index);
    }
    if (source.indices.length === 0) parts.splice(parts.indexOf(source), 1);
    this.rows = undefined;
    return true;
  }

  charge(v: SchedVcpu, cycles: number): void {
    const part = this.parts.get(v.vm)?.find((p) => p.indices.includes(v.index));
    // A VM removed during the round has nothing left to account to.
    if (part === undefined) {
      if (!Number.isFinite(cycles) || cycles < 0) throw new Error(`scheduler: cannot charge ${cycles} cycles`);
      return;
    }
    this.live(part.cell).charge(v, cycles);
  }

  /** The vCPU whose state CPU `pcpu` holds (none known for a failed cell's CPU). */
  lastOn(pcpu: number): SchedVcpu | undefined {
    const cell = this.cellOfCpu(pcpu);
    return this.revoked(cell) ? undefined : this.own(this.schedulers[cell]!.lastOn(this.localOf[pcpu]!));
  }

  /**
   * The vCPU the monitor added for one a cell's scheduler reports. What is read out of a cell's revocable state
   * is its proxy (revocable.ts), what a method of it hands a callback is not: `pick` and `lastOn` must give the
   * same object for the same vCPU, since the monitor makes a world switch (its cost, and the first-level TLB
   * emptied) whenever a CPU's pick is not what it held. Once its VM is removed, the cell's own answer.
   */
  private own(v: SchedVcpu | undefined): SchedVcpu | undefined {
    if (v === undefined) return undefined;
    return this.vcpusOf.get(v.vm)?.find((x) => x.index === v.index) ?? v;
  }

  switches(pcpu: number): number {
    const cell = this.cellOfCpu(pcpu);
    return this.revoked(cell) ? 0 : this.schedulers[cell]!.switches(this.localOf[pcpu]!);
  }

  /** CPU `pcpu` failed: its cell gives it no vCPU again. */
  retirePcpu(pcpu: number): void {
    const cell = this.cellOfCpu(pcpu);
    this.retired.add(pcpu);
    this.rows = undefined;
    if (!this.revoked(cell)) this.schedulers[cell]!.retirePcpu(this.localOf[pcpu]!);
  }

  /** CPU `pcpu`, retired, runs again (its hardware was repaired): its cell gives it vCPUs from the next pick. */
  revivePcpu(pcpu: number): void {
    const cell = this.cellOfCpu(pcpu);
    this.retired.delete(pcpu);
    this.rows = undefined;
    if (!this.revoked(cell)) this.schedulers[cell]!.revivePcpu(this.localOf[pcpu]!);
  }

  /**
   * Cell `cell`, failed and readmitted among the revocable objects, runs again: a new scheduler over its CPUs,
   * its run queues empty, made through the objects as a new generation (the old one's proxies keep throwing).
   * Its CPUs still retired stay so.
   */
  readmitCell(cell: number): void {
    if (this.revoked(cell)) throw new Error(`scheduler: cell ${cell} is still revoked`);
    const cpus = this.cellCpus[cell]!;
    const scheduler = new Scheduler({ pcpuNodes: cpus.map((p) => this.pcpuNodes[p]!), quantumRounds: this.options.quantumRounds, gang: this.options.gang });
    cpus.forEach((p, local) => { if (this.retired.has(p)) scheduler.retirePcpu(local); });
    this.schedulers[cell] = this.options.objects!.create(cell, scheduler);
    this.loadSums[cell] = 0;
    this.rows = undefined;
  }

  get pcpusInUse(): number {
    return this.pcpuNodes.length - this.retired.size;
  }

  /** The CPUs' count and nodes (a restore checks a saved scheduler against them). */
  get pcpus(): readonly number[] {
    return this.pcpuNodes;
  }

  /** VM `vm`'s part, in the machine's CPU numbering; a spanning VM's virtual time is its greatest over its cells. */
  saveVm(vm: number): SchedulerVmState {
    const parts = this.partsOf(vm);
    const saved = parts.map((part) => ({ part, s: this.live(part.cell).saveVm(vm) }));
    const first = saved[0]!.s;
    const vcpus = parts.reduce((n, p) => n + p.indices.length, 0);
    const out: SchedulerVmState = {
      id: vm, share: first.share, homeNode: saved.find((x) => x.s.homeNode >= 0)?.s.homeNode ?? -1,
      virtualTime: Math.max(...saved.map((x) => x.s.virtualTime)), runnableLastRound: saved.some((x) => x.s.runnableLastRound),
      cycles: new Float64Array(vcpus), lastPcpu: new Int32Array(vcpus).fill(-1), roundsHeld: new Float64Array(vcpus),
      holding: new Int32Array(this.pcpuNodes.length).fill(-1), lastOn: new Int32Array(this.pcpuNodes.length).fill(-1),
    };
    for (const { part, s } of saved) {
      const cpus = this.cellCpus[part.cell]!;
      part.indices.forEach((index, i) => {
        out.cycles[index] = s.cycles[i]!;
        out.lastPcpu[index] = s.lastPcpu[i]! < 0 ? -1 : cpus[s.lastPcpu[i]!]!;
        out.roundsHeld[index] = s.roundsHeld[i]!;
      });
      // Per vCPU lists go by place in the part; what a CPU holds is named by the vCPU's own index.
      s.holding.forEach((index, local) => { if (index >= 0) out.holding[cpus[local]!] = index; });
      s.lastOn.forEach((index, local) => { if (index >= 0) out.lastOn[cpus[local]!] = index; });
    }
    return out;
  }

  /** Puts VM `vm`'s part back (after `addVm` with the saved share and home); each cell's part takes the saved virtual time. */
  restoreVm(vm: number, s: SchedulerVmState): void {
    for (const part of this.partsOf(vm)) this.live(part.cell).restoreVm(vm, this.localVm(part, s));
  }

  /** Everything, in the machine's CPU numbering (with several cells, `cellTimes` and `vcpuCells` too). */
  saveState(): CellSchedulerState {
    if (this.cellCpus.length === 1) return this.schedulers[0]!.saveState();
    const pairs = (key: 'holders' | 'lastRun'): Int32Array => {
      const out = new Int32Array(2 * this.pcpuNodes.length).fill(-1);
      this.forLive((scheduler, cell) => {
        const local = scheduler.saveState()[key];
        this.cellCpus[cell]!.forEach((p, l) => {
          const vm = local[2 * l]!;
          if (vm < 0) return;
          out[2 * p] = vm;
          out[2 * p + 1] = local[2 * l + 1]!;
        });
      });
      return out;
    };
    const switchCounts = new Float64Array(this.pcpuNodes.length);
    const cellTimes: CellTimes[] = this.cellCpus.map(() => ({ virtualTimeFloor: 0, vms: [] }));
    this.forLive((scheduler, cell) => {
      const state = scheduler.saveState();
      this.cellCpus[cell]!.forEach((p, l) => { switchCounts[p] = state.switchCounts[l]!; });
      cellTimes[cell] = { virtualTimeFloor: state.virtualTimeFloor, vms: state.vms.map((v) => ({ id: v.id, virtualTime: v.virtualTime, runnableLastRound: v.runnableLastRound })) };
    });
    const ids = [...this.parts.keys()].sort((a, b) => a - b);
    const vcpuCells = ids.map((id) => {
      const cells = new Int32Array(this.vcpusOf.get(id)!.length);
      for (const part of this.parts.get(id)!) for (const index of part.indices) cells[index] = part.cell;
      return { id, cells };
    });
    return {
      vms: ids.map((vm) => this.saveVm(vm)), holders: pairs('holders'), lastRun: pairs('lastRun'),
      switchCounts, virtualTimeFloor: Math.max(0, ...cellTimes.map((c) => c.virtualTimeFloor)), cellTimes, vcpuCells,
      period: { rounds: this.periodRounds, loads: Float64Array.from(this.loadSums) },
    };
  }

  /**
   * Puts back what `saveState` returned, into a scheduler with the same VMs added. A CPU's last vCPU may be one
   * of a VM removed since: `vcpuOf` finds it. The caller has checked every id, index and length.
   */
  restoreState(s: CellSchedulerState, vcpuOf: (vm: number, index: number) => SchedVcpu): void {
    if (this.cellCpus.length === 1) {
      this.schedulers[0]!.restoreState(s, vcpuOf);
      return;
    }
    if (s.period !== undefined) {
      this.periodRounds = s.period.rounds;
      s.period.loads.forEach((load, cell) => { this.loadSums[cell] = load; });
    }
    // Each vCPU back in the cell it was scheduled in (a balancer may have moved it from where `addVm` dealt it).
    for (const { id, cells } of s.vcpuCells ?? []) {
      cells.forEach((cell, index) => {
        const now = this.cellOf(id, index);
        if (now === cell || this.revoked(cell) || this.revoked(now)) return;
        const v = this.vcpusOf.get(id)!.find((x) => x.index === index)!;
        this.give(now, { vm: id, indices: [index] });
        this.take(v, cell);
      });
    }
    this.forLive((scheduler, cell) => {
      const cpus = this.cellCpus[cell]!;
      const times = new Map((s.cellTimes?.[cell]?.vms ?? []).map((v) => [v.id, v]));
      const vms = s.vms.flatMap((v) => {
        const part = this.parts.get(v.id)?.find((p) => p.cell === cell);
        if (part === undefined) return [];
        const local = this.localVm(part, v);
        const t = times.get(v.id);
        return [t === undefined ? local : { ...local, virtualTime: t.virtualTime, runnableLastRound: t.runnableLastRound }];
      });
      const pairs = (global: Int32Array): Int32Array => {
        const out = new Int32Array(2 * cpus.length).fill(-1);
        cpus.forEach((p, l) => {
          out[2 * l] = global[2 * p]!;
          out[2 * l + 1] = global[2 * p + 1]!;
        });
        return out;
      };
      scheduler.restoreState({
        vms, holders: pairs(s.holders), lastRun: pairs(s.lastRun), switchCounts: Float64Array.from(cpus, (p) => s.switchCounts[p]!),
        virtualTimeFloor: s.cellTimes?.[cell]?.virtualTimeFloor ?? s.virtualTimeFloor,
      }, vcpuOf);
    });
  }

  /** A saved VM record, global, cut to cell `part.cell`'s share and numbering. */
  private localVm(part: Part, s: SchedulerVmState): SchedulerVmState {
    const cpus = this.cellCpus[part.cell]!;
    const local = (global: number): number => (global < 0 || this.cpuCell[global] !== part.cell ? -1 : this.localOf[global]!);
    const mine = (list: Int32Array): Int32Array => Int32Array.from(cpus, (p) => (part.indices.includes(list[p]!) ? list[p]! : -1));
    return {
      ...s, homeNode: cpus.some((p) => this.pcpuNodes[p] === s.homeNode) ? s.homeNode : -1,
      cycles: Float64Array.from(part.indices, (i) => s.cycles[i]!), lastPcpu: Int32Array.from(part.indices, (i) => local(s.lastPcpu[i]!)),
      roundsHeld: Float64Array.from(part.indices, (i) => s.roundsHeld[i]!), holding: mine(s.holding), lastOn: mine(s.lastOn),
    };
  }

  private partsOf(vm: number): Part[] {
    const parts = this.parts.get(vm);
    if (parts === undefined) throw new Error(`scheduler: there is no VM ${vm}`);
    return parts;
  }

  private forLive(fn: (scheduler: Scheduler, cell: number) => void): void {
    this.schedulers.forEach((scheduler, cell) => { if (!this.revoked(cell)) fn(scheduler, cell); });
  }

  private revoked(cell: number): boolean {
    return this.cellCpus.length > 1 && this.options.objects?.isRevoked(cell) === true;
  }

  private live(cell: number): Scheduler {
    return this.schedulers[cell]!;
  }

  private checkPcpu(pcpu: number): number {
    if (!Number.isInteger(pcpu) || pcpu < 0 || pcpu >= this.pcpuNodes.length) {
      throw new RangeError(`scheduler: there is no pCPU ${pcpu} (there are ${this.pcpuNodes.length})`);
    }
    return pcpu;
  }
}

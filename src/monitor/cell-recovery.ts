// Cellular Disco's recovery, in simulated time: the hardware's failure report reaches every cell, the cells
// that survive agree on the live set over the cell bus (cell-agreement.ts), and then each cleans up its own
// part: it checks the VMs at home in it against what failed. The VMs are paused meanwhile. An episode's time
// is detection + agreement + cleanup (docs/cells.md, "Recovery"); a fault during an episode restarts its
// agreement, and its cleanup starts over from the new decision.

import type { FailureRecord } from '../board/failure-report.js';
import { CellAgreement } from './cell-agreement.js';
import { CellBus } from './cell-bus.js';
import type { CellMap } from './cells.js';
import { CellObjects } from './revocable.js';

/** What recovery costs, in machine cycles (100 MHz: 100 cycles a µs). Documented parameters, not measurements. */
export interface RecoveryCosts {
  /** From a fault to every cell taking the failure report's interrupt (a machine check's delivery and entry). */
  notice: number;
  /** A cell checking one guest page of a VM at home in it (a pmap entry read and its node compared; 8 to a line). */
  pageCheck: number;
  /** A cell ending one VM: its vCPUs off the run queue, its devices detached, its records dropped (fixed part). */
  vmEnd: number;
}

/** 10 µs of notice, 4 cycles a page checked (a 128 MiB VM: 1.3 ms), 100 µs a VM ended. */
export const DEFAULT_RECOVERY_COSTS: RecoveryCosts = { notice: 1_000, pageCheck: 4, vmEnd: 10_000 };

/** One recovery, from the first failure record read to the last cell's cleanup; times in machine cycles. */
export interface RecoveryEpisode {
  /** The round boundary at which the first record was read (the fault's application). */
  start: number;
  /** `notice`: the report's interrupt on every cell. */
  detection: number;
  /** From the report's arrival to the survivors' decision (restarts by later faults included). */
  agreement: number;
  /** From the decision to the last live cell's end of cleanup. */
  cleanup: number;
  total: number;
  /** Failure records it handled, and the reports that restarted its agreement (a fault during recovery). */
  records: number;
  reports: number;
  rounds: number;
  restarts: number;
  /** The agreed live cells; the cells that failed in it, and those that rejoined (repaired); the VMs it ended (names). */
  live: number[];
  failedCells: number[];
  joined: number[];
  vmsEnded: string[];
  /** Messages cancelled on the cells found dead. */
  cancelled: number;
}

/**
 * A cell's own state as recovery and the other cells see it: the VMs that may use its resources (its own, and
 * those spanning it), and the pages of its nodes it lent to VMs at home in other cells (`lend`).
 */
export interface CellState {
  readonly vms: Map<number, { readonly name: string; readonly cells: readonly number[]; readonly home: boolean }>;
  readonly lent: Map<number, number>;
}

/** What the survivors decided, for the monitor to carry out: the cells that go on, and the records it covers. */
export interface CellDecisionWork {
  live: readonly number[];
  records: readonly FailureRecord[];
  /** The live cells' own states (the only ones recovery may read). */
  states: ReadonlyMap<number, CellState>;
}

/** What carrying out a decision did, per live cell: guest pages it checked, VMs it ended. */
export interface CleanupWork {
  failedCells: number[];
  joined: number[];
  vmsEnded: string[];
  perCell: Map<number, { pages: number; ended: number }>;
}

export interface CellRecoveryHost {
  readonly cells: CellMap;
  /** Whether a message from node `from` reaches node `to` now (MachineHardware.delivers). */
  delivers(from: number, to: number): boolean;
  /** Whether CPU `cpu` executes (a cell with none cannot take a message). */
  cpuRuns(cpu: number): boolean;
  /** Carries out the survivors' decision (fault-recovery.ts). */
  carryOut(work: CellDecisionWork): CleanupWork;
  /** Machine time (a round boundary, or within the round that is running). */
  now(): number;
}

interface LendArgs {
  vm: number;
  node: number;
}

const LEND = 'memory.lend';

export interface CellRecoveryOptions {
  costs?: RecoveryCosts;
  /** The bus's latency and timeout (cell-bus.ts defaults). */
  latency?: number;
  timeout?: number;
}

interface Running {
  start: number;
  /** Cycles at which the first report reached the cells (start + notice). */
  noticed: number;
  records: FailureRecord[];
  reports: number;
  /** Set once decided: when the cells resume (the last cleanup's end), and the episode so far. */
  resumeAt: number | undefined;
  episode: RecoveryEpisode | undefined;
}

export class CellRecovery {
  readonly bus: CellBus;
  readonly objects: CellObjects;
  readonly costs: RecoveryCosts;
  readonly episodes: RecoveryEpisode[] = [];
  private readonly agreement: CellAgreement;
  private readonly states: CellState[];
  private running: Running | undefined = undefined;
  /** Per VM: its home cell (the one that asks others for memory), and the cycles its lends cost, not yet charged. */
  private readonly homeCells = new Map<number, number>();
  private readonly owed = new Map<number, number>();
  /** Lends asked of another cell, and those it did not answer. */
  readonly lends = { asked: 0, refused: 0 };

  constructor(private readonly host: CellRecoveryHost, options: CellRecoveryOptions = {}) {
    const cells = host.cells;
    this.costs = options.costs ?? DEFAULT_RECOVERY_COSTS;
    const runs = (c: number): boolean => {
      const cell = cells.cells[c]!;
      return cell.failure === undefined && host.delivers(cell.monitorNode, cell.monitorNode) && cell.cpus.some((cpu) => host.cpuRuns(cpu));
    };
    this.bus = new CellBus({
      cells: cells.count,
      latency: options.latency,
      timeout: options.timeout,
      // A cell takes messages while its monitor node and one of its CPUs work; between two cells, while the
      // interconnect carries a message from one's monitor node to the other's.
      reachable: (from, to) => runs(from) && runs(to) && host.delivers(cells.cells[from]!.monitorNode, cells.cells[to]!.monitorNode),
    });
    this.objects = new CellObjects(cells.count);
    this.states = cells.cells.map((cell) => this.objects.create(cell.id, { vms: new Map(), lent: new Map() } as CellState));
    this.agreement = new CellAgreement(this.bus, { primary: cells.primary!.id, objects: this.objects });
    // A cell lends memory of its nodes by recording the borrower in its own state: counted, so run at most once.
    for (const cell of cells.cells) {
      this.bus.handle<LendArgs, boolean>(cell.id, LEND, (args) => {
        const lent = this.states[cell.id]!.lent;
        lent.set(args.vm, (lent.get(args.vm) ?? 0) + 1);
        return true;
      });
    }
  }

  /**
   * VM `vm` is to be given memory on `node` (MachineMemory.lends): true at once when the node is its home
   * cell's; else its home cell asks the node's cell over the bus, and the answer's cycles are the VM's to pay
   * (`takeOwed`). False when that cell did not answer (its memory is not taken).
   */
  lend(vm: number, node: number): boolean {
    const home = this.homeCells.get(vm);
    const lender = this.host.cells.cellOf(node).id;
    if (home === undefined || home === lender) return true;
    this.lends.asked++;
    const result = this.bus.call<boolean>(home, lender, LEND, { vm, node } satisfies LendArgs, { now: this.host.now() });
    this.owed.set(vm, (this.owed.get(vm) ?? 0) + result.cycles);
    if (result.ok) return true;
    this.lends.refused++;
    return false;
  }

  /** VM `vm` owes `cycles` of messages sent for its memory (a chunk borrowed for its cell: memory-borrowing.ts). */
  owe(vm: number, cycles: number): void {
    if (this.homeCells.has(vm)) this.owed.set(vm, (this.owed.get(vm) ?? 0) + cycles);
  }

  /** The cycles VM `vm`'s lends cost since the last call (charged by the monitor to its next vCPU to run). */
  takeOwed(vm: number): number {
    const cycles = this.owed.get(vm);
    if (cycles === undefined) return 0;
    this.owed.delete(vm);
    return cycles;
  }

  /** True while an episode runs: no vCPU runs until the cells resume. */
  get paused(): boolean {
    return this.running !== undefined;
  }

  /** A VM was placed: each of its cells records it (its home cell as its home). */
  register(vm: number, name: string, cells: readonly number[], homeCell: number): void {
    this.homeCells.set(vm, homeCell);
    for (const c of cells) this.states[c]!.vms.set(vm, { name, cells: [...cells], home: c === homeCell });
  }

  /** VM `vm` came to depend on cell `cell` too (a vCPU of it moved there): every cell's record of it says so. */
  dependOn(vm: number, name: string, cell: number): void {
    const home = this.homeCells.get(vm);
    const entries = this.liveStates().map((state) => state.vms.get(vm)).filter((e) => e !== undefined);
    const cells = [...new Set([...(entries[0]?.cells ?? []), cell])].sort((a, b) => a - b);
    for (const c of cells) if (!this.objects.isRevoked(c)) this.states[c]!.vms.set(vm, { name, cells, home: c === home });
  }

  /** A VM ended: the live cells forget it (a failed cell's state is not touched). */
  unregister(vm: number, cells: readonly number[]): void {
    this.homeCells.delete(vm);
    this.owed.delete(vm);
    for (const c of cells) if (!this.objects.isRevoked(c)) this.states[c]!.vms.delete(vm);
    for (const state of this.liveStates()) state.lent.delete(vm);
  }

  private liveStates(): CellState[] {
    return this.states.filter((_, c) => !this.objects.isRevoked(c));
  }

  /** The state of cell `cell` (a proxy: it throws DeadCellError once the cell has failed). */
  stateOf(cell: number): CellState {
    return this.states[cell]!;
  }

  /**
   * Cell `cell`, failed, rejoins (its hardware was repaired): its state is made afresh as a new generation of
   * its revocable objects (what its old state handed out keeps throwing), the bus takes messages for it again,
   * and the others take it into their views. The next report (`received`) runs the agreement that decides
   * whether it is in; a cell it leaves out is revoked again.
   */
  rejoin(cell: number): void {
    if (this.objects.isRevoked(cell)) this.objects.readmit(cell);
    this.states[cell] = this.objects.create(cell, { vms: new Map(), lent: new Map() } as CellState);
    if (this.bus.isDead(cell)) this.bus.readmit(cell);
    this.agreement.admit(cell, this.objects);
  }

  /**
   * New failure records, read at the round boundary `now`: they start an episode, or restart the running one's
   * agreement. `join`: start one without records, for a cell that rejoins (`rejoin`).
   */
  received(records: readonly FailureRecord[], now: number, join = false): void {
    if (records.length === 0 && !join) return;
    const at = now + this.costs.notice;
    // The primary's monitor node failed: the lowest other live cell coordinates (the report says which node
    // failed, so its cells know it is not a partition).
    this.electPrimary(records);
    if (this.running === undefined) {
      this.running = { start: now, noticed: at, records: [...records], reports: 1, resumeAt: undefined, episode: undefined };
      this.agreement.begin(at);
      return;
    }
    this.running.records.push(...records);
    this.running.reports++;
    // Decided and cleaning up, or still agreeing: the cells agree again from where they are.
    this.running.resumeAt = undefined;
    this.agreement.report(at);
  }

  /** Moves the episode to machine time `now` (a round boundary). Returns the episode when it has ended. */
  advance(now: number): RecoveryEpisode | undefined {
    const r = this.running;
    if (r === undefined) return undefined;
    if (r.resumeAt === undefined) {
      const { done, last } = this.agreement.advance(now);
      if (!done) return undefined;
      const result = this.agreement.finish(r.noticed, Math.max(last, r.noticed));
      const decidedAt = r.noticed + result.cycles;
      const states = new Map<number, CellState>();
      for (const c of result.live) states.set(c, this.states[c]!);
      // The cells left out are gone before anything is cleaned up: whatever reaches for their state (their
      // run queues, their records) fails at once, instead of reading what died with them.
      for (const cell of this.host.cells.live) if (!result.live.includes(cell.id)) this.objects.revoke(cell.id);
      const work = this.host.carryOut({ live: result.live, records: r.records, states });
      // And a cell the cleanup failed (its last CPU lost) goes the same way.
      for (const cell of this.host.cells.cells) if (cell.failure !== undefined && !this.objects.isRevoked(cell.id)) this.objects.revoke(cell.id);
      // Partitions are judged from the lowest live cell from now on (a rejoined cell 0 is the primary again).
      const primary = this.host.cells.primary;
      if (primary !== undefined) this.agreement.primaryCell = primary.id;
      // Each live cell cleans up its own part at once and in parallel; the last one's end resumes the VMs.
      let cleanup = 0;
      for (const [, w] of work.perCell) cleanup = Math.max(cleanup, w.pages * this.costs.pageCheck + w.ended * this.costs.vmEnd);
      // A later report's decision adds to the episode: its counts add up, its times run to the last cleanup.
      const e = (r.episode ??= {
        start: r.start, detection: this.costs.notice, agreement: 0, cleanup: 0, total: 0, records: 0, reports: 0, rounds: 0, restarts: 0,
        live: [], failedCells: [], joined: [], vmsEnded: [], cancelled: 0,
      });
      e.agreement = decidedAt - r.noticed;
      e.cleanup = cleanup;
      e.total = decidedAt + cleanup - r.start;
      e.records += r.records.length;
      e.reports = r.reports;
      e.rounds += result.rounds;
      e.restarts += result.restarts;
      e.live = result.live;
      e.failedCells.push(...work.failedCells);
      e.joined.push(...work.joined);
      e.vmsEnded.push(...work.vmsEnded);
      e.cancelled += result.cancelled;
      r.records = [];
      r.resumeAt = decidedAt + cleanup;
    }
    if (now < r.resumeAt) return undefined;
    const episode = r.episode!;
    this.episodes.push(episode);
    this.running = undefined;
    return episode;
  }

  private electPrimary(records: readonly FailureRecord[]): void {
    const cells = this.host.cells;
    const primary = this.agreement.primaryCell;
    const lost = new Set(records.flatMap((rec) => (rec.kind === 'node-failed' ? [rec.node] : [])));
    if (!lost.has(cells.cells[primary]!.monitorNode)) return;
    const next = cells.live.find((c) => c.id !== primary && !lost.has(c.monitorNode));
    if (next !== undefined) this.agreement.primaryCell = next.id;
  }
}

// After a fault, the cells that survive agree on the live set over the cell bus: a coordinator's rounds with
// timeouts, restarted with a higher epoch by any new failure report or timeout (docs/cell-rpc.md).
//
// Cells are fail-stop and the network is synchronous with timeouts (a message arrives a latency after it is
// sent, or not at all because its receiver is dead or cut off), so a timeout is a true verdict, and
// reachability among live cells is an equivalence (routes go round failed links: each side of a partition
// reaches all of itself). The protocol, per cell:
// - A failure report (or a report from a cell whose watchdog expired) starts an attempt. A cell with lower
//   cells in its view first asks them whether they live; those that time out leave its view.
// - The lowest cell of a view coordinates: it probes every other cell of its view with a new epoch (one above
//   any it has seen). Anyone not answering leaves the view and the round starts again with a higher epoch.
//   When every cell answered, it sends the decision (the view, or "stop" when the primary is not in it: the
//   side of a partition without the primary stops) and waits for every ack; a missing ack restarts it too.
// - The others wait for their coordinator under a watchdog; when it expires they drop the coordinator, tell
//   the rest (a report) and start again. A decision is adopted if its epoch is at least any the cell has seen.
// Only the lowest live cell of the primary's side can coordinate there (every cell of the side keeps it in
// its view, since it always answers), so the side decides once per attempt; the last attempt follows the
// last fault, and every survivor adopts its decision.

import type { CallResult, CellBus } from './cell-bus.js';
import type { CellObjects } from './revocable.js';

/** A cell's decision: the live set, or that it must stop (its side of a partition lacks the primary). */
export interface CellDecision {
  epoch: number;
  live: number[];
  stopSelf: boolean;
  /** Simulated time at which the cell adopted it. */
  at: number;
}

export interface AgreementOptions {
  /** The cell that holds node 0: partitions are fail-stop, and only its side goes on. */
  primary: number;
  /** The cells live before the fault (default all): each cell's first view. */
  members?: readonly number[];
  /** How long a cell waits for its coordinator before it drops it (default 2 × the bus's timeout). */
  watchdog?: number;
  /** Where each cell's protocol state is made, so that a failed cell's can be revoked (default plain objects). */
  objects?: CellObjects;
}

/** Something that happens in the owner's world at a simulated time during the protocol (tests: a fault). */
export interface AgreementFault {
  at: number;
  /** Changes what the bus's `reachable` answers. */
  apply: () => void;
  /** Whether the hardware reports it to every cell (a failure report), default true; else only timeouts find it. */
  reported?: boolean;
}

export interface AgreementResult {
  /** The epoch of the survivors' decision (0 when none survived). */
  epoch: number;
  /** The agreed live set, ascending; empty when no cell goes on. */
  live: number[];
  /** Cells that stopped themselves, being cut off from the primary. */
  stopped: number[];
  /**
   * Cells still running on an older decision that the survivors' decision leaves out: a fault no report told
   * of cut them off after they adopted it, so they never heard of the new one. The survivors treat them as failed.
   */
  fenced: number[];
  /** Every running cell's last decision, by cell; undefined for a cell that does not run (it reports nothing). */
  decisions: (CellDecision | undefined)[];
  /** Probe and decision rounds run by coordinators, and attempts abandoned (timeouts, reports, watchdogs). */
  rounds: number;
  restarts: number;
  /** Simulated time from the start to the survivors' decision (or to the last cell stopping). */
  cycles: number;
  /** Messages cancelled on the cells found dead, after the decision (`CellBus.cancel`). */
  cancelled: number;
}

type Phase = 'idle' | 'ping' | 'wait' | 'coordinate' | 'done' | 'stopped';

/** One cell's protocol state (made through `objects` when given, so that it dies with the cell). */
interface Member {
  /** The highest epoch it has seen. */
  epoch: number;
  view: number[];
  phase: Phase;
  /** Rises with every attempt: replies to an abandoned attempt find a different one and are ignored. */
  attempt: number;
  /** Its watchdog timer's id, 0 when none. */
  watchdog: number;
  decision: CellDecision | undefined;
}

interface ProbeArgs { epoch: number }
/** `stopped`: the cell has stopped itself (cut off from the primary), and counts as gone from any view. */
interface ProbeReply { epoch: number; stopped: boolean }
interface DecideArgs { epoch: number; live: number[]; stopSelf: boolean }
interface DecideReply { adopted: boolean; epoch: number; stopped: boolean }

const PROBE = 'agree.probe';
const DECIDE = 'agree.decide';
const REPORT = 'agree.report';

export class CellAgreement {
  private readonly members: Member[];
  private primary: number;
  private readonly watchdog: number;
  private rounds = 0;
  private restarts = 0;

  constructor(private readonly bus: CellBus, options: AgreementOptions) {
    const cells = bus.cells;
    this.primary = options.primary;
    this.watchdog = options.watchdog ?? 2 * bus.timeout;
    if (!(this.watchdog > bus.timeout)) throw new RangeError(`the watchdog (${this.watchdog}) must exceed the timeout (${bus.timeout})`);
    const view = [...(options.members ?? Array.from({ length: cells }, (_, c) => c))].sort((a, b) => a - b);
    this.members = Array.from({ length: cells }, (_, cell) => {
      const member: Member = { epoch: 0, view: view.slice(), phase: 'idle', attempt: 0, watchdog: 0, decision: undefined };
      return options.objects === undefined ? member : options.objects.create(cell, member);
    });
    // Every handler is idempotent: answering a probe, adopting a decision or starting an attempt twice
    // has the effect of once, so the bus need keep no replies for them.
    for (let cell = 0; cell < cells; cell++) {
      bus.handle<ProbeArgs, ProbeReply>(cell, PROBE, (args, context) => this.onProbe(cell, args, context.from, context.now), { idempotent: true });
      bus.handle<DecideArgs, DecideReply>(cell, DECIDE, (args, context) => this.onDecide(cell, args, context.now), { idempotent: true });
      bus.handle<null, null>(cell, REPORT, (_, context) => (this.startAttempt(cell, context.now), null), { idempotent: true });
    }
  }

  /** The cell whose side of a partition goes on. */
  get primaryCell(): number {
    return this.primary;
  }

  /**
   * A new primary, when the owner knows the old one's cell failed (its node's failure is in the report, so it
   * is no partition): otherwise every cell would stop, the primary being out of every view.
   */
  set primaryCell(cell: number) {
    if (!Number.isInteger(cell) || cell < 0 || cell >= this.bus.cells) throw new RangeError(`no cell ${cell}: there are cells 0 to ${this.bus.cells - 1}`);
    this.primary = cell;
  }

  /**
   * Cell `cell`, failed, rejoins with its state made afresh (through `objects`, readmitted there first): every
   * other running cell takes it into its view, and it starts from their view with it added. The next report
   * (`report`, `begin`) then runs the protocol with it, which decides whether it is in. Call between protocols.
   */
  admit(cell: number, objects?: CellObjects): void {
    if (!Number.isInteger(cell) || cell < 0 || cell >= this.bus.cells) throw new RangeError(`no cell ${cell}: there are cells 0 to ${this.bus.cells - 1}`);
    const others = this.members.filter((_, c) => c !== cell && objects?.isRevoked(c) !== true && this.members[c]!.phase !== 'stopped');
    const view = [...new Set([...others.flatMap((m) => m.view), cell])].sort((a, b) => a - b);
    for (const m of others) m.view = [...new Set([...m.view, cell])].sort((a, b) => a - b);
    const member: Member = { epoch: Math.max(0, ...others.map((m) => m.epoch)), view, phase: 'idle', attempt: 0, watchdog: 0, decision: undefined };
    this.members[cell] = objects === undefined ? member : objects.create(cell, member);
  }

  /**
   * Runs the protocol from a failure report at `start` to its end (no message or timer left), with `faults`
   * happening on the way. Each cell starts from the view it holds (its last decision).
   */
  run(start: number, faults: readonly AgreementFault[] = [], maxEvents = 1_000_000): AgreementResult {
    this.begin(start);
    const bus = this.bus;
    const pending = [...faults].sort((a, b) => a.at - b.at);
    let now = start;
    let events = 0;
    for (let next = 0; ; ) {
      const due = bus.nextTime();
      const fault = pending[next];
      if (fault !== undefined && (due === undefined || fault.at <= due)) {
        now = Math.max(now, fault.at);
        fault.apply();
        if (fault.reported !== false) this.report(now);
        next++;
        continue;
      }
      if (due === undefined) break;
      now = due;
      if (events >= maxEvents) throw new Error(`the agreement did not end after ${maxEvents} events`);
      events += bus.deliverUntil(due, maxEvents - events);
    }
    return this.finish(start, now);
  }

  /**
   * The protocol step by step, for an owner whose time moves in its own steps (the monitor's rounds):
   * `begin` at the first failure report, `report` at each later one (a fault during the agreement), `advance`
   * to each step's end until it says the protocol is over, then `finish` with the start and the time reached.
   */
  begin(start: number): void {
    this.rounds = 0;
    this.restarts = 0;
    this.report(start);
  }

  /** A failure report reaches every cell at `at`: each starts an attempt (a running protocol starts again). */
  report(at: number): void {
    for (let cell = 0; cell < this.bus.cells; cell++) this.bus.timer(cell, at, (now) => this.startAttempt(cell, now));
  }

  /** Delivers what is due up to `until`; true when nothing is left (the protocol is over), with the time of its last event. */
  advance(until: number): { done: boolean; last: number } {
    let last = -1;
    for (let due = this.bus.nextTime(); due !== undefined && due <= until; due = this.bus.nextTime()) {
      this.bus.deliverUntil(due);
      last = due;
    }
    return { done: this.bus.nextTime() === undefined, last };
  }

  /** The survivors' decision once `advance` said the protocol is over (`now`: its last event's time, or later). */
  finish(start: number, now: number): AgreementResult {
    const bus = this.bus;
    // Each cell that still runs says what it decided (a timer runs only on a running cell).
    const decisions: (CellDecision | undefined)[] = new Array(bus.cells).fill(undefined);
    for (let cell = 0; cell < bus.cells; cell++) {
      bus.timer(cell, now, () => {
        const d = this.members[cell]!.decision;
        decisions[cell] = d === undefined ? undefined : { ...d, live: [...d.live] };
      });
    }
    bus.deliverUntil(now);
    return this.result(start, decisions);
  }

  private result(start: number, decisions: (CellDecision | undefined)[]): AgreementResult {
    const going = decisions.filter((d): d is CellDecision => d !== undefined && !d.stopSelf);
    const stopped = decisions.flatMap((d, cell) => (d?.stopSelf === true ? [cell] : []));
    // The survivors' decision is the newest: a cell on an older one that it leaves out was cut off unheard.
    // Every cell it keeps must hold it exactly.
    const first = going.reduce<CellDecision | undefined>((newest, d) => (newest === undefined || d.epoch > newest.epoch ? d : newest), undefined);
    const fenced: number[] = [];
    decisions.forEach((d, cell) => {
      if (d === undefined || d.stopSelf) return;
      if (d.epoch === first!.epoch && d.live.join() === first!.live.join()) return;
      if (!first!.live.includes(cell)) fenced.push(cell);
      else throw new Error(`the survivors disagree: epoch ${first!.epoch} [${first!.live.join(', ')}] and cell ${cell}'s epoch ${d.epoch} [${d.live.join(', ')}]`);
    });
    // The survivors' decision; with none, the last cell to stop.
    const decidedAt = Math.max(start, ...(first !== undefined ? going.filter((d) => d.epoch === first.epoch).map((d) => d.at) : stopped.map((cell) => decisions[cell]!.at)));
    let cancelled = 0;
    if (first !== undefined) {
      for (let cell = 0; cell < this.bus.cells; cell++) if (!first.live.includes(cell) && !this.bus.isDead(cell)) cancelled += this.bus.cancel(cell, decidedAt);
    }
    return {
      epoch: first?.epoch ?? 0,
      live: first === undefined ? [] : [...first.live],
      stopped,
      fenced,
      decisions,
      rounds: this.rounds,
      restarts: this.restarts,
      cycles: decidedAt - start,
      cancelled,
    };
  }

  /** A new attempt at cell `cell`: find which lower cells live, then coordinate or wait for the lowest. */
  private startAttempt(cell: number, now: number): void {
    const m = this.members[cell]!;
    if (m.phase === 'stopped') return;
    if (m.phase !== 'idle' && m.phase !== 'done') this.restarts++;
    const attempt = ++m.attempt;
    const lower = m.view.filter((c) => c < cell);
    if (lower.length === 0) {
      this.coordinate(cell, now);
      return;
    }
    m.phase = 'ping';
    this.arm(cell, now);
    this.broadcast(cell, lower, PROBE, () => ({ epoch: m.epoch }), now, (results, at) => {
      if (m.attempt !== attempt || m.phase !== 'ping') return;
      m.view = m.view.filter((c) => results.get(c)?.ok !== false);
      if (m.view[0] === cell) {
        this.coordinate(cell, at);
        return;
      }
      m.phase = 'wait';
      this.arm(cell, at);
    });
  }

  /** Cell `cell` is the lowest of its view: a probe round with a new epoch, then the decision. */
  private coordinate(cell: number, now: number): void {
    const m = this.members[cell]!;
    this.disarm(cell);
    const attempt = ++m.attempt;
    m.phase = 'coordinate';
    const epoch = ++m.epoch;
    const others = m.view.filter((c) => c !== cell);
    const again = (at: number): void => {
      this.restarts++;
      this.coordinate(cell, at);
    };
    this.rounds++;
    this.broadcast(cell, others, PROBE, () => ({ epoch }), now, (probes, at) => {
      if (m.attempt !== attempt) return;
      // A cell that stopped itself will never adopt anything: it leaves the view as a silent one does.
      const silent = others.filter((c) => !probes.get(c)!.ok || (probes.get(c) as { value: ProbeReply }).value.stopped);
      m.epoch = Math.max(m.epoch, ...others.map((c) => (probes.get(c)!.ok ? (probes.get(c) as { value: ProbeReply }).value.epoch : 0)));
      if (silent.length > 0 || m.epoch > epoch) {
        m.view = m.view.filter((c) => !silent.includes(c));
        again(at);
        return;
      }
      const live = m.view.slice();
      const stopSelf = !live.includes(this.primary);
      this.rounds++;
      this.broadcast(cell, others, DECIDE, () => ({ epoch, live, stopSelf }), at, (acks, end) => {
        if (m.attempt !== attempt) return;
        const missing = others.filter((c) => !acks.get(c)!.ok || (!(acks.get(c) as { value: DecideReply }).value.adopted && (acks.get(c) as { value: DecideReply }).value.stopped));
        const refused = others.some((c) => {
          const ack = acks.get(c)!;
          return ack.ok && !(ack.value as DecideReply).adopted && !(ack.value as DecideReply).stopped;
        });
        if (missing.length > 0 || refused) {
          m.view = m.view.filter((c) => !missing.includes(c));
          m.epoch = Math.max(m.epoch, ...others.map((c) => (acks.get(c)!.ok ? (acks.get(c) as { value: DecideReply }).value.epoch : 0)));
          again(end);
          return;
        }
        this.adopt(cell, { epoch, live, stopSelf, at: end });
      });
    });
  }

  private onProbe(cell: number, args: ProbeArgs, from: number, now: number): ProbeReply {
    const m = this.members[cell]!;
    if (m.phase === 'stopped') return { epoch: m.epoch, stopped: true };
    m.epoch = Math.max(m.epoch, args.epoch);
    // Its coordinator is working on a new epoch: wait for its decision (and drop it if none comes).
    if (from === m.view[0] && from < cell && (m.phase === 'wait' || m.phase === 'done' || m.phase === 'ping')) {
      if (m.phase === 'done') m.phase = 'wait';
      this.arm(cell, now);
    }
    return { epoch: m.epoch, stopped: false };
  }

  private onDecide(cell: number, args: DecideArgs, now: number): DecideReply {
    const m = this.members[cell]!;
    // A stopped cell has already done what a decision to stop asks; any other it can no longer adopt.
    if (m.phase === 'stopped') return { adopted: args.stopSelf, epoch: m.epoch, stopped: true };
    if (args.epoch < m.epoch) return { adopted: false, epoch: m.epoch, stopped: false };
    m.attempt++; // whatever it was doing for an older epoch is over
    this.adopt(cell, { epoch: args.epoch, live: [...args.live], stopSelf: args.stopSelf, at: now });
    return { adopted: true, epoch: m.epoch, stopped: false };
  }

  private adopt(cell: number, decision: CellDecision): void {
    const m = this.members[cell]!;
    this.disarm(cell);
    m.epoch = Math.max(m.epoch, decision.epoch);
    m.view = decision.live.slice();
    m.decision = decision;
    m.phase = decision.stopSelf ? 'stopped' : 'done';
  }

  /** The watchdog on the cell's coordinator: when it expires, the coordinator leaves the view and all start again. */
  private arm(cell: number, now: number): void {
    this.disarm(cell);
    const m = this.members[cell]!;
    m.watchdog = this.bus.timer(cell, now + this.watchdog, (at) => {
      m.watchdog = 0;
      if (m.phase !== 'wait' && m.phase !== 'ping') return;
      const coordinator = m.view[0]!;
      m.view = m.view.filter((c) => c !== coordinator);
      for (const other of m.view) if (other !== cell) this.bus.post(cell, other, REPORT, null, { now: at, onReply: () => {} });
      this.startAttempt(cell, at);
    });
  }

  private disarm(cell: number): void {
    const m = this.members[cell]!;
    if (m.watchdog !== 0) this.bus.clearTimer(m.watchdog);
    m.watchdog = 0;
  }

  /**
   * Sends `op` from `from` to every cell of `targets` at `now` and calls `done` once all have answered or failed,
   * with the time of the last result (`now` when there are no targets).
   */
  private broadcast(from: number, targets: readonly number[], op: string, args: () => unknown, now: number, done: (results: Map<number, CallResult>, at: number) => void): void {
    const results = new Map<number, CallResult>();
    if (targets.length === 0) {
      done(results, now);
      return;
    }
    let waiting = targets.length;
    let last = now;
    for (const to of targets) {
      this.bus.post(from, to, op, args(), {
        now,
        onReply: (result) => {
          results.set(to, result);
          last = Math.max(last, now + result.cycles);
          if (--waiting === 0) done(results, last);
        },
      });
    }
  }
}

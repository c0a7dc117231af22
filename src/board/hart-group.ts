// Some of a machine's harts, run on a thread of their own over the machine's shared memory
// (docs/threads.md). Plain JavaScript: the host wires it to a worker thread (src/host/hart-worker.ts).

import { restoreHart, saveHart, type HartSnapshot } from '../cpu/hart-snapshot.js';
import type { HartState } from '../cpu/hart-state.js';
import { Reservations } from '../cpu/reservations.js';
import { ThreadedHart } from '../cpu/threaded-hart.js';
import { MIP_SSIP, MIP_STIP } from '../isa/opcodes.js';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import { addForwardedDevices, applyLines, Mailboxes, type ForwardingMemory } from './forwarded-mmio.js';
import { FENCE_I, FENCE_VMA, type SbiShared } from './sbi.js';
import { ThreadCounters, WORKER_COUNTER, WorkerCounters } from './thread-counters.js';
import {
  PENDING_START, Signals, WORKER_CLOSED, WORKER_IDLE, WORKER_RUNNING, WorkerSbi, type SignalMemory,
} from './threaded-sbi.js';

/**
 * Instructions a hart runs before its thread looks at its interrupt lines, timer and signals again: what
 * an interrupt that a device (or a hart on another thread) raises mid-round, or a remote fence, waits at most.
 */
const LINES_CHUNK = 8192;
/** Milliseconds a wait for acks sleeps before it looks again (a kick wakes it sooner). */
const ACK_WAIT_MS = 50;

/** One RAM region of the machine, by its shared buffer. */
export interface SharedRegion {
  node: number;
  base: number;
  size: number;
  buffer: SharedArrayBuffer;
}

/** Everything a thread needs to run its harts: plain data, structured-clonable (postMessage). */
export interface HartGroupSpec {
  /** The machine's number of harts (the reservation table's size). */
  harts: number;
  /** This group's worker, of `workers`: it holds the harts whose id is `index` modulo `workers`. */
  index: number;
  workers: number;
  /** The ids of this group's harts, and their state to start from, in the same order. */
  ids: number[];
  states: HartSnapshot[];
  /** The machine's RAM regions, in its bus's order (TLB entries name them by index). */
  regions: SharedRegion[];
  /** The machine's reservation table (Reservations.memory()). */
  reservations: SharedArrayBuffer;
  /** Float64 [0]: guest time in ticks, which moves between rounds (the threaded runner: at the slowest worker's). */
  time: SharedArrayBuffer;
  translate: boolean;
  /** The device windows of the main thread's bus, reached through the mailboxes of `forwarding`. */
  devices: { base: number; size: number; name: string }[];
  forwarding: ForwardingMemory;
  signals: SignalMemory;
  /** The built-in SBI's shared state, when the machine has the built-in SBI. */
  sbi?: SbiShared;
  /** The run's counters (thread-counters.ts: ThreadCounters.buffer, for `workers` and `devices`). */
  counters?: SharedArrayBuffer;
}

/** What a group did in one round. */
export interface GroupRound {
  instructions: number;
  /** No hart of the group can run until an interrupt comes (or it is parked or stopped). */
  idle: boolean;
}

export class HartGroup {
  readonly bus = new Bus();
  readonly harts: ThreadedHart[] = [];
  readonly signals: Signals;
  private readonly regions: RamRegion[];
  private readonly lines: Int32Array;
  private readonly time: Float64Array;
  private readonly index: number;
  private readonly sbi: WorkerSbi | undefined;
  /** Where the group's time goes (thread-counters.ts). */
  readonly counters: WorkerCounters;
  /** The machine was reset by an SBI call: the harts stop until the main thread ends the run. */
  private reset = false;

  /** `clock`: host milliseconds, for the counters' times (none: they count only). */
  constructor(spec: HartGroupSpec, clock?: () => number) {
    const counters = spec.counters === undefined
      ? ThreadCounters.create(spec.workers, spec.devices.map((d) => d.name))
      : new ThreadCounters(spec.counters, spec.workers, spec.devices.map((d) => d.name));
    this.counters = new WorkerCounters(counters, spec.index, clock);
    this.regions = spec.regions.map((r) => new RamRegion(r.node, r.base, r.size, r.buffer));
    for (const region of this.regions) this.bus.addRam(region);
    // Devices stay on the main thread: this bus forwards each access to them (forwarded-mmio.ts).
    const mailboxes = new Mailboxes(spec.forwarding, this.counters);
    addForwardedDevices(this.bus, spec.devices, mailboxes);
    this.lines = new Int32Array(spec.forwarding.lines);
    this.index = spec.index;
    this.signals = new Signals(spec.signals, spec.workers);
    const time = new Float64Array(spec.time);
    this.time = time;
    const byId: (HartState | undefined)[] = new Array<HartState | undefined>(spec.harts).fill(undefined);
    const memory = this.bus.guestMemory();
    this.sbi = spec.sbi === undefined ? undefined : new WorkerSbi({
      harts: byId,
      signals: this.signals,
      mailboxes,
      counters: this.counters,
      now: () => time[0]!,
      readPhysical: (address, length) => (memory.isRam(address, length) ? memory.read(address, length) : undefined),
      awaitAcks: (waits) => this.awaitAcks(waits),
      resetRequested: () => {
        this.reset = true;
        for (const h of this.harts) h.stop = true;
      },
    }, spec.sbi, spec.harts);
    const sbi = this.sbi;
    const env = {
      bus: this.bus,
      clock: { now: () => time[0]! },
      reservations: new Reservations(spec.harts, spec.reservations),
      ecallFromSupervisor: sbi === undefined ? undefined : (h: HartState) => sbi.handle(h),
    };
    spec.ids.forEach((id, i) => {
      const h = new ThreadedHart(id, env);
      h.setTranslation(spec.translate);
      restoreHart(h, spec.states[i], this.regions, `hart ${id}`);
      this.harts.push(h);
      byId[id] = h;
    });
  }

  /**
   * Runs every hart of the group until its own time reaches `end` cycles, as Machine.runHart does in fast
   * mode. A hart that waits (WFI) or is stopped (HSM) and could be woken before the round ends keeps the
   * group in the round: it sleeps on its kick word, and runs the rest of the round if an IPI, a device's
   * interrupt or a start comes for it, until the round is closed for it (no group runs: Signals.closeIfQuiet).
   */
  runRound(start: number, end: number): GroupRound {
    let instructions = 0;
    const counters = this.counters;
    counters.add(WORKER_COUNTER.ROUNDS, 1);
    for (const h of this.harts) if (h.waiting) idleUntil(h, start);
    for (;;) {
      this.serve();
      let ran = 0;
      for (const h of this.harts) {
        if (this.reset) break;
        if (h.parked || h.suspended || (h.waiting && !h.wakeable)) continue;
        let left = end - h.localCycles;
        while (left >= 1) {
          const started = counters.clock();
          const n = h.run(Math.min(LINES_CHUNK, Math.floor(left)));
          counters.since(WORKER_COUNTER.RUN_MS, started);
          ran += n;
          this.serve();
          if (h.waiting || h.suspended || n === 0 || this.reset) break;
          left = end - h.localCycles;
        }
      }
      instructions += ran;
      // Running one hart may have woken another of the group (an IPI, a start): go round again.
      if (ran > 0 && !this.reset) continue;
      if (this.reset || !this.harts.some((h) => (h.parked || h.waiting) && end - h.localCycles >= 1)) break;
      if (!this.sleepInRound(end)) break;
    }
    this.serve();
    for (const h of this.harts) if (h.parked || h.suspended || h.waiting) idleUntil(h, end);
    const idle = this.reset || this.harts.every((h) => h.parked || h.suspended || (h.waiting && !h.wakeable));
    counters.add(WORKER_COUNTER.INSTRUCTIONS, instructions);
    return { instructions, idle };
  }

  /**
   * Nothing of the group can run, but a hart could be woken before the round ends: sleeps until it is
   * (true) or the round is closed for it (false).
   */
  private sleepInRound(end: number): boolean {
    const states = this.signals.states;
    const me = this.index;
    if (Atomics.compareExchange(states, me, WORKER_RUNNING, WORKER_IDLE) !== WORKER_RUNNING) return false;
    // If every other worker is done or asleep too, nothing can wake this one: the round ends for all.
    this.signals.closeIfQuiet();
    for (;;) {
      const kick = Atomics.load(this.signals.kicks, me);
      if (Atomics.load(states, me) === WORKER_CLOSED) return false;
      this.serve();
      if (this.harts.some((h) => !h.parked && !h.suspended && (!h.waiting || h.wakeable) && end - h.localCycles >= 1)) {
        // Woken: the group runs again, unless the round was closed for it just now.
        const woken = Atomics.compareExchange(states, me, WORKER_IDLE, WORKER_RUNNING) === WORKER_IDLE;
        if (woken) this.counters.add(WORKER_COUNTER.WAKES, 1);
        return woken;
      }
      const started = this.counters.clock();
      Atomics.wait(this.signals.kicks, me, kick);
      this.counters.since(WORKER_COUNTER.IDLE_MS, started);
    }
  }

  /**
   * What other threads asked of the group's harts: remote fences (done, then acked), IPIs and starts; and
   * each hart's interrupt lines and SBI timer.
   */
  serve(): void {
    const now = this.time[0]!;
    const deadlines = this.sbi?.timerDeadline;
    for (const h of this.harts) {
      const id = h.id;
      if (this.signals.serveFences(id, (what) => {
        if ((what & FENCE_I) !== 0) h.codeWritten();
        if ((what & FENCE_VMA) !== 0) h.flushTlb();
      })) this.counters.add(WORKER_COUNTER.FENCES_SERVED, 1);
      const pending = this.signals.takePending(id);
      if (pending !== 0) {
        if ((pending & MIP_SSIP) !== 0) this.counters.add(WORKER_COUNTER.IPIS_TAKEN, 1);
        if ((pending & PENDING_START) !== 0) {
          const { entry, opaque } = this.signals.startOf(id);
          this.sbi?.startHart(id, entry, opaque);
        }
        const bits = pending & ~PENDING_START;
        if (bits !== 0) {
          h.mip |= bits;
          h.stop = true;
        }
      }
      applyLines(this.lines, h);
      // The SBI timer of a hart on a thread fires here, from the round's time (SbiFirmware.updateTimers on one thread).
      if (deadlines !== undefined && deadlines[id]! <= now && (h.mip & MIP_STIP) === 0) {
        h.mip |= MIP_STIP;
        h.stop = true;
      }
    }
  }

  /** Sleeps until each fence request of `waits` is acked, serving the group's own harts meanwhile (no deadlock when two harts fence each other). */
  private awaitAcks(waits: readonly (readonly [number, number])[]): void {
    const kicks = this.signals.kicks;
    const started = this.counters.clock();
    this.counters.add(WORKER_COUNTER.FENCES_SENT, waits.length);
    for (;;) {
      const kick = Atomics.load(kicks, this.index);
      this.serve();
      if (waits.every(([t, n]) => this.signals.acked(t, n))) break;
      Atomics.wait(kicks, this.index, kick, ACK_WAIT_MS);
    }
    this.counters.since(WORKER_COUNTER.FENCE_MS, started);
  }

  /** Each hart's state, to put back into the main thread's machine at the end. */
  save(): HartSnapshot[] {
    return this.harts.map((h) => saveHart(h, this.regions));
  }
}

function idleUntil(h: ThreadedHart, cycles: number): void {
  const behind = cycles - h.localCycles;
  if (behind > 0) h.idleCycles += behind;
}

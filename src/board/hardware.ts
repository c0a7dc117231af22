// The physical machine's hardware as its owner sees it: memory per node, CPUs that run or do not, the failure report, and apart from them the injector.

import { RamRegion } from '../memory/ram.js';
import type { MachineLayout } from './address-map.js';
import type { FailureReport } from './failure-report.js';
import { FaultError, MachineFaults, faultName, type Fault, type TlbHolder } from './faults.js';
import type { Link } from './interconnect.js';

/** A fault waiting for its simulated time, and one applied (at `appliedAt`: the first round boundary at or after `time`). */
export interface ScheduledFault {
  readonly time: number;
  readonly fault: Fault;
}
export interface AppliedFault extends ScheduledFault {
  readonly appliedAt: number;
}

/**
 * Injects faults into a machine at exact simulated times (machine cycles). The machine runs in rounds, so
 * a fault takes effect at the first round boundary at or after its time (within SLICE cycles), when every
 * CPU is between instructions; faults due at the same boundary apply in the order of their times, then of
 * their scheduling. Nothing here reads a host clock or a random source: the same schedule gives the same run.
 */
export class FaultInjector {
  private queue: (ScheduledFault & { order: number })[] = [];
  private order = 0;
  readonly applied: AppliedFault[] = [];
  private readonly listeners = new Set<(applied: AppliedFault) => void>();

  constructor(private readonly faults: MachineFaults) {}

  /** Faults not applied yet, in the order they will be. */
  get pending(): readonly ScheduledFault[] {
    return this.queue;
  }

  /** Schedules `fault` for simulated time `time` (cycles; the past means the next boundary). Throws FaultError naming the problem. */
  schedule(time: number, fault: Fault): void {
    const problems = this.faults.problems(fault);
    if (problems.length > 0) throw new FaultError(problems.join('; '));
    if (!Number.isFinite(time) || time < 0) throw new FaultError(`a fault's time must be a simulated time of at least 0, not ${time}`);
    this.queue.push({ time, fault, order: this.order++ });
    this.queue.sort((x, y) => x.time - y.time || x.order - y.order);
  }

  /** `fault` at the next round boundary. */
  inject(fault: Fault): void {
    this.schedule(this.faults.now, fault);
  }

  /** The machine's time reached `now` (a round boundary): the faults due are applied. Returns them. */
  advanceTo(now: number): AppliedFault[] {
    this.faults.now = now;
    const due: AppliedFault[] = [];
    while (this.queue.length > 0 && this.queue[0]!.time <= now) {
      const { time, fault } = this.queue.shift()!;
      this.faults.apply(fault);
      const applied = { time, fault, appliedAt: now };
      for (const listener of this.listeners) listener(applied);
      due.push(applied);
    }
    this.applied.push(...due);
    return due;
  }

  /**
   * Tells `listener` of each fault as it takes effect, at its round boundary, before the machine's owner can
   * hear of it (the owner reads the report after `advanceTo` returns): a campaign reads its ground truth
   * there, from the machine as the fault found it. Returns the function that stops it.
   */
  onApply(listener: (applied: AppliedFault) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** One line per applied fault, for logs. */
  describe(applied: AppliedFault): string {
    return `${faultName(applied.fault)} at cycle ${applied.appliedAt}`;
  }
}

/**
 * The physical machine: its RAM regions (one per node), its fault state and failure report, and the
 * injector. Its owner (the monitor) uses `regions`, `report`, `cpuRuns`, `attach` and `advanceTo`; the
 * injector and `state` are for whoever injects faults or checks what failed from outside (the control
 * socket, campaign scripts, tests), never for the owner, which learns of faults as hardware tells them.
 */
export class MachineHardware {
  readonly regions: readonly RamRegion[];
  /** The hardware's fault state: the injector's and a test's ground truth. */
  readonly state: MachineFaults;
  readonly injector: FaultInjector;

  constructor(readonly layout: MachineLayout, options: { links?: readonly Link[] } = {}) {
    this.regions = layout.nodes.map((n) => new RamRegion(n.id, n.base, n.size));
    this.state = new MachineFaults(layout, this.regions, options.links);
    this.injector = new FaultInjector(this.state);
  }

  /** True when this hardware was made for `layout`: the same harts, and a region per node at its place and size. */
  fits(layout: MachineLayout): boolean {
    return this.layout.harts === layout.harts && this.regions.length === layout.nodes.length
      && this.regions.every((r, i) => r.base === layout.nodes[i]!.base && r.size === layout.nodes[i]!.size);
  }

  /** The failure report: what the hardware tells of faults. */
  get report(): FailureReport {
    return this.state.report;
  }

  /**
   * True while physical CPU `cpu` executes. The emulator's loop, which plays every CPU in turn, asks it so
   * that a stopped CPU runs nothing; it is the CPU's own state, not news of it (that comes in the report).
   */
  cpuRuns(cpu: number): boolean {
    return this.state.cpuRuns(cpu);
  }

  /**
   * True when a message sent now by a CPU of node `from` to node `to` arrives there: the interconnect routes
   * it (over live links and routers) and node `to` has not failed. What the sender learns is only this
   * outcome, as on hardware, where an undelivered message is a reply that never comes (the monitor's cell
   * bus turns it into a timeout); it does not say why.
   */
  delivers(from: number, to: number): boolean {
    return !this.state.nodeFailed(to) && !this.state.nodeFailed(from) && this.state.interconnect.reaches(from, to);
  }

  /** Registers TLBs that cache machine memory, emptied at every fault; returns the function that lets them go. */
  attach(holder: TlbHolder): () => void {
    return this.state.attach(holder);
  }

  /**
   * Timing mode's model of this machine follows its routes: when a link or router fails, a miss between two
   * nodes whose route got longer costs its configured latency × new route distance / old (interconnect.ts).
   * Returns the function that stops it.
   */
  attachTiming(model: { missCyclesBetween(from: number, home: number): number; setMissCycles(from: number, home: number, cycles: number): void }): () => void {
    return this.state.onReroute((after, before) => {
      const nodes = this.layout.nodes.length;
      for (let from = 0; from < nodes; from++) {
        for (let home = 0; home < nodes; home++) {
          const now = after.distance(from, home);
          const was = before.distance(from, home);
          if (now > 0 && was > 0 && now !== was) model.setMissCycles(from, home, Math.round((model.missCyclesBetween(from, home) * now) / was));
        }
      }
    });
  }

  /** The simulated time of the next scheduled fault (Infinity: none), so that idle time does not jump past it. */
  get nextFaultTime(): number {
    return this.injector.pending[0]?.time ?? Infinity;
  }

  /** The machine's time reached `now` (cycles, a round boundary): scheduled faults due apply. */
  advanceTo(now: number): AppliedFault[] {
    return this.injector.advanceTo(now);
  }
}

// Where each physical CPU's time went (the dashboard's "where time goes" per CPU, docs/dashboard.md): the busy
// cycles of the vCPUs it ran, split as their accounts split them (guest user, guest kernel, monitor work
// charged to them: world switches, exits, moves), and the monitor's by kind (cpu/monitor-kinds.ts). Idle is
// the rest of the machine's time. Not in snapshots: a restored machine starts counting again.

import { PRIV_M, PRIV_S, PRIV_U } from '../isa/opcodes.js';
import { MONITOR_KIND_COUNT } from '../cpu/monitor-kinds.js';

/** What a vCPU's hart says of its time (cpu/hart-memory.ts). */
interface HartTime {
  readonly monitorCycles: Float64Array;
  readonly monitorKindCycles: Float64Array;
  cyclesAt(priv: number): number;
}

export class CpuTimes {
  readonly user: Float64Array;
  readonly kernel: Float64Array;
  readonly monitor: Float64Array;
  /** Per CPU, its monitor cycles by kind: `MONITOR_KIND_COUNT` slots from `cpu * MONITOR_KIND_COUNT`. */
  readonly monitorKinds: Float64Array;
  private userMark = 0;
  private kernelMark = 0;
  private readonly kindMark = new Float64Array(MONITOR_KIND_COUNT);

  constructor(cpus: number) {
    this.user = new Float64Array(cpus);
    this.kernel = new Float64Array(cpus);
    this.monitor = new Float64Array(cpus);
    this.monitorKinds = new Float64Array(cpus * MONITOR_KIND_COUNT);
  }

  /** Before CPU work is charged to or done by `h` (once per slice, not per instruction). */
  mark(h: HartTime): void {
    const m = h.monitorCycles;
    this.kindMark.set(h.monitorKindCycles);
    this.userMark = h.cyclesAt(PRIV_U) - m[PRIV_U]!;
    this.kernelMark = h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M) - m[PRIV_S]! - m[PRIV_M]!;
  }

  /**
   * After `h`'s slice on CPU `cpu`: what it did since `mark` is that CPU's. The monitor's share is the sum of
   * its kinds' growth, so that a CPU's kinds add up to its monitor cycles exactly.
   */
  charge(cpu: number, h: HartTime): void {
    const m = h.monitorCycles;
    const kinds = h.monitorKindCycles;
    const base = cpu * MONITOR_KIND_COUNT;
    for (let k = 0; k < MONITOR_KIND_COUNT; k++) {
      const grown = kinds[k]! - this.kindMark[k]!;
      if (grown > 0) {
        this.monitorKinds[base + k]! += grown;
        this.monitor[cpu]! += grown;
      }
    }
    this.user[cpu]! += Math.max(0, h.cyclesAt(PRIV_U) - m[PRIV_U]! - this.userMark);
    this.kernel[cpu]! += Math.max(0, h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M) - m[PRIV_S]! - m[PRIV_M]! - this.kernelMark);
  }

  /** CPU `cpu`'s monitor cycles by kind. */
  kindsOf(cpu: number): Float64Array {
    return this.monitorKinds.subarray(cpu * MONITOR_KIND_COUNT, (cpu + 1) * MONITOR_KIND_COUNT);
  }
}

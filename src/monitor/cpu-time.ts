// Where each physical CPU's time went (the dashboard's "where time goes" per CPU, docs/dashboard.md): the busy
// cycles of the vCPUs it ran, split as their accounts split them (guest user, guest kernel, monitor work
// charged to them: world switches, exits, moves). Idle is the rest of the machine's time. Not in snapshots:
// a restored machine starts counting again.

import { PRIV_M, PRIV_S, PRIV_U } from '../isa/opcodes.js';

/** What a vCPU's hart says of its time (cpu/hart-memory.ts). */
interface HartTime {
  readonly monitorCycles: Float64Array;
  cyclesAt(priv: number): number;
}

export class CpuTimes {
  readonly user: Float64Array;
  readonly kernel: Float64Array;
  readonly monitor: Float64Array;
  private userMark = 0;
  private kernelMark = 0;
  private monitorMark = 0;

  constructor(cpus: number) {
    this.user = new Float64Array(cpus);
    this.kernel = new Float64Array(cpus);
    this.monitor = new Float64Array(cpus);
  }

  /** Before CPU work is charged to or done by `h` (once per slice, not per instruction). */
  mark(h: HartTime): void {
    const m = h.monitorCycles;
    this.monitorMark = m[PRIV_U]! + m[PRIV_S]! + m[PRIV_M]!;
    this.userMark = h.cyclesAt(PRIV_U) - m[PRIV_U]!;
    this.kernelMark = h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M) - m[PRIV_S]! - m[PRIV_M]!;
  }

  /** After `h`'s slice on CPU `cpu`: what it did since `mark` is that CPU's. */
  charge(cpu: number, h: HartTime): void {
    const m = h.monitorCycles;
    const monitor = m[PRIV_U]! + m[PRIV_S]! + m[PRIV_M]!;
    this.monitor[cpu]! += Math.max(0, monitor - this.monitorMark);
    this.user[cpu]! += Math.max(0, h.cyclesAt(PRIV_U) - m[PRIV_U]! - this.userMark);
    this.kernel[cpu]! += Math.max(0, h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M) - m[PRIV_S]! - m[PRIV_M]! - this.kernelMark);
  }
}

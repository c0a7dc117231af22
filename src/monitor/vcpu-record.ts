// What the monitor keeps per vCPU beyond the hart: where it ran, its world switches and ready time, and its
// moves between CPUs by kind with what they cost (docs/monitor.md, "Time, scheduling").

import type { Hart } from '../cpu/hart.js';
import type { SchedVcpu } from './scheduler.js';
import type { VirtualMachine } from './vm.js';

export class VcpuRecord implements SchedVcpu {
  /** The physical CPU it last ran on (-1: never). */
  lastPcpu = -1;
  worldSwitches = 0;
  /** Cycles it was runnable but had no CPU (others' turn). */
  readyCycles = 0;
  /** Moves to another CPU of the same node, and to a CPU of another node (within its cell), and their cycles. */
  cpuMoves = 0;
  nodeMoves = 0;
  cpuMoveCycles = 0;
  nodeMoveCycles = 0;
  /** Moves to another cell (the balancers: cell-scheduler.ts), their cycles, and those not yet charged. */
  cellMigrations = 0;
  cellMoveCycles = 0;
  owedMigration = 0;

  constructor(readonly vm: number, readonly index: number, readonly hart: Hart, private readonly owner: VirtualMachine) {}

  runnable(): boolean {
    const h = this.hart;
    return this.owner.state === 'running' && !h.parked && !h.suspended && (!h.waiting || h.wakeable);
  }

  /** A balancer moved it to another cell, at a cost of `cycles`, charged when it next runs (`takeOwed`). */
  movedCell(cycles: number): void {
    this.cellMigrations++;
    this.cellMoveCycles += cycles;
    this.owedMigration += cycles;
  }

  /** It came to another CPU of its cell, of the same node or not, and the switch cost `cycles`. */
  movedCpu(sameNode: boolean, cycles: number): void {
    if (sameNode) {
      this.cpuMoves++;
      this.cpuMoveCycles += cycles;
    } else {
      this.nodeMoves++;
      this.nodeMoveCycles += cycles;
    }
  }

  /** The cycles of its moves to another cell not charged yet, now charged (the caller charges them). */
  takeOwed(): number {
    const owed = this.owedMigration;
    this.owedMigration = 0;
    return owed;
  }
}

// The registries of translated code under the monitor: the translator keeps what it translated, and which
// pages hold code, per code domain (Bus.codeDomain). One for the machine (every VM's with one cell; the VMs that
// span cells with several) and, with several cells, one per cell for the VMs confined to it (docs/cells.md).

import { machinePageReplaced } from '../cpu/translator.js';

export class CodeDomains {
  /** The machine's registry. */
  readonly machine = {};
  private readonly cells = new Map<number, object>();
  private readonly vms = new Map<number, object>();

  /**
   * VM `vm`'s code goes in cell `cell`'s registry (its own, for the VMs confined to that cell), or undefined:
   * the machine's (one cell, or a VM that spans cells). Call before its pmap is made.
   */
  assign(vm: number, cell: number | undefined): void {
    if (cell === undefined) {
      this.vms.delete(vm);
      return;
    }
    let domain = this.cells.get(cell);
    if (domain === undefined) {
      domain = {};
      this.cells.set(cell, domain);
    }
    this.vms.set(vm, domain);
  }

  /** The registry VM `vm`'s buses use (`assign`). */
  of(vm: number): object {
    return this.vms.get(vm) ?? this.machine;
  }

  /** Cell `cell` failed: its registry goes with it; a VM confined to it later (it rejoined) gets a new one. */
  drop(cell: number): void {
    this.cells.delete(cell);
  }

  /** The machine page at `address` got other contents: code translated from it is stale, in every registry. */
  replaced(address: number): void {
    machinePageReplaced(this.machine, address);
    for (const domain of this.cells.values()) machinePageReplaced(domain, address);
  }
}

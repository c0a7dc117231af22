// A monitor with two VMs: the one a fuzzer attacks, and a canary whose pages hold a pattern that must never change.
// "Never touches another VM's memory" is checked here: the canary's pages, and every machine page nobody owns.

import type { MachineConfig } from '../board/address-map.js';
import { FREE, PAGE } from '../monitor/machine-memory.js';
import { Monitor, type MonitorOptions } from '../monitor/monitor.js';
import type { VirtualMachine } from '../monitor/vm.js';

const MiB = 2 ** 20;
/** The smallest VM the board makes (a node needs 16 MiB). */
export const GUARDED_VM_BYTES = 16 * MiB;
/** Canary pages holding the pattern, spread over its memory (first, last, every 64th page). */
const CANARY_STRIDE = 64;

export interface GuardedOptions {
  /** vCPUs of the attacked VM (default 1). */
  vcpus?: number;
  /** Physical CPUs (default 1: the VMs share one). */
  cpus?: number;
  net?: boolean;
  monitor?: Partial<MonitorOptions>;
}

/** The word the canary keeps at word `k` of its guest page `gppn`. */
export function canaryWord(gppn: number, k: number): number {
  return (Math.imul(gppn + 1, 0x9e37_79b1) ^ Math.imul(k + 1, 0x85eb_ca6b)) | 0;
}

export class GuardedMonitor {
  readonly monitor: Monitor;
  /** The VM under attack. */
  readonly target: VirtualMachine;
  readonly canary: VirtualMachine;
  /** The canary's guest pages holding the pattern. */
  readonly canaryPages: number[];

  constructor(options: GuardedOptions = {}) {
    const cpus = options.cpus ?? 1;
    // Two nodes, so pages can move between them; room for both VMs and more.
    const config: MachineConfig = {
      harts: cpus,
      nodes: [
        { memoryBytes: 32 * MiB, harts: Array.from({ length: Math.ceil(cpus / 2) }, (_, k) => k) },
        { memoryBytes: 32 * MiB, harts: Array.from({ length: Math.floor(cpus / 2) }, (_, k) => Math.ceil(cpus / 2) + k) },
      ],
      distances: [[10, 20], [20, 10]],
    };
    this.monitor = new Monitor({ config, quantumRounds: 4, ...options.monitor });
    this.target = this.monitor.createVm({ name: 'target', vcpus: options.vcpus ?? 1, memoryBytes: GUARDED_VM_BYTES, net: options.net, console: () => {}, log: () => {} });
    this.canary = this.monitor.createVm({ name: 'canary', vcpus: 1, memoryBytes: GUARDED_VM_BYTES, net: options.net, console: () => {}, log: () => {} });
    const pages = GUARDED_VM_BYTES / PAGE;
    this.canaryPages = [...Array.from({ length: pages / CANARY_STRIDE }, (_, i) => i * CANARY_STRIDE), pages - 1];
    const memory = this.canary.machine.bus.guestMemory();
    const words = new Int32Array(PAGE / 4);
    for (const gppn of this.canaryPages) {
      for (let k = 0; k < words.length; k++) words[k] = canaryWord(gppn, k);
      memory.write(this.canary.pmap.base + gppn * PAGE, new Uint8Array(words.buffer));
    }
    // The canary's vCPU stays parked: it only holds memory (the hostile-VM test runs a live one).
    for (const h of this.canary.vcpus) h.parked = true;
  }

  /** Throws unless every canary page holds its pattern, in a machine page only the canary maps. */
  checkCanary(): void {
    const { memory } = this.monitor;
    if (this.canary.state !== 'running') throw new Error(`the canary VM ended: ${this.canary.state} (${this.canary.reason})`);
    for (const gppn of this.canaryPages) {
      const mpn = this.canary.pmap.lookup(gppn);
      if (mpn === FREE) throw new Error(`canary page ${gppn} lost its machine page`);
      for (const user of memory.usersOf(mpn)) {
        if (user.vm !== this.canary.id) throw new Error(`canary page ${gppn} (machine page ${mpn}) is mapped by VM ${user.vm} too`);
      }
      const words = memory.regionOf(mpn).i32;
      const at = memory.offsetOf(mpn) / 4;
      for (let k = 0; k < PAGE / 4; k++) {
        if (words[at + k] !== canaryWord(gppn, k)) throw new Error(`canary page ${gppn} word ${k} changed`);
      }
    }
  }

  /** Throws unless every machine page no VM and not the monitor uses is all zero (nothing wrote past a pmap). */
  checkUnowned(): void {
    const { memory } = this.monitor;
    for (let mpn = 0; mpn < memory.totalPages; mpn++) {
      const owner = memory.owner[mpn]!;
      if (owner !== FREE) continue; // a VM's, the monitor's (MONITOR) or a replica's
      const words = memory.regionOf(mpn).i32;
      const at = memory.offsetOf(mpn) / 4;
      for (let k = 0; k < PAGE / 4; k++) {
        if (words[at + k] !== 0) throw new Error(`machine page ${mpn}, which no VM owns, was written (word ${k})`);
      }
    }
  }

  /** Throws if the attacked VM ended for a reason a guest must never cause: a monitor error. */
  checkTarget(): void {
    if (this.target.state === 'crashed') throw new Error(`the monitor failed on the attacked VM: ${this.target.reason}`);
  }
}

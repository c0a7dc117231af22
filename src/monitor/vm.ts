// A virtual machine: an ordinary small UMA computer whose RAM is a pmap over the machine's memory.

import { bootLinux } from '../board/boot.js';
import { Machine, type ExitReason } from '../board/machine.js';
import {
  EXT_BASE, EXT_DBCN, EXT_HSM, EXT_IPI, EXT_MIRRORBALL, EXT_PMU, EXT_RFENCE, EXT_SRST, EXT_TIME,
} from '../board/sbi.js';
import type { Hart } from '../cpu/hart.js';
import type { HartState } from '../cpu/hart-state.js';
import { SecondLevelTlbSet } from '../cpu/tlb.js';
import type { MachineMemory } from './machine-memory.js';
import { Pmap } from './pmap.js';

/**
 * What the monitor's work costs a vCPU, in cycles, beyond what the same event costs on the bare machine.
 * The bare machine refills its TLB by a hardware walk and answers SBI calls for free (fast mode charges
 * neither); under the monitor a first-level TLB miss traps to the monitor, which refills from the vCPU's
 * second-level TLB or walks the guest's table and its pmap. Figures of the order Disco reports for the
 * R10000 (its Table 2 and §5).
 */
export interface MonitorCosts {
  /** A first-level TLB refill the second-level TLB answers. */
  secondLevelHit: number;
  /** A refill that walks the guest's page table and composes with the pmap. */
  walk: number;
  /** A monitor call (an SBI ECALL): trap, decode, emulate, return. */
  monitorCall: number;
  /** The first touch of a guest page: a machine page found, zeroed and mapped. */
  pageFill: number;
  /** A physical CPU switching to another vCPU: registers saved and restored, first-level TLB emptied. */
  worldSwitch: number;
}

export const DEFAULT_COSTS: MonitorCosts = { secondLevelHit: 20, walk: 60, monitorCall: 150, pageFill: 400, worldSwitch: 400 };

export type VmState = 'running' | 'off' | 'crashed' | 'stopped';

export interface VmOptions {
  /** The VM's id (its memmap owner) and name. */
  id: number;
  name: string;
  vcpus: number;
  memoryBytes: number;
  /** The node the VM's memory prefers (its vCPUs prefer that node's CPUs). */
  homeNode: number;
  /** Console output (the UART and the SBI console). */
  console: (bytes: Uint8Array) => void;
  /** Guest mistakes and device errors. */
  log?: (message: string) => void;
  translate?: boolean;
  costs?: MonitorCosts;
  /** Second-level TLB entries per privilege level and kind of access (a power of two). */
  secondLevelEntries?: number;
}

const CALL_NAMES = new Map<number, string>([
  [EXT_BASE, 'base'], [EXT_TIME, 'time'], [EXT_IPI, 'ipi'], [EXT_RFENCE, 'rfence'], [EXT_HSM, 'hsm'],
  [EXT_SRST, 'srst'], [EXT_DBCN, 'dbcn'], [EXT_PMU, 'pmu'], [EXT_MIRRORBALL, 'mirrorball'],
]);

/** The name of the SBI extension in a7, as the accounting shows it. */
export function monitorCallName(extension: number): string {
  return CALL_NAMES.get(extension) ?? (extension >= 0 && extension <= 8 ? 'legacy' : 'unknown');
}

/**
 * One VM: its own bus (the pmap's RAM and its own devices), its vCPUs (harts that run in S-mode and U-mode;
 * the monitor answers their SBI calls), its own device tree showing one UMA node. The monitor schedules
 * the vCPUs on physical CPUs and moves the VM's time with the machine's.
 */
export class VirtualMachine {
  readonly id: number;
  readonly name: string;
  readonly machine: Machine;
  readonly pmap: Pmap;
  state: VmState = 'running';
  /** Why it ended: the guest's power-off or reboot, the monitor's stop, or the error that crashed it. */
  reason = '';
  /** Monitor calls by SBI extension name. */
  readonly monitorCalls = new Map<string, number>();
  /** The vCPU running now (the pmap charges its fills to it). */
  private current: Hart | undefined;
  private readonly costs: MonitorCosts;

  constructor(memory: MachineMemory, options: VmOptions) {
    this.id = options.id;
    this.name = options.name;
    this.costs = options.costs ?? DEFAULT_COSTS;
    let pmap: Pmap | undefined;
    this.machine = new Machine({
      config: { harts: options.vcpus, nodes: [{ memoryBytes: options.memoryBytes, harts: Array.from({ length: options.vcpus }, (_, i) => i) }] },
      builtinSbi: true,
      console: options.console,
      log: options.log,
      translate: options.translate ?? true,
      pagedRam: (layout) => {
        pmap = new Pmap(memory, {
          vm: options.id,
          base: layout.nodes[0]!.base,
          size: layout.nodes[0]!.size,
          homeNode: options.homeNode,
          onFill: () => this.current?.chargeMonitor(this.costs.pageFill),
          shootDown: (address) => { for (const h of this.machine.harts) h.shootDown(address); },
        });
        return pmap;
      },
      onEcall: (h) => this.monitorCall(h),
    });
    this.pmap = pmap!;
    for (const h of this.machine.harts) {
      h.secondLevel = new SecondLevelTlbSet(options.secondLevelEntries ?? 2048);
      h.refillCosts = { secondLevelHit: this.costs.secondLevelHit, walk: this.costs.walk };
    }
  }

  get vcpus(): readonly Hart[] {
    return this.machine.harts;
  }

  /** Loads Linux as a boot loader would and starts vCPU 0 in S-mode at its entry. */
  boot(kernel: Uint8Array, initrd: Uint8Array | undefined, append: string): void {
    bootLinux(this.machine, { kernel, initrd, append });
  }

  private monitorCall(h: HartState): void {
    const name = monitorCallName(h.reg(17));
    this.monitorCalls.set(name, (this.monitorCalls.get(name) ?? 0) + 1);
    this.machine.harts[h.id]!.chargeMonitor(this.costs.monitorCall);
  }

  /** The monitor is about to run vCPU `h` (or nothing, undefined) on a physical CPU. */
  setCurrent(h: Hart | undefined): void {
    this.current = h;
  }

  /** The guest ended by itself (power-off, reboot): its exit, or undefined while it runs. */
  get exit(): ExitReason | undefined {
    return this.machine.exit;
  }

  /** Ends the VM: its vCPUs stop for good and its machine pages go back to the machine. */
  end(state: Exclude<VmState, 'running'>, reason: string): void {
    if (this.state !== 'running') return;
    this.state = state;
    this.reason = reason;
    this.machine.stopWith({ kind: 'quit' });
    for (const h of this.machine.harts) h.releaseTranslation();
    this.pmap.release();
  }
}

// Why a vCPU stopped running guest code: the tagged value the monitor's one switch takes (KVM's run loop, crosvm's VcpuExit).

import type { Access } from '../memory/bus.js';
import type { HardwareSyndrome } from '../memory/hardware-faults.js';
import type { MemoryTiming } from './memory-timing.js';

/**
 * An access the monitor's permissions denied (RISC-V H's guest-page fault, privileged spec §9.6.3): nothing
 * of the instruction has happened yet. `gpa` is the guest-physical address (htval holds it shifted right by
 * 2); `access` is what the instruction was doing, `needs` what the denied access on `gpa` was: they differ
 * for the page walker's implicit accesses, which read a table page or write its A/D bits (`implicit`).
 */
export interface GuestPageFaultExit {
  readonly kind: 'guest-page-fault';
  /** The trap cause H would report: 20 fetch, 21 load, 23 store/AMO. */
  readonly cause: number;
  readonly gpa: number;
  /** The guest-virtual address of the instruction's access (stval/htval's `va` side). */
  readonly va: number;
  readonly access: Access;
  readonly needs: Access;
  readonly implicit: boolean;
}

/** A monitor call: an ECALL from the guest's supervisor (SBI: extension in a7, function in a6). */
export interface SbiExit {
  readonly kind: 'sbi';
  readonly extension: number;
  readonly fn: number;
}

/** A load or store to an emulated device's registers. */
export interface MmioExit {
  readonly kind: 'mmio';
  readonly address: number;
  readonly size: number;
  readonly write: boolean;
}

/** WFI with nothing pending: the vCPU gives its CPU away until an interrupt. */
export interface WfiExit {
  readonly kind: 'wfi';
}

/**
 * An interrupt the guest takes, which the monitor delivered (H's hvip: a virtual timer, device or software
 * interrupt); `irq` is its cause number. Reported as the guest's trap is entered; a report only, whose answer
 * is not awaited (the interrupt is taken whatever it is).
 */
export interface InterruptExit {
  readonly kind: 'interrupt';
  readonly irq: number;
}

/**
 * An access the machine's hardware refused (memory/hardware-faults.ts): the memory's node failed, no route
 * reaches it, or the line is poisoned. Hardware reports it as an access fault with a syndrome (a machine-check
 * record); H does not delegate access faults to the guest (KVM leaves them to HS), so under the monitor it is
 * an exit. `address` is the machine address, `va` the instruction's. Nothing of the instruction has
 * happened. RESUME hands the guest the access fault; WAIT stops the vCPU here.
 */
export interface BusErrorExit {
  readonly kind: 'bus-error';
  readonly address: number;
  readonly va: number;
  readonly access: Access;
  readonly syndrome: HardwareSyndrome;
}

export type VcpuExit = GuestPageFaultExit | SbiExit | MmioExit | WfiExit | InterruptExit | BusErrorExit;

/**
 * What the monitor does with an exit, called the way an HS-mode trap handler is: on the vCPU's own time,
 * before the instruction that exited retires. RESUME: the vCPU goes on (for a guest-page fault, the access
 * is tried again: the monitor made it allowed). WAIT: the vCPU stops here, its instruction not executed,
 * and does not run again until the monitor resumes it (`HartState.resume`); the others run meanwhile.
 */
export const RESUME = 0;
export const WAIT = 1;
export type ExitAction = typeof RESUME | typeof WAIT;

export type ExitHandler = (vcpu: number, exit: VcpuExit) => ExitAction;

/**
 * Under the monitor, in timing mode: the monitor's own tables a vCPU's TLB refill reads or writes, at machine
 * addresses on a node (monitor/monitor-data.ts). Each method charges CPU `cpu`'s references to them through
 * `timing`'s cache model and returns their cycles, so a vCPU running far from its tables pays more.
 */
export interface MonitorTables {
  /** `nested`: the G-stage walk of guest-physical `gpa`, reading the pmap's tables; sets `gStageLevels`. */
  gStageWalk(timing: MemoryTiming, cpu: number, gpa: number): number;
  /** The levels the last `gStageWalk` read (2 where the pmap maps the 2 MiB block as one large page, else 3). */
  readonly gStageLevels: number;
  /** `software`: the second-level TLB's entry for `vpn`, read by a refill it answers or written by one that walked. */
  secondLevelEntry(timing: MemoryTiming, cpu: number, vpn: number, write: boolean): number;
  /** `software`: the pmap's entry for guest-physical `gpa`, read by a refill that walked the guest's tables. */
  pmapEntry(timing: MemoryTiming, cpu: number, gpa: number): number;
}

// A virtual machine: an ordinary small UMA computer whose RAM is a pmap over the machine's memory.

import { bootLinux, bootSbiPayload, type PayloadPlan } from '../board/boot.js';
import { Machine, type ExitReason } from '../board/machine.js';
import {
  EXT_BASE, EXT_DBCN, EXT_HSM, EXT_IPI, EXT_MIRRORBALL, EXT_PMU, EXT_RFENCE, EXT_SRST, EXT_TIME,
} from '../board/sbi.js';
import { RESUME, WAIT, type ExitAction, type VcpuExit } from '../cpu/exits.js';
import type { Hart } from '../cpu/hart.js';
import type { MemoryTiming } from '../cpu/memory-timing.js';
import { G_STAGE_TLB_ENTRIES, GStageTlb } from '../cpu/g-stage-tlb.js';
import { causeKind, KIND_BALLOON, KIND_PAGING } from '../cpu/monitor-kinds.js';
import { SecondLevelTlbSet } from '../cpu/tlb.js';
import { IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER } from '../isa/opcodes.js';
import type { Access } from '../memory/bus.js';
import { FREE, OutOfMachineMemory, PAGE, type MachineMemory } from './machine-memory.js';
import { causeCost, DEFAULT_BALLOON_COSTS, DEFAULT_COSTS, type BalloonCosts, type MonitorCosts } from './costs.js';
import { VirtioBalloon } from '../devices/virtio/balloon.js';
import { VmBalloon } from './balloon.js';
import { MemmapTable, touchPage, VmTables } from './monitor-data.js';
import { Pmap, type FaultResolution, type Placement } from './pmap.js';
import { OUT_OF_SWAP, type Pager } from './pager.js';

/** A vCPU's second-level TLB entries unless the VM says (Disco's software refill; docs/monitor.md). */
export const DEFAULT_SECOND_LEVEL_ENTRIES = 2048;

export { DEFAULT_COSTS, type MonitorCosts } from './costs.js';

export type VmState = 'running' | 'off' | 'crashed' | 'stopped';

/**
 * Why a vCPU's run ended, for the monitor's switch: its slice was used up; it waits for an interrupt (WFI)
 * or is powered off; it waits at an exit the monitor answered WAIT (a held page); its guest ended the VM
 * (power-off, reboot); the machine had no page for it; or the monitor's own code failed (a bug, or an
 * impossible request).
 */
export type VcpuStop =
  | { kind: 'slice' }
  | { kind: 'idle' }
  | { kind: 'waiting'; exit: VcpuExit }
  | { kind: 'ended' }
  | { kind: 'out-of-memory'; reason: string }
  | { kind: 'hardware-error'; reason: string }
  | { kind: 'crashed'; error: string };

/** How the reason of a VM stopped for want of machine memory begins. */
export const OUT_OF_MEMORY = 'machine memory exhausted';

export interface VmOptions {
  /** The VM's id (its memmap owner) and name. */
  id: number;
  name: string;
  vcpus: number;
  memoryBytes: number;
  /** The node the VM's memory prefers (its vCPUs prefer that node's CPUs). */
  homeNode: number;
  /** The cells it depends on (one: confined there; several: it spans them; docs/cells.md). Default [0]. */
  cells?: readonly number[];
  /** Console output (the UART and the SBI console). */
  console: (bytes: Uint8Array) => void;
  /** Guest mistakes and device errors. */
  log?: (message: string) => void;
  translate?: boolean;
  costs?: MonitorCosts;
  /** Second-level TLB entries per privilege level and kind of access (a power of two). */
  secondLevelEntries?: number;
  /** How guest-physical maps to machine (docs/monitor.md): Disco's software-refilled TLB (default) or H's nested walk. */
  mmu?: MmuMode;
  /**
   * Told of every TLB miss of the VM's vCPUs: the machine page, the node of the CPU the vCPU runs on, whether
   * a write missed (the NUMA policy's TLB-miss signal, Monitor.tlbCounters).
   */
  tlbMissSignal?: (mpn: number, node: number, write: boolean) => void;
  /** `nested`: entries of each vCPU's G-stage TLB (cpu/g-stage-tlb.ts; default G_STAGE_TLB_ENTRIES, 0 for none). */
  gStageTlbEntries?: number;
  /** Where the pmap takes machine pages from (pmap.ts Placement; default `home`). */
  placement?: Placement;
  /** The machine's memmap as it lies in machine memory (the monitor's), which fault handling references in timing mode. */
  memmap?: MemmapTable;
  /** False: the VM's pages are never shared with other VMs' (`share: false`; default true). */
  sharesWithOthers?: boolean;
  /** The physical machine's TLB registry (board/hardware.ts `attach`): a hardware fault empties the vCPUs' TLBs. */
  hardware?: { attach(holder: { hardwareChanged(): void }): () => void };
  /** Told where the boot images went once `boot` loaded them (the monitor's page cache shares their pages). */
  onBoot?: (vm: VirtualMachine, images: readonly BootImage[]) => void;
}

/** An image the monitor loaded into a VM: its bytes and the guest-physical address of its first. */
export interface BootImage {
  kind: 'kernel' | 'initrd';
  bytes: Uint8Array;
  address: number;
}

/**
 * `software`: Disco's design on MIPS. A first-level TLB miss exits to the monitor, which refills from the
 * vCPU's second-level TLB or walks the guest's table and the pmap, charged per the cost table.
 * `nested`: the H extension's two-stage walk in hardware. A miss is no exit; the walk's references are
 * charged (timing mode) with every guest level translated by the G-stage too.
 */
export type MmuMode = 'software' | 'nested';

/** Supervisor interrupts by cause number (privileged spec §4.1.3). */
const INTERRUPT_NAMES: Record<number, string> = { [IRQ_S_SOFT]: 'software', [IRQ_S_TIMER]: 'timer', [IRQ_S_EXT]: 'external' };

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
  readonly mmu: MmuMode;
  readonly machine: Machine;
  readonly pmap: Pmap;
  /** The cells it depends on: the failure of any ends it (docs/cells.md). Ascending. */
  get cells(): readonly number[] {
    return this.cellList;
  }

  private readonly cellList: number[];
  /** The cells it was placed in (before any balancer moved a vCPU of it elsewhere). */
  readonly placedCells: readonly number[];

  /** It comes to depend on cell `cell` too (a vCPU of it moved there: cell-scheduler.ts). */
  dependOn(cell: number): void {
    if (this.cellList.includes(cell)) return;
    this.cellList.push(cell);
    this.cellList.sort((a, b) => a - b);
  }
  state: VmState = 'running';
  /** Why it ended: the guest's power-off or reboot, the monitor's stop, or the error that crashed it. */
  reason = '';
  /** Monitor calls by SBI extension name. */
  readonly monitorCalls = new Map<string, number>();
  /** Exits by kind and cause: `guest-page-fault.fill`, `sbi.time`, `mmio.ns16550a`, `wfi`, `interrupt.timer`, … */
  readonly exits = new Map<string, number>();
  /** The same per vCPU. */
  readonly vcpuExits: Map<string, number>[];
  /** Per vCPU: shootdowns that found an entry of the page in its TLB (`shootdownIpis`). */
  readonly tlbShootdowns: Uint32Array;
  /** Set when the machine had no page for this VM: the monitor stops it after its vCPU's run. */
  outOfMemory: string | undefined = undefined;
  /** Set when a vCPU took a bus error from failed hardware: the monitor ends the VM after its vCPU's run. */
  hardwareError: string | undefined = undefined;
  /** Lets the vCPUs' TLBs go from the hardware's registry. */
  private readonly detachHardware: (() => void)[] = [];
  private readonly costs: MonitorCosts;
  private readonly memory: MachineMemory;
  /** The monitor's data for this VM in machine memory: pmap tables, vCPU state, second-level TLBs. */
  readonly tables: VmTables;
  private readonly memmap: MemmapTable | undefined;
  /** False for a VM that opted out of sharing pages with other VMs (`share: false`). */
  readonly sharesWithOthers: boolean;
  private readonly onBoot: VmOptions['onBoot'];
  /** Monitor-level paging (pager.ts), when the monitor has a swap store: it sets this once the VM is made. */
  pager: Pager | undefined = undefined;
  /** Its virtio balloon and the monitor's side of it, once plugged in (`attachBalloon`). */
  balloonDevice: VirtioBalloon | undefined = undefined;
  balloon: VmBalloon | undefined = undefined;

  constructor(memory: MachineMemory, options: VmOptions) {
    this.id = options.id;
    this.name = options.name;
    this.cellList = [...(options.cells ?? [0])];
    this.placedCells = [...this.cellList];
    this.mmu = options.mmu ?? 'software';
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
          placement: options.placement,
          shootDown: (address, bytes) => this.shootDown(address, bytes),
        });
        return pmap;
      },
      exits: (vcpu, exit) => this.handleExit(vcpu, exit),
      dmaFault: (address, access) => this.dmaFault(address, access),
    });
    this.pmap = pmap!;
    this.memory = memory;
    this.memmap = options.memmap;
    this.sharesWithOthers = options.sharesWithOthers ?? true;
    this.onBoot = options.onBoot;
    const secondLevelEntries = options.secondLevelEntries ?? DEFAULT_SECOND_LEVEL_ENTRIES;
    try {
      this.tables = new VmTables(memory, this.pmap, options.homeNode, options.vcpus, secondLevelEntries);
    } catch (error) {
      this.pmap.release();
      throw error;
    }
    this.tlbShootdowns = new Uint32Array(options.vcpus);
    this.vcpuExits = this.machine.harts.map(() => new Map<string, number>());
    const signal = options.tlbMissSignal;
    const ramBase = memory.addressOf(0);
    for (const h of this.machine.harts) {
      if (options.hardware !== undefined) this.detachHardware.push(options.hardware.attach(h));
      // A vCPU has no PMP of its own: what the guest may touch is the pmap's to say (H's G-stage), and the
      // machine's PMP, which would sit behind it, is the monitor's and allows the VM's memory.
      h.pmp.removeEntries();
      h.monitorTables = this.tables.forVcpu(h.id);
      if (signal !== undefined) h.onTlbMiss = (page, write) => signal((page - ramBase) / PAGE, this.pmap.readerNode, write);
      if (options.mmu === 'nested') {
        h.nestedWalk = true;
        const entries = options.gStageTlbEntries ?? G_STAGE_TLB_ENTRIES;
        if (entries > 0) h.gStageTlb = new GStageTlb(entries);
      } else {
        h.secondLevel = new SecondLevelTlbSet(secondLevelEntries);
        h.refillCosts = { secondLevelHit: this.costs.secondLevelHit, walk: this.costs.walk };
      }
    }
  }

  /** Its shared pages by how many hold their machine page (memmap users: guest pages of any VM, the page cache). */
  pagesSharedBy(): Map<number, number> {
    const by = new Map<number, number>();
    for (let gppn = 0; gppn < this.pmap.pages; gppn++) {
      const mpn = this.pmap.lookup(gppn);
      if (mpn === FREE) continue;
      const holders = this.memory.users[mpn]!;
      if (holders > 1) by.set(holders, (by.get(holders) ?? 0) + 1);
    }
    return by;
  }

  get vcpus(): readonly Hart[] {
    return this.machine.harts;
  }

  /** Loads Linux as a boot loader would and starts vCPU 0 in S-mode at its entry. */
  boot(kernel: Uint8Array, initrd: Uint8Array | undefined, append: string): void {
    const plan = bootLinux(this.machine, { kernel, initrd, append });
    const images: BootImage[] = [{ kind: 'kernel', bytes: kernel, address: plan.kernel.base }];
    if (initrd !== undefined && plan.initrd !== undefined) images.push({ kind: 'initrd', bytes: initrd, address: plan.initrd.base });
    this.onBoot?.(this, images);
  }

  /**
   * Loads a bare S-mode program (an ELF, not Linux: a thin library OS, Disco's SPLASHOS case) and starts
   * vCPU 0 at its entry with a0 = 0, a1 = the VM's device tree; the SBI, answered by
   * the monitor, and the VM's devices are its interface. A bad ELF is a BootError, nothing loaded.
   */
  bootElf(bytes: Uint8Array): PayloadPlan {
    return bootSbiPayload(this.machine, bytes);
  }

  /**
   * The monitor's answer to every exit of this VM's vCPUs, one case per kind (KVM's run loop): called as an
   * HS-mode trap handler would be, on the vCPU's time, before the instruction that exited retires.
   */
  handleExit(vcpu: number, exit: VcpuExit): ExitAction {
    const h = this.machine.harts[vcpu]!;
    switch (exit.kind) {
      case 'guest-page-fault': {
        const gppn = this.gppnOf(exit.gpa);
        const paged = this.pager === undefined ? undefined : this.pagedFault(h, gppn, exit.needs);
        if (paged !== undefined) return paged;
        const before = this.pmap.lookup(gppn);
        const mark = this.tlbShootdowns.slice();
        const resolution = this.resolveFault(gppn, exit.needs);
        if (resolution === undefined) return WAIT;
        // The soft fault that tells the pager a page it gave a second chance was used (pager.ts).
        const kind = this.charge(h, `guest-page-fault.${resolution === 'protection' && this.pager?.takeSoftFault(before) === true ? 'reference' : resolution}`);
        // A copy-on-write break or a collapse takes the old page from the other vCPUs' TLBs that hold it.
        h.chargeMonitor(this.shootdownIpis(mark, h.id) * this.costs.ipi, kind);
        const timing = h.memoryTiming;
        if (timing !== undefined) h.chargeMonitor(this.faultReferences(timing, h.timingCpu, resolution, exit.gpa, before, this.pmap.lookup(gppn)), kind);
        return resolution === 'wait' ? WAIT : RESUME;
      }
      case 'sbi': {
        const name = monitorCallName(exit.extension);
        this.monitorCalls.set(name, (this.monitorCalls.get(name) ?? 0) + 1);
        this.charge(h, `sbi.${name}`);
        return RESUME;
      }
      case 'mmio':
        this.charge(h, `mmio.${this.machine.bus.windowAt(exit.address)?.device.name ?? 'none'}`);
        return RESUME;
      case 'wfi':
        this.charge(h, 'wfi');
        return RESUME;
      case 'interrupt':
        this.charge(h, `interrupt.${INTERRUPT_NAMES[exit.irq] ?? exit.irq}`);
        return RESUME;
      case 'bus-error':
        // The hardware refused the access (failed or unreachable memory, poison): the guest's state depends on
        // memory it cannot have, so the VM ends (fault-recovery.ts ends the others that mapped the page).
        this.count(h.id, `bus-error.${exit.syndrome}`);
        this.hardwareError ??= `vCPU ${vcpu} took a bus error (${exit.syndrome}) at machine address 0x${exit.address.toString(16)}`;
        return WAIT;
    }
  }

  /**
   * Counts an exit of cause `cause` on vCPU `h` and charges it what the cost table says (costs.ts causeCost);
   * in timing mode also the guest's registers saved to its state page and loaded back, through the cache of
   * the CPU it runs on.
   */
  private charge(h: Hart, cause: string): number {
    this.count(h.id, cause);
    const kind = causeKind(cause);
    h.chargeMonitor(causeCost(this.costs, cause), kind);
    const timing = h.memoryTiming;
    if (timing !== undefined) h.chargeMonitor(this.tables.exitState(timing, h.timingCpu, h.id), kind);
    return kind;
  }

  /**
   * Timing mode: the references of a guest-page fault's handling on CPU `cpu`, beyond the cost table's
   * instructions: the pmap entry of `gpa` and the memmap entries of machine pages `before` (what the guest
   * page mapped, or FREE) and `after`; a fill zeroes the new page and a copy reads the old one and writes
   * the new, line by line.
   */
  private faultReferences(timing: MemoryTiming, cpu: number, resolution: FaultResolution, gpa: number, before: number, after: number): number {
    const memmap = (mpn: number, write: boolean): number => (this.memmap !== undefined && mpn !== FREE ? this.memmap.entry(timing, cpu, mpn, write) : 0);
    switch (resolution) {
      case 'wait':
        return this.tables.pmapEntry(timing, cpu, gpa, false);
      case 'protection':
        return this.tables.pmapEntry(timing, cpu, gpa, true) + memmap(after, false);
      case 'collapse':
        // The pmap entry and the master's memmap entry (the copies' entries, freed with them, are not counted).
        return this.tables.pmapEntry(timing, cpu, gpa, true) + memmap(after, true);
      case 'fill':
        return memmap(after, false) + memmap(after, true) + touchPage(this.memory, timing, cpu, after, true) + this.tables.pmapEntry(timing, cpu, gpa, true);
      case 'copy-on-write':
        return memmap(before, true) + memmap(after, true) + touchPage(this.memory, timing, cpu, before, false)
          + touchPage(this.memory, timing, cpu, after, true) + this.tables.pmapEntry(timing, cpu, gpa, true);
    }
  }

  private count(vcpu: number, key: string): void {
    this.exits.set(key, (this.exits.get(key) ?? 0) + 1);
    const mine = this.vcpuExits[vcpu];
    if (mine !== undefined) mine.set(key, (mine.get(key) ?? 0) + 1);
  }

  /** The guest page number of guest-physical `gpa`, counted from the VM's RAM base. */
  private gppnOf(gpa: number): number {
    return Math.floor((gpa - this.pmap.base) / PAGE);
  }

  /** A guest-page fault on guest page `gppn`: the pmap's answer, or undefined when memory ran out. */
  private resolveFault(gppn: number, needs: Access): FaultResolution | undefined {
    try {
      return this.pmap.resolveFault(gppn, needs);
    } catch (error) {
      if (!(error instanceof OutOfMachineMemory)) throw error;
      this.outOfMemory ??= `${OUT_OF_MEMORY} (${Math.round((this.pmap.pagesInUse * PAGE) / 2 ** 20)} MiB in use)`;
      return undefined;
    }
  }

  /**
   * With paging: the safe point of a vCPU's guest-page fault. Memory is made room for (pages written out or
   * dropped), then the page, if in the swap store, is read back. Returns WAIT while the vCPU waits out the swap
   * device (the others run; `Pager.sleep`), or after it found no memory; RESUME once a page read back allows the
   * access; undefined when the fault goes on as usual (the pager did nothing, or only computed).
   */
  private pagedFault(h: Hart, gppn: number, needs: Access): ExitAction | undefined {
    const pager = this.pager!;
    const costs = pager.costs;
    let read = false;
    let work;
    try {
      work = pager.makeRoom({ vm: this.id, gppn });
      // While it waits for its writes, the page is not read yet: its fault comes again after.
      if (work.written === 0 && pager.slotOf(this.id, gppn) >= 0) {
        if (!pager.readBack(this.pmap, gppn, needs)) this.pmap.resolveFault(gppn, needs);
        read = true;
      }
    } catch (error) {
      if (!(error instanceof OutOfMachineMemory)) throw error;
      this.outOfMemory ??= error.message.startsWith(OUT_OF_SWAP) ? error.message : `${OUT_OF_MEMORY} (${Math.round((this.pmap.pagesInUse * PAGE) / 2 ** 20)} MiB in use)`;
      return WAIT;
    }
    h.chargeMonitor(work.written * costs.pageOut + work.zeroDropped * costs.zeroDrop + work.handSteps * costs.handStep + (read ? costs.pageIn : 0), KIND_PAGING);
    if (read) this.charge(h, 'guest-page-fault.swap-in');
    const io = (work.written > 0 ? costs.latency + work.written * costs.transferPerPage : 0) + (read ? costs.latency + costs.transferPerPage : 0);
    if (io === 0) return read ? RESUME : undefined;
    pager.sleep(h, () => this.machine.cycles, this.machine.cycles + io, () => this.state === 'running');
    return WAIT;
  }

  /** A device's DMA (or the loader) denied at `address`: resolved at once if it can be, refused otherwise. */
  private dmaFault(address: number, access: Access): boolean {
    const gppn = this.gppnOf(address);
    // A page in the swap store comes back at once: a device does not wait (its read is not charged to a vCPU).
    if (this.pager !== undefined && this.pager.slotOf(this.id, gppn) >= 0) {
      try {
        if (this.pager.readBack(this.pmap, gppn, access)) {
          this.count(-1, 'guest-page-fault.dma.swap-in');
          return true;
        }
      } catch (error) {
        if (!(error instanceof OutOfMachineMemory)) throw error;
        this.outOfMemory ??= `${OUT_OF_MEMORY} (${Math.round((this.pmap.pagesInUse * PAGE) / 2 ** 20)} MiB in use)`;
        return false;
      }
    }
    const resolution = this.resolveFault(gppn, access);
    if (resolution !== undefined) this.count(-1, `guest-page-fault.dma.${resolution}`);
    return resolution !== undefined && resolution !== 'wait';
  }

  /**
   * The IPIs vCPU `from` needs for the shootdowns since `mark` (a copy of `tlbShootdowns` taken before): one per
   * other vCPU whose TLB held an entry of a page shot down. Disco's memmap kept, per page, the TLBs that mapped
   * it, so that a shootdown interrupts only those.
   */
  shootdownIpis(mark: Uint32Array, from: number): number {
    let ipis = 0;
    for (let i = 0; i < mark.length; i++) if (i !== from && this.tlbShootdowns[i]! > mark[i]!) ipis++;
    return ipis;
  }

  /**
   * The mapping of the machine page at `address` (or of the `bytes` from it: a block) changed: every vCPU drops
   * its TLB entries of it, and any LR reservation on it is lost (an SC must not succeed on a page that is no
   * longer the one it reserved).
   */
  private shootDown(address: number, bytes = PAGE): void {
    for (const h of this.machine.harts) if (h.shootDown(address, bytes)) this.tlbShootdowns[h.id]!++;
    if (this.machine.reservations.count > 0) this.machine.reservations.storeBy(-1, address, bytes);
  }

  /**
   * Plugs a virtio balloon into the next free virtio slot, with the monitor's backend (balloon.ts): pages the
   * guest reports free or inflates lose their machine pages, charged to the vCPU that asked per `costs`.
   */
  attachBalloon(costs: BalloonCosts = DEFAULT_BALLOON_COSTS, log?: (message: string) => void): VirtioBalloon {
    if (this.balloonDevice !== undefined) throw new Error(`VM ${this.name} has a balloon already`);
    this.balloon = new VmBalloon(this, costs, this.costs.ipi);
    this.balloonDevice = new VirtioBalloon(this.balloon, { log });
    this.machine.attachVirtio(this.balloonDevice);
    return this.balloonDevice;
  }

  /** Runs vCPU `h` until the VM's clock reaches `end` or it stops; says why it stopped. */
  runVcpu(h: Hart, end: number): VcpuStop {
    try {
      this.machine.runHart(h, end);
    } catch (error) {
      return { kind: 'crashed', error: error instanceof Error ? error.message : String(error) };
    }
    // The balloon's requests ran inside this vCPU's MMIO notifies: their work is its to pay.
    const owed = this.balloon?.takeOwed(h.id) ?? 0;
    if (owed > 0) h.chargeMonitor(owed, KIND_BALLOON);
    if (this.outOfMemory !== undefined) return { kind: 'out-of-memory', reason: this.outOfMemory };
    if (this.hardwareError !== undefined) return { kind: 'hardware-error', reason: this.hardwareError };
    if (this.machine.exit !== undefined) return { kind: 'ended' };
    if (h.suspended) return { kind: 'waiting', exit: h.exited! };
    if (h.parked || h.waiting) return { kind: 'idle' };
    return { kind: 'slice' };
  }

  /** Lets the vCPUs waiting on guest page `gppn` run again (the monitor gave the page back: `Pmap.unhold`). */
  wakeWaiters(gppn: number): void {
    for (const h of this.machine.harts) {
      const exit = h.exited;
      if (h.suspended && exit?.kind === 'guest-page-fault' && this.gppnOf(exit.gpa) === gppn) h.resume();
    }
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
    for (const detach of this.detachHardware.splice(0)) detach();
    this.pmap.release();
    this.tables.release();
  }
}

// The monitor's own data in machine memory (its memmap, each VM's pmap tables, vCPU state, second-level TLBs)
// and what its references to them cost in timing mode, through the same cache model as the guest's.

import type { MonitorTables } from '../cpu/exits.js';
import type { MemoryTiming } from '../cpu/memory-timing.js';
import { BLOCK_PAGES, type MachineMemory, OutOfMachineMemory, PAGE } from './machine-memory.js';

/** A memmap entry: the first user's VM and guest page, the count of users, and the page's flags. */
export const MEMMAP_ENTRY_BYTES = 16;
/** A pmap entry: an 8-byte leaf of H's G-stage table (Sv39x4), which is what the pmap is. */
export const PMAP_ENTRY_BYTES = 8;
/** A second-level TLB entry: the tag (virtual page and ASID) and the composed PTE. */
export const SECOND_LEVEL_ENTRY_BYTES = 16;
/** What every exit saves on the way in and restores on the way out: the guest's 31 integer registers and pc. */
export const EXIT_STATE_BYTES = 32 * 8;
/**
 * What a world switch saves for the vCPU leaving and loads for the one arriving, beyond an exit's registers:
 * 32 FP registers and fcsr, and the guest's supervisor CSRs (KVM RISC-V's guest context and CSR block).
 */
export const SWITCH_STATE_BYTES = 32 * 8 + 24 * 8;
/** The G-stage root of Sv39x4: 2048 entries, 16 KiB (privileged spec §9.5.1). */
const G_ROOT_PAGES = 4;
const GIB = 2 ** 30;
const LARGE = 2 ** 21;

/** Pages of the monitor's own data, allocated on a node, with the references to them charged through the cache model. */
export class MonitorPages {
  readonly pages: number[] = [];

  /** `forVm`: the VM these pages are the monitor's data for (they lie where its pages may, `MachineMemory.confine`). */
  constructor(private readonly memory: MachineMemory, node: number, count: number, forVm?: number) {
    try {
      for (let i = 0; i < count; i++) this.pages.push(memory.allocateMonitor(node, i, forVm));
    } catch (error) {
      this.release();
      throw error;
    }
  }

  get bytes(): number {
    return this.pages.length * PAGE;
  }

  /** CPU `cpu` reads or writes the line holding byte `byte` of these pages. */
  reference(timing: MemoryTiming, cpu: number, byte: number, write: boolean): number {
    const mpn = this.pages[Math.floor(byte / PAGE)];
    if (mpn === undefined) throw new RangeError(`byte ${byte} is outside the monitor's ${this.bytes} bytes here`);
    return timing.chargeRamAccess(cpu, this.memory.nodeOf(mpn), this.memory.offsetOf(mpn) + (byte % PAGE), write);
  }

  /** CPU `cpu` reads or writes every line of `bytes` bytes from `byte`. */
  range(timing: MemoryTiming, cpu: number, byte: number, bytes: number, write: boolean): number {
    return eachLine(timing, byte, bytes, (b) => this.reference(timing, cpu, b, write));
  }

  release(): void {
    for (const mpn of this.pages.splice(0)) this.memory.freeMonitor(mpn);
  }
}

function savePages(all: readonly MonitorPages[]): number[][] {
  return all.map((p) => [...p.pages]);
}

function restorePages(all: readonly MonitorPages[], lists: readonly (readonly number[])[]): void {
  if (lists.length !== all.length || lists.some((list, i) => list.length !== all[i]!.pages.length)) throw new RangeError('saved monitor pages of another shape');
  all.forEach((p, i) => p.pages.splice(0, p.pages.length, ...lists[i]!));
}

/** Sums `charge` over the first byte of every cache line of [byte, byte + bytes). */
function eachLine(timing: MemoryTiming, byte: number, bytes: number, charge: (byte: number) => number): number {
  const line = timing.lineBytes ?? 64;
  let cycles = 0;
  for (let b = byte - (byte % line); b < byte + bytes; b += line) cycles += charge(b);
  return cycles;
}

/** CPU `cpu` reads (or writes) every line of machine page `mpn`: the monitor zeroing or copying a guest page. */
export function touchPage(memory: MachineMemory, timing: MemoryTiming, cpu: number, mpn: number, write: boolean): number {
  return touchBytes(memory, timing, cpu, mpn, PAGE, write);
}

/** CPU `cpu` reads (or writes) every line of the first `bytes` bytes of machine page `mpn` (the scanner's tests stop early). */
export function touchBytes(memory: MachineMemory, timing: MemoryTiming, cpu: number, mpn: number, bytes: number, write: boolean): number {
  const node = memory.nodeOf(mpn);
  const offset = memory.offsetOf(mpn);
  return eachLine(timing, 0, bytes, (b) => timing.chargeRamAccess(cpu, node, offset + b, write));
}

/**
 * The memmap as the machine holds it: on each node, an entry per page of that node. Placed when the monitor
 * starts (Disco's memmap lived in the monitor's memory the same way).
 */
export class MemmapTable {
  private readonly perNode: MonitorPages[] = [];

  constructor(private readonly memory: MachineMemory) {
    try {
      for (const n of memory.layout.nodes) {
        this.perNode.push(new MonitorPages(memory, n.id, Math.ceil(((n.size / PAGE) * MEMMAP_ENTRY_BYTES) / PAGE)));
      }
    } catch (error) {
      this.release();
      throw error;
    }
  }

  /** CPU `cpu` reads or writes machine page `mpn`'s entry. */
  entry(timing: MemoryTiming, cpu: number, mpn: number, write: boolean): number {
    const index = this.memory.offsetOf(mpn) / PAGE;
    return this.perNode[this.memory.nodeOf(mpn)]!.reference(timing, cpu, index * MEMMAP_ENTRY_BYTES, write);
  }

  get pages(): number {
    return this.perNode.reduce((sum, p) => sum + p.pages.length, 0);
  }

  /** Its machine pages, node by node (snapshots). */
  savePages(): number[][] {
    return savePages(this.perNode);
  }

  /** Puts back what `savePages` returned; the caller has checked that the memmap marks each page the monitor's. */
  restorePages(lists: readonly (readonly number[])[]): void {
    restorePages(this.perNode, lists);
  }

  release(): void {
    for (const p of this.perNode) p.release();
  }
}

/** What a VM's tables need to know of its pmap: where guest memory starts, and which 2 MiB groups are one block. */
export interface PmapShape {
  /** The VM's id (its tables lie where its pages may). */
  readonly vm?: number;
  readonly base: number;
  readonly size: number;
  largeBlock(group: number): number;
}

/**
 * One VM's data on its home node: its pmap as H's G-stage tables (root, one middle table per GiB, one leaf
 * table per 2 MiB of guest memory, whose entries are the pmap's), and per vCPU a page of saved state and
 * its second-level TLB (one array of entries, indexed by the virtual page as the TLB itself is).
 */
export class VmTables {
  private readonly root: MonitorPages;
  private readonly middle: MonitorPages;
  private readonly leaves: MonitorPages;
  private readonly state: MonitorPages;
  private readonly secondLevel: MonitorPages[];
  /** Every one of the above, to count and give back. */
  private readonly all: MonitorPages[] = [];
  /** The first guest-physical address the middle tables cover (the VM's base rounded down to a GiB). */
  private readonly span: number;

  constructor(memory: MachineMemory, readonly pmap: PmapShape, node: number, vcpus: number, readonly secondLevelEntries: number) {
    if (secondLevelEntries < 1 || (secondLevelEntries & (secondLevelEntries - 1)) !== 0) throw new Error(`second-level TLB size must be a power of two, not ${secondLevelEntries}`);
    const pages = (count: number): MonitorPages => {
      const p = new MonitorPages(memory, node, count, pmap.vm);
      this.all.push(p);
      return p;
    };
    try {
      this.span = Math.floor(pmap.base / GIB) * GIB;
      this.root = pages(G_ROOT_PAGES);
      this.middle = pages(Math.ceil((pmap.base + pmap.size - this.span) / GIB));
      this.leaves = pages(Math.ceil(pmap.size / LARGE));
      this.state = pages(vcpus);
      this.secondLevel = Array.from({ length: vcpus }, () => pages(Math.ceil((secondLevelEntries * SECOND_LEVEL_ENTRY_BYTES) / PAGE)));
    } catch (error) {
      this.release();
      if (error instanceof OutOfMachineMemory) throw new OutOfMachineMemory('no machine memory left for the VM\'s pmap tables and vCPU state');
      throw error;
    }
  }

  /** Pages the tables take. */
  get pages(): number {
    return this.all.reduce((sum, p) => sum + p.pages.length, 0);
  }

  /** Their machine pages, table by table (snapshots: a whole monitor restored keeps every page where it was). */
  savePages(): number[][] {
    return savePages(this.all);
  }

  /** Puts back what `savePages` returned; the caller has checked that the memmap marks each page the monitor's. */
  restorePages(lists: readonly (readonly number[])[]): void {
    restorePages(this.all, lists);
  }

  /** The pmap's entry (the G-stage leaf) of guest-physical `gpa`. */
  pmapEntry(timing: MemoryTiming, cpu: number, gpa: number, write: boolean): number {
    const gppn = Math.floor((gpa - this.pmap.base) / PAGE);
    return this.leaves.reference(timing, cpu, gppn * PMAP_ENTRY_BYTES, write);
  }

  /** The levels the last `gStageWalk` read. */
  gStageLevels = 0;

  /**
   * H's G-stage walk of `gpa`: the root's and the middle table's entries, and the leaf's unless the 2 MiB group
   * is one large page. Returns the references' cycles; `gStageLevels` says how many there were.
   */
  gStageWalk(timing: MemoryTiming, cpu: number, gpa: number): number {
    let cycles = this.root.reference(timing, cpu, Math.floor(gpa / GIB) * PMAP_ENTRY_BYTES, false);
    cycles += this.middle.reference(timing, cpu, Math.floor((gpa - this.span) / LARGE) * PMAP_ENTRY_BYTES, false);
    const group = Math.floor((gpa - this.pmap.base) / PAGE / BLOCK_PAGES);
    this.gStageLevels = this.pmap.largeBlock(group) >= 0 ? 2 : 3;
    return this.gStageLevels === 2 ? cycles : cycles + this.pmapEntry(timing, cpu, gpa, false);
  }

  /** vCPU `vcpu`'s second-level TLB entry for virtual page `vpn`. */
  secondLevelEntry(timing: MemoryTiming, cpu: number, vcpu: number, vpn: number, write: boolean): number {
    // As the TLB itself indexes (cpu/tlb.ts): the low bits, also of a kernel address's negative page number.
    const index = vpn & (this.secondLevelEntries - 1);
    return this.secondLevel[vcpu]!.reference(timing, cpu, index * SECOND_LEVEL_ENTRY_BYTES, write);
  }

  /** An exit of vCPU `vcpu` on CPU `cpu`: the guest's registers saved to its state page and loaded back. */
  exitState(timing: MemoryTiming, cpu: number, vcpu: number): number {
    return this.state.range(timing, cpu, vcpu * PAGE, EXIT_STATE_BYTES, true)
      + this.state.range(timing, cpu, vcpu * PAGE, EXIT_STATE_BYTES, false);
  }

  /** A world switch on CPU `cpu`: the rest of vCPU `vcpu`'s state saved (`write`) or loaded. */
  switchState(timing: MemoryTiming, cpu: number, vcpu: number, write: boolean): number {
    return this.state.range(timing, cpu, vcpu * PAGE + EXIT_STATE_BYTES, SWITCH_STATE_BYTES, write);
  }

  /** The hart-side view for vCPU `vcpu`'s refills (cpu/exits.ts MonitorTables). */
  forVcpu(vcpu: number): MonitorTables {
    return new VcpuTables(this, vcpu);
  }

  release(): void {
    for (const p of this.all) p.release();
  }
}

/** One vCPU's view of its VM's tables, as its hart charges refills to them. */
class VcpuTables implements MonitorTables {
  gStageLevels = 0;

  constructor(private readonly tables: VmTables, private readonly vcpu: number) {}

  gStageWalk(timing: MemoryTiming, cpu: number, gpa: number): number {
    const cycles = this.tables.gStageWalk(timing, cpu, gpa);
    this.gStageLevels = this.tables.gStageLevels;
    return cycles;
  }

  secondLevelEntry(timing: MemoryTiming, cpu: number, vpn: number, write: boolean): number {
    return this.tables.secondLevelEntry(timing, cpu, this.vcpu, vpn, write);
  }

  pmapEntry(timing: MemoryTiming, cpu: number, gpa: number): number {
    return this.tables.pmapEntry(timing, cpu, gpa, false);
  }
}

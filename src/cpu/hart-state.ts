// A hart's architectural state in typed arrays and numbers, its trap entry and interrupt selection.

import type { FpState } from '../isa/fp-state.js';
import {
  CAUSE_FETCH_ACCESS, CAUSE_FETCH_GUEST_PAGE_FAULT, CAUSE_LOAD_ACCESS, CAUSE_LOAD_GUEST_PAGE_FAULT, CAUSE_STORE_ACCESS, CAUSE_STORE_GUEST_PAGE_FAULT, IRQ_M_EXT, IRQ_M_SOFT,
  IRQ_M_TIMER, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER, PRIV_M, PRIV_S, PRIV_U,
} from '../isa/opcodes.js';
import type { Access, Bus } from '../memory/bus.js';
import type { Clock } from '../memory/device.js';
import type { RamRegion } from '../memory/ram.js';
import { HW_OK, HW_PAGE_PARTIAL, SYNDROME_NAMES } from '../memory/hardware-faults.js';
import { RESUME, type ExitHandler, type VcpuExit } from './exits.js';
import type { Reservations } from './reservations.js';
import { TlbSet, type SecondLevelTlbSet, type Tlb } from './tlb.js';
import { Pmp } from './pmp.js';
import { TlbModel } from './tlb-model.js';
import type { GStageTlb } from './g-stage-tlb.js';

/** mstatus bits (privileged spec §3.1.6). */
export const MSTATUS_SIE = 1 << 1;
export const MSTATUS_MIE = 1 << 3;
export const MSTATUS_SPIE = 1 << 5;
export const MSTATUS_MPIE = 1 << 7;
export const MSTATUS_SPP = 1 << 8;
export const MSTATUS_MPP_SHIFT = 11;
export const MSTATUS_MPP = 3 << MSTATUS_MPP_SHIFT;
export const MSTATUS_FS_SHIFT = 13;
export const MSTATUS_FS = 3 << MSTATUS_FS_SHIFT;
export const MSTATUS_MPRV = 1 << 17;
export const MSTATUS_SUM = 1 << 18;
export const MSTATUS_MXR = 1 << 19;
export const MSTATUS_TVM = 1 << 20;
export const MSTATUS_TW = 1 << 21;
export const MSTATUS_TSR = 1 << 22;

export const SATP_MODE_BARE = 0;
export const SATP_MODE_SV39 = 8;
export const SATP_MODE_SV48 = 9;

/** Thrown (always this one object) to abandon the current instruction after a trap has been recorded. */
export const TRAP = { trap: true } as const;
/** Thrown (always this one object) to abandon the current instruction and leave run(): the monitor said WAIT. */
export const EXIT = { exit: true } as const;

/** The guest-page fault cause of each kind of access (read, write, exec). */
const GUEST_PAGE_FAULT = [CAUSE_LOAD_GUEST_PAGE_FAULT, CAUSE_STORE_GUEST_PAGE_FAULT, CAUSE_FETCH_GUEST_PAGE_FAULT];
/** The access fault of each kind of access (privileged spec §3.1.15), what a bus error is to the hart. */
const ACCESS_FAULT_CAUSE = [CAUSE_LOAD_ACCESS, CAUSE_STORE_ACCESS, CAUSE_FETCH_ACCESS];

/** What a hart needs from the machine around it. */
export interface HartEnvironment {
  readonly bus: Bus;
  readonly clock: Clock;
  readonly reservations: Reservations;
  /**
   * Firmware written in TypeScript that answers ECALLs made in S-mode (the SBI), when the machine boots
   * without M-mode firmware. Returns false to let the ECALL trap as the spec says.
   */
  ecallFromSupervisor?(hart: HartState): boolean;
  /**
   * Under the monitor: where the hart's exits go (exits.ts), answered as an HS-mode trap handler would be.
   * Unset on the bare machine, whose RAM denies nothing.
   */
  readonly exit?: ExitHandler;
}

/** The index in `HartState.tlbSets` of supervisor data accesses while mstatus.SUM is set. */
export const VIEW_S_SUM = 2;
/** The views paging applies to (M-mode's is never translated). */
const TRANSLATED_VIEWS = [PRIV_U, PRIV_S, VIEW_S_SUM] as const;

/** A number naming the superpage of `level` (1: 2 MiB, 2: 1 GiB, 3: 512 GiB) that holds virtual page `vpn`. */
function superpageKey(vpn: number, level: number): number {
  return Math.floor(vpn / 512 ** level) * 4 + level;
}

/** Interrupts in the priority order of privileged spec §3.1.9. */
const PRIORITY = [IRQ_M_EXT, IRQ_M_SOFT, IRQ_M_TIMER, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER];

export class HartState implements FpState {
  readonly x = new Int32Array(64);
  readonly x64 = new BigInt64Array(this.x.buffer);
  readonly f = new Int32Array(64);
  readonly f64 = new Float64Array(this.f.buffer);
  frm = 0;
  fflags = 0;
  /** The program counter as a signed 64-bit value held exactly in a double. */
  pc = 0;
  priv = PRIV_M;

  /** The low 32 bits of mstatus; UXL and SXL are fixed at 64 bits and SD is derived from FS. */
  mstatus = 0;
  /** Software-writable pending bits (SSIP, STIP, SEIP as written by M-mode). */
  mip = 0;
  /** Pending bits driven by wires: CLINT (MSIP, MTIP) and PLIC (MEIP, SEIP). */
  mipLines = 0;
  mie = 0;
  medeleg = 0;
  mideleg = 0;
  mtvec = 0;
  stvec = 0;
  mepc = 0;
  sepc = 0;
  mcause = 0n;
  scause = 0n;
  mtval = 0;
  stval = 0;
  mscratch = 0n;
  sscratch = 0n;
  mcounteren = 0;
  scounteren = 0;
  mcountinhibit = 0;
  menvcfg = 0n;
  senvcfg = 0n;
  satpMode = SATP_MODE_BARE;
  /** Page-table levels the last successful walk read (mmu.ts `translate`), for timing mode's refill charge. */
  walkLevels = 0;
  /** Set by a successful walk: whether the mapping is global (a G bit on its path), in every address space. */
  walkGlobal = false;
  /** Set by a successful walk: what its leaf allows without another walk (tlb-model.ts ALLOWS_ bits). */
  walkAllows = 0;
  /**
   * Set by a successful walk, per level read (root first): where each PTE was, as the bus resolved it (the
   * RAM node and byte offset there: a machine address under the monitor), and its physical address (guest-
   * physical under the monitor). Timing mode charges the walk's reads through the cache model from these.
   */
  readonly walkPteNode = new Int32Array(5);
  readonly walkPteOffset = new Float64Array(5);
  readonly walkPteAddress = new Float64Array(5);
  /** Set by a successful walk: it wrote the leaf's A/D bits (a write to the leaf PTE's line). */
  walkUpdated = false;
  satpAsid = 0;
  satpPpn = 0;
  /** Physical memory protection (pmp.ts), checked when a TLB entry is filled and by the page walker. */
  readonly pmp = new Pmp();
  /** Instructions retired: the simulation's count, which guest writes to minstret do not move. */
  instret = 0;
  /** Cycles timing mode charged this hart beyond one per instruction (memory stalls and TLB refills). */
  stallCycles = 0;
  /**
   * The guest's mcycle and minstret (csr.ts): simulatedCycles and instret moved by what it wrote, as 64-bit
   * offsets; while mcountinhibit stops a counter, its frozen value itself.
   */
  cycleAdjust = 0n;
  instretAdjust = 0n;

  /** Simulated cycles so far: one per instruction retired plus the stalls timing mode charged. */
  get simulatedCycles(): number {
    return this.instret + this.stallCycles;
  }
  /** In WFI, waiting for an interrupt. */
  waiting = false;
  /** Powered off (SBI HSM stopped): not run at all until started. */
  parked = false;
  /** Set to end the current slice early (an interrupt may have become deliverable). */
  stop = false;

  /**
   * Sets of TLBs per view of memory: U, S, S with SUM set (VIEW_S_SUM), M; `readTlb`/`writeTlb`/`execTlb`
   * point into them. SUM has its own set so that Linux's toggling it around every user copy flushes nothing.
   */
  readonly tlbSets = [new TlbSet(), new TlbSet(), new TlbSet(), new TlbSet()];
  readTlb: Tlb;
  writeTlb: Tlb;
  execTlb: Tlb;
  /**
   * Under the monitor: this vCPU's second-level TLBs, which refill the first level after a world switch
   * emptied it (`flushFirstLevel`). Undefined on the bare machine.
   */
  secondLevel: SecondLevelTlbSet | undefined = undefined;
  /** The TLB the hart is modelled to have (tlb-model.ts): whether a slow-path access is a TLB miss. */
  readonly tlbModel = new TlbModel();
  /** Under the monitor with the nested walk: the walker's G-stage TLB (g-stage-tlb.ts), which timing mode consults. */
  gStageTlb: GStageTlb | undefined = undefined;
  /** The privilege level data accesses are checked at (differs from priv under MPRV). */
  dataPriv = PRIV_M;
  /** The set of `tlbSets` data accesses use: dataPriv, or VIEW_S_SUM. */
  dataView = PRIV_M;
  /**
   * Superpages some TLB entry (first or second level) came from since the last full flush, as keys of
   * `superpageKey`: an SFENCE.VMA of an address inside one must drop its other 4 KiB entries too, so it
   * flushes everything; any other address drops just its own entries.
   */
  private readonly superpages = new Set<number>();

  /**
   * Stopped at an exit the monitor answered WAIT (`exited` says which); it runs again only after `resume`.
   */
  suspended = false;
  exited: VcpuExit | undefined = undefined;

  /** The trap recorded before TRAP was thrown. */
  pendingCause = 0;
  pendingTval = 0;

  /**
   * The CPU whose cache and counters timing mode charges: the hart's own id on a bare machine; under the
   * monitor, the physical CPU the vCPU runs on now (set before each run, read by translated blocks on entry).
   */
  timingCpu: number;

  constructor(readonly id: number, readonly env: HartEnvironment) {
    this.timingCpu = id;
    const m = this.tlbSets[PRIV_M];
    this.readTlb = m.read;
    this.writeTlb = m.write;
    this.execTlb = m.exec;
  }

  /** Integer register i as an address (a double; exact for every canonical address). */
  reg(i: number): number {
    return this.x[2 * i + 1] * 4294967296 + (this.x[2 * i] >>> 0);
  }

  /** Writes a double holding a signed 64-bit integer (|v| < 2^53) to register i. */
  setReg(i: number, v: number): void {
    if (i === 0) return;
    this.x[2 * i] = v | 0;
    this.x[2 * i + 1] = Math.floor(v / 4294967296) | 0;
  }

  get fsEnabled(): boolean {
    return (this.mstatus & MSTATUS_FS) !== 0;
  }

  markFpDirty(): void {
    this.mstatus |= MSTATUS_FS;
  }

  /** Recompute which TLBs serve fetches and data accesses after priv, MPRV or MPP changed. */
  updateTranslation(): void {
    let d = this.priv;
    if (d === PRIV_M && (this.mstatus & MSTATUS_MPRV) !== 0) d = (this.mstatus & MSTATUS_MPP) >>> MSTATUS_MPP_SHIFT;
    this.dataPriv = d;
    this.dataView = d === PRIV_S && (this.mstatus & MSTATUS_SUM) !== 0 ? VIEW_S_SUM : d;
    this.readTlb = this.tlbSets[this.dataView].read;
    this.writeTlb = this.tlbSets[this.dataView].write;
    this.execTlb = this.tlbSets[this.priv].exec;
    this.fetchInvalidate();
  }

  /** Flushes every translated entry, at both levels (SFENCE.VMA of everything, an MXR change, a remote fence). */
  flushTlb(): void {
    this.flushTranslatedFirstLevel();
    this.secondLevel?.flush();
    this.tlbModel.flush();
    this.superpages.clear();
  }

  /**
   * A satp write: the emulator's tables hold entries of the old address space; the second level's and the
   * modelled TLB's are tagged with their ASID.
   */
  satpChanged(): void {
    this.flushTranslatedFirstLevel();
  }

  private flushTranslatedFirstLevel(): void {
    for (const view of TRANSLATED_VIEWS) this.tlbSets[view]!.flush();
    this.fetchInvalidate();
  }

  /**
   * SFENCE.VMA (privileged spec §4.2.1): `va` undefined for every address, `asid` undefined for every
   * address space. One address drops just its entries, unless it lies in a superpage the TLBs hold.
   */
  sfenceVma(va: number | undefined, asid: number | undefined): void {
    if (va === undefined) {
      if (asid === undefined) {
        this.flushTlb();
        return;
      }
      this.flushTranslatedFirstLevel();
      this.secondLevel?.flushAsid(asid);
      this.tlbModel.flushAsid(asid);
      return;
    }
    const vpn = Math.floor(va / 4096);
    if (this.insideSuperpage(vpn)) {
      this.flushTlb();
      return;
    }
    for (const view of TRANSLATED_VIEWS) this.tlbSets[view]!.flushPage(vpn);
    this.secondLevel?.flushPage(vpn);
    this.tlbModel.flushPage(vpn);
    this.fetchInvalidate();
  }

  /** The superpages noted since the last full flush (snapshots); `restoreSuperpages` puts them back. */
  superpageKeys(): number[] {
    return [...this.superpages];
  }

  restoreSuperpages(keys: readonly number[]): void {
    this.superpages.clear();
    for (const key of keys) this.superpages.add(key);
  }

  /** Notes that a TLB entry for `vpn` came from a leaf `level` levels above 4 KiB pages (0: a plain page). */
  noteLeaf(vpn: number, level: number): void {
    if (level > 0) this.superpages.add(superpageKey(vpn, level));
  }

  private insideSuperpage(vpn: number): boolean {
    if (this.superpages.size === 0) return false;
    for (let level = 1; level <= 3; level++) if (this.superpages.has(superpageKey(vpn, level))) return true;
    return false;
  }

  /**
   * The PMP rules changed (a pmpcfg or pmpaddr write): entries filled under the old ones go, M-mode's too,
   * at both levels. The modelled TLB keeps its translations (PMP is checked on each access in hardware).
   */
  pmpChanged(): void {
    for (const set of this.tlbSets) set.flush();
    this.secondLevel?.flush();
    this.fetchInvalidate();
  }

  /** A world switch: the physical CPU's TLB held another vCPU's entries, so the first level starts empty. */
  flushFirstLevel(): void {
    for (const set of this.tlbSets) set.flush();
    this.tlbModel.flush();
    this.gStageTlb?.flush();
    this.fetchInvalidate();
  }

  /**
   * The monitor moved or dropped the machine page at `physicalPage` (or every page of [physicalPage,
   * physicalPage + bytes): a whole 2 MiB block it moves): every entry of it goes, at both levels. Says
   * whether the modelled TLB (the hardware's first level) held one: only then does the vCPU need an IPI.
   */
  shootDown(physicalPage: number, bytes = 4096): boolean {
    for (const set of this.tlbSets) set.flushPhysical(physicalPage, bytes);
    this.secondLevel?.flushPhysical(physicalPage, bytes);
    const held = this.tlbModel.flushPhysical(physicalPage, bytes);
    // The G-stage TLB keeps no machine addresses: any change to the pmap empties it, as HFENCE.GVMA would.
    this.gStageTlb?.flush();
    this.fetchInvalidate();
    return held;
  }

  /** Overridden by the interpreter, which caches the current fetch page. */
  fetchInvalidate(): void {}

  /**
   * Exit `exit` to the monitor. Returns if it answers RESUME; otherwise the instruction is abandoned (EXIT is
   * thrown, run() returns) and the hart stays suspended until `resume`.
   */
  exitTo(exit: VcpuExit): void {
    const handler = this.env.exit;
    if (handler === undefined || handler(this.id, exit) === RESUME) return;
    this.exited = exit;
    this.suspended = true;
    this.stop = true;
    throw EXIT;
  }

  /** The monitor lets a suspended hart run again: its abandoned instruction is executed anew. */
  resume(): void {
    this.suspended = false;
    this.exited = undefined;
  }

  /**
   * The bus denied guest-physical `gpa` to an access of kind `needs`, made for the instruction's access of
   * kind `access` at `va` (`implicit`: the page walker's own access, which may differ in kind): a guest-page
   * fault exit. Returns the page's region once the monitor has made the access allowed (the bus's resolved*
   * fields describe it, as after `resolveRam`); throws EXIT if it said WAIT.
   */
  guestPageFault(gpa: number, va: number, access: Access, needs: Access, implicit: boolean): RamRegion {
    if (this.env.exit === undefined) throw new Error(`guest-physical 0x${gpa.toString(16)} denied with no monitor to answer`);
    this.exitTo({ kind: 'guest-page-fault', cause: GUEST_PAGE_FAULT[access]!, gpa, va, access, needs, implicit });
    const region = this.env.bus.resolveRam(gpa, needs);
    if (region === undefined) {
      throw new Error(`the monitor resumed vCPU ${this.id} without allowing its access to guest-physical 0x${gpa.toString(16)}`);
    }
    return region;
  }

  /**
   * `region` carries a hardware fault (RamRegion.faults): checks an access of `length` bytes at byte `offset`
   * of it, made by the instruction's access of kind `access` at `va`. Returns true when the page may be
   * cached, false when it must stay out of the TLBs (a poisoned line elsewhere in it). A refused access is
   * logged by the hardware and is a bus error: an exit under the monitor, else the access fault itself.
   */
  hardwareCheck(region: RamRegion, offset: number, length: number, va: number, access: Access): boolean {
    const faults = region.faults!;
    const result = faults.check(this.timingCpu, offset, length);
    if (result === HW_OK) return true;
    if (result === HW_PAGE_PARTIAL) return false;
    const address = region.base + offset;
    faults.busError(this.timingCpu, address, result);
    if (this.env.exit !== undefined) this.exitTo({ kind: 'bus-error', address, va, access, syndrome: SYNDROME_NAMES[result]! });
    return this.raise(ACCESS_FAULT_CAUSE[access], va);
  }

  /**
   * The machine's hardware changed under every TLB (a fault: memory failed, a route went, a line was
   * poisoned): every entry goes, at both levels, M-mode's too, so the next access to any page is checked.
   * The modelled TLB keeps its translations: what changed is the memory behind them, not the page tables.
   */
  hardwareChanged(): void {
    for (const set of this.tlbSets) set.flush();
    this.secondLevel?.flush();
    this.fetchInvalidate();
  }

  /** Records a synchronous exception and abandons the instruction. */
  raise(cause: number, tval: number): never {
    this.pendingCause = cause;
    this.pendingTval = tval;
    throw TRAP;
  }

  /** Trap entry (privileged spec §3.1.6.1, §4.1.1): delegation, the xPP/xPIE stack, the vector. */
  enterTrap(cause: number, tval: number, interrupt: boolean): void {
    const deleg = interrupt ? this.mideleg : this.medeleg;
    const causeValue = interrupt ? (1n << 63n) | BigInt(cause) : BigInt(cause);
    const from = this.priv;
    if (from <= PRIV_S && ((deleg >>> cause) & 1) !== 0) {
      this.scause = causeValue;
      this.sepc = this.pc;
      this.stval = tval;
      let s = this.mstatus & ~(MSTATUS_SPP | MSTATUS_SPIE | MSTATUS_SIE);
      if (this.mstatus & MSTATUS_SIE) s |= MSTATUS_SPIE;
      if (from === PRIV_S) s |= MSTATUS_SPP;
      this.mstatus = s;
      this.priv = PRIV_S;
      this.pc = this.vector(this.stvec, cause, interrupt);
    } else {
      this.mcause = causeValue;
      this.mepc = this.pc;
      this.mtval = tval;
      let s = this.mstatus & ~(MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE);
      if (this.mstatus & MSTATUS_MIE) s |= MSTATUS_MPIE;
      s |= from << MSTATUS_MPP_SHIFT;
      this.mstatus = s;
      this.priv = PRIV_M;
      this.pc = this.vector(this.mtvec, cause, interrupt);
    }
    this.updateTranslation();
  }

  private vector(tvec: number, cause: number, interrupt: boolean): number {
    const base = tvec - (tvec & 3);
    return interrupt && (tvec & 3) === 1 ? base + 4 * cause : base;
  }

  /** The interrupt to take now, or -1 (privileged spec §3.1.9: enables, delegation and priority). */
  pendingInterrupt(): number {
    const pending = (this.mip | this.mipLines) & this.mie;
    if (pending === 0) return -1;
    const mEnabled = this.priv < PRIV_M || (this.mstatus & MSTATUS_MIE) !== 0;
    const sEnabled = this.priv < PRIV_S || (this.priv === PRIV_S && (this.mstatus & MSTATUS_SIE) !== 0);
    let take = 0;
    if (mEnabled) take |= pending & ~this.mideleg;
    if (sEnabled) take |= pending & this.mideleg;
    if (take === 0) return -1;
    for (const irq of PRIORITY) if ((take >>> irq) & 1) return irq;
    return -1;
  }

  /** Sets or clears a wire-driven pending bit (called by the CLINT and PLIC through the machine). */
  setInterruptLine(bit: number, level: boolean): void {
    const mask = 1 << bit;
    this.mipLines = level ? this.mipLines | mask : this.mipLines & ~mask;
    if (level) this.stop = true;
  }

  /** True when an interrupt is pending and enabled in mie, which is what wakes a WFI (§3.3.3). */
  get wakeable(): boolean {
    return ((this.mip | this.mipLines) & this.mie) !== 0;
  }

  /** Reset state (privileged spec §3.4): M-mode, MIE clear, pc at the reset vector. */
  reset(pc: number): void {
    this.x.fill(0);
    this.f.fill(0);
    this.pc = pc;
    this.priv = PRIV_M;
    this.mstatus = 0;
    this.mip = 0;
    this.mie = 0;
    this.waiting = false;
    this.satpMode = SATP_MODE_BARE;
    this.pmp.reset();
    for (const set of this.tlbSets) set.flush();
    this.secondLevel?.flush();
    this.tlbModel.flush();
    this.gStageTlb?.flush();
    this.superpages.clear();
    this.env.reservations.clear(this.id);
    this.updateTranslation();
  }
}

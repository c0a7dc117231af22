// Loads and stores of a hart: the TLB fast path and the slow path (walk, MMIO, misaligned, page-crossing).

import {
  CAUSE_LOAD_ACCESS, CAUSE_MISALIGNED_LOAD, CAUSE_MISALIGNED_STORE, CAUSE_STORE_ACCESS, PRIV_M,
} from '../isa/opcodes.js';
import { BusError } from '../memory/bus.js';
import type { AccessSize } from '../memory/device.js';
import type { RamRegion } from '../memory/ram.js';
import { HartState, SATP_MODE_SV39 } from './hart-state.js';
import type { MonitorTables } from './exits.js';
import type { MemoryTiming } from './memory-timing.js';
import { KIND_REFILL_L2, KIND_REFILL_WALK, MONITOR_KIND_COUNT } from './monitor-kinds.js';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, accessFault, translate, type Access } from './mmu.js';
import { PAGE_ALLOWED, PAGE_PARTIAL } from './pmp.js';
import { GLOBAL_ASID, TLB_MASK } from './tlb.js';
import { ALLOWS_EXEC, ALLOWS_READ, ALLOWS_WRITE } from './tlb-model.js';


export class HartMemory extends HartState {
  /** The high word of the last 64-bit slow-path load. */
  protected loadHi = 0;
  /** Set by `locate`: the RAM region of the last translated access (undefined for MMIO). */
  protected locRegion: RamRegion | undefined = undefined;
  /** Set by `locate`: byte offset in `locRegion`, or the physical address for MMIO. */
  locOffset = 0;
  /** Timing mode's memory model (board/timing-mode.ts), or undefined in fast mode: one check per access. */
  protected timing: MemoryTiming | undefined = undefined;

  /** True in timing mode: accesses are charged to a memory model. */
  get timed(): boolean {
    return this.timing !== undefined;
  }

  /** Timing mode's memory model, which the monitor charges its own references on this vCPU's behalf to. */
  get memoryTiming(): MemoryTiming | undefined {
    return this.timing;
  }

  /** Charges every later fetch, load, store and TLB refill to `timing` (undefined: back to fast mode). */
  setMemoryTiming(timing: MemoryTiming | undefined): void {
    this.timing = timing;
  }

  /** Cycles this hart spent waiting in WFI or stopped, added by the machine as its time moves on. */
  idleCycles = 0;
  /**
   * Busy cycles (instructions plus stalls) per privilege level up to `privMark`, and the level running
   * since then; `run()` closes the period whenever the level changes (a trap or an xRET).
   */
  protected readonly privCycles = new Float64Array(4);
  protected privMark = 0;
  protected privRunning = 3;

  /** The hart's own simulated time: busy cycles plus idle ones. Harts are kept within a slice of each other. */
  get localCycles(): number {
    return this.simulatedCycles + this.idleCycles;
  }

  /** Busy cycles spent at privilege level `priv` (0 U, 1 S, 3 M) so far. */
  cyclesAt(priv: number): number {
    const open = priv === this.privRunning ? Math.max(0, this.simulatedCycles - this.privMark) : 0;
    return this.privCycles[priv]! + open;
  }

  /** Closes the current privilege period at `now` busy cycles if the level changed. */
  protected accountPrivilege(now: number): void {
    if (this.priv === this.privRunning) return;
    // max: busy cycles never go backwards (guest writes to minstret and mcycle move only their CSRs), a guard.
    this.privCycles[this.privRunning]! += Math.max(0, now - this.privMark);
    this.privMark = now;
    this.privRunning = this.priv;
  }

  /** Timing mode: a fetch, load or store at byte `offset` of `region`. */
  protected chargeRam(timing: MemoryTiming, region: RamRegion, offset: number, isWrite: boolean): void {
    this.stallCycles += timing.chargeRamAccess(this.timingCpu, region.node, offset, isWrite);
  }

  /** TLB misses under paging: slow-path accesses whose page the modelled TLB (tlb-model.ts) did not hold. */
  tlbMisses = 0;
  /** Of those, the ones the second-level TLB answered (under the monitor). */
  secondLevelHits = 0;
  /**
   * Under the monitor: cycles its work on this vCPU's behalf cost (TLB refills, monitor calls, filling the
   * pmap), per privilege level the vCPU was at; they are part of `simulatedCycles` (charged as stalls).
   */
  readonly monitorCycles = new Float64Array(4);
  /** The same cycles by kind of work (monitor-kinds.ts): they add up to `monitorCycles`' sum. */
  readonly monitorKindCycles = new Float64Array(MONITOR_KIND_COUNT);
  /** Under the monitor: what a first-level refill costs, from the second-level TLB or by a walk. */
  refillCosts: { secondLevelHit: number; walk: number } | undefined = undefined;
  /**
   * Under the monitor with the hardware two-stage walk (`mmu: nested`): a TLB miss is no exit, but every
   * reference of the guest's walk is itself translated: timing mode charges a G-stage walk of
   * `monitorTables` for each guest PTE read and one for the leaf's address, up to levels × 4 + 3 references
   * instead of the bare walk's levels. The G-stage translations of the guest's page-table pages are cached in
   * `gStageTlb` when there is one.
   */
  nestedWalk = false;
  /** Under the monitor: its tables at machine addresses, which timing mode charges refills' references to. */
  monitorTables: MonitorTables | undefined = undefined;
  /**
   * Under the monitor: told of every TLB miss (as the modelled TLB decides), with the machine address of the
   * page and whether a write missed, in fast and timing mode alike: the NUMA policy's cheap signal.
   */
  onTlbMiss: ((page: number, write: boolean) => void) | undefined = undefined;

  /** The monitor charges `cycles` of its own work of kind `kind` (monitor-kinds.ts) to this vCPU. */
  chargeMonitor(cycles: number, kind: number): void {
    this.stallCycles += cycles;
    this.monitorCycles[this.priv]! += cycles;
    this.monitorKindCycles[kind]! += cycles;
  }

  /**
   * Set by `locate`: false if the page was not put in the emulator's TLB because PMP rules split it
   * (pmp.ts): each access to it comes back here and is checked with its size.
   */
  protected locCached = true;

  /**
   * Translates one page's worth of access and fills the TLB if it is RAM. The emulator's table missing
   * the page is a TLB miss only if the modelled TLB (tlb-model.ts) misses it too; otherwise the table is
   * refilled for free. `size`: the bytes accessed at `va`, which PMP checks when its rules split the page.
   */
  protected locate(va: number, access: Access, size = 1): void {
    const vpn = Math.floor(va / 4096);
    const tlb = access === ACCESS_READ ? this.readTlb : access === ACCESS_WRITE ? this.writeTlb : this.execTlb;
    // Only a TLB miss walks the table: the slow path also runs for entries the TLB holds (page-crossing
    // and atomic accesses, the second half of a doubleword, entries hidden by the translator).
    const priv = access === ACCESS_EXEC ? this.priv : this.dataPriv;
    const view = access === ACCESS_EXEC ? this.priv : this.dataView;
    const paged = priv !== PRIV_M && this.satpMode !== 0;
    const need = access === ACCESS_READ ? ALLOWS_READ : access === ACCESS_WRITE ? ALLOWS_WRITE : ALLOWS_EXEC;
    const way = view * 3 + access;
    const miss = paged && !tlb.holds(vpn) && !this.tlbModel.hits(vpn, this.satpAsid, need);
    const second = miss ? this.secondLevel?.levels[view]![access] : undefined;
    if (miss) {
      this.tlbMisses++;
      if (second !== undefined && second.lookup(vpn, this.satpAsid)) {
        const region = second.hitRegion!;
        this.secondLevelHits++;
        if (this.refillCosts !== undefined) this.chargeMonitor(this.refillCosts.secondLevelHit, KIND_REFILL_L2);
        // The monitor answers from its table: one entry read, no walk of the guest's tables.
        if (this.timing !== undefined) {
          this.timing.chargeTlbRefill(this.timingCpu, 0);
          const tables = this.monitorTables;
          if (tables !== undefined) this.chargeMonitor(tables.secondLevelEntry(this.timing, this.timingCpu, vpn, false), KIND_REFILL_L2);
        }
        this.locRegion = region;
        this.locOffset = va + second.hitDelta;
        const page = region.base + this.locOffset - (va & 4095);
        this.onTlbMiss?.(page, access === ACCESS_WRITE);
        tlb.insert(vpn, region, page);
        this.tlbModel.fill(way, vpn, second.hitAsid, second.hitAllows, page);
        if (second.hitLargeBase >= 0) this.tlbModel.fillLarge(vpn, second.hitAsid, second.hitAllows, second.hitLargeBase);
        return;
      }
      if (this.refillCosts !== undefined) this.chargeMonitor(this.refillCosts.walk, KIND_REFILL_WALK);
    }
    const pa = translate(this, va, access);
    // PMP (privileged spec §3.7) at the effective privilege; M-mode only once an entry is locked.
    this.locCached = priv !== PRIV_M || this.pmp.checksMachineMode ? this.pmpCheck(pa, va, size, priv, access) : true;
    const bus = this.env.bus;
    let region = bus.resolveRam(pa, access);
    // The monitor's permissions deny it (guest-page fault): an exit, and the page once it is allowed.
    if (region === undefined && bus.denied) region = this.guestPageFault(pa, va, access, access, false);
    // Failed or poisoned memory (hardware-faults.ts): checked here, on refills, so the fast path pays nothing.
    if (region !== undefined && region.faults !== null && !this.hardwareCheck(region, bus.resolvedOffset, size, va, access)) this.locCached = false;
    this.locRegion = region;
    if (region === undefined) {
      this.locOffset = pa;
      return;
    }
    this.locOffset = bus.resolvedOffset;
    // The machine address of the page (under the monitor the pmap's, not the guest-physical one).
    const page = region.base + this.locOffset - (pa & 4095);
    if (miss) {
      if (this.timing !== undefined) this.chargeRefill(this.timing, pa, vpn);
      this.onTlbMiss?.(page, access === ACCESS_WRITE);
    }
    if (this.locCached) tlb.insert(vpn, region, page);
    if (!paged) return;
    const level = (this.satpMode === SATP_MODE_SV39 ? 3 : 4) - this.walkLevels;
    this.noteLeaf(vpn, level);
    const asid = this.walkGlobal ? GLOBAL_ASID : this.satpAsid;
    // What the entry allows is what both the guest's leaf and the monitor's permission do (H's two stages).
    const allows = this.walkAllows & bus.resolvedAllows;
    this.tlbModel.fill(way, vpn, asid, allows, page);
    // The second level refills the first without a walk, so it holds only pages PMP allows whole.
    if (!this.locCached) return;
    second?.insert(vpn, asid, region, page, this.walkLevels, allows);
    if (level === 0) return;
    // A leaf of 2 MiB or more: one entry for its 2 MiB frame if machine memory holds that as one block.
    const block = bus.largeBlock(pa);
    if (block < 0) return;
    this.tlbModel.fillLarge(vpn, asid, allows, block);
    second?.insertLarge(vpn, asid, region, block, this.walkLevels, allows);
  }

  /**
   * PMP for an access of `size` bytes at physical `pa` (virtual `va`): an access fault if refused. Returns
   * true if one rule decides the whole page (it may be cached), false if the rules split it (this access
   * was checked alone).
   */
  private pmpCheck(pa: number, va: number, size: number, priv: number, access: Access): boolean {
    const decision = this.pmp.page(pa - (pa & 4095), priv, access);
    if (decision === PAGE_ALLOWED) return true;
    if (decision === PAGE_PARTIAL && this.pmp.allows(pa, size, priv, access)) return false;
    return this.raise(accessFault(access), va);
  }

  /**
   * Timing mode: a TLB fill under paging walked the page table, reading as many levels as `translate`
   * went through (a superpage leaf ends the walk early: under Sv39 a 2 MiB page takes 2 levels, a 1 GiB page 1).
   * Each level is a walker step (`chargeTlbRefill`) and a read of its PTE's line through the cache model, and
   * an A/D update a write of the leaf's. Under the monitor: `nested` walks the G-stage tables for every guest
   * PTE and for the leaf's address `pa` (hardware steps too); `software` is the monitor's handler, whose reads
   * (the guest's PTEs, the pmap entry of `pa`, the second-level entry it fills for `vpn`) are its own cycles.
   */
  private chargeRefill(timing: MemoryTiming, pa: number, vpn: number): void {
    const cpu = this.timingCpu;
    const levels = this.walkLevels;
    let references = 0;
    for (let i = 0; i < levels; i++) references += timing.chargeRamAccess(cpu, this.walkPteNode[i]!, this.walkPteOffset[i]!, false);
    if (this.walkUpdated) references += timing.chargeRamAccess(cpu, this.walkPteNode[levels - 1]!, this.walkPteOffset[levels - 1]!, true);
    const tables = this.monitorTables;
    if (this.nestedWalk && tables !== undefined) {
      let steps = levels;
      const gtlb = this.gStageTlb;
      for (let i = 0; i < levels; i++) {
        const gpa = this.walkPteAddress[i]!;
        if (gtlb !== undefined && gtlb.lookup(gpa)) continue;
        references += tables.gStageWalk(timing, cpu, gpa);
        steps += tables.gStageLevels;
        gtlb?.fill(gpa, tables.gStageLevels === 2);
      }
      // The leaf's own G-stage translation ends up in the TLB entry itself (combined with the guest's), not here.
      references += tables.gStageWalk(timing, cpu, pa);
      steps += tables.gStageLevels;
      this.stallCycles += references + timing.chargeTlbRefill(cpu, steps);
      return;
    }
    if (this.refillCosts !== undefined) {
      // Disco's refill by the monitor: its walk is its handler's work (the cost table's `walk`), not the walker's.
      timing.chargeTlbRefill(cpu, 0);
      if (tables !== undefined) references += tables.pmapEntry(timing, cpu, pa) + tables.secondLevelEntry(timing, cpu, vpn, true);
      this.chargeMonitor(references, KIND_REFILL_WALK);
      return;
    }
    this.stallCycles += references + timing.chargeTlbRefill(cpu, levels);
  }

  // ---- loads: return the value zero-extended (size < 4) or as an int32 (size 4) ----

  load8(va: number): number {
    const vpn = Math.floor(va / 4096);
    const t = this.readTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn) {
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], va + t.delta[i], false);
      return t.mem[i].u8[va + t.delta[i]];
    }
    return this.loadSlow(va, 1);
  }

  load16(va: number): number {
    const vpn = Math.floor(va / 4096);
    const t = this.readTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn && (va & 1) === 0) {
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], va + t.delta[i], false);
      return t.mem[i].u16[(va + t.delta[i]) >>> 1];
    }
    return this.loadSlow(va, 2);
  }

  load32(va: number): number {
    const vpn = Math.floor(va / 4096);
    const t = this.readTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn && (va & 3) === 0) {
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], va + t.delta[i], false);
      return t.mem[i].i32[(va + t.delta[i]) >>> 2];
    }
    return this.loadSlow(va, 4) | 0;
  }

  /** Returns the low word; the high word is left in `loadHi`. */
  load64(va: number): number {
    const vpn = Math.floor(va / 4096);
    const t = this.readTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn && (va & 7) === 0) {
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], va + t.delta[i], false);
      const w = (va + t.delta[i]) >>> 2;
      const m = t.mem[i].i32;
      this.loadHi = m[w + 1];
      return m[w];
    }
    // An aligned doubleword is one access (to PMP as to the cache): the low half checks and charges it.
    const lo = this.loadSlow(va, 4, true, (va & 7) === 0 ? 8 : 4) | 0;
    const hi = this.loadSlow(va + 4, 4, (va & 7) !== 0) | 0;
    this.loadHi = hi;
    return lo;
  }

  /** A load the TLB could not serve: misaligned, page-crossing, TLB miss or MMIO. */
  private loadSlow(va: number, size: AccessSize, charged = true, span: number = size): number {
    if ((va & (size - 1)) !== 0) {
      // Misaligned: assembled from bytes, each of which may fault on its own page (restartable).
      let v = 0;
      for (let k = size - 1; k >= 0; k--) v = v * 256 + this.load8(va + k);
      return v;
    }
    this.locate(va, ACCESS_READ, span);
    const region = this.locRegion;
    const o = this.locOffset;
    if (charged && this.timing !== undefined) this.chargeLocated(this.timing, false);
    if (region !== undefined) {
      if (size === 1) return region.u8[o];
      if (size === 2) return region.u16[o >>> 1];
      return region.i32[o >>> 2] >>> 0;
    }
    if (this.env.exit !== undefined) this.exitTo({ kind: 'mmio', address: o, size, write: false });
    try {
      return this.env.bus.mmioRead(o, size, this.id);
    } catch (e) {
      if (e instanceof BusError) return this.raise(CAUSE_LOAD_ACCESS, va);
      throw e;
    }
  }

  /** Timing mode: the access `locate` just resolved, to RAM (cached) or MMIO (uncached). */
  private chargeLocated(timing: MemoryTiming, isWrite: boolean): void {
    const region = this.locRegion;
    if (region !== undefined) this.chargeRam(timing, region, this.locOffset, isWrite);
    else this.stallCycles += timing.chargeAccess(this.timingCpu, this.locOffset, isWrite);
  }

  // ---- stores ----

  store8(va: number, v: number): void {
    const vpn = Math.floor(va / 4096);
    const t = this.writeTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn) {
      const o = va + t.delta[i];
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], o, true);
      if (this.env.reservations.count !== 0) this.env.reservations.storeBy(this.id, t.mem[i].base + o, 1);
      t.mem[i].u8[o] = v;
      return;
    }
    this.storeSlow(va, 1, v);
  }

  store16(va: number, v: number): void {
    const vpn = Math.floor(va / 4096);
    const t = this.writeTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn && (va & 1) === 0) {
      const o = va + t.delta[i];
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], o, true);
      if (this.env.reservations.count !== 0) this.env.reservations.storeBy(this.id, t.mem[i].base + o, 2);
      t.mem[i].u16[o >>> 1] = v;
      return;
    }
    this.storeSlow(va, 2, v);
  }

  store32(va: number, v: number): void {
    const vpn = Math.floor(va / 4096);
    const t = this.writeTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn && (va & 3) === 0) {
      const o = va + t.delta[i];
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], o, true);
      if (this.env.reservations.count !== 0) this.env.reservations.storeBy(this.id, t.mem[i].base + o, 4);
      t.mem[i].i32[o >>> 2] = v;
      return;
    }
    this.storeSlow(va, 4, v);
  }

  store64(va: number, lo: number, hi: number): void {
    const vpn = Math.floor(va / 4096);
    const t = this.writeTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn && (va & 7) === 0) {
      const o = va + t.delta[i];
      if (this.timing !== undefined) this.chargeRam(this.timing, t.mem[i], o, true);
      if (this.env.reservations.count !== 0) this.env.reservations.storeBy(this.id, t.mem[i].base + o, 8);
      const m = t.mem[i].i32;
      m[o >>> 2] = lo;
      m[(o >>> 2) + 1] = hi;
      return;
    }
    if ((va & 7) !== 0 && (va & 4095) > 4088) this.probeWrite(va, 8);
    this.storeSlow(va, 4, lo, true, (va & 7) === 0 ? 8 : 4);
    this.storeSlow(va + 4, 4, hi, (va & 7) !== 0);
  }

  /** Translates both pages of a page-crossing store before any byte is written, so a fault changes nothing. */
  private probeWrite(va: number, size: number): void {
    this.locate(va, ACCESS_WRITE);
    this.locate(va + size - 1, ACCESS_WRITE);
  }

  /**
   * `charged` false: the high half of an aligned doubleword, whose low half was the one cache access.
   * `span`: the bytes PMP checks (the whole doubleword for its low half).
   */
  private storeSlow(va: number, size: AccessSize, v: number, charged = true, span: number = size): void {
    if ((va & (size - 1)) !== 0) {
      if ((va & 4095) > 4096 - size) this.probeWrite(va, size);
      for (let k = 0; k < size; k++) this.store8(va + k, (v >>> (8 * k)) & 0xff);
      return;
    }
    this.locate(va, ACCESS_WRITE, span);
    const region = this.locRegion;
    const o = this.locOffset;
    if (charged && this.timing !== undefined) this.chargeLocated(this.timing, true);
    if (region !== undefined) {
      if (this.env.reservations.count !== 0) this.env.reservations.storeBy(this.id, region.base + o, size);
      if (size === 1) region.u8[o] = v;
      else if (size === 2) region.u16[o >>> 1] = v;
      else region.i32[o >>> 2] = v;
      return;
    }
    if (this.env.exit !== undefined) this.exitTo({ kind: 'mmio', address: o, size, write: true });
    try {
      this.env.bus.mmioWrite(o, size, v, this.id);
    } catch (e) {
      if (e instanceof BusError) this.raise(CAUSE_STORE_ACCESS, va);
      throw e;
    }
    // A device may have raised an interrupt line of this hart: end the slice so it is seen.
    this.stop = true;
  }

  /**
   * Finds the RAM word for an atomic access (AMO, LR, SC): must be naturally aligned and in RAM.
   * Leaves region and byte offset in locRegion/locOffset.
   */
  atomicLocate(va: number, size: number, access: Access): RamRegion {
    if ((va & (size - 1)) !== 0) this.raise(access === ACCESS_READ ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, va);
    this.locate(va, access, size);
    const region = this.locRegion;
    if (region === undefined) return this.raise(access === ACCESS_READ ? CAUSE_LOAD_ACCESS : CAUSE_STORE_ACCESS, va);
    if (this.timing !== undefined) this.chargeRam(this.timing, region, this.locOffset, access === ACCESS_WRITE);
    return region;
  }
}

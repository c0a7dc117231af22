// A direct-mapped software TLB caching virtual page → (RAM region, offset): TinyEMU's shape.
// Only RAM pages are cached; MMIO always takes the slow path. Entries hold machine memory, so the
// monitor can later shoot down exactly the entries of one machine page.

import type { RamRegion } from '../memory/ram.js';

export const TLB_SIZE = 256;
export const TLB_MASK = TLB_SIZE - 1;
/** A tag no virtual page number can equal. */
export const TLB_INVALID = 2 ** 60;

/** True if entry `i` of a TLB's arrays is valid and maps the machine page at `physicalPage`. */
function mapsPage(tag: Float64Array, delta: Float64Array, mem: readonly (RamRegion | undefined)[], i: number, physicalPage: number): boolean {
  const region = mem[i];
  return region !== undefined && tag[i] !== TLB_INVALID && tag[i]! * 4096 + delta[i]! + region.base === physicalPage;
}

export class Tlb {
  /** Virtual page number (address / 4096, floored; negative for the upper half) of each entry. */
  readonly tag = new Float64Array(TLB_SIZE).fill(TLB_INVALID);
  /** Added to a virtual address to get the byte offset in `mem[i]`. */
  readonly delta = new Float64Array(TLB_SIZE);
  readonly mem: RamRegion[] = new Array<RamRegion>(TLB_SIZE);
  /**
   * Tags of entries hidden by `hidePhysical`: still valid, but kept off the fast path so that a store
   * takes the slow path (the translator watches code pages this way). A refill of a hidden entry is
   * not a TLB miss for timing mode, so the statistics do not depend on the translator.
   */
  readonly hidden = new Float64Array(TLB_SIZE).fill(TLB_INVALID);

  flush(): void {
    this.tag.fill(TLB_INVALID);
    this.hidden.fill(TLB_INVALID);
  }

  /** Drops the entry for `vpn` if there is one (SFENCE.VMA of one address). */
  flushPage(vpn: number): void {
    const i = vpn & TLB_MASK;
    if (this.tag[i] === vpn) this.tag[i] = TLB_INVALID;
    if (this.hidden[i] === vpn) this.hidden[i] = TLB_INVALID;
  }

  /** True if the entry for `vpn` is present, on the fast path or hidden. */
  holds(vpn: number): boolean {
    const i = vpn & TLB_MASK;
    return this.tag[i] === vpn || this.hidden[i] === vpn;
  }

  insert(vpn: number, region: RamRegion, physicalPage: number): void {
    const i = vpn & TLB_MASK;
    this.tag[i] = vpn;
    this.hidden[i] = TLB_INVALID;
    this.delta[i] = physicalPage - region.base - vpn * 4096;
    this.mem[i] = region;
  }

  /** Drops every entry that maps the machine page at `physicalPage` (a TLB shootdown). */
  flushPhysical(physicalPage: number): void {
    for (let i = 0; i < TLB_SIZE; i++) {
      if (this.maps(i, physicalPage)) this.tag[i] = TLB_INVALID;
    }
  }

  /** Takes the entries that map the machine page at `physicalPage` off the fast path, keeping them (see `hidden`). */
  hidePhysical(physicalPage: number): void {
    for (let i = 0; i < TLB_SIZE; i++) {
      if (this.maps(i, physicalPage)) {
        this.hidden[i] = this.tag[i];
        this.tag[i] = TLB_INVALID;
      }
    }
  }

  /** True if entry `i` is on the fast path and maps the machine page at `physicalPage`. */
  private maps(i: number, physicalPage: number): boolean {
    return mapsPage(this.tag, this.delta, this.mem, i, physicalPage);
  }
}

/** The three TLBs (read, write, execute) for one privilege level's view of memory. */
export class TlbSet {
  readonly read = new Tlb();
  readonly write = new Tlb();
  readonly exec = new Tlb();

  flush(): void {
    this.read.flush();
    this.write.flush();
    this.exec.flush();
  }

  flushPage(vpn: number): void {
    this.read.flushPage(vpn);
    this.write.flushPage(vpn);
    this.exec.flushPage(vpn);
  }

  flushPhysical(physicalPage: number): void {
    this.read.flushPhysical(physicalPage);
    this.write.flushPhysical(physicalPage);
    this.exec.flushPhysical(physicalPage);
  }
}

/** The address space tag of a global mapping (one with the G bit): it matches every ASID. */
export const GLOBAL_ASID = -1;

/**
 * A larger direct-mapped TLB behind the first-level one, for one privilege level and kind of access: the
 * monitor's per-vCPU second-level TLB. A world switch empties the first level (the physical CPU's), not
 * this one, so a vCPU coming back refills from here instead of walking its page tables again. It holds
 * what the first level held, tagged with the address space (satp's ASID) it was walked in, and is flushed by
 * the same SFENCE.VMAs, so it never answers what a walk would not; a satp write does not flush it (the
 * ASID tags keep address spaces apart, and the spec asks software to fence before it reuses an ASID).
 * Beside its 4 KiB entries it keeps large ones: a guest leaf of 2 MiB or more whose pmap holds the 2 MiB
 * as one aligned machine block answers for all its pages (one entry per 2 MiB frame used).
 */
export class SecondLevelTlb {
  readonly tag: Float64Array;
  readonly asid: Int32Array;
  readonly delta: Float64Array;
  readonly mem: RamRegion[];
  /** Page-table levels the walk that made each entry read (timing mode charges them again on a refill). */
  readonly levels: Uint8Array;
  /** What each entry's leaf allows (tlb-model.ts ALLOWS_ bits). */
  readonly allows: Uint8Array;
  private readonly mask: number;
  /** Large entries, by 2 MiB frame (virtual page number / 512, floored); `largeBase` is the machine block's address. */
  private readonly largeTag: Float64Array;
  private readonly largeAsid: Int32Array;
  private readonly largeDelta: Float64Array;
  private readonly largeMem: RamRegion[];
  private readonly largeLevels: Uint8Array;
  private readonly largeAllows: Uint8Array;
  private readonly largeBase: Float64Array;
  private readonly largeMask: number;

  /** What the last successful `lookup` found: the page's region and offset delta, and the entry's fields. */
  hitRegion: RamRegion | undefined = undefined;
  hitDelta = 0;
  hitLevels = 0;
  hitAllows = 0;
  hitAsid = 0;
  /** The machine block's address if a large entry answered, else -1. */
  hitLargeBase = -1;

  constructor(readonly size = 2048) {
    if (size < 32 || (size & (size - 1)) !== 0) throw new Error(`second-level TLB size must be a power of two of at least 32, not ${size}`);
    this.mask = size - 1;
    this.tag = new Float64Array(size).fill(TLB_INVALID);
    this.asid = new Int32Array(size);
    this.delta = new Float64Array(size);
    this.mem = new Array<RamRegion>(size);
    this.levels = new Uint8Array(size);
    this.allows = new Uint8Array(size);
    const large = size / 32;
    this.largeMask = large - 1;
    this.largeTag = new Float64Array(large).fill(TLB_INVALID);
    this.largeAsid = new Int32Array(large);
    this.largeDelta = new Float64Array(large);
    this.largeMem = new Array<RamRegion>(large);
    this.largeLevels = new Uint8Array(large);
    this.largeAllows = new Uint8Array(large);
    this.largeBase = new Float64Array(large);
  }

  /** The index of the 4 KiB entry for `vpn` in address space `asid` (or a global one), or -1. */
  find(vpn: number, asid: number): number {
    const i = vpn & this.mask;
    return this.tag[i] === vpn && (this.asid[i] === asid || this.asid[i] === GLOBAL_ASID) ? i : -1;
  }

  /** True if an entry, 4 KiB or large, translates `vpn` in address space `asid`; the `hit` fields say how. */
  lookup(vpn: number, asid: number): boolean {
    const i = this.find(vpn, asid);
    if (i >= 0) {
      this.hitRegion = this.mem[i];
      this.hitDelta = this.delta[i]!;
      this.hitLevels = this.levels[i]!;
      this.hitAllows = this.allows[i]!;
      this.hitAsid = this.asid[i]!;
      this.hitLargeBase = -1;
      return true;
    }
    const frame = Math.floor(vpn / 512);
    const j = frame & this.largeMask;
    if (this.largeTag[j] !== frame || (this.largeAsid[j] !== asid && this.largeAsid[j] !== GLOBAL_ASID)) return false;
    this.hitRegion = this.largeMem[j];
    this.hitDelta = this.largeDelta[j]!;
    this.hitLevels = this.largeLevels[j]!;
    this.hitAllows = this.largeAllows[j]!;
    this.hitAsid = this.largeAsid[j]!;
    this.hitLargeBase = this.largeBase[j]!;
    return true;
  }

  insert(vpn: number, asid: number, region: RamRegion, physicalPage: number, levels: number, allows = 0): void {
    const i = vpn & this.mask;
    this.tag[i] = vpn;
    this.asid[i] = asid;
    this.levels[i] = levels;
    this.allows[i] = allows;
    this.delta[i] = physicalPage - region.base - vpn * 4096;
    this.mem[i] = region;
  }

  /** A large entry: the 2 MiB frame holding `vpn` maps the machine block at `base` (in `region`). */
  insertLarge(vpn: number, asid: number, region: RamRegion, base: number, levels: number, allows: number): void {
    const frame = Math.floor(vpn / 512);
    const j = frame & this.largeMask;
    this.largeTag[j] = frame;
    this.largeAsid[j] = asid;
    this.largeLevels[j] = levels;
    this.largeAllows[j] = allows;
    this.largeBase[j] = base;
    this.largeDelta[j] = base - region.base - frame * 512 * 4096;
    this.largeMem[j] = region;
  }

  /** The valid large entries: 2 MiB frame, ASID tag and machine block (for tests and checks). */
  largeEntries(): { frame: number; asid: number; base: number }[] {
    const out: { frame: number; asid: number; base: number }[] = [];
    for (let j = 0; j <= this.largeMask; j++) {
      if (this.largeTag[j] !== TLB_INVALID) out.push({ frame: this.largeTag[j]!, asid: this.largeAsid[j]!, base: this.largeBase[j]! });
    }
    return out;
  }

  flush(): void {
    this.tag.fill(TLB_INVALID);
    this.largeTag.fill(TLB_INVALID);
  }

  /** Drops the entries that translate `vpn`, whatever their address space. */
  flushPage(vpn: number): void {
    const i = vpn & this.mask;
    if (this.tag[i] === vpn) this.tag[i] = TLB_INVALID;
    const frame = Math.floor(vpn / 512);
    if (this.largeTag[frame & this.largeMask] === frame) this.largeTag[frame & this.largeMask] = TLB_INVALID;
  }

  /** Drops every entry of address space `asid`; global entries stay, as SFENCE.VMA with an ASID leaves them (§4.2.1). */
  flushAsid(asid: number): void {
    for (let i = 0; i < this.size; i++) if (this.asid[i] === asid) this.tag[i] = TLB_INVALID;
    for (let j = 0; j <= this.largeMask; j++) if (this.largeAsid[j] === asid) this.largeTag[j] = TLB_INVALID;
  }

  flushPhysical(physicalPage: number): void {
    for (let i = 0; i < this.size; i++) if (mapsPage(this.tag, this.delta, this.mem, i, physicalPage)) this.tag[i] = TLB_INVALID;
    for (let j = 0; j <= this.largeMask; j++) {
      if (physicalPage >= this.largeBase[j]! && physicalPage < this.largeBase[j]! + 512 * 4096) this.largeTag[j] = TLB_INVALID;
    }
  }
}

/** A vCPU's second-level TLBs: one per translated view (as HartState.tlbSets: U, S, S with SUM) and kind of access. */
export class SecondLevelTlbSet {
  /** Indexed [view][access]: view 0 (U), 1 (S), 2 (S with SUM set); access read, write, exec. */
  readonly levels: SecondLevelTlb[][];

  constructor(size = 2048) {
    this.levels = [0, 1, 2].map(() => [0, 1, 2].map(() => new SecondLevelTlb(size)));
  }

  flush(): void {
    for (const level of this.levels) for (const t of level) t.flush();
  }

  flushPage(vpn: number): void {
    for (const level of this.levels) for (const t of level) t.flushPage(vpn);
  }

  flushAsid(asid: number): void {
    for (const level of this.levels) for (const t of level) t.flushAsid(asid);
  }

  flushPhysical(physicalPage: number): void {
    for (const level of this.levels) for (const t of level) t.flushPhysical(physicalPage);
  }
}

// A direct-mapped software TLB caching virtual page → (RAM region, offset): TinyEMU's shape.
// Only RAM pages are cached; MMIO always takes the slow path. Entries hold machine memory, so the
// monitor can later shoot down exactly the entries of one machine page.

import { LARGE_PAGE_BYTES } from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';

export const TLB_SIZE = 256;
export const TLB_MASK = TLB_SIZE - 1;
/** A tag no virtual page number can equal. */
export const TLB_INVALID = 2 ** 60;

/** True if entry `i` of a TLB's arrays is valid and maps the machine page at `physicalPage`. */
function mapsPage(tag: Float64Array, delta: Float64Array, mem: readonly (RamRegion | undefined)[], i: number, physicalPage: number, bytes = 4096): boolean {
  const region = mem[i];
  if (region === undefined || tag[i] === TLB_INVALID) return false;
  const page = tag[i]! * 4096 + delta[i]! + region.base;
  return page >= physicalPage && page < physicalPage + bytes;
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
  /** Drops the entries of the machine pages in [physicalPage, physicalPage + bytes). */
  flushPhysical(physicalPage: number, bytes = 4096): void {
    for (let i = 0; i < TLB_SIZE; i++) {
      if (mapsPage(this.tag, this.delta, this.mem, i, physicalPage, bytes)) this.tag[i] = TLB_INVALID;
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

  flushPhysical(physicalPage: number, bytes = 4096): void {
    this.read.flushPhysical(physicalPage, bytes);
    this.write.flushPhysical(physicalPage, bytes);
    this.exec.flushPhysical(physicalPage, bytes);
  }
}

/** The address space tag of a global mapping (one with the G bit): it matches every ASID. */
export const GLOBAL_ASID = -1;

/** 4 KiB pages in a 2 MiB frame. */
const FRAME_PAGES = LARGE_PAGE_BYTES / 4096;

/**
 * The large part of a TLB: entries for 2 MiB frames (virtual page number / 512, floored), direct-mapped by
 * frame, each tagged with its ASID (or GLOBAL_ASID) and mapping an aligned 2 MiB block of machine memory.
 */
export class LargeEntries {
  readonly tag: Float64Array;
  readonly asid: Int32Array;
  /** What each entry's leaf allows (tlb-model.ts ALLOWS_ bits). */
  readonly allows: Uint8Array;
  /** The machine address of each entry's block. */
  readonly base: Float64Array;
  /** Page-table levels the walk that made each entry read, and the region holding its block. */
  readonly levels: Uint8Array;
  readonly mem: (RamRegion | undefined)[];
  private readonly mask: number;

  constructor(readonly size: number) {
    this.mask = size - 1;
    this.tag = new Float64Array(size).fill(TLB_INVALID);
    this.asid = new Int32Array(size);
    this.allows = new Uint8Array(size);
    this.base = new Float64Array(size);
    this.levels = new Uint8Array(size);
    this.mem = new Array<RamRegion | undefined>(size);
  }

  /** The index of the entry for the frame holding `vpn` in address space `asid` (or a global one), or -1. */
  find(vpn: number, asid: number): number {
    const frame = Math.floor(vpn / FRAME_PAGES);
    const j = frame & this.mask;
    return this.tag[j] === frame && (this.asid[j] === asid || this.asid[j] === GLOBAL_ASID) ? j : -1;
  }

  /** The frame holding `vpn` maps the machine block at `base`. */
  insert(vpn: number, asid: number, allows: number, base: number, levels = 0, region?: RamRegion): void {
    const frame = Math.floor(vpn / FRAME_PAGES);
    const j = frame & this.mask;
    this.tag[j] = frame;
    this.asid[j] = asid;
    this.allows[j] = allows;
    this.base[j] = base;
    this.levels[j] = levels;
    this.mem[j] = region;
  }

  /** The valid entries: frame, ASID tag and machine block (for tests and checks). */
  entries(): { frame: number; asid: number; base: number }[] {
    const out: { frame: number; asid: number; base: number }[] = [];
    for (let j = 0; j < this.size; j++) {
      if (this.tag[j] !== TLB_INVALID) out.push({ frame: this.tag[j]!, asid: this.asid[j]!, base: this.base[j]! });
    }
    return out;
  }

  flush(): void {
    this.tag.fill(TLB_INVALID);
  }

  /** Drops every entry of address space `asid`; global entries stay. */
  flushAsid(asid: number): void {
    for (let j = 0; j < this.size; j++) if (this.asid[j] === asid) this.tag[j] = TLB_INVALID;
  }

  /** Drops the entry of the frame holding `vpn`, whatever its address space. */
  flushPage(vpn: number): void {
    const frame = Math.floor(vpn / FRAME_PAGES);
    if (this.tag[frame & this.mask] === frame) this.tag[frame & this.mask] = TLB_INVALID;
  }

  /** Drops every entry whose block holds the machine page at `address`; says whether there was one. */
  flushPhysical(address: number, bytes = 4096): boolean {
    let held = false;
    for (let j = 0; j < this.size; j++) {
      // Any overlap of the block with [address, address + bytes).
      if (this.tag[j] !== TLB_INVALID && address < this.base[j]! + LARGE_PAGE_BYTES && address + bytes > this.base[j]!) {
        this.tag[j] = TLB_INVALID;
        held = true;
      }
    }
    return held;
  }
}

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
  /** Entries for 2 MiB frames held as one machine block. */
  readonly large: LargeEntries;

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
    this.large = new LargeEntries(size / 32);
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
    const large = this.large;
    const j = large.find(vpn, asid);
    if (j < 0) return false;
    const region = large.mem[j]!;
    this.hitRegion = region;
    // The block's offset in its region, minus the frame's first virtual address.
    this.hitDelta = large.base[j]! - region.base - large.tag[j]! * LARGE_PAGE_BYTES;
    this.hitLevels = large.levels[j]!;
    this.hitAllows = large.allows[j]!;
    this.hitAsid = large.asid[j]!;
    this.hitLargeBase = large.base[j]!;
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
    this.large.insert(vpn, asid, allows, base, levels, region);
  }

  flush(): void {
    this.tag.fill(TLB_INVALID);
    this.large.flush();
  }

  /** Drops the entries that translate `vpn`, whatever their address space. */
  flushPage(vpn: number): void {
    const i = vpn & this.mask;
    if (this.tag[i] === vpn) this.tag[i] = TLB_INVALID;
    this.large.flushPage(vpn);
  }

  /** Drops every entry of address space `asid`; global entries stay, as SFENCE.VMA with an ASID leaves them (§4.2.1). */
  flushAsid(asid: number): void {
    for (let i = 0; i < this.size; i++) if (this.asid[i] === asid) this.tag[i] = TLB_INVALID;
    this.large.flushAsid(asid);
  }

  flushPhysical(physicalPage: number, bytes = 4096): void {
    for (let i = 0; i < this.size; i++) if (mapsPage(this.tag, this.delta, this.mem, i, physicalPage, bytes)) this.tag[i] = TLB_INVALID;
    this.large.flushPhysical(physicalPage, bytes);
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

  flushPhysical(physicalPage: number, bytes = 4096): void {
    for (const level of this.levels) for (const t of level) t.flushPhysical(physicalPage, bytes);
  }
}

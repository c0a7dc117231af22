// The TLB the machine is modelled to have: what decides whether an access is a TLB miss, which timing
// mode charges as a walk and the monitor as a refill. The emulator's lookup tables (tlb.ts) are a fast
// path and keep less than this: one table per view of memory and kind of access, 4 KiB entries only,
// emptied by every satp write. A hardware TLB is one structure whose entries carry the address space
// (ASID) they were walked in and the leaf's permissions, and a 2 MiB page takes one entry.

import { PERM_R, PERM_W, PERM_X } from '../memory/bus.js';
import { GLOBAL_ASID, LargeEntries, TLB_INVALID, TLB_MASK, TLB_SIZE } from './tlb.js';

/**
 * What a cached leaf allows without another walk (`HartState.walkAllows`): the bits of the monitor's page
 * permissions (bus.ts PERM_), so that an entry's allows are the two stages' ANDed.
 */
export const ALLOWS_READ = PERM_R;
/** Writable with its D bit already set: a store needs no walk to set it. */
export const ALLOWS_WRITE = PERM_W;
export const ALLOWS_EXEC = PERM_X;

/** One way per translated view (U, S, S with SUM) and kind of access (read, write, exec). */
export const TLB_WAYS = 9;
/** Entries for 2 MiB pages (direct-mapped by the 2 MiB frame number). */
export const LARGE_ENTRIES = 32;

export interface TlbModelState {
  tag: Float64Array;
  asid: Int32Array;
  allows: Uint8Array;
  page: Float64Array;
  largeTag: Float64Array;
  largeAsid: Int32Array;
  largeAllows: Uint8Array;
  largeBase: Float64Array;
}

/**
 * The modelled TLB of one hart. Its 4 KiB part has the emulator's geometry: 256 sets, one way per view and
 * kind of access, filled exactly when the emulator fills the table of that way. It is emptied only when
 * the emulator's tables are too (never by a satp write alone), so it holds all they hold; an access the
 * fast path serves is a hit here as well. A lookup matches an entry of any way whose ASID is the current
 * one (or global) and whose permissions allow the access, as one unified TLB would. A leaf of 2 MiB or
 * more whose machine memory is one aligned 2 MiB block also fills one large entry, which answers for every
 * 4 KiB page in it (a 1 GiB leaf fills 2 MiB entries, one per block used).
 */
export class TlbModel {
  private readonly tag = new Float64Array(TLB_WAYS * TLB_SIZE).fill(TLB_INVALID);
  private readonly asid = new Int32Array(TLB_WAYS * TLB_SIZE);
  private readonly allows = new Uint8Array(TLB_WAYS * TLB_SIZE);
  /** Machine address of each entry's page (for shootdowns). */
  private readonly page = new Float64Array(TLB_WAYS * TLB_SIZE);
  /** Entries for 2 MiB pages. */
  readonly large = new LargeEntries(LARGE_ENTRIES);

  /** Every entry as plain arrays (snapshots: the model decides which accesses are TLB misses, so it is saved). */
  saveState(): TlbModelState {
    const large = this.large;
    return {
      tag: this.tag.slice(), asid: this.asid.slice(), allows: this.allows.slice(), page: this.page.slice(),
      largeTag: large.tag.slice(), largeAsid: large.asid.slice(), largeAllows: large.allows.slice(), largeBase: large.base.slice(),
    };
  }

  /** Puts back what `saveState` returned; the caller has checked every array's type and length. */
  restoreState(s: TlbModelState): void {
    this.tag.set(s.tag);
    this.asid.set(s.asid);
    this.allows.set(s.allows);
    this.page.set(s.page);
    this.large.tag.set(s.largeTag);
    this.large.asid.set(s.largeAsid);
    this.large.allows.set(s.largeAllows);
    this.large.base.set(s.largeBase);
  }

  /** True if an entry covers virtual page `vpn` in address space `asid` and allows `need` (an ALLOWS_ bit). */
  hits(vpn: number, asid: number, need: number): boolean {
    const set = vpn & TLB_MASK;
    for (let w = 0; w < TLB_WAYS; w++) {
      const i = w * TLB_SIZE + set;
      if (this.tag[i] === vpn && (this.allows[i]! & need) !== 0 && (this.asid[i] === asid || this.asid[i] === GLOBAL_ASID)) return true;
    }
    const j = this.large.find(vpn, asid);
    return j >= 0 && (this.large.allows[j]! & need) !== 0;
  }

  /** The emulator filled way `way` with `vpn` (tag `asid`, or -1 for global) mapping the machine page at `page`. */
  fill(way: number, vpn: number, asid: number, allows: number, page: number): void {
    const i = way * TLB_SIZE + (vpn & TLB_MASK);
    this.tag[i] = vpn;
    this.asid[i] = asid;
    this.allows[i] = allows;
    this.page[i] = page;
  }

  /** A leaf of 2 MiB or more maps the 2 MiB frame holding `vpn` to the aligned machine block at `base`. */
  fillLarge(vpn: number, asid: number, allows: number, base: number): void {
    this.large.insert(vpn, asid, allows, base);
  }

  flush(): void {
    this.tag.fill(TLB_INVALID);
    this.large.flush();
  }

  /** Drops every entry of address space `asid`; global ones stay (SFENCE.VMA with an ASID, §4.2.1). */
  flushAsid(asid: number): void {
    for (let i = 0; i < this.tag.length; i++) if (this.asid[i] === asid) this.tag[i] = TLB_INVALID;
    this.large.flushAsid(asid);
  }

  /** Drops the entries that translate `vpn`, in every address space. */
  flushPage(vpn: number): void {
    const set = vpn & TLB_MASK;
    for (let w = 0; w < TLB_WAYS; w++) if (this.tag[w * TLB_SIZE + set] === vpn) this.tag[w * TLB_SIZE + set] = TLB_INVALID;
    this.large.flushPage(vpn);
  }

  /**
   * Drops every entry that maps a machine page in [address, address + bytes) (a shootdown: one page, or a
   * whole block the monitor moves); says whether there was one.
   */
  flushPhysical(address: number, bytes = 4096): boolean {
    let held = false;
    for (let i = 0; i < this.tag.length; i++) {
      const page = this.page[i]!;
      if (page >= address && page < address + bytes && this.tag[i] !== TLB_INVALID) {
        this.tag[i] = TLB_INVALID;
        held = true;
      }
    }
    return this.large.flushPhysical(address, bytes) || held;
  }
}

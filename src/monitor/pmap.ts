// A VM's pmap: guest-physical page → machine page, filled lazily from the machine's nodes (Disco §4.2.2).

import type { PagedRam } from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';
import { BLOCK_PAGES, FREE, PAGE, type MachineMemory } from './machine-memory.js';

/** A group of guest pages that can no longer be one machine block (some page came from elsewhere). */
const SCATTERED = -2;

export interface PmapOptions {
  /** The VM's id in the memmap. */
  vm: number;
  /** Guest-physical address of the first page and the size in bytes. */
  base: number;
  size: number;
  /** The node pages come from while it has free ones (the node the VM's vCPUs prefer). */
  homeNode: number;
  /** Called when a guest page is first touched and gets its machine page (the monitor charges the work). */
  onFill?: (gppn: number) => void;
  /** Called with the machine address of a page whose mapping changes: every TLB entry of it must go. */
  shootDown: (machineAddress: number) => void;
}

/**
 * The pmap is the bus's paged RAM: the hart's walker reads guest page tables through it and the TLB caches
 * the machine page it yields, so the TLB maps virtual → machine. Nothing outside [base, base + size) is the
 * VM's: the bus has no other RAM, so a guest can reach no machine page but its own.
 *
 * Large pages: the first touch of a group of 512 guest pages (2 MiB, aligned) reserves an aligned block of
 * 512 never-used machine pages on the home node, and each page of the group goes to its own place in it
 * when first touched. Once all are there, the group is one block (`largeBlock`) and a guest leaf of 2 MiB
 * over it takes one TLB entry, as on the bare machine. Pages not yet touched stay reserved for the group
 * (no one else gets them; they are not in use). Moving or dropping a page of a group scatters it for good;
 * so does a group that found no block free.
 */
export class Pmap implements PagedRam {
  readonly base: number;
  readonly size: number;
  readonly regions: readonly RamRegion[];
  readonly domain: object;
  pageOffset = 0;
  /** Per guest page: its machine page number, or FREE before the guest first touches it. */
  private readonly machine: Int32Array;
  /** Per group of BLOCK_PAGES guest pages: its reserved block's first mpn, FREE before its first touch, or SCATTERED. */
  private readonly blocks: Int32Array;
  /** Per group: how many of its pages sit in its block. */
  private readonly placed: Uint16Array;
  private inUse = 0;
  private released = false;
  homeNode: number;

  constructor(private readonly memory: MachineMemory, private readonly options: PmapOptions) {
    if (options.size <= 0 || options.size % PAGE !== 0 || options.base % PAGE !== 0) throw new Error('a pmap covers whole pages');
    this.base = options.base;
    this.size = options.size;
    this.regions = memory.regions;
    this.domain = memory.domain;
    this.homeNode = options.homeNode;
    this.machine = new Int32Array(options.size / PAGE).fill(FREE);
    const groups = Math.ceil(this.machine.length / BLOCK_PAGES);
    this.blocks = new Int32Array(groups).fill(FREE);
    // A last group shorter than a block is never one.
    if (this.machine.length % BLOCK_PAGES !== 0) this.blocks[groups - 1] = SCATTERED;
    this.placed = new Uint16Array(groups);
  }

  /** The machine address of group `group`'s block if all its pages are in it, else -1 (PagedRam.largeBlock). */
  largeBlock(group: number): number {
    const block = this.blocks[group];
    return block !== undefined && block >= 0 && this.placed[group] === BLOCK_PAGES ? this.memory.addressOf(block) : -1;
  }

  get pages(): number {
    return this.machine.length;
  }

  /** Guest pages that have a machine page. */
  get pagesInUse(): number {
    return this.inUse;
  }

  /** Pages reserved in this pmap's blocks and not touched yet (they are not in use, and no one else gets them). */
  get pagesReserved(): number {
    let n = 0;
    for (let group = 0; group < this.blocks.length; group++) if (this.blocks[group]! >= 0) n += BLOCK_PAGES - this.placed[group]!;
    return n;
  }

  /** The machine page of guest page `gppn`, or FREE if it has none yet. */
  lookup(gppn: number): number {
    return this.machine[gppn] ?? FREE;
  }

  /** Throws unless `gppn` is one of this pmap's guest pages. */
  private check(gppn: number): void {
    if (!Number.isInteger(gppn) || gppn < 0 || gppn >= this.machine.length) {
      throw new RangeError(`guest page ${gppn} is outside the VM's ${this.machine.length} pages`);
    }
  }

  page(index: number): RamRegion {
    if (this.released) throw new Error('the VM has ended: its memory is gone');
    this.check(index);
    let mpn = this.machine[index]!;
    if (mpn === FREE) mpn = this.fill(index);
    this.pageOffset = this.memory.offsetOf(mpn);
    return this.memory.regionOf(mpn);
  }

  private fill(gppn: number): number {
    const group = Math.floor(gppn / BLOCK_PAGES);
    if (this.blocks[group] === FREE) {
      const reserved = this.memory.reserveBlock(this.homeNode);
      this.blocks[group] = reserved === FREE ? SCATTERED : reserved;
    }
    const block = this.blocks[group]!;
    let mpn: number;
    if (block >= 0) {
      mpn = block + (gppn % BLOCK_PAGES);
      this.memory.allocateReserved(mpn, this.options.vm, gppn);
      this.placed[group]!++;
    } else {
      mpn = this.memory.allocate(this.homeNode, this.options.vm, gppn);
    }
    this.machine[gppn] = mpn;
    this.inUse++;
    this.options.onFill?.(gppn);
    return mpn;
  }

  /**
   * Moves guest page `gppn` to a fresh page on `node` with its contents (page migration): the old page's
   * TLB entries are shot down first, so no vCPU can write the old copy after it was read.
   */
  migrate(gppn: number, node: number): number {
    this.check(gppn);
    const old = this.machine[gppn]!;
    if (old === FREE) throw new Error(`guest page ${gppn} has no machine page to migrate`);
    this.options.shootDown(this.memory.addressOf(old));
    this.scatter(Math.floor(gppn / BLOCK_PAGES));
    const mpn = this.memory.allocate(node, this.options.vm, gppn);
    const from = this.memory.regionOf(old);
    const to = this.memory.regionOf(mpn);
    const fromOffset = this.memory.offsetOf(old);
    to.u8.set(from.u8.subarray(fromOffset, fromOffset + PAGE), this.memory.offsetOf(mpn));
    this.machine[gppn] = mpn;
    this.memory.free(old);
    return mpn;
  }

  /** Drops guest page `gppn`'s machine page (its contents are lost: the guest gave it back); shoots it down. */
  unmap(gppn: number): void {
    this.check(gppn);
    const old = this.machine[gppn]!;
    if (old === FREE) return;
    this.options.shootDown(this.memory.addressOf(old));
    this.scatter(Math.floor(gppn / BLOCK_PAGES));
    this.machine[gppn] = FREE;
    this.inUse--;
    this.memory.free(old);
  }

  /**
   * Group `group` stops being a block (one of its pages moves or goes): its reserved pages not placed yet
   * go back to the machine, and its later pages come one by one. The caller has shot down the page that
   * changes, and with it every large entry of the block.
   */
  private scatter(group: number): void {
    const block = this.blocks[group]!;
    this.blocks[group] = SCATTERED;
    if (block < 0) return;
    for (let k = 0; k < BLOCK_PAGES; k++) {
      if (this.machine[group * BLOCK_PAGES + k] === FREE) this.memory.unreserve(block + k);
    }
  }

  /** Gives every machine page back (the VM ended). Its vCPUs must not run again. */
  release(): void {
    for (let group = 0; group < this.blocks.length; group++) this.scatter(group);
    for (let gppn = 0; gppn < this.machine.length; gppn++) {
      const mpn = this.machine[gppn]!;
      if (mpn === FREE) continue;
      this.machine[gppn] = FREE;
      this.memory.free(mpn);
    }
    this.inUse = 0;
    this.released = true;
  }
}

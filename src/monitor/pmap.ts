// A VM's pmap: guest-physical page → machine page, filled lazily from the machine's nodes (Disco §4.2.2).

import type { PagedRam } from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';
import { FREE, PAGE, type MachineMemory } from './machine-memory.js';

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
 */
export class Pmap implements PagedRam {
  readonly base: number;
  readonly size: number;
  readonly regions: readonly RamRegion[];
  readonly domain: object;
  pageOffset = 0;
  /** Per guest page: its machine page number, or FREE before the guest first touches it. */
  private readonly machine: Int32Array;
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
  }

  get pages(): number {
    return this.machine.length;
  }

  /** Guest pages that have a machine page. */
  get pagesInUse(): number {
    return this.inUse;
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
    const mpn = this.memory.allocate(this.homeNode, this.options.vm, gppn);
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
    this.machine[gppn] = FREE;
    this.inUse--;
    this.memory.free(old);
  }

  /** Gives every machine page back (the VM ended). Its vCPUs must not run again. */
  release(): void {
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

// The physical address space: RAM regions (one per NUMA node) and MMIO windows, with overlaps rejected.

import type { AccessSize, Device } from './device.js';
import { DmaError, type GuestMemory } from './guest-memory.js';
import { DEVICE_ACCESS, HW_PAGE_PARTIAL } from './hardware-faults.js';
import { RamRegion } from './ram.js';

export interface MmioWindow {
  readonly base: number;
  readonly size: number;
  readonly device: Device;
}

/** Thrown by the bus when an address has neither RAM nor a device; the CPU turns it into an access fault. */
export class BusError extends Error {
  constructor(readonly address: number) {
    super(`no memory or device at 0x${address.toString(16)}`);
  }
}

/** Kinds of memory access, as the monitor's permissions and the hart's TLBs tell them apart. */
export const ACCESS_READ = 0;
export const ACCESS_WRITE = 1;
export const ACCESS_EXEC = 2;
export type Access = typeof ACCESS_READ | typeof ACCESS_WRITE | typeof ACCESS_EXEC;

/**
 * What the monitor lets a guest do with one of its pages, whatever the guest's own page tables say: the
 * G-stage permissions of RISC-V's hypervisor extension (privileged spec §9.5). A bit per kind of access
 * (the modelled TLB's ALLOWS_ are these bits), used in four combinations: none, R, RX, RWX.
 */
export const PERM_NONE = 0;
export const PERM_R = 1;
export const PERM_W = 2;
export const PERM_X = 4;
export const PERM_RX = PERM_R | PERM_X;
export const PERM_RWX = PERM_R | PERM_W | PERM_X;
/** The permission bit an access of kind `access` needs. */
export const ACCESS_PERM = [PERM_R, PERM_W, PERM_X] as const;

/**
 * RAM whose pages lie anywhere in machine memory: a VM's guest-physical memory under the monitor, whose
 * pmap says which machine page holds each guest page and what the guest may do with it.
 */
export interface PagedRam {
  /** Guest-physical address of the first page, and the size in bytes (both multiples of 4 KiB). */
  readonly base: number;
  readonly size: number;
  /**
   * The machine region holding page `index` (counted from `base`) if the monitor lets the guest make an
   * access of kind `access` to it; the page's byte offset in it is left in `pageOffset` and its permission
   * (PERM_ bits) in `pageAllows`. Undefined when it does not: the page has no machine page yet, or not
   * that permission. Nothing changes either way: resolving the denial is the monitor's work (an exit).
   */
  page(index: number, access: Access): RamRegion | undefined;
  readonly pageOffset: number;
  readonly pageAllows: number;
  /** Every machine region a page may come from. */
  readonly regions: readonly RamRegion[];
  /** The same object for every bus over the same machine memory (the translator keeps one code registry for it). */
  readonly domain: object;
  /**
   * The machine address of the aligned 2 MiB block that holds the 512 pages of 2 MiB group `group`
   * (pages 512 × group onwards, counted from `base`) in order, or -1 if they are not one such block.
   */
  largeBlock?(group: number): number;
}

/** Bytes in a large page: a 2 MiB leaf, or the first-level part of a larger one (tlb-model.ts). */
export const LARGE_PAGE_BYTES = 2 * 1024 * 1024;

export class Bus {
  readonly ram: RamRegion[] = [];
  private paged: PagedRam | undefined;
  private windows: MmioWindow[] = [];
  /** Set by `resolveRam`: the byte offset in the region, and how many bytes from there on lie in it contiguously. */
  resolvedOffset = 0;
  resolvedRun = 0;
  /** Set by `resolveRam`: what the guest may do with the page (PERM_ bits; PERM_RWX for plain RAM). */
  resolvedAllows = PERM_RWX;
  /** Set by `resolveRam`: true when it returned undefined because the monitor denied the access (not for want of RAM). */
  denied = false;
  /**
   * The monitor's answer to a device's DMA (or a loader's write) that its permissions deny: true once the
   * access is allowed (the page filled, a copy-on-write broken), false to refuse it (the device then
   * reports an error to the guest). Unset: denied DMA is refused.
   */
  dmaFault: ((address: number, access: Access) => boolean) | undefined = undefined;
  /**
   * Across hosts (docs/giantvm.md, "DMA"): asked before a device's DMA touches [address, address + length)
   * of RAM; throws DmaPending (after asking for the pages) when this host does not hold them as the access
   * needs. Unset: every page of RAM is here.
   */
  dmaGate: ((address: number, length: number, write: boolean) => void) | undefined = undefined;
  private dmaObservers: ((address: number, length: number) => void)[] = [];

  /**
   * Calls `observer` after every write a device's DMA makes through `guestMemory()` (the machine breaks LR
   * reservations on those lines; timing mode drops the cached copies). Returns the function that stops it.
   */
  observeDmaWrites(observer: (address: number, length: number) => void): () => void {
    this.dmaObservers = [...this.dmaObservers, observer];
    return () => {
      this.dmaObservers = this.dmaObservers.filter((o) => o !== observer);
    };
  }

  /** For BusMemory: tells the observers that DMA wrote [address, address + length). */
  dmaWrote(address: number, length: number): void {
    for (const observer of this.dmaObservers) observer(address, length);
  }

  addRam(region: RamRegion): void {
    this.checkFree(region.base, region.size, `RAM of node ${region.node}`);
    this.ram.push(region);
    this.ram.sort((a, b) => a.base - b.base);
  }

  /** Makes [ram.base, ram.base + ram.size) RAM whose pages `ram` places (the monitor's pmap). */
  addPagedRam(ram: PagedRam): void {
    if (ram.size <= 0 || ram.size % 4096 !== 0 || ram.base % 4096 !== 0) throw new Error('paged RAM must be whole pages');
    if (this.paged !== undefined) throw new Error('a bus has at most one paged RAM');
    this.checkFree(ram.base, ram.size, 'paged RAM');
    this.paged = ram;
  }

  /** The machine RAM regions this bus's RAM lives in. */
  get machineRam(): readonly RamRegion[] {
    return this.paged?.regions ?? this.ram;
  }

  /** What the translator keys its registry of code pages by: buses over the same machine memory share it. */
  get codeDomain(): object {
    return this.paged?.domain ?? this;
  }

  addDevice(base: number, size: number, device: Device): void {
    if (size <= 0 || base % 4 !== 0) throw new Error(`bad MMIO window for ${device.name}`);
    this.checkFree(base, size, device.name);
    this.windows.push({ base, size, device });
    this.windows.sort((a, b) => a.base - b.base);
  }

  get devices(): readonly MmioWindow[] {
    return this.windows;
  }

  private checkFree(base: number, size: number, what: string): void {
    const end = base + size;
    const p = this.paged;
    if (p !== undefined && base < p.base + p.size && p.base < end) throw new Error(`${what} overlaps paged RAM`);
    for (const r of this.ram) {
      if (base < r.end && r.base < end) throw new Error(`${what} overlaps RAM of node ${r.node}`);
    }
    for (const w of this.windows) {
      if (base < w.base + w.size && w.base < end) throw new Error(`${what} overlaps ${w.device.name}`);
    }
  }

  /** The RAM region holding `address`, or undefined. */
  ramAt(address: number): RamRegion | undefined {
    for (const r of this.ram) if (address >= r.base && address < r.end) return r;
    return undefined;
  }

  /**
   * The machine RAM region holding physical address `address` for an access of kind `access`, or undefined
   * if it is not RAM or (paged RAM) the monitor does not allow that access now, which `denied` tells apart.
   * Leaves the byte offset in the region in `resolvedOffset`, the number of bytes that follow contiguously
   * in it (to the page's end for paged RAM) in `resolvedRun` and the page's permission in `resolvedAllows`.
   */
  resolveRam(address: number, access: Access = ACCESS_READ): RamRegion | undefined {
    const p = this.paged;
    if (p !== undefined && address >= p.base && address < p.base + p.size) {
      const inPage = (address - p.base) % 4096;
      const region = p.page(Math.floor((address - p.base) / 4096), access);
      this.denied = region === undefined;
      this.resolvedOffset = p.pageOffset + inPage;
      this.resolvedRun = 4096 - inPage;
      this.resolvedAllows = p.pageAllows;
      return region;
    }
    this.denied = false;
    const r = this.ramAt(address);
    if (r === undefined) return undefined;
    this.resolvedOffset = address - r.base;
    this.resolvedRun = r.end - address;
    this.resolvedAllows = PERM_RWX;
    return r;
  }

  /**
   * `resolveRam` for a device's DMA or a loader: a denied access goes to `dmaFault` (the monitor) and is
   * tried again once it says the access is allowed. Undefined when it is not RAM or stays denied.
   */
  resolveRamForDma(address: number, access: Access): RamRegion | undefined {
    for (let attempt = 0; attempt < 2; attempt++) {
      const region = this.resolveRam(address, access);
      if (region !== undefined || !this.denied) return region;
      if (this.dmaFault === undefined || !this.dmaFault(address, access)) return undefined;
    }
    return undefined;
  }

  /**
   * The machine address of the aligned 2 MiB block of machine memory that holds the whole aligned 2 MiB of
   * physical addresses around `address`, page for page, or -1 if there is none (not RAM, or under the
   * monitor pages the pmap placed one by one). Fills nothing.
   */
  largeBlock(address: number): number {
    const start = address - (address % LARGE_PAGE_BYTES);
    const p = this.paged;
    if (p !== undefined && start >= p.base && start + LARGE_PAGE_BYTES <= p.base + p.size) {
      return (start - p.base) % LARGE_PAGE_BYTES === 0 && p.largeBlock !== undefined ? p.largeBlock((start - p.base) / LARGE_PAGE_BYTES) : -1;
    }
    if (p !== undefined && address >= p.base && address < p.base + p.size) return -1;
    const r = this.ramAt(start);
    return r !== undefined && start + LARGE_PAGE_BYTES <= r.end ? start : -1;
  }

  /** True when [address, address + length) is all RAM (nothing is filled to find out). */
  isRam(address: number, length: number): boolean {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || length < 0) return false;
    const end = address + Math.max(length, 1);
    for (let at = address; at < end;) {
      const next = this.ramEnd(at);
      if (next === undefined) return false;
      at = next;
    }
    return true;
  }

  /** One past the RAM that holds `address` contiguously in the physical address space, or undefined. */
  private ramEnd(address: number): number | undefined {
    const p = this.paged;
    if (p !== undefined && address >= p.base && address < p.base + p.size) return p.base + p.size;
    return this.ramAt(address)?.end;
  }

  windowAt(address: number): MmioWindow | undefined {
    for (const w of this.windows) if (address >= w.base && address < w.base + w.size) return w;
    return undefined;
  }

  /** An MMIO read of 1, 2 or 4 bytes (naturally aligned, checked by the caller). Throws BusError. */
  mmioRead(address: number, size: AccessSize, hart: number): number {
    const w = this.windowAt(address);
    if (w === undefined || address + size > w.base + w.size) throw new BusError(address);
    return w.device.read(address - w.base, size, hart) >>> 0;
  }

  mmioWrite(address: number, size: AccessSize, value: number, hart: number): void {
    const w = this.windowAt(address);
    if (w === undefined || address + size > w.base + w.size) throw new BusError(address);
    w.device.write(address - w.base, size, size === 4 ? value >>> 0 : value & ((1 << (size * 8)) - 1), hart);
  }

  /** Physical memory for device DMA on the bare machine. */
  guestMemory(): GuestMemory {
    return new BusMemory(this);
  }
}

/**
 * GuestMemory over the bus's RAM: the machine's regions, or a VM's pages through its pmap. A range may
 * cross regions and pages; it is checked whole before anything is touched.
 */
class BusMemory implements GuestMemory {
  constructor(private readonly bus: Bus) {}

  private check(address: number, length: number, write = false): void {
    if (!this.bus.isRam(address, length)) throw new DmaError(address, length);
    this.bus.dmaGate?.(address, length, write);
  }

  prepare(address: number, length: number, write: boolean): void {
    this.check(address, length, write);
  }

  isRam(address: number, length: number): boolean {
    return this.bus.isRam(address, length);
  }

  /** The region of `address` for `access`, asking the monitor when it denies it; throws DmaError if it refuses. */
  private resolve(address: number, length: number, access: Access): RamRegion {
    const region = this.bus.resolveRamForDma(address, access);
    if (region === undefined) throw new DmaError(address, length);
    const faults = region.faults;
    if (faults !== null) {
      // Failed or poisoned memory refuses the device too: the hardware logs it, the device reports an error.
      const offset = this.bus.resolvedOffset;
      const result = faults.check(DEVICE_ACCESS, offset, Math.min(length, this.bus.resolvedRun));
      if (result > HW_PAGE_PARTIAL) {
        faults.busError(DEVICE_ACCESS, region.base + offset, result);
        throw new DmaError(address, length);
      }
    }
    return region;
  }

  /** Calls `chunk` for each contiguous machine piece of [address, address + length), in order. */
  private each(address: number, length: number, access: Access, chunk: (region: RamRegion, offset: number, done: number, n: number) => void): void {
    let done = 0;
    while (done < length) {
      const region = this.resolve(address + done, length - done, access);
      const offset = this.bus.resolvedOffset;
      const n = Math.min(length - done, this.bus.resolvedRun);
      chunk(region, offset, done, n);
      done += n;
    }
  }

  read(address: number, length: number): Uint8Array {
    this.check(address, length);
    const out = new Uint8Array(length);
    this.each(address, length, ACCESS_READ, (region, offset, done, n) => out.set(region.u8.subarray(offset, offset + n), done));
    return out;
  }

  /**
   * Every page is made writable before a byte lands (the monitor sees a write into a page it made read-only,
   * and breaks the copy or refuses the whole write, first); the pieces found so are then written.
   */
  write(address: number, data: Uint8Array): void {
    this.check(address, data.length, true);
    const pieces: [RamRegion, number, number, number][] = [];
    this.each(address, data.length, ACCESS_WRITE, (region, offset, done, n) => pieces.push([region, offset, done, n]));
    for (const [region, offset, done, n] of pieces) {
      region.u8.set(data.subarray(done, done + n), offset);
      this.bus.dmaWrote(region.base + offset, n);
    }
  }

  /** A little-endian value of `length` ≤ 4 bytes, read in place when it lies in one piece. */
  private readBytes(address: number, length: number): number {
    this.check(address, length);
    const region = this.resolve(address, length, ACCESS_READ);
    if (this.bus.resolvedRun >= length) {
      const o = this.bus.resolvedOffset;
      return length === 2 ? region.view.getUint16(o, true) : region.view.getUint32(o, true);
    }
    const bytes = this.read(address, length);
    let v = 0;
    for (let k = length - 1; k >= 0; k--) v = v * 256 + bytes[k]!;
    return v;
  }

  /** Writes a little-endian value of `length` ≤ 4 bytes, in place when it lies in one piece. */
  private writeBytes(address: number, length: number, value: number): void {
    this.check(address, length, true);
    const region = this.resolve(address, length, ACCESS_WRITE);
    if (this.bus.resolvedRun >= length) {
      const o = this.bus.resolvedOffset;
      if (length === 2) region.view.setUint16(o, value, true);
      else region.view.setUint32(o, value, true);
      this.bus.dmaWrote(region.base + o, length);
      return;
    }
    const bytes = new Uint8Array(length);
    for (let k = 0; k < length; k++) bytes[k] = Math.floor(value / 2 ** (8 * k)) & 0xff;
    this.write(address, bytes);
  }

  readU16(address: number): number {
    return this.readBytes(address, 2);
  }

  readU32(address: number): number {
    return this.readBytes(address, 4);
  }

  readU64(address: number): number {
    this.check(address, 8);
    return this.readBytes(address, 4) + this.readBytes(address + 4, 4) * 2 ** 32;
  }

  writeU16(address: number, value: number): void {
    this.writeBytes(address, 2, value);
  }

  writeU32(address: number, value: number): void {
    this.writeBytes(address, 4, value >>> 0);
  }
}

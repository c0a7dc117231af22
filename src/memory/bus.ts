// The physical address space: RAM regions (one per NUMA node) and MMIO windows, with overlaps rejected.

import type { AccessSize, Device } from './device.js';
import { DmaError, type GuestMemory } from './guest-memory.js';
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

export class Bus {
  readonly ram: RamRegion[] = [];
  private windows: MmioWindow[] = [];
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

/** GuestMemory over the machine's RAM regions; a range must lie within one region. */
class BusMemory implements GuestMemory {
  constructor(private readonly bus: Bus) {}

  private region(address: number, length: number): RamRegion {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || length < 0) throw new DmaError(address, length);
    const r = this.bus.ramAt(address);
    if (r === undefined || !r.contains(address, length)) throw new DmaError(address, length);
    return r;
  }

  isRam(address: number, length: number): boolean {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || length < 0) return false;
    const r = this.bus.ramAt(address);
    return r !== undefined && r.contains(address, length);
  }

  read(address: number, length: number): Uint8Array {
    const r = this.region(address, length);
    return r.u8.slice(address - r.base, address - r.base + length);
  }

  write(address: number, data: Uint8Array): void {
    const r = this.region(address, data.length);
    r.u8.set(data, address - r.base);
    this.bus.dmaWrote(address, data.length);
  }

  readU16(address: number): number {
    const r = this.region(address, 2);
    return r.view.getUint16(address - r.base, true);
  }

  readU32(address: number): number {
    const r = this.region(address, 4);
    return r.view.getUint32(address - r.base, true);
  }

  readU64(address: number): number {
    const r = this.region(address, 8);
    const o = address - r.base;
    return r.view.getUint32(o, true) + r.view.getUint32(o + 4, true) * 2 ** 32;
  }

  writeU16(address: number, value: number): void {
    const r = this.region(address, 2);
    r.view.setUint16(address - r.base, value, true);
    this.bus.dmaWrote(address, 2);
  }

  writeU32(address: number, value: number): void {
    const r = this.region(address, 4);
    r.view.setUint32(address - r.base, value >>> 0, true);
    this.bus.dmaWrote(address, 4);
  }
}

// A minimal guest-side virtio driver for testing device models without a guest (rust-vmm virtio-queue's idea).

import type { Device } from '../../memory/device.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import {
  DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
} from './spec.js';

/** virtio-mmio register offsets the driver uses (virtio 1.1 §4.2.2). */
export const MmioRegister = {
  magic: 0x000, version: 0x004, deviceId: 0x008, deviceFeatures: 0x010, deviceFeaturesSel: 0x014,
  driverFeatures: 0x020, driverFeaturesSel: 0x024, queueSel: 0x030, queueNumMax: 0x034, queueNum: 0x038,
  queueReady: 0x044, queueNotify: 0x050, interruptStatus: 0x060, interruptAck: 0x064, status: 0x070,
  queueDescLow: 0x080, queueDescHigh: 0x084, queueDriverLow: 0x090, queueDriverHigh: 0x094,
  queueDeviceLow: 0x0a0, queueDeviceHigh: 0x0a4, configGeneration: 0x0fc, config: 0x100,
} as const;

const HART = 0;
const WORD = 2 ** 32;

/** One buffer of a chain: `data` for a device-readable buffer, `length` for a device-writable one (at an address aligned to `align`, default 16). */
export type MockBuffer = { data: Uint8Array; align?: number } | { writable: number; align?: number };

/** A raw descriptor, for tests that build malformed tables on purpose. */
export interface RawDescriptor {
  address: number;
  length: number;
  flags: number;
  next: number;
}

export interface UsedEntry {
  head: number;
  length: number;
  /** The first `length` bytes of the chain's writable buffers. */
  written: Uint8Array;
}

/** Bump allocation of guest memory for rings and buffers. */
export class GuestHeap {
  constructor(private next: number, private readonly end: number) {}

  alloc(length: number, align = 16): number {
    const address = Math.ceil(this.next / align) * align;
    if (address + length > this.end) throw new Error('mock guest heap exhausted');
    this.next = address + length;
    return address;
  }
}

export class MockDriver {
  constructor(readonly transport: Device, readonly memory: GuestMemory, readonly heap: GuestHeap) {}

  read(offset: number): number {
    return this.transport.read(offset, 4, HART);
  }

  write(offset: number, value: number): void {
    this.transport.write(offset, 4, value >>> 0, HART);
  }

  get status(): number {
    return this.read(MmioRegister.status);
  }

  deviceFeatures(): bigint {
    this.write(MmioRegister.deviceFeaturesSel, 0);
    const low = BigInt(this.read(MmioRegister.deviceFeatures));
    this.write(MmioRegister.deviceFeaturesSel, 1);
    return low | (BigInt(this.read(MmioRegister.deviceFeatures)) << 32n);
  }

  /** Linux's virtio_dev_probe up to FEATURES_OK (§3.1.1 steps 1-6); returns whether the device accepted. */
  negotiate(accept: (offered: bigint) => bigint = (offered) => offered): boolean {
    this.write(MmioRegister.status, 0);
    this.write(MmioRegister.status, STATUS_ACKNOWLEDGE);
    this.write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const wanted = accept(this.deviceFeatures());
    this.write(MmioRegister.driverFeaturesSel, 0);
    this.write(MmioRegister.driverFeatures, Number(wanted & 0xffffffffn));
    this.write(MmioRegister.driverFeaturesSel, 1);
    this.write(MmioRegister.driverFeatures, Number((wanted >> 32n) & 0xffffffffn));
    this.write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    return (this.status & STATUS_FEATURES_OK) !== 0;
  }

  /** Allocates and enables queue `index` with `size` entries (§4.2.3.2). */
  setupQueue(index: number, size: number): MockQueue {
    this.write(MmioRegister.queueSel, index);
    const desc = this.heap.alloc(16 * size, 16);
    const avail = this.heap.alloc(6 + 2 * size, 2);
    const used = this.heap.alloc(6 + 8 * size, 4);
    this.memory.write(desc, new Uint8Array(16 * size));
    this.memory.write(avail, new Uint8Array(6 + 2 * size));
    this.memory.write(used, new Uint8Array(6 + 8 * size));
    this.write(MmioRegister.queueNum, size);
    this.writeAddress(MmioRegister.queueDescLow, desc);
    this.writeAddress(MmioRegister.queueDriverLow, avail);
    this.writeAddress(MmioRegister.queueDeviceLow, used);
    this.write(MmioRegister.queueReady, 1);
    return new MockQueue(this, index, size, desc, avail, used);
  }

  driverOk(): void {
    this.write(MmioRegister.status, this.status | STATUS_DRIVER_OK);
  }

  /** The whole Linux-like start: negotiate, one queue per size given, DRIVER_OK. */
  start(queueSizes: readonly number[], accept?: (offered: bigint) => bigint): MockQueue[] {
    if (!this.negotiate(accept)) throw new Error('device refused the features');
    const queues = queueSizes.map((size, index) => this.setupQueue(index, size));
    this.driverOk();
    return queues;
  }

  /** Reads and acknowledges InterruptStatus, as vm_interrupt does. */
  acknowledge(): number {
    const status = this.read(MmioRegister.interruptStatus);
    this.write(MmioRegister.interruptAck, status);
    return status;
  }

  writeAddress(lowRegister: number, address: number): void {
    this.write(lowRegister, address % WORD);
    this.write(lowRegister + 4, Math.floor(address / WORD));
  }
}

export class MockQueue {
  private readonly free: number[];
  private nextAvail = 0;
  private lastUsed = 0;
  /** For each outstanding head: its descriptors and writable buffers. */
  private readonly outstanding = new Map<number, { descriptors: number[]; writable: Array<{ address: number; length: number }> }>();

  constructor(
    readonly driver: MockDriver, readonly index: number, readonly size: number,
    readonly desc: number, readonly avail: number, readonly used: number,
  ) {
    this.free = Array.from({ length: size }, (_, i) => i);
  }

  private get memory(): GuestMemory {
    return this.driver.memory;
  }

  writeDescriptor(table: number, index: number, d: RawDescriptor): void {
    const at = table + 16 * index;
    this.memory.writeU32(at, d.address % WORD);
    this.memory.writeU32(at + 4, Math.floor(d.address / WORD) >>> 0);
    this.memory.writeU32(at + 8, d.length);
    this.memory.writeU16(at + 12, d.flags);
    this.memory.writeU16(at + 14, d.next);
  }

  /** Puts `head` in the next available slot and publishes it (§2.6.13). */
  publish(head: number): void {
    this.memory.writeU16(this.avail + 4 + 2 * (this.nextAvail % this.size), head);
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    this.memory.writeU16(this.avail + 2, this.nextAvail);
  }

  /** Posts one chain of fresh buffers, directly or through an indirect table; returns its head. */
  add(buffers: readonly MockBuffer[], indirect = false): number {
    const placed = buffers.map((buffer) => {
      if ('data' in buffer) {
        const address = this.driver.heap.alloc(Math.max(1, buffer.data.length), buffer.align);
        this.memory.write(address, buffer.data);
        return { address, length: buffer.data.length, flags: 0 };
      }
      return { address: this.driver.heap.alloc(Math.max(1, buffer.writable), buffer.align), length: buffer.writable, flags: DESC_F_WRITE };
    });
    const writable = placed.filter((p) => p.flags === DESC_F_WRITE);
    let descriptors: number[];
    if (indirect) {
      const table = this.driver.heap.alloc(16 * placed.length, 16);
      placed.forEach((p, i) => this.writeDescriptor(table, i, { ...p, flags: p.flags | (i + 1 < placed.length ? DESC_F_NEXT : 0), next: i + 1 }));
      descriptors = [this.take()];
      this.writeDescriptor(this.desc, descriptors[0], { address: table, length: 16 * placed.length, flags: DESC_F_INDIRECT, next: 0 });
    } else {
      descriptors = placed.map(() => this.take());
      placed.forEach((p, i) => {
        const last = i + 1 === placed.length;
        this.writeDescriptor(this.desc, descriptors[i], { ...p, flags: p.flags | (last ? 0 : DESC_F_NEXT), next: last ? 0 : descriptors[i + 1] });
      });
    }
    this.outstanding.set(descriptors[0], { descriptors, writable });
    this.publish(descriptors[0]);
    return descriptors[0];
  }

  private take(): number {
    const index = this.free.shift();
    if (index === undefined) throw new Error('mock queue full');
    return index;
  }

  kick(): void {
    this.driver.write(MmioRegister.queueNotify, this.index);
  }

  /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT. */
  suppressInterrupts(suppress: boolean): void {
    this.memory.writeU16(this.avail, suppress ? 1 : 0);
  }

  /** Used-ring entries added since the last call, with the bytes the device wrote. */
  takeUsed(): UsedEntry[] {
    const entries: UsedEntry[] = [];
    const usedIdx = this.memory.readU16(this.used + 2);
    while (this.lastUsed !== usedIdx) {
      const at = this.used + 4 + 8 * (this.lastUsed % this.size);
      const head = this.memory.readU32(at);
      const length = this.memory.readU32(at + 4);
      const chain = this.outstanding.get(head);
      const written = new Uint8Array(length);
      if (chain !== undefined) {
        let filled = 0;
        for (const b of chain.writable) {
          if (filled >= length) break;
          const take = Math.min(b.length, length - filled);
          if (take === 0) continue; // an empty buffer: the bytes go on in the next one
          written.set(this.memory.read(b.address, take), filled);
          filled += take;
        }
        this.outstanding.delete(head);
        this.free.push(...chain.descriptors);
      }
      entries.push({ head, length, written });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return entries;
  }
}

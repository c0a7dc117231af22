// For the monitor's property tests (sharing, balloon, paging): what each VM last put in its guest pages, and the
// accesses that put it there or read it back, by a vCPU (through the bus and the pmap, faulting as a hart
// would) and by DMA. A page never written holds zeros.

import assert from 'node:assert/strict';
import { RAM_BASE } from '../../src/board/address-map.js';
import type { BlockPageHook } from '../../src/devices/virtio/blk.js';
import { ACCESS_READ, ACCESS_WRITE, type Access } from '../../src/memory/bus.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import type { VirtualMachine } from '../../src/monitor/vm.js';

/** The bytes of a guest page as a vCPU's access of kind `access` sees them, at `offset` of `u8`. */
export type PageView = { u8: Uint8Array; offset: number };

/** Guest page `gppn` of `vm` for an access of kind `access`, the pmap resolving its faults as a hart's would. */
export function resolvedPage(vm: VirtualMachine, gppn: number, access: Access): PageView {
  const address = RAM_BASE + gppn * PAGE;
  for (let attempt = 0; attempt < 3; attempt++) {
    const region = vm.machine.bus.resolveRam(address, access);
    if (region !== undefined) return { u8: region.u8, offset: vm.machine.bus.resolvedOffset };
    assert.notEqual(vm.pmap.resolveFault(gppn, access), 'wait');
  }
  throw new Error(`guest page ${gppn} never became accessible`);
}

export class GuestPages {
  private readonly model: Map<number, Uint8Array>[];
  private readonly dma: GuestMemory[];

  /** `touch`: how a vCPU reaches a page (`resolvedPage`, or through the exit handler). */
  constructor(private readonly vms: readonly VirtualMachine[], private readonly touch: (vm: VirtualMachine, gppn: number, access: Access) => PageView = resolvedPage) {
    this.model = vms.map(() => new Map());
    this.dma = vms.map((vm) => vm.machine.bus.guestMemory());
  }

  /** What VM `v`'s page `gppn` must hold. */
  expected(v: number, gppn: number): Uint8Array {
    return this.model[v]!.get(gppn) ?? new Uint8Array(PAGE);
  }

  /** The model's page, made when first written. */
  private mine(v: number, gppn: number): Uint8Array {
    let bytes = this.model[v]!.get(gppn);
    if (bytes === undefined) this.model[v]!.set(gppn, (bytes = new Uint8Array(PAGE)));
    return bytes;
  }

  /** Page `gppn` of VM `v` is checked at the end with the pages written (`written`), zeros if never written. */
  track(v: number, gppn: number): void {
    this.mine(v, gppn);
  }

  /** Pages VM `v` wrote to or tracked at some time. */
  written(v: number): number[] {
    return [...this.model[v]!.keys()];
  }

  /** Fails unless `bytes` are what VM `v` last put in page `gppn`; `how` says which read it was. */
  expectPage(v: number, gppn: number, bytes: Uint8Array, how: string): void {
    const want = this.expected(v, gppn);
    if (!Buffer.from(bytes).equals(Buffer.from(want))) {
      const at = bytes.findIndex((b, i) => b !== want[i]);
      assert.fail(`${how}: vm${v} page ${gppn} differs at byte ${at}: ${bytes[at]} where it wrote ${want[at]}`);
    }
  }

  /** A vCPU of VM `v` fills page `gppn` with `value`. */
  cpuFill(v: number, gppn: number, value: number): void {
    const p = this.touch(this.vms[v]!, gppn, ACCESS_WRITE);
    p.u8.fill(value, p.offset, p.offset + PAGE);
    this.mine(v, gppn).fill(value);
  }

  /** A vCPU of VM `v` stores byte `value` at `offset` of page `gppn`. */
  cpuPoke(v: number, gppn: number, offset: number, value: number): void {
    const p = this.touch(this.vms[v]!, gppn, ACCESS_WRITE);
    p.u8[p.offset + offset] = value;
    this.mine(v, gppn)[offset] = value;
  }

  /** A vCPU of VM `v` reads page `gppn`. */
  cpuRead(v: number, gppn: number): void {
    const p = this.touch(this.vms[v]!, gppn, ACCESS_READ);
    this.expectPage(v, gppn, p.u8.subarray(p.offset, p.offset + PAGE), 'a CPU read');
  }

  /** A device of VM `v` writes `length` bytes of `value` from `offset` of page `gppn`, on into the pages after. */
  dmaWrite(v: number, gppn: number, offset: number, length: number, value: number): void {
    this.dma[v]!.write(RAM_BASE + gppn * PAGE + offset, new Uint8Array(length).fill(value));
    for (let i = 0; i < length; i++) {
      const at = offset + i;
      this.mine(v, gppn + Math.floor(at / PAGE))[at % PAGE] = value;
    }
  }

  /** A device of VM `v` fills `count` whole pages from `gppn` with `value`. */
  dmaFill(v: number, gppn: number, count: number, value: number): void {
    this.dma[v]!.write(RAM_BASE + gppn * PAGE, new Uint8Array(count * PAGE).fill(value));
    for (let k = 0; k < count; k++) this.mine(v, gppn + k).fill(value);
  }

  /** A device of VM `v` reads page `gppn`; `how` says which read it was. */
  dmaRead(v: number, gppn: number, how = 'a DMA read'): void {
    this.expectPage(v, gppn, this.dma[v]!.read(RAM_BASE + gppn * PAGE, PAGE), how);
  }

  /**
   * A disk block of `bytes` read into page `gppn` of VM `v` as virtio-blk reads a whole, aligned block of the
   * base: mapped if the page cache's hook can, else copied and offered to it.
   */
  diskRead(v: number, gppn: number, block: number, bytes: Uint8Array, hook: BlockPageHook | undefined): void {
    const address = RAM_BASE + gppn * PAGE;
    if (hook === undefined || !hook.map(block, address)) {
      this.dma[v]!.write(address, bytes);
      hook?.copied(block, address);
    }
    this.mine(v, gppn).set(bytes);
  }

  /** VM `v` gave pages `gppns` back (a guest's report, an inflated balloon): they read as zeros next. */
  forget(v: number, gppns: Iterable<number>): void {
    for (const gppn of gppns) this.model[v]!.delete(gppn);
  }
}

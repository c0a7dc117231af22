// Machine RAM: one buffer per NUMA node, with the typed views the CPU's fast paths use.
// The buffer is a SharedArrayBuffer where the platform has one (docs/threads.md), so that harts on other
// threads can work on the same memory; a plain ArrayBuffer otherwise (a page that is not cross-origin isolated).

import type { RegionFaults } from './hardware-faults.js';

/** True where machine memory can be shared between threads (Node; a cross-origin isolated page). */
export const SHARED_MEMORY = typeof SharedArrayBuffer === 'function';

/**
 * `bytes` of zeroed memory that other threads can share where the platform allows (SHARED_MEMORY), else a plain
 * ArrayBuffer: what every piece of machine state that threads may share is made of, so that one thread works on
 * a platform without SharedArrayBuffer.
 */
export function shareableBuffer(bytes: number): ArrayBufferLike {
  return SHARED_MEMORY ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
}

export class RamRegion {
  /** A SharedArrayBuffer when SHARED_MEMORY, else an ArrayBuffer; lazily committed either way. */
  readonly buffer: ArrayBufferLike;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly i32: Int32Array;
  readonly i64: BigInt64Array;
  /**
   * The same doublewords as float64 bit patterns: a threaded hart's aligned 64-bit loads and stores are one
   * 8-byte move through this view, without making a BigInt (cpu/threaded-hart.ts, docs/threads.md).
   */
  readonly f64: Float64Array;
  readonly view: DataView;
  /** One past the last physical address of the region. */
  readonly end: number;
  /** Set while a hardware fault touches this memory (hardware-faults.ts): checked on TLB refills and DMA, never on the fast path. */
  faults: RegionFaults | null = null;

  /**
   * `buffer`: the memory to view (another thread's region, docs/threads.md), of exactly `size` bytes;
   * default a fresh zeroed buffer.
   */
  constructor(readonly node: number, readonly base: number, readonly size: number, buffer?: ArrayBufferLike) {
    if (size <= 0 || size % 4096 !== 0) throw new Error(`RAM size must be a positive multiple of 4 KiB, not ${size}`);
    if (base % 4096 !== 0) throw new Error(`RAM base must be page aligned, not 0x${base.toString(16)}`);
    if (buffer !== undefined && buffer.byteLength !== size) throw new Error(`RAM buffer of ${buffer.byteLength} bytes for a region of ${size}`);
    this.buffer = buffer ?? shareableBuffer(size);
    this.u8 = new Uint8Array(this.buffer);
    this.u16 = new Uint16Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
    this.i64 = new BigInt64Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
    this.view = new DataView(this.buffer);
    this.end = base + size;
  }

  /**
   * Writes zeros over `length` bytes at byte `offset`, whole 64-byte lines (a page zeroed for a new owner):
   * the hardware replaces those lines, poison included (`faults.rewritten`).
   */
  zeroWhole(offset: number, length: number): void {
    this.u8.fill(0, offset, offset + length);
    this.faults?.rewritten(offset, length);
  }

  contains(address: number, length = 1): boolean {
    return address >= this.base && address + length <= this.end;
  }
}

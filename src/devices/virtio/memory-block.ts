// A block backend held in memory: for tests, and for scratch disks that need no host file.

import type { BlockBackend } from './blk.js';

export class MemoryBlockBackend implements BlockBackend {
  readonly data: Uint8Array;
  /** How many times the device asked for a flush. */
  flushes = 0;

  /** A zeroed disk of `contents` bytes, or a disk holding `contents` (kept, not copied). */
  constructor(contents: number | Uint8Array, readonly readOnly = false) {
    this.data = typeof contents === 'number' ? new Uint8Array(contents) : contents;
  }

  get size(): number {
    return this.data.length;
  }

  read(offset: number, into: Uint8Array): void {
    this.check(offset, into.length);
    into.set(this.data.subarray(offset, offset + into.length));
  }

  write(offset: number, data: Uint8Array): void {
    if (this.readOnly) throw new Error('read-only disk');
    this.check(offset, data.length);
    this.data.set(data, offset);
  }

  flush(): void {
    this.flushes++;
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.data.length) {
      throw new RangeError(`${length} bytes at ${offset} outside a disk of ${this.data.length}`);
    }
  }
}

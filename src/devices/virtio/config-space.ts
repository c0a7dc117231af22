// A device configuration space: little-endian fields in a byte array, read with any access size (§4.2.2).

import type { AccessSize } from '../../memory/device.js';

export class ConfigSpace {
  readonly bytes: Uint8Array;
  private readonly view: DataView;

  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  /** Reads `size` bytes at `offset`; bytes past the end read as zero. */
  read(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + (offset + i < this.size ? this.bytes[offset + i] : 0);
    return value;
  }

  setU8(offset: number, value: number): void {
    this.view.setUint8(offset, value);
  }

  setU16(offset: number, value: number): void {
    this.view.setUint16(offset, value, true);
  }

  setU32(offset: number, value: number): void {
    this.view.setUint32(offset, value, true);
  }

  setU64(offset: number, value: number): void {
    this.view.setUint32(offset, value % 2 ** 32, true);
    this.view.setUint32(offset + 4, Math.floor(value / 2 ** 32), true);
  }
}

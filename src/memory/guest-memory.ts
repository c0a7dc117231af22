// What devices see of memory for DMA: physical addresses in, bytes out, every range checked.

/** Thrown when a device is asked to reach memory that is not RAM; the device reports it to the guest. */
export class DmaError extends Error {
  constructor(readonly address: number, readonly length: number) {
    super(`DMA outside RAM: ${length} bytes at 0x${address.toString(16)}`);
  }
}

/**
 * Physical memory as a device's DMA engine sees it (rust-vmm's GuestMemory shape). Under the monitor
 * the same interface resolves guest-physical addresses through the VM's pmap; on the bare machine it
 * is the machine's RAM. Every method checks the whole range and throws DmaError before touching anything.
 */
export interface GuestMemory {
  /** Copies `length` bytes at `address` into a new array. */
  read(address: number, length: number): Uint8Array;
  /** Copies `data` to `address`. */
  write(address: number, data: Uint8Array): void;
  readU16(address: number): number;
  readU32(address: number): number;
  /** Returns the unsigned 64-bit value as a number; values above 2^53 are imprecise but still far outside RAM. */
  readU64(address: number): number;
  writeU16(address: number, value: number): void;
  writeU32(address: number, value: number): void;
  /** True when [address, address + length) lies entirely in RAM. */
  isRam(address: number, length: number): boolean;
}

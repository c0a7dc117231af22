// What devices see of memory for DMA: physical addresses in, bytes out, every range checked.

/** Thrown when a device is asked to reach memory that is not RAM; the device reports it to the guest. */
export class DmaError extends Error {
  constructor(readonly address: number, readonly length: number) {
    super(`DMA outside RAM: ${length} bytes at 0x${address.toString(16)}`);
  }
}

/**
 * Thrown when the memory a device reaches is RAM but not here yet: across hosts (docs/giantvm.md, "DMA"),
 * a page another host holds. Nothing was touched. The device's work is to be done again once `whenReady`
 * calls back; it is not the guest's mistake and not an error to report.
 */
export class DmaPending extends Error {
  constructor(readonly address: number, readonly whenReady: (retry: () => void) => void) {
    super(`DMA waits for the page at 0x${address.toString(16)}`);
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
  /**
   * Makes [address, address + length) ready for a device to read (or write, if `write`) without waiting:
   * throws DmaError outside RAM, DmaPending when a page is not here yet (it is asked for, every missing
   * page of the range at once). Absent, or returning: every access to the range goes through now.
   */
  prepare?(address: number, length: number, write: boolean): void;
}

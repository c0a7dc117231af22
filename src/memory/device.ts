// The one narrow interface every memory-mapped device implements, and the wires that leave a device.

/** Width of one MMIO access in bytes. The bus splits 8-byte accesses into two 4-byte ones. */
export type AccessSize = 1 | 2 | 4;

/**
 * A memory-mapped device. It sees only offsets inside its own window, never bus addresses.
 * Values are unsigned and `size` bytes wide. `hart` says which hart made the access (for NUMA
 * accounting and per-hart registers such as the PLIC's contexts); DMA-initiated work passes -1.
 */
export interface Device {
  readonly name: string;
  read(offset: number, size: AccessSize, hart: number): number;
  write(offset: number, size: AccessSize, value: number, hart: number): void;
}

/** A level-triggered interrupt wire from a device to an interrupt controller. */
export type IrqLine = (level: boolean) => void;

/** Where interrupt controllers (CLINT, PLIC) deliver their outputs: one `mip` bit of one hart. */
export interface HartInterruptSink {
  setPending(hart: number, bit: number, level: boolean): void;
}

/** Guest-visible time, in ticks of the `timebase-frequency` of the device tree. */
export interface Clock {
  now(): number;
}

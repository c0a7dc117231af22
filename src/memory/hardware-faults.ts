// What failed hardware does to a memory access: the syndromes of a bus error, and the check a RAM region carries while a fault touches it.

/** The access touches no fault. */
export const HW_OK = 0;
/**
 * The access touches no fault, but its page holds a poisoned line: the page must stay out of every TLB, so
 * that each access to it is checked alone (as a page PMP rules split is).
 */
export const HW_PAGE_PARTIAL = 1;
/** The memory's node failed: its memory controller answers nothing. */
export const HW_MEMORY_FAILED = 2;
/** No route from the accessing CPU's node to the memory's node: the interconnect is partitioned. */
export const HW_UNREACHABLE = 3;
/** The line holds poisoned data (an uncorrectable error, or an injected poison). */
export const HW_POISONED = 4;

/** Syndromes by code, as the failure report and the monitor's messages name them. */
export const SYNDROME_NAMES: Readonly<Record<number, HardwareSyndrome>> = {
  [HW_MEMORY_FAILED]: 'memory-failed', [HW_UNREACHABLE]: 'unreachable', [HW_POISONED]: 'poisoned',
};
export type HardwareSyndrome = 'memory-failed' | 'unreachable' | 'poisoned';

/** The accessor of a device's DMA (no CPU): DMA is checked for failed and poisoned memory, not for routes. */
export const DEVICE_ACCESS = -1;

/**
 * Set on a RAM region (`RamRegion.faults`) while some fault touches its memory; null otherwise, so that an
 * access path pays one field test on its slow path (a TLB refill) and nothing on its fast one. Whoever
 * installs it empties every TLB that may hold the region's pages first.
 */
export interface RegionFaults {
  /** HW_OK, HW_PAGE_PARTIAL or a syndrome, for `length` bytes at byte `offset` of the region read or written by CPU `cpu` (DEVICE_ACCESS: a device). */
  check(cpu: number, offset: number, length: number): number;
  /** Logs a bus error in the machine's failure report: CPU `cpu` (or DEVICE_ACCESS) at machine address `address`. */
  busError(cpu: number, address: number, syndrome: number): void;
  /**
   * `length` bytes at byte `offset` of the region were written whole, line by line (a page zeroed for a new
   * owner): the lines wholly inside lose their poison, as a full-line write replaces a line and its check bits.
   */
  rewritten(offset: number, length: number): void;
}

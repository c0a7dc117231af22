// LR/SC reservations of all harts of a machine, so that a store by one hart breaks another's reservation.
// The table lives in shared memory when the harts run on several threads (docs/threads.md, "LR/SC").
import { shareableBuffer } from '../memory/ram.js';


/** Reservation granule: a store anywhere in the same 64-byte line breaks a reservation (ISA §8.2). */
const GRANULE = 64;
/** No reservation. Lines are physical address / GRANULE: below 2^31 for every address under 128 GiB. */
const NONE = -1;
/** Int32 slots before the per-hart lines: the count of harts holding one. */
const HEADER = 1;
const MAX_LINE = 0x7fff_ffff;

/** The table's memory, to hand to another thread's `Reservations` over the same harts. */
export type ReservationMemory = SharedArrayBuffer | ArrayBuffer;

export class Reservations {
  /** [0]: harts holding a reservation; [HEADER + hart]: the hart's reserved line or NONE. */
  private readonly table: Int32Array;
  /**
   * Threaded mode: the value each of this thread's harts loaded by LR, which its SC compares and swaps, so that
   * a store that raced with the SC's check is not lost (docs/threads.md). Unused with one thread.
   */
  private readonly loaded: BigInt64Array;
  /** The harts of this machine run on several threads: SC becomes a compare-and-swap. */
  readonly threaded: boolean;

  /**
   * `memory`: the table of another thread's `Reservations` (threaded mode), from `memory()`; default a new
   * table, shared-capable when the platform has SharedArrayBuffer.
   */
  constructor(readonly harts: number, memory?: ReservationMemory) {
    const bytes = (HEADER + harts) * 4;
    if (memory !== undefined && memory.byteLength !== bytes) throw new Error(`reservation table of ${memory.byteLength} bytes for ${harts} harts`);
    const buffer = memory ?? shareableBuffer(bytes);
    this.table = new Int32Array(buffer);
    // A new table: no hart holds a reservation (the count, slot 0, is zero). Another thread's is as it is.
    if (memory === undefined) this.table.fill(NONE, HEADER);
    this.loaded = new BigInt64Array(harts);
    this.threaded = memory !== undefined;
  }

  /** The table's memory (shared when the platform allows), for a threaded copy on another thread. */
  memory(): ReservationMemory {
    return this.table.buffer as ReservationMemory;
  }

  /** Number of harts holding a reservation: stores check the table only when it is non-zero. */
  get count(): number {
    return this.table[0]!;
  }

  /** Each hart's reserved line, or -1 (snapshots). */
  saveState(): Float64Array {
    return Float64Array.from(this.table.subarray(HEADER));
  }

  /** Puts back what `saveState` returned (the caller checks its length). */
  restoreState(lines: Float64Array): void {
    let count = 0;
    for (let h = 0; h < this.harts; h++) {
      const l = lines[h]!;
      if (l > MAX_LINE) throw new Error(`reservation line ${l} beyond the table's range`);
      this.table[HEADER + h] = l >= 0 ? l : NONE;
      if (l >= 0) count++;
    }
    this.table[0] = count;
  }

  /** LR by `hart` at `physical`, before it loads. */
  reserve(hart: number, physical: number): void {
    const line = Math.floor(physical / GRANULE);
    if (line > MAX_LINE) throw new Error(`LR at 0x${physical.toString(16)}: beyond the reservation table's 128 GiB`);
    if (Atomics.exchange(this.table, HEADER + hart, line) === NONE) Atomics.add(this.table, 0, 1);
  }

  /** Threaded mode: the value `hart`'s LR loaded, which its SC will compare. */
  noteLoaded(hart: number, value: bigint): void {
    this.loaded[hart] = value;
  }

  /** The value `hart`'s last LR loaded (threaded mode). */
  loadedBy(hart: number): bigint {
    return this.loaded[hart]!;
  }

  /** True if `hart` still holds a reservation on `physical`. Clears the hart's reservation either way. */
  take(hart: number, physical: number): boolean {
    const held = Atomics.exchange(this.table, HEADER + hart, NONE);
    if (held === NONE) return false;
    Atomics.sub(this.table, 0, 1);
    return held === Math.floor(physical / GRANULE);
  }

  clear(hart: number): void {
    if (Atomics.exchange(this.table, HEADER + hart, NONE) !== NONE) Atomics.sub(this.table, 0, 1);
  }

  /**
   * A store of `size` bytes at `physical` by `hart` (-1: a device) breaks every other hart's reservation on
   * those lines. Called before the store's write (docs/threads.md: a hart on another thread that reads the
   * new value has then lost its reservation).
   */
  storeBy(hart: number, physical: number, size: number): void {
    const first = Math.floor(physical / GRANULE);
    const last = Math.floor((physical + size - 1) / GRANULE);
    const table = this.table;
    for (let h = 0; h < this.harts; h++) {
      const l = table[HEADER + h]!;
      // Only that line: a reservation the hart made again since it was read is a new one, kept.
      if (h !== hart && l >= first && l <= last && Atomics.compareExchange(table, HEADER + h, l, NONE) === l) Atomics.sub(table, 0, 1);
    }
  }
}

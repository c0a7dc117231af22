// LR/SC reservations of all harts of a machine, so that a store by one hart breaks another's reservation.

/** Reservation granule: a store anywhere in the same 64-byte line breaks a reservation (ISA §8.2). */
const GRANULE = 64;

export class Reservations {
  /** Number of harts holding a reservation: stores check the table only when it is non-zero. */
  count = 0;
  private readonly line: Float64Array;

  constructor(harts: number) {
    this.line = new Float64Array(harts).fill(-1);
  }

  /** Each hart's reserved line, or -1 (snapshots). */
  saveState(): Float64Array {
    return this.line.slice();
  }

  /** Puts back what `saveState` returned (the caller checks its length). */
  restoreState(lines: Float64Array): void {
    this.line.set(lines);
    this.count = lines.filter((l) => l >= 0).length;
  }

  reserve(hart: number, physical: number): void {
    if (this.line[hart] < 0) this.count++;
    this.line[hart] = Math.floor(physical / GRANULE);
  }

  /** True if `hart` still holds a reservation on `physical`. Clears the hart's reservation either way. */
  take(hart: number, physical: number): boolean {
    const held = this.line[hart];
    if (held < 0) return false;
    this.line[hart] = -1;
    this.count--;
    return held === Math.floor(physical / GRANULE);
  }

  clear(hart: number): void {
    if (this.line[hart] >= 0) {
      this.line[hart] = -1;
      this.count--;
    }
  }

  /** A store of `size` bytes at `physical` by `hart` breaks every other hart's reservation on those lines. */
  storeBy(hart: number, physical: number, size: number): void {
    const first = Math.floor(physical / GRANULE);
    const last = Math.floor((physical + size - 1) / GRANULE);
    for (let h = 0; h < this.line.length; h++) {
      const l = this.line[h];
      if (h !== hart && l >= first && l <= last) {
        this.line[h] = -1;
        this.count--;
      }
    }
  }
}

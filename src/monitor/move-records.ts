// The NUMA policy's memory of what it moved: per guest page (or 2 MiB group), its moves so far and the interval
// until which it is frozen. Each cell's policy state keeps one for its pages and one for its groups.

/** One page's or group's record, as it goes with the page to another cell. */
export interface MoveRecord {
  moves: number | undefined;
  frozenUntil: number | undefined;
}

/** As plain data (snapshots): (key, moves) and (key, interval) pairs, in the order they were made. */
export interface MoveRecordsState {
  moves: Float64Array;
  frozenUntil: Float64Array;
}

/** How often a page may move before it is frozen, and for how long (the policy's parameters). */
export interface FreezeParameters {
  moveLimit: number;
  freezeIntervals: number;
}

/** Records by key (VM id × 2^32 + guest page or group). */
export class MoveRecords {
  private readonly moves = new Map<number, number>();
  private readonly frozenUntil = new Map<number, number>();

  /** Whether `key` is frozen in interval `interval`. */
  frozen(key: number, interval: number): boolean {
    return (this.frozenUntil.get(key) ?? -1) >= interval;
  }

  /** Freezes `key` until interval `until` (included). */
  freeze(key: number, until: number): void {
    this.frozenUntil.set(key, until);
  }

  /** One more move (or replication) of `key`; at `moveLimit` it is frozen for `freezeIntervals`. */
  moved(key: number, p: FreezeParameters, interval: number): void {
    const moves = (this.moves.get(key) ?? 0) + 1;
    this.moves.set(key, moves);
    if (moves >= p.moveLimit) {
      this.frozenUntil.set(key, interval + p.freezeIntervals);
      this.moves.set(key, 0);
    }
  }

  /** Takes `key`'s record out (it goes with its page to another cell). */
  take(key: number): MoveRecord {
    const record = { moves: this.moves.get(key), frozenUntil: this.frozenUntil.get(key) };
    this.moves.delete(key);
    this.frozenUntil.delete(key);
    return record;
  }

  /** Puts a record `take` gave in another cell's records. */
  put(key: number, record: MoveRecord): void {
    if (record.moves !== undefined) this.moves.set(key, record.moves);
    if (record.frozenUntil !== undefined) this.frozenUntil.set(key, record.frozenUntil);
  }

  /** Every key with a record. */
  keys(): number[] {
    return [...new Set([...this.moves.keys(), ...this.frozenUntil.keys()])];
  }

  save(): MoveRecordsState {
    const pairs = (map: ReadonlyMap<number, number>): Float64Array => Float64Array.from([...map].flat());
    return { moves: pairs(this.moves), frozenUntil: pairs(this.frozenUntil) };
  }

  restore(s: MoveRecordsState): void {
    const fill = (map: Map<number, number>, pairs: ArrayLike<number>): void => {
      map.clear();
      for (let i = 0; i + 1 < pairs.length; i += 2) map.set(pairs[i]!, pairs[i + 1]!);
    };
    fill(this.moves, s.moves);
    fill(this.frozenUntil, s.frozenUntil);
  }
}

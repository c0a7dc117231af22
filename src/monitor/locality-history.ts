// The NUMA policy's record of local and remote misses over time: one sample per interval, merged in pairs when
// full, so a long run keeps a bounded series that still spans all of it.

/** One stretch of machine time: the misses counted in it, and the machine cycle it ended at. */
export interface LocalitySample {
  endCycles: number;
  local: number;
  remote: number;
}

/** What `LocalityHistory.saveState` returns (snapshots). */
export interface LocalityState {
  samples: LocalitySample[];
  /** Intervals per sample. */
  width: number;
  /** Intervals in the last sample so far (it is open while fewer than `width`). */
  filled: number;
}

/** Samples kept at most; at this many, neighbours merge and each sample spans twice as many intervals. */
export const LOCALITY_SAMPLES = 64;

/**
 * The local share of misses, interval by interval, as Disco's Figure 8 reports it for a whole run. Each
 * `add` is one interval; when `LOCALITY_SAMPLES` samples are full, samples 2k and 2k+1 merge, and from then
 * on a sample takes twice as many intervals. The series always covers the whole run at the finest width that
 * fits.
 */
export class LocalityHistory {
  private samples: LocalitySample[] = [];
  private width = 1;
  private filled = 0;

  constructor(private readonly capacity = LOCALITY_SAMPLES) {
    if (!Number.isInteger(capacity) || capacity < 2 || capacity % 2 !== 0) throw new RangeError(`a locality history keeps an even number of samples, at least 2, not ${capacity}`);
  }

  /** One interval, ending at machine cycle `endCycles`, with `local` and `remote` misses. */
  add(endCycles: number, local: number, remote: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && this.filled < this.width) {
      last.endCycles = endCycles;
      last.local += local;
      last.remote += remote;
      this.filled++;
      return;
    }
    if (this.samples.length === this.capacity) {
      const merged: LocalitySample[] = [];
      for (let i = 0; i < this.samples.length; i += 2) {
        const [a, b] = [this.samples[i]!, this.samples[i + 1]!];
        merged.push({ endCycles: b.endCycles, local: a.local + b.local, remote: a.remote + b.remote });
      }
      this.samples = merged;
      this.width *= 2;
    }
    this.samples.push({ endCycles, local, remote });
    this.filled = 1;
  }

  /** The samples, oldest first (copies). */
  get series(): LocalitySample[] {
    return this.samples.map((s) => ({ ...s }));
  }

  /** Intervals per sample. */
  get intervalsPerSample(): number {
    return this.width;
  }

  /** Local misses in % of each sample's misses (100 where it had none). */
  localPercent(): number[] {
    return this.samples.map((s) => (s.local + s.remote === 0 ? 100 : (100 * s.local) / (s.local + s.remote)));
  }

  saveState(): LocalityState {
    return { samples: this.series, width: this.width, filled: this.filled };
  }

  /** Puts back what `saveState` returned; throws RangeError for a state this history could not have reached. */
  restoreState(s: LocalityState): void {
    const powerOfTwo = Number.isInteger(s.width) && s.width >= 1 && (s.width & (s.width - 1)) === 0;
    const shape = s.samples.length <= this.capacity && (s.samples.length === 0 ? s.filled === 0 : Number.isInteger(s.filled) && s.filled >= 1 && s.filled <= s.width);
    if (!powerOfTwo || !shape) throw new RangeError(`not a locality history: ${s.samples.length} samples of ${s.width} intervals, the last with ${s.filled}`);
    this.samples = s.samples.map((x) => ({ ...x }));
    this.width = s.width;
    this.filled = s.filled;
  }
}

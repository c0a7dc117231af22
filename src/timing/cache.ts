// Per-CPU set-associative caches over physical addresses, kept coherent by snooping (MESI), for timing mode.

/** Shape of each CPU's cache. All three are powers of two. */
export interface CacheGeometry {
  sizeBytes: number;
  ways: number;
  lineBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * Defaults: the board-level (secondary) cache of the MIPS R10000 as Disco's FLASH configuration had it:
 * 1 MiB per processor (Disco, SOSP 1997, experimental setup), 2-way set associative with 128-byte lines (R10000
 * User's Manual, secondary cache chapter: 2-way, 64- or 128-byte lines; FLASH used 128 to match its
 * coherence unit). There is one level: the first-level caches are folded into the hit cost.
 */
export const DEFAULT_CACHE_GEOMETRY: Readonly<CacheGeometry> = { sizeBytes: 1 * MiB, ways: 2, lineBytes: 128 };

/** What `access` found. An upgrade is a write to a line held Shared: no data moves, but others are invalidated. */
export const ACCESS_HIT = 0;
export const ACCESS_MISS = 1;
export const ACCESS_UPGRADE = 2;
export type AccessResult = typeof ACCESS_HIT | typeof ACCESS_MISS | typeof ACCESS_UPGRADE;

/**
 * Line states (MESI; Papamarcos & Patel 1984, and the R10000's clean-exclusive state). Exclusive lets a
 * lone reader write without a bus transaction, so a single CPU never pays for coherence it does not need.
 */
export const LINE_INVALID = 0;
export const LINE_SHARED = 1;
export const LINE_EXCLUSIVE = 2;
export const LINE_MODIFIED = 3;
export type LineState = typeof LINE_INVALID | typeof LINE_SHARED | typeof LINE_EXCLUSIVE | typeof LINE_MODIFIED;

const NO_LINE = -1;
/** Snoop filter size: about 8 buckets per cache line of the machine, between 2^10 and 2^22 buckets. */
const FILTER_BUCKETS_PER_LINE = 8;
const MIN_FILTER_BITS = 10;
const MAX_FILTER_BITS = 22;
/** Knuth's multiplicative hash constant (2^32 / golden ratio), to spread line numbers over the filter. */
const GOLDEN_RATIO_32 = 0x9e3779b1;
const LAST_WRITEBACK = 0;
const LAST_FROM_MODIFIED = 1;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

/** Checks a geometry; returns one sentence per mistake (empty when it is usable). */
export function cacheGeometryProblems(g: CacheGeometry): string[] {
  const problems: string[] = [];
  for (const key of ['sizeBytes', 'ways', 'lineBytes'] as const) {
    if (!isPowerOfTwo(g[key])) problems.push(`cache ${key} must be a power of two, not ${g[key]}`);
  }
  if (problems.length === 0 && g.ways * g.lineBytes > g.sizeBytes) {
    problems.push(`a cache of ${g.sizeBytes} bytes cannot hold ${g.ways} ways of ${g.lineBytes}-byte lines`);
  }
  return problems;
}

/** See `CoherentCaches.saveState`. */
export interface CacheState {
  tags: Float64Array;
  states: Uint8Array;
  stamps: Float64Array;
  clock: Float64Array;
  mruWay: Int32Array;
  invalidationsReceived: Float64Array;
  invalidationsSent: Float64Array;
  writebacks: Float64Array;
}

/**
 * The caches of all CPUs of the machine. Coherence is by snooping the other caches on a miss or an
 * upgrade only: a line held Modified or Exclusive is known to be nowhere else, so hits never snoop.
 * Everything lives in typed arrays indexed [cpu][set][way]; `access` allocates nothing.
 */
export class CoherentCaches {
  readonly geometry: Readonly<CacheGeometry>;
  readonly sets: number;
  /** Line number (paddr / lineBytes) held by each way, or -1. Float64 so that any physical address fits. */
  /** The line held by each way ([cpu][set][way], flattened); read by `TimingModel.fetchProbe`'s generated checks. */
  readonly tags: Float64Array;
  private readonly states: Uint8Array;
  /** Time of last use of each way, for LRU; a per-cache counter, exact in a double up to 2^53 uses. */
  private readonly stamps: Float64Array;
  private readonly clock: Float64Array;
  readonly setMask: number;
  private readonly waysPerCpu: number;
  private readonly ways: number;
  private readonly lineBytes: number;
  /**
   * The most recently used way of each set of each CPU ([cpu * sets + set]): a hit there needs no search and
   * no LRU update, since that way's stamp is already the newest of its set (code and data lines in different
   * sets both stay on this path, where a single most-recent way per CPU would lose one of them).
   */
  readonly mruWay: Int32Array;
  /**
   * A counting snoop filter (as in real snoop-based multiprocessors): how many cached copies of lines
   * hashing to each bucket exist in all caches. A miss whose bucket holds none skips the snoop of the
   * other caches. Collisions only cost a useless snoop; they never hide a copy.
   */
  private readonly presence: Int32Array;
  private readonly presenceShift: number;
  /** Lines of each CPU invalidated by another CPU's write. */
  readonly invalidationsReceived: Float64Array;
  /** Copies in other caches that each CPU's writes invalidated. */
  readonly invalidationsSent: Float64Array;
  /** Modified lines each CPU wrote back (evicted dirty, or supplied to another CPU's read). */
  readonly writebacks: Float64Array;
  /**
   * What the last access that missed or upgraded did besides its result: [LAST_WRITEBACK] is the
   * physical address of a line it evicted dirty (or -1), [LAST_FROM_MODIFIED] is 1 when it took its line
   * from another CPU's Modified copy (FLASH's protocol sends that "sharing write-back" to the home node). A Float64Array rather than fields,
   * so that V8 never changes the fields' representation (Smi to double) and deoptimizes the hot path.
   */
  private readonly last = new Float64Array(2);

  constructor(readonly cpus: number, geometry: Partial<CacheGeometry> = {}) {
    const g = { ...DEFAULT_CACHE_GEOMETRY, ...geometry };
    const problems = cacheGeometryProblems(g);
    if (!Number.isInteger(cpus) || cpus < 1) problems.push(`caches need at least one CPU, not ${cpus}`);
    if (problems.length > 0) throw new RangeError(`invalid cache: ${problems.join('; ')}`);
    this.geometry = g;
    this.ways = g.ways;
    this.lineBytes = g.lineBytes;
    this.sets = g.sizeBytes / (g.ways * g.lineBytes);
    this.setMask = this.sets - 1;
    this.waysPerCpu = this.sets * g.ways;
    const entries = cpus * this.waysPerCpu;
    this.tags = new Float64Array(entries).fill(NO_LINE);
    this.states = new Uint8Array(entries);
    this.stamps = new Float64Array(entries);
    this.clock = new Float64Array(cpus);
    // Each starts at the set's first way, which holds no line yet, so the check needs no "none" case.
    this.mruWay = Int32Array.from({ length: cpus * this.sets }, (_, k) => k * g.ways);
    const buckets = Math.min(MAX_FILTER_BITS, Math.max(MIN_FILTER_BITS, Math.ceil(Math.log2(entries * FILTER_BUCKETS_PER_LINE))));
    this.presence = new Int32Array(2 ** buckets);
    this.presenceShift = 32 - buckets;
    this.invalidationsReceived = new Float64Array(cpus);
    this.invalidationsSent = new Float64Array(cpus);
    this.writebacks = new Float64Array(cpus);
  }

  /** Every line, state, LRU stamp and counter as plain arrays (snapshots: timing mode's results depend on them). */
  saveState(): CacheState {
    return {
      tags: this.tags.slice(), states: this.states.slice(), stamps: this.stamps.slice(), clock: this.clock.slice(),
      mruWay: this.mruWay.slice(), invalidationsReceived: this.invalidationsReceived.slice(),
      invalidationsSent: this.invalidationsSent.slice(), writebacks: this.writebacks.slice(),
    };
  }

  /**
   * Puts back what `saveState` returned, from caches of the same geometry (the caller checks the arrays'
   * types and lengths). The snoop filter is not saved: it counts the valid tags, so it is counted again.
   */
  restoreState(s: CacheState): void {
    this.tags.set(s.tags);
    this.states.set(s.states);
    this.stamps.set(s.stamps);
    this.clock.set(s.clock);
    this.mruWay.set(s.mruWay);
    this.invalidationsReceived.set(s.invalidationsReceived);
    this.invalidationsSent.set(s.invalidationsSent);
    this.writebacks.set(s.writebacks);
    this.presence.fill(0);
    for (const line of this.tags) if (line !== NO_LINE) this.presence[this.bucket(line)]++;
  }

  /** One load (`isWrite` false) or store by `cpu` to physical address `paddr`. */
  access(cpu: number, paddr: number, isWrite: boolean): AccessResult {
    return this.accessLine(cpu, Math.floor(paddr / this.lineBytes), isWrite);
  }

  /**
   * `access` by line number (paddr / lineBytes). Line numbers of RAM fit V8's small integers where
   * physical addresses (from 0x8000_0000) do not, so callers that know the line avoid boxing a double.
   */
  accessLine(cpu: number, line: number, isWrite: boolean): AccessResult {
    // A hit on the most recently used way of its set needs no LRU update: its stamp is already the newest
    // of the set (skipping the clock tick keeps every later stamp newer than every earlier one, so the LRU
    // order is what it would have been). Kept this small so that V8 inlines it; the rest is in `lookUp`.
    // `line | 0` keeps the low 32 bits (ECMAScript ToInt32 is modulo 2^32), enough for the set index.
    const slot = cpu * this.sets + ((line | 0) & this.setMask);
    const mru = this.mruWay[slot]!;
    if (this.tags[mru] === line && (!isWrite || this.states[mru] === LINE_MODIFIED)) return ACCESS_HIT;
    return this.lookUp(cpu, line, isWrite, slot);
  }

  private lookUp(cpu: number, line: number, isWrite: boolean, slot: number): AccessResult {
    const tags = this.tags;
    const states = this.states;
    const ways = this.ways;
    const first = slot * ways;
    const stamp = this.clock[cpu]! + 1;
    this.clock[cpu] = stamp;
    for (let i = first; i < first + ways; i++) {
      if (tags[i] !== line) continue;
      this.stamps[i] = stamp;
      this.mruWay[slot] = i;
      const state = states[i]!;
      if (!isWrite || state === LINE_MODIFIED) return ACCESS_HIT;
      states[i] = LINE_MODIFIED;
      if (state === LINE_EXCLUSIVE) return ACCESS_HIT;
      this.clearLast();
      if (this.presence[this.bucket(line)]! > 1) this.snoop(cpu, line, true);
      return ACCESS_UPGRADE;
    }
    this.clearLast();
    const bucket = this.bucket(line);
    const sharers = this.presence[bucket]! > 0 ? this.snoop(cpu, line, isWrite) : 0;
    const victim = this.victim(first, ways);
    const evicted = tags[victim]!;
    if (evicted !== NO_LINE) {
      this.presence[this.bucket(evicted)]--;
      if (states[victim] === LINE_MODIFIED) {
        this.writebacks[cpu]++;
        this.last[LAST_WRITEBACK] = evicted * this.lineBytes;
      }
    }
    tags[victim] = line;
    this.presence[bucket]++;
    this.stamps[victim] = stamp;
    this.mruWay[slot] = victim;
    states[victim] = isWrite ? LINE_MODIFIED : sharers > 0 ? LINE_SHARED : LINE_EXCLUSIVE;
    return ACCESS_MISS;
  }

  /** After an access that missed or upgraded: the physical address of the line it evicted dirty (written back), or -1. */
  get lastWriteback(): number {
    return this.last[LAST_WRITEBACK]!;
  }

  /** After an access that missed or upgraded: whether it took its line from another CPU's Modified copy (written back). */
  get lastFromModified(): boolean {
    return this.last[LAST_FROM_MODIFIED] === 1;
  }

  /** The state of the line holding `paddr` in `cpu`'s cache (for tests and the monitor's inspection). */
  stateOf(cpu: number, paddr: number): LineState {
    const way = this.find(cpu, Math.floor(paddr / this.geometry.lineBytes));
    return way < 0 ? LINE_INVALID : (this.states[way] as LineState);
  }

  /**
   * Drops every copy of the lines covering [paddr, paddr + bytes), e.g. after a device's DMA wrote there
   * (DMA is coherent on this machine, as on FLASH, whose controller invalidated cached copies).
   */
  invalidateRange(paddr: number, bytes: number): void {
    const lineBytes = this.geometry.lineBytes;
    const last = Math.floor((paddr + Math.max(bytes, 1) - 1) / lineBytes);
    for (let line = Math.floor(paddr / lineBytes); line <= last; line++) {
      for (let cpu = 0; cpu < this.cpus; cpu++) {
        const way = this.find(cpu, line);
        if (way >= 0) this.drop(way);
      }
    }
  }

  /** Empties every cache (as at reset); counters are kept. */
  flushAll(): void {
    this.tags.fill(NO_LINE);
    this.states.fill(LINE_INVALID);
    this.stamps.fill(0);
    this.presence.fill(0);
  }

  /** Zeroes the invalidation and write-back counters. */
  resetCounters(): void {
    this.invalidationsReceived.fill(0);
    this.invalidationsSent.fill(0);
    this.writebacks.fill(0);
  }

  /**
   * What the other caches do when `cpu` misses on (or upgrades) `line`: on a write every other copy is
   * invalidated; on a read a Modified or Exclusive copy becomes Shared (a Modified one is written back).
   * Returns how many other caches still hold the line.
   */
  private snoop(cpu: number, line: number, isWrite: boolean): number {
    let sharers = 0;
    for (let other = 0; other < this.cpus; other++) {
      if (other === cpu) continue;
      const way = this.find(other, line);
      if (way < 0) continue;
      const modified = this.states[way] === LINE_MODIFIED;
      if (modified) {
        this.writebacks[other]++;
        this.last[LAST_FROM_MODIFIED] = 1;
      }
      if (isWrite) {
        this.drop(way);
        this.invalidationsReceived[other]++;
        this.invalidationsSent[cpu]++;
      } else {
        this.states[way] = LINE_SHARED;
        sharers++;
      }
    }
    return sharers;
  }

  private clearLast(): void {
    this.last[LAST_WRITEBACK] = NO_LINE;
    this.last[LAST_FROM_MODIFIED] = 0;
  }

  private bucket(line: number): number {
    return Math.imul(line | 0, GOLDEN_RATIO_32) >>> this.presenceShift;
  }

  private find(cpu: number, line: number): number {
    const ways = this.ways;
    const first = cpu * this.waysPerCpu + ((line | 0) & this.setMask) * ways;
    for (let i = first; i < first + ways; i++) if (this.tags[i] === line) return i;
    return -1;
  }

  /** An empty way of the set if there is one, otherwise the least recently used. */
  private victim(first: number, ways: number): number {
    let best = first;
    for (let i = first; i < first + ways; i++) {
      if (this.tags[i] === NO_LINE) return i;
      if (this.stamps[i]! < this.stamps[best]!) best = i;
    }
    return best;
  }

  private drop(way: number): void {
    if (this.tags[way] !== NO_LINE) this.presence[this.bucket(this.tags[way]!)]--;
    this.tags[way] = NO_LINE;
    this.states[way] = LINE_INVALID;
  }
}

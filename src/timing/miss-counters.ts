// Per machine page, per node cache-miss counters, as FLASH's memory controller kept them, with a hot-page event.

/** Called once when a page's count from one node reaches the threshold; again only after that count is reset. */
export type HotPageListener = (page: number, node: number, count: number) => void;

/** What `MissCounters.saveWatch` saves. */
export interface WatchState {
  writes: Uint32Array;
  writers: Uint32Array;
  writersBefore: Uint32Array;
  lastWrite: Uint32Array;
  interval: number;
  hot: Uint32Array;
}

/** Counts saturate here instead of wrapping (a Uint32Array holds 0..2^32-1). */
const MAX_COUNT = 0xffffffff;

/**
 * One counter per (machine page, requesting node), in one Uint32Array laid out [page][node]. Disco used
 * FLASH's counters to find pages worth migrating or replicating (Disco, SOSP 1997, "NUMA memory
 * management": a page is hot when its misses from one node pass a threshold); the monitor subscribes to
 * the hot-page event for the same purpose. Pages are numbered from `ramBase`, the first byte of RAM.
 */
export class MissCounters {
  readonly pages: number;
  private readonly counts: Uint32Array;
  /**
   * Per page: its write misses and upgrades from every node, and the nodes they came from (bit n: node n) in
   * this interval and in the one before: who writes a page changes, as processes come and go.
   */
  private readonly writes: Uint32Array;
  private readonly writers: Uint32Array;
  private readonly writersBefore: Uint32Array;
  /** Per page: the interval of its last write miss or upgrade (0: none since its counts began). */
  private readonly lastWrite: Uint32Array;
  /** The current interval: 1, and one more at each `decay`. */
  private interval = 1;
  private threshold = 0;
  private listener: HotPageListener | undefined;
  /** Pages whose count from some node reached `queueThreshold` since the last `takeHot`, once each. */
  private hot: number[] = [];
  private readonly queued: Uint8Array;
  private queueThreshold = 0;
  /** Misses from all nodes together that queue a page too (0: off): a page read a little from every node. */
  private sharedThreshold = 0;

  constructor(readonly ramBase: number, readonly ramBytes: number, readonly nodes: number, readonly pageBytes = 4096) {
    const problems: string[] = [];
    if (!Number.isInteger(nodes) || nodes < 1) problems.push(`at least one node, not ${nodes}`);
    if (!Number.isInteger(pageBytes) || pageBytes < 1) problems.push(`pages of a positive size, not ${pageBytes}`);
    if (!Number.isInteger(ramBytes) || ramBytes < 0 || ramBytes % pageBytes !== 0) problems.push(`RAM a whole number of pages, not ${ramBytes} bytes`);
    if (problems.length > 0) throw new RangeError(`miss counters need ${problems.join('; ')}`);
    this.pages = ramBytes / pageBytes;
    this.counts = new Uint32Array(this.pages * nodes);
    this.writes = new Uint32Array(this.pages);
    this.writers = new Uint32Array(this.pages);
    this.writersBefore = new Uint32Array(this.pages);
    this.lastWrite = new Uint32Array(this.pages);
    this.queued = new Uint8Array(this.pages);
  }

  /** The counts (snapshots); the threshold and listener belong to whoever watches and set them again. */
  saveState(): Uint32Array {
    return this.counts.slice();
  }

  /** Puts back what `saveState` returned (the caller checks its length). */
  restoreState(counts: Uint32Array): void {
    this.counts.set(counts);
  }

  /**
   * What a policy watching the counters reads besides the counts (snapshots under the monitor): each page's
   * write misses and upgrades, the nodes they came from (this interval and the one before) and the interval
   * of its last, the current interval, and the pages queued hot and not taken yet (a policy's own work between
   * rounds can queue some).
   */
  saveWatch(): WatchState {
    return {
      writes: this.writes.slice(), writers: this.writers.slice(), writersBefore: this.writersBefore.slice(), lastWrite: this.lastWrite.slice(),
      interval: this.interval, hot: Uint32Array.from(this.hot),
    };
  }

  /**
   * Puts back what `saveWatch` returned (the caller checks the lengths, that the hot pages are pages, each once,
   * and that no last write is after the interval).
   */
  restoreWatch(s: WatchState): void {
    this.writes.set(s.writes);
    this.writers.set(s.writers);
    this.writersBefore.set(s.writersBefore);
    this.lastWrite.set(s.lastWrite);
    this.interval = s.interval;
    for (const page of this.hot) this.queued[page] = 0;
    this.hot = Array.from(s.hot);
    for (const page of this.hot) this.queued[page] = 1;
  }

  /** The page number of `paddr`, or -1 when it is not RAM (MMIO has no counters). */
  pageOf(paddr: number): number {
    const offset = paddr - this.ramBase;
    if (offset < 0 || offset >= this.ramBytes) return -1;
    return Math.floor(offset / this.pageBytes);
  }

  /** The physical address of the first byte of `page`. */
  addressOf(page: number): number {
    return this.ramBase + page * this.pageBytes;
  }

  /** Counts one miss to `paddr` from `node`. Allocates nothing; addresses outside RAM are ignored. */
  record(paddr: number, node: number): void {
    const page = this.pageOf(paddr);
    if (page >= 0) this.recordPage(page, node);
  }

  /** Counts one miss to page number `page` (0 is the page at ramBase) from `node`; `write` for a write miss or an upgrade. */
  recordPage(page: number, node: number, write = false): void {
    if (write) {
      if (this.writes[page] !== MAX_COUNT) this.writes[page]!++;
      if (node < 32) this.writers[page]! |= 1 << node;
      this.lastWrite[page] = this.interval;
    }
    const index = page * this.nodes + node;
    const count = this.counts[index]!;
    if (count === MAX_COUNT) return;
    this.counts[index] = count + 1;
    // A page's misses from all nodes rise by one too: the shared threshold is crossed once on the way up.
    if (this.sharedThreshold > 0 && this.queued[page] === 0 && this.total(page) === this.sharedThreshold) {
      this.queued[page] = 1;
      this.hot.push(page);
    }
    // Equality, not >=: counts rise by one, so the event fires exactly once until this counter is reset.
    if (count + 1 === this.threshold && this.listener !== undefined) this.listener(page, node, count + 1);
    if (count + 1 === this.queueThreshold && this.queued[page] === 0) {
      this.queued[page] = 1;
      this.hot.push(page);
    }
  }

  /** Write misses and upgrades to `page`, from every node. */
  writesTo(page: number): number {
    return this.writes[page] ?? 0;
  }

  /**
   * Whole intervals since `page`'s last write miss or upgrade: 0 if it was written in this interval (since the
   * last `decay`), 1 in the one before, …; Infinity if it was not written since its counts began.
   */
  intervalsSinceWrite(page: number): number {
    const last = this.lastWrite[page] ?? 0;
    return last === 0 ? Infinity : this.interval - last;
  }

  /** The nodes that wrote `page` in this interval or the one before (bit n for node n; nodes past 31 are not told apart). */
  writersOf(page: number): number {
    return (this.writers[page] ?? 0) | (this.writersBefore[page] ?? 0);
  }

  /**
   * Queues a page (once, until taken) when its count from some node reaches `threshold` (0: off): for a
   * policy that acts at safe points, between rounds, instead of inside the access that made the page hot.
   */
  queueHot(threshold: number, shared = 0): void {
    if (!Number.isInteger(threshold) || threshold < 0) throw new RangeError(`hot-page threshold must be a whole number, not ${threshold}`);
    if (!Number.isInteger(shared) || shared < 0) throw new RangeError(`shared hot-page threshold must be a whole number, not ${shared}`);
    this.queueThreshold = threshold;
    this.sharedThreshold = shared;
  }

  /** The pages queued since the last call, in the order they became hot; they may queue again. */
  takeHot(): number[] {
    const hot = this.hot;
    this.hot = [];
    for (const page of hot) this.queued[page] = 0;
    return hot;
  }

  /** Misses to `page` from `node`. */
  count(page: number, node: number): number {
    return this.counts[page * this.nodes + node] ?? 0;
  }

  /** Misses to `page` from all nodes. */
  total(page: number): number {
    let sum = 0;
    for (let node = 0; node < this.nodes; node++) sum += this.counts[page * this.nodes + node] ?? 0;
    return sum;
  }

  /** A copy of `page`'s counters, one per node. */
  countsOf(page: number): number[] {
    return Array.from(this.counts.subarray(page * this.nodes, (page + 1) * this.nodes));
  }

  /** Zeroes `page`'s counters (e.g. after the monitor migrated it), re-arming its hot-page events. */
  resetPage(page: number): void {
    if (page < 0 || page >= this.pages) return;
    this.counts.fill(0, page * this.nodes, (page + 1) * this.nodes);
    this.writes[page] = 0;
    this.writers[page] = 0;
    this.writersBefore[page] = 0;
    this.lastWrite[page] = 0;
  }

  /**
   * The monitor moved the contents of machine page `from` to `to`: the counts go with them (they say who uses
   * the contents), and `from` starts again from zero.
   */
  movePage(from: number, to: number): void {
    if (from < 0 || from >= this.pages || to < 0 || to >= this.pages || from === to) return;
    this.counts.copyWithin(to * this.nodes, from * this.nodes, (from + 1) * this.nodes);
    this.writes[to] = this.writes[from]!;
    this.writers[to] = this.writers[from]!;
    this.writersBefore[to] = this.writersBefore[from]!;
    this.lastWrite[to] = this.lastWrite[from]!;
    this.resetPage(from);
  }

  /** Zeroes every counter (FLASH's periodic reset, or `mbctl stats reset`). */
  resetAll(): void {
    this.counts.fill(0);
    this.writes.fill(0);
    this.writers.fill(0);
    this.writersBefore.fill(0);
    this.lastWrite.fill(0);
  }

  /**
   * Ends an interval: halves every count (old misses weigh less than new ones), and queues again every page
   * whose count from some node is still at the queue's threshold or more. A page stays hot while it is missed
   * on, and its case may have changed (another process on another node took it over), but its counts cross the
   * threshold only once on the way up.
   */
  decay(): void {
    const nodes = this.nodes;
    const requeue = this.queueThreshold;
    const shared = this.sharedThreshold;
    for (let page = 0; page < this.pages; page++) {
      let most = 0;
      let total = 0;
      for (let i = page * nodes; i < (page + 1) * nodes; i++) {
        const count = this.counts[i]! >>> 1;
        this.counts[i] = count;
        total += count;
        if (count > most) most = count;
      }
      this.writes[page]! >>>= 1;
      this.writersBefore[page] = this.writers[page]!;
      this.writers[page] = 0;
      if (this.queued[page] === 0 && ((requeue > 0 && most >= requeue) || (shared > 0 && total >= shared))) {
        this.queued[page] = 1;
        this.hot.push(page);
      }
    }
    this.interval++;
  }

  /**
   * Calls `listener` when a page's count from a node reaches `threshold`; a threshold of 0 turns the
   * event off. Counts already past the new threshold do not fire until reset.
   */
  onHotPage(threshold: number, listener: HotPageListener | undefined): void {
    if (!Number.isInteger(threshold) || threshold < 0) throw new RangeError(`hot-page threshold must be a whole number, not ${threshold}`);
    this.threshold = listener === undefined ? 0 : threshold;
    this.listener = listener;
  }

  /** The `limit` pages with the most misses, most first (ties by page number): for reports and heat maps. */
  hottest(limit: number): { page: number; total: number; perNode: number[] }[] {
    const found: { page: number; total: number }[] = [];
    for (let page = 0; page < this.pages; page++) {
      const total = this.total(page);
      if (total > 0) found.push({ page, total });
    }
    found.sort((a, b) => b.total - a.total || a.page - b.page);
    return found.slice(0, Math.max(0, limit)).map(({ page, total }) => ({ page, total, perNode: this.countsOf(page) }));
  }
}

// What a hart asks the memory system in timing mode: the cycles each access and TLB refill costs.

/**
 * The hart's side of timing mode. The cpu layer may not import the timing layer, so it names what it
 * needs here and the board hands it timing/timing-model.ts's TimingModel, which has these methods.
 * Each call returns the cycles the access costs beyond the instruction's own cycle, and counts it.
 */
export interface MemoryTiming {
  /** A load, store or fetch by hart `cpu` to RAM: `offset` bytes into node `node`'s memory. */
  chargeRamAccess(cpu: number, node: number, offset: number, isWrite: boolean): number;
  /** A load or store by hart `cpu` to physical address `paddr` outside RAM (MMIO: uncached). */
  chargeAccess(cpu: number, paddr: number, isWrite: boolean): number;
  /** A page-table walk that read `levels` levels to refill hart `cpu`'s TLB. */
  chargeTlbRefill(cpu: number, levels: number): number;
  /**
   * Optional, with `chargeLineHits`: the cache line size. Translated blocks then charge a run of fetches
   * from one line with nothing between them as one `chargeRamAccess` and `count` line hits.
   */
  readonly lineBytes?: number;
  /**
   * `count` more reads by hart `cpu` of the line its last access touched, with no other access between:
   * each is a hit that changes no cache state, so this must count exactly what `count` calls of
   * `chargeRamAccess` on that line would (docs/translator.md, "Timing mode").
   */
  chargeLineHits?(cpu: number, count: number): number;
  /** Optional: lets generated code test for a fetch hit without a call (see FetchProbe). */
  fetchProbe?(): FetchProbe;
}

/**
 * The arrays behind the cache model's fast path, for translated blocks: a read of `line` by hart `cpu` is
 * a hit that changes no cache state exactly when `tags[mruWay[cpu * sets + set(line)]] === line`; it then
 * adds one to `hits[cpu]` and costs `hitCycles`, which is all `chargeRamAccess` would have done.
 */
export interface FetchProbe {
  readonly tags: Float64Array;
  readonly mruWay: Int32Array;
  readonly sets: number;
  readonly hits: Float64Array;
  readonly hitCycles: number;
  /** The line number `chargeRamAccess(cpu, node, offset, …)` looks up. */
  line(node: number, offset: number): number;
  /** The set of `line` in every CPU's cache. */
  set(line: number): number;
}

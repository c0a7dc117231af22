// Timing mode's memory model: what each load, store and TLB refill costs in cycles on the ccNUMA machine.

import { ACCESS_HIT, ACCESS_UPGRADE, CoherentCaches, type CacheGeometry } from './cache.js';
import { MissCounters } from './miss-counters.js';
import type { StatsRegistry } from './stats.js';

/** Cycle costs of the memory system (board/topology.ts derives them from the distance matrix). */
export interface TimingLatencies {
  /** Cycles a hit in the modelled cache adds to the instruction's own cycle. */
  hitCycles: number;
  /** missCycles[requester node][home node]: a miss or upgrade served by the home node's memory and directory. */
  missCycles: readonly (readonly number[])[];
  /** An access outside RAM (MMIO): uncached, never counted as a miss. */
  uncachedCycles: number;
  /** Each page-table level a TLB refill reads. */
  tlbLevelCycles: number;
}

/** A node's memory in the physical address space (MachineLayout's nodes fit this shape). */
export interface NodeMemory {
  readonly base: number;
  readonly size: number;
}

export interface TimingModelOptions {
  /** The node of each CPU, indexed by CPU (hart) id: MachineLayout.hartNode. */
  cpuNode: readonly number[];
  /** Each node's memory, indexed by node id, laid out contiguously in address order: MachineLayout.nodes. */
  nodes: readonly NodeMemory[];
  latencies: TimingLatencies;
  cache?: Partial<CacheGeometry>;
  /** Granule of the miss counters (default 4 KiB, the machine page). */
  pageBytes?: number;
}

/**
 * Ties the caches, the per-page miss counters and the latencies together. `chargeAccess` is the one call
 * the CPU makes per memory access in timing mode: it allocates nothing and its hit path is a cache probe
 * and one counter increment. All counters are per CPU or per node in Float64Arrays (exact to 2^53).
 */
export class TimingModel {
  readonly caches: CoherentCaches;
  readonly counters: MissCounters;
  readonly cpus: number;
  readonly nodeCount: number;
  readonly ramBase: number;
  readonly ramEnd: number;

  readonly hits: Float64Array;
  readonly missesLocal: Float64Array;
  readonly missesRemote: Float64Array;
  readonly upgrades: Float64Array;
  readonly uncached: Float64Array;
  /** Cycles charged for misses, upgrades and MMIO (hits are counted, and cost hits x hitCycles). */
  readonly stallCycles: Float64Array;
  /** Of those, the misses' and upgrades' cycles to the CPU's own node and to other nodes. */
  readonly stallLocal: Float64Array;
  readonly stallRemote: Float64Array;
  readonly tlbRefills: Float64Array;
  readonly tlbCycles: Float64Array;
  /** Per home node: lines its memory supplied, and dirty lines written back to it. */
  readonly linesRead: Float64Array;
  readonly linesWritten: Float64Array;

  private readonly cpuNode: Int32Array;
  private readonly nodeBase: Float64Array;
  private readonly nodeEnd: Float64Array;
  /** Line and counter-page number of each node's first byte (small integers, unlike its address). */
  private readonly nodeFirstLine: Float64Array;
  private readonly nodeFirstPage: Float64Array;
  /** The caches' line size (MemoryTiming: translated blocks charge runs of fetches in one line as line hits). */
  readonly lineBytes: number;
  private readonly pageBytes: number;
  /** log2 of the line and page sizes: offsets in a node are below 2^32, so `>>>` divides exactly. */
  private readonly lineShift: number;
  private readonly pageShift: number;
  /** missCycles flattened as [requester * nodes + home]. */
  private readonly missCycles: Float64Array;
  private readonly hitCycles: number;
  private readonly uncachedCycles: number;
  private readonly tlbLevelCycles: number;

  constructor(readonly options: TimingModelOptions) {
    const { cpuNode, nodes, latencies } = options;
    const problems = optionProblems(options);
    if (problems.length > 0) throw new RangeError(`invalid timing model: ${problems.join('; ')}`);
    this.cpus = cpuNode.length;
    this.nodeCount = nodes.length;
    this.ramBase = nodes[0]!.base;
    this.ramEnd = nodes[nodes.length - 1]!.base + nodes[nodes.length - 1]!.size;
    this.cpuNode = Int32Array.from(cpuNode);
    this.nodeBase = Float64Array.from(nodes, (n) => n.base);
    this.nodeEnd = Float64Array.from(nodes, (n) => n.base + n.size);
    this.missCycles = Float64Array.from(latencies.missCycles.flat());
    this.hitCycles = latencies.hitCycles;
    this.uncachedCycles = latencies.uncachedCycles;
    this.tlbLevelCycles = latencies.tlbLevelCycles;
    this.caches = new CoherentCaches(this.cpus, options.cache);
    this.counters = new MissCounters(this.ramBase, this.ramEnd - this.ramBase, this.nodeCount, options.pageBytes);
    this.lineBytes = this.caches.geometry.lineBytes;
    this.pageBytes = this.counters.pageBytes;
    this.lineShift = Math.log2(this.lineBytes);
    this.pageShift = Math.log2(this.pageBytes);
    const nodeProblems = nodes.flatMap((n, id) => (n.base % this.lineBytes === 0 && (n.base - this.ramBase) % this.pageBytes === 0 ? [] : [id]));
    if (nodeProblems.length > 0) throw new RangeError(`invalid timing model: nodes ${nodeProblems.join(', ')} do not start on a page boundary`);
    this.nodeFirstLine = Float64Array.from(nodes, (n) => n.base / this.lineBytes);
    this.nodeFirstPage = Float64Array.from(nodes, (n) => (n.base - this.ramBase) / this.pageBytes);
    const perCpu = (): Float64Array => new Float64Array(this.cpus);
    this.hits = perCpu();
    this.missesLocal = perCpu();
    this.missesRemote = perCpu();
    this.upgrades = perCpu();
    this.uncached = perCpu();
    this.stallCycles = perCpu();
    this.stallLocal = perCpu();
    this.stallRemote = perCpu();
    this.tlbRefills = perCpu();
    this.tlbCycles = perCpu();
    this.linesRead = new Float64Array(this.nodeCount);
    this.linesWritten = new Float64Array(this.nodeCount);
  }

  /** The node whose memory holds `paddr`, or -1 outside RAM. */
  homeNode(paddr: number): number {
    if (paddr < this.ramBase) return -1;
    for (let node = 0; node < this.nodeCount; node++) if (paddr < this.nodeEnd[node]!) return node;
    return -1;
  }

  /** Cycles that `cpu`'s load or store to physical address `paddr` costs beyond the instruction itself. */
  chargeAccess(cpu: number, paddr: number, isWrite: boolean): number {
    const node = this.homeNode(paddr);
    if (node < 0) {
      this.uncached[cpu]++;
      this.stallCycles[cpu] += this.uncachedCycles;
      return this.uncachedCycles;
    }
    return this.chargeRamAccess(cpu, node, paddr - this.nodeBase[node]!, isWrite);
  }

  /**
   * `chargeAccess` for an access the CPU already resolved to RAM: `offset` bytes into node `node`'s
   * memory (the RamRegion and offset its TLB yields). The hot path: no address search, and every
   * argument a small integer for nodes up to 1 GiB, so V8 passes them without boxing.
   */
  chargeRamAccess(cpu: number, node: number, offset: number, isWrite: boolean): number {
    const result = this.caches.accessLine(cpu, this.nodeFirstLine[node]! + (offset >>> this.lineShift), isWrite);
    if (result === ACCESS_HIT) {
      this.hits[cpu]++;
      return this.hitCycles;
    }
    return this.chargeMiss(cpu, node, offset, result === ACCESS_UPGRADE, isWrite);
  }

  /**
   * The cache arrays a translated block reads to count a fetch hit without calling chargeRamAccess (the
   * cpu layer's FetchProbe, src/cpu/memory-timing.ts, which this layer may not import).
   */
  fetchProbe() {
    const caches = this.caches;
    return {
      tags: caches.tags,
      mruWay: caches.mruWay,
      sets: caches.sets,
      hits: this.hits,
      hitCycles: this.hitCycles,
      line: (node: number, offset: number): number => this.nodeFirstLine[node]! + (offset >>> this.lineShift),
      set: (line: number): number => (line | 0) & caches.setMask,
    };
  }

  /**
   * `count` more reads by `cpu` of the line its last access touched, nothing else in between: each would
   * find that line in the most recently used way of its set, a hit that changes no cache state, so only the
   * hits are counted (what `count` calls of `chargeRamAccess` would do).
   */
  chargeLineHits(cpu: number, count: number): number {
    this.hits[cpu] += count;
    return count * this.hitCycles;
  }

  /** Cycles of a TLB refill that walked `levels` page-table levels (3 for Sv39, 4 for Sv48). */
  chargeTlbRefill(cpu: number, levels: number): number {
    const cycles = levels * this.tlbLevelCycles;
    this.tlbRefills[cpu]++;
    this.tlbCycles[cpu] += cycles;
    return cycles;
  }

  /** Loads and stores to RAM by `cpu` (every one is a hit, a miss or an upgrade). */
  accesses(cpu: number): number {
    return this.hits[cpu]! + this.missesLocal[cpu]! + this.missesRemote[cpu]! + this.upgrades[cpu]!;
  }

  /** All cycles charged to `cpu` for memory: hits, misses, upgrades, MMIO and TLB refills. */
  memoryCycles(cpu: number): number {
    return this.hits[cpu]! * this.hitCycles + this.stallCycles[cpu]! + this.tlbCycles[cpu]!;
  }

  /** Zeroes the statistics (not the miss counters, which belong to whoever watches hot pages). */
  resetStatistics(): void {
    for (const a of [this.hits, this.missesLocal, this.missesRemote, this.upgrades, this.uncached,
      this.stallCycles, this.stallLocal, this.stallRemote, this.tlbRefills, this.tlbCycles, this.linesRead, this.linesWritten]) a.fill(0);
    this.caches.resetCounters();
  }

  /** The parameters in force, for config.json. */
  /** The cycles a miss from a CPU of node `from` to memory on node `home` costs now. */
  missCyclesBetween(from: number, home: number): number {
    return this.missCycles[from * this.nodeCount + home]!;
  }

  /**
   * A miss from node `from` to node `home` costs `cycles` from now on: the interconnect routed it another way
   * (a link failed, board/faults.ts). `parameters()` keeps the configured latencies.
   */
  setMissCycles(from: number, home: number, cycles: number): void {
    if (!Number.isFinite(cycles) || cycles < 0) throw new RangeError(`a miss cannot cost ${cycles} cycles`);
    this.missCycles[from * this.nodeCount + home] = cycles;
  }

  parameters(): { cache: CacheGeometry; latencies: TimingLatencies; pageBytes: number } {
    const { hitCycles, missCycles, uncachedCycles, tlbLevelCycles } = this.options.latencies;
    return {
      cache: { ...this.caches.geometry },
      latencies: { hitCycles, missCycles: missCycles.map((row) => [...row]), uncachedCycles, tlbLevelCycles },
      pageBytes: this.counters.pageBytes,
    };
  }

  /** Registers per-CPU statistics as `<prefix>.cpuN.…` and per-node ones as `<prefix>.memory.…` vectors. */
  registerStats(stats: StatsRegistry, prefix = 'system'): void {
    const perCpu: [string, string, string, Float64Array | ((cpu: number) => number)][] = [
      ['cache.accesses', 'Loads and stores to RAM seen by the cache', 'Count', (cpu) => this.accesses(cpu)],
      ['cache.hits', 'Accesses that hit in the cache', 'Count', this.hits],
      ['cache.missesLocal', 'Misses served by the memory of the CPU\'s own node', 'Count', this.missesLocal],
      ['cache.missesRemote', 'Misses served by another node\'s memory', 'Count', this.missesRemote],
      ['cache.upgrades', 'Writes to Shared lines that had to invalidate other copies', 'Count', this.upgrades],
      ['cache.invalidations', 'Lines of this cache invalidated by other CPUs\' writes', 'Count', this.caches.invalidationsReceived],
      ['cache.writebacks', 'Modified lines written back', 'Count', this.caches.writebacks],
      ['uncachedAccesses', 'Loads and stores outside RAM (MMIO)', 'Count', this.uncached],
      ['memoryCycles', 'Cycles charged for memory (hits, misses, upgrades, MMIO, TLB refills)', 'Cycle', (cpu) => this.memoryCycles(cpu)],
      ['tlb.refills', 'TLB refills (page-table walks)', 'Count', this.tlbRefills],
      ['tlb.refillCycles', 'Cycles charged for TLB refills', 'Cycle', this.tlbCycles],
    ];
    for (let cpu = 0; cpu < this.cpus; cpu++) {
      for (const [name, description, unit, source] of perCpu) {
        const read = typeof source === 'function' ? () => source(cpu) : () => source[cpu]!;
        stats.scalar(`${prefix}.cpu${cpu}.${name}`, description, unit, read);
      }
    }
    const labels = Array.from({ length: this.nodeCount }, (_, n) => `node${n}`);
    const lineBytes = this.caches.geometry.lineBytes;
    stats.vector(`${prefix}.memory.linesRead`, 'Cache lines each node\'s memory supplied', 'Count', labels, () => this.linesRead);
    stats.vector(`${prefix}.memory.linesWritten`, 'Modified cache lines written back to each node\'s memory', 'Count', labels, () => this.linesWritten);
    stats.vector(`${prefix}.memory.bytes`, 'Bytes moved to and from each node\'s memory', 'Byte', labels,
      () => Array.from(this.linesRead, (read, n) => (read + this.linesWritten[n]!) * lineBytes));
    stats.onReset(() => this.resetStatistics());
  }

  /** A miss or an upgrade: charged the latency from the CPU's node to the line's home node. */
  private chargeMiss(cpu: number, home: number, offset: number, upgrade: boolean, isWrite: boolean): number {
    const from = this.cpuNode[cpu]!;
    if (upgrade) {
      this.upgrades[cpu]++;
    } else {
      if (home === from) this.missesLocal[cpu]++;
      else this.missesRemote[cpu]++;
      this.linesRead[home]++;
    }
    // A dirty line taken from another cache, or evicted to make room, goes back to its home memory.
    if (this.caches.lastFromModified) this.linesWritten[home]++;
    const evicted = this.caches.lastWriteback;
    if (evicted >= 0) this.linesWritten[this.homeNode(evicted)]++;
    this.counters.recordPage(this.nodeFirstPage[home]! + (offset >>> this.pageShift), from, isWrite);
    const cycles = this.missCycles[from * this.nodeCount + home]!;
    this.stallCycles[cpu] += cycles;
    if (home === from) this.stallLocal[cpu] += cycles;
    else this.stallRemote[cpu] += cycles;
    return cycles;
  }
}

function optionProblems({ cpuNode, nodes, latencies, pageBytes }: TimingModelOptions): string[] {
  const problems: string[] = [];
  if (pageBytes !== undefined && !(Number.isInteger(pageBytes) && pageBytes > 0 && (pageBytes & (pageBytes - 1)) === 0)) {
    problems.push(`pageBytes must be a power of two, not ${pageBytes}`);
  }
  if (cpuNode.length === 0) problems.push('there must be at least one CPU');
  if (nodes.length === 0) problems.push('there must be at least one node');
  const badCpus = cpuNode.flatMap((node, cpu) => (Number.isInteger(node) && node >= 0 && node < nodes.length ? [] : [cpu]));
  if (badCpus.length > 0) problems.push(`CPUs ${badCpus.join(', ')} are on no node`);
  for (let n = 1; n < nodes.length; n++) {
    if (nodes[n]!.base !== nodes[n - 1]!.base + nodes[n - 1]!.size) problems.push(`node ${n}'s memory does not follow node ${n - 1}'s`);
  }
  const m = latencies.missCycles;
  if (m.length !== nodes.length || m.some((row) => row.length !== nodes.length)) {
    problems.push(`missCycles must be a ${nodes.length}x${nodes.length} matrix`);
  }
  const costs = [latencies.hitCycles, latencies.uncachedCycles, latencies.tlbLevelCycles, ...m.flat()];
  if (costs.some((c) => !Number.isFinite(c) || c < 0)) problems.push('every latency must be a finite number of cycles, at least 0');
  return problems;
}

// NUMA topologies: the presets (flash8, numa4x2, uma), numactl-style distance matrices, and the miss latencies they imply.

import { INSTRUCTIONS_PER_TICK, TIMEBASE_HZ } from '../timing/clock.js';
import type { CacheGeometry } from '../timing/cache.js';
import { TimingModel, type TimingLatencies } from '../timing/timing-model.js';
import { LOCAL_DISTANCE, MachineConfigError, PAGE_SIZE, distanceValueProblems, layoutMachine, type MachineConfig, type MachineLayout } from './address-map.js';

/** The simulated CPU's cycle rate: deterministic time runs one instruction per cycle at 100 MHz (timing/clock.ts). */
export const CPU_CYCLES_PER_SECOND = TIMEBASE_HZ * INSTRUCTIONS_PER_TICK;
const NANOSECONDS_PER_SECOND = 1e9;

export function nanosecondsToCycles(ns: number): number {
  return Math.round((ns * CPU_CYCLES_PER_SECOND) / NANOSECONDS_PER_SECOND);
}

/**
 * FLASH as Disco measured it (Disco, SOSP 1997, experimental setup): with no contention a cache miss
 * takes at least 300 ns to local memory and 900 ns to remote memory, a ratio of 3.
 */
export const FLASH_LOCAL_MISS_NS = 300;
export const FLASH_REMOTE_MISS_NS = 900;
/** The distance that gives FLASH's remote latency under `remote = local x distance / 10`. */
export const FLASH_REMOTE_DISTANCE = (LOCAL_DISTANCE * FLASH_REMOTE_MISS_NS) / FLASH_LOCAL_MISS_NS;

/** 300 ns at 100 MHz. */
export const DEFAULT_LOCAL_MISS_CYCLES = nanosecondsToCycles(FLASH_LOCAL_MISS_NS);
/** One cache level is modelled; a hit in it is covered by the instruction's own cycle (first-level caches are folded in). */
export const DEFAULT_HIT_CYCLES = 0;
/** A page-table level read by the walker: about a secondary-cache hit (~50 ns), our choice, not a FLASH figure. */
export const DEFAULT_TLB_LEVEL_CYCLES = nanosecondsToCycles(50);
/** MMIO is uncached and crosses to a device: charged like a local miss, our choice. */
export const DEFAULT_UNCACHED_CYCLES = DEFAULT_LOCAL_MISS_CYCLES;

/**
 * Miss latencies from a distance matrix: the latency from node i to memory on node j is the local miss
 * latency scaled by distance / 10, the meaning ACPI gives SLIT distances (ACPI 6.5 §5.2.17: distances are
 * relative to the local distance 10). `uniform` charges every miss the local latency: the ideal machine.
 */
export function latenciesFromDistances(
  distances: readonly (readonly number[])[], localMissCycles = DEFAULT_LOCAL_MISS_CYCLES, uniform = false,
): TimingLatencies {
  const scale = (d: number): number => (uniform ? localMissCycles : Math.round((localMissCycles * d) / LOCAL_DISTANCE));
  return {
    hitCycles: DEFAULT_HIT_CYCLES,
    missCycles: distances.map((row) => row.map(scale)),
    uncachedCycles: DEFAULT_UNCACHED_CYCLES,
    tlbLevelCycles: DEFAULT_TLB_LEVEL_CYCLES,
  };
}

/** Timing mode's model for a laid-out machine: one cache per hart, counters over all of its RAM. */
export function timingModelFor(layout: MachineLayout, latencies: TimingLatencies, cache?: Partial<CacheGeometry>): TimingModel {
  return new TimingModel({ cpuNode: layout.hartNode, nodes: layout.nodes, latencies, cache });
}

/** A machine topology and the latencies of timing mode on it. */
export interface Topology {
  name: string;
  config: MachineConfig;
  latencies: TimingLatencies;
}

interface Preset {
  description: string;
  nodes: number;
  /** Undefined: as many as asked for (one node). */
  hartsPerNode?: number;
  distances: (nodes: number) => number[][];
}

const uniformDistances = (remote: number) => (nodes: number): number[][] =>
  Array.from({ length: nodes }, (_, i) => Array.from({ length: nodes }, (_, j) => (i === j ? LOCAL_DISTANCE : remote)));

/** Nodes on a 2x2 mesh (node n at column n%2, row n>>1): one hop is distance 20, two hops 30. */
const MESH_HOP_DISTANCE = 10;
function meshDistances(nodes: number): number[][] {
  const hops = (i: number, j: number): number => Math.abs((i % 2) - (j % 2)) + Math.abs((i >> 1) - (j >> 1));
  return Array.from({ length: nodes }, (_, i) => Array.from({ length: nodes }, (_, j) => LOCAL_DISTANCE + MESH_HOP_DISTANCE * hops(i, j)));
}

const PRESETS: Record<string, Preset> = {
  flash8: {
    description: '8 nodes x 1 CPU, every remote node 3x the local latency (FLASH as in Disco\'s experiments)',
    nodes: 8,
    hartsPerNode: 1,
    distances: uniformDistances(FLASH_REMOTE_DISTANCE),
  },
  numa4x2: {
    description: '4 nodes x 2 CPUs on a 2x2 mesh (distance 20 one hop away, 30 two hops away)',
    nodes: 4,
    hartsPerNode: 2,
    distances: meshDistances,
  },
  uma: { description: 'one node: every CPU equally close to all memory', nodes: 1, distances: uniformDistances(LOCAL_DISTANCE) },
};

/** Names of the presets, for `--topology` and its help. */
export const TOPOLOGY_PRESETS: readonly string[] = Object.keys(PRESETS);

export function describePreset(name: string): string | undefined {
  return PRESETS[name]?.description;
}

export interface TopologyOptions {
  /** CPUs: required to agree with flash8 (8) and numa4x2 (8); uma takes any number (default 1). */
  harts?: number;
  /** Replaces the preset's distance matrix (e.g. from parseDistanceMatrix). */
  distances?: number[][];
  localMissCycles?: number;
  /** Every miss costs the local latency (the "ideal" machine of the placement experiment). */
  uniformLatency?: boolean;
}

/**
 * The preset `name` with `memoryBytes` split evenly over its nodes; node n holds the consecutive harts
 * n*k .. n*k+k-1. Throws MachineConfigError with one line per problem.
 */
export function topologyPreset(name: string, memoryBytes: number, options: TopologyOptions = {}): Topology {
  const preset = PRESETS[name];
  if (preset === undefined) throw new MachineConfigError([`no topology '${name}'; the presets are ${TOPOLOGY_PRESETS.join(', ')}`]);
  const problems: string[] = [];
  const hartsPerNode = preset.hartsPerNode ?? options.harts ?? 1;
  const harts = preset.nodes * hartsPerNode;
  if (options.harts !== undefined && options.harts !== harts) problems.push(`topology ${name} has ${harts} harts, not ${options.harts}`);
  const unit = preset.nodes * PAGE_SIZE;
  if (!Number.isInteger(memoryBytes) || memoryBytes <= 0 || memoryBytes % unit !== 0) {
    problems.push(`memory (${memoryBytes} bytes) must split into ${preset.nodes} equal whole numbers of 4 KiB pages`);
  }
  const localMissCycles = options.localMissCycles ?? DEFAULT_LOCAL_MISS_CYCLES;
  if (!Number.isFinite(localMissCycles) || localMissCycles < 0) problems.push(`local miss latency must be at least 0 cycles, not ${localMissCycles}`);
  const distances = options.distances ?? preset.distances(preset.nodes);
  const config: MachineConfig = {
    harts,
    nodes: Array.from({ length: preset.nodes }, (_, n) => ({
      memoryBytes: Math.floor(memoryBytes / preset.nodes / PAGE_SIZE) * PAGE_SIZE,
      harts: Array.from({ length: hartsPerNode }, (_, k) => n * hartsPerNode + k),
    })),
    distances,
  };
  try {
    layoutMachine(config);
  } catch (error) {
    if (!(error instanceof MachineConfigError)) throw error;
    problems.push(...error.problems);
  }
  if (problems.length > 0) throw new MachineConfigError(problems);
  return { name, config, latencies: latenciesFromDistances(distances, localMissCycles, options.uniformLatency ?? false) };
}

/**
 * Parses a distance matrix as `numactl --hardware` prints it ("node distances:", a header of node
 * numbers, then rows "0:  10  20"), or compactly with rows split by newlines, ';' or '/' and values by
 * spaces or commas ("10,20;20,10"). Throws MachineConfigError naming every problem.
 */
export function parseDistanceMatrix(text: string): number[][] {
  const problems: string[] = [];
  const rows: number[][] = [];
  const lines = text.split(/[\n;/]/).map((l) => l.trim()).filter((l) => l !== '' && !/^node\s+distances:?$/i.test(l) && !/^node(\s+\d+)+$/i.test(l));
  lines.forEach((line, r) => {
    const labelled = /^(?:node\s*)?(\d+)\s*:\s*(.*)$/i.exec(line);
    if (labelled !== null && Number(labelled[1]) !== r) problems.push(`row ${r} is labelled ${labelled[1]}`);
    const tokens = (labelled === null ? line : labelled[2]!).split(/[\s,]+/).filter((t) => t !== '');
    const bad = tokens.filter((t) => !/^\d+$/.test(t));
    if (bad.length > 0) problems.push(`row ${r}: ${bad.map((t) => `'${t}'`).join(', ')} ${bad.length === 1 ? 'is not a whole number' : 'are not whole numbers'}`);
    rows.push(tokens.map(Number));
  });
  if (rows.length === 0) problems.push('the distance matrix is empty');
  if (problems.length === 0) problems.push(...distanceProblems(rows));
  if (problems.length > 0) throw new MachineConfigError(problems);
  return rows;
}

/** ACPI SLIT rules as layoutMachine applies them: square, 10 on the diagonal, symmetric, 11..255 elsewhere. */
export function distanceProblems(d: readonly (readonly number[])[]): string[] {
  const n = d.length;
  const bad = d.flatMap((row, i) => (row.length === n ? [] : [i]));
  if (bad.length > 0) return [`the distance matrix has ${n} rows, so every row needs ${n} values (rows ${bad.join(', ')} do not)`];
  return distanceValueProblems(d);
}

// The machine shape `mirrorball run` asks for: --topology PRESET or --nodes N, with --smp, -m and --distances.

import { MIN_NODE_MEMORY, MachineConfigError, defaultDistances, type MachineConfig } from '../board/address-map.js';
import { TOPOLOGY_PRESETS, latenciesFromDistances, parseDistanceMatrix, topologyPreset } from '../board/topology.js';
import { DEFAULT_CACHE_GEOMETRY, cacheGeometryProblems, type CacheGeometry } from '../timing/cache.js';
import type { TimingLatencies } from '../timing/timing-model.js';
import { UsageError, describeSize, parseCount } from './options.js';

/** What the user typed; undefined means the option was not given. */
export interface TopologyFlags {
  topology?: string;
  nodes?: string;
  smp?: string;
  distances?: string;
  /** Cycles of a miss to local memory (remote ones scale by distance). */
  localMiss?: string;
}

export interface ChosenTopology {
  /** The preset's name, or `nodes` for an even split by --nodes. */
  name: string;
  config: MachineConfig;
  /** What timing mode charges on this machine. */
  latencies: TimingLatencies;
}

const PAGE = 4096;
const MiB = 2 ** 20;
const MAX_HARTS = 32;
const DEFAULT_HARTS = 1;
const DEFAULT_NODES = 1;
/** A miss of more than 100 µs at 100 MHz is a typo, not a memory. */
const MAX_MISS_CYCLES = 10_000;

const CACHE_KEYS: Record<string, keyof CacheGeometry> = { size: 'sizeBytes', ways: 'ways', line: 'lineBytes' };
const SIZE_SUFFIX: Record<string, number> = { '': 1, K: 1024, M: 2 ** 20 };

/**
 * `--cache size=1M,ways=2,line=128` (any of the three; the rest keep their defaults) as a whole cache
 * geometry, checked: one UsageError line naming every mistake.
 */
export function parseCacheSpec(text: string): CacheGeometry {
  const geometry: CacheGeometry = { ...DEFAULT_CACHE_GEOMETRY };
  const problems: string[] = [];
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const key = CACHE_KEYS[part.slice(0, eq).trim()];
    if (eq < 0 || key === undefined) {
      problems.push(`'${part}' is not size=BYTES, ways=N or line=BYTES`);
      continue;
    }
    const value = part.slice(eq + 1).trim();
    const m = (key === 'ways' ? /^(\d+)()$/ : /^(\d+)([KM]?)$/i).exec(value);
    if (m === null) {
      problems.push(`${part.slice(0, eq).trim()} '${value}' is not a number${key === 'ways' ? '' : ' of bytes (K and M allowed)'}`);
      continue;
    }
    geometry[key] = Number(m[1]) * SIZE_SUFFIX[m[2]!.toUpperCase()]!;
  }
  if (problems.length === 0) problems.push(...cacheGeometryProblems(geometry));
  if (problems.length > 0) throw new UsageError(`--cache: ${problems.join('; ')}`);
  return geometry;
}

/** Splits memory and harts evenly over the nodes, hart h on node h mod nodes. */
export function evenTopology(harts: number, memoryBytes: number, nodes: number): MachineConfig {
  if (nodes > harts) throw new UsageError(`--nodes ${nodes} needs at least ${nodes} harts (--smp)`);
  const perNode = Math.floor(memoryBytes / nodes / PAGE) * PAGE;
  return {
    harts,
    nodes: Array.from({ length: nodes }, (_, n) => ({
      memoryBytes: perNode,
      harts: Array.from({ length: harts }, (_, h) => h).filter((h) => h % nodes === n),
    })),
  };
}

/**
 * The machine from the topology flags. A preset fixes the nodes (so --nodes with --topology is refused);
 * --smp must then agree with the preset's CPU count (uma takes any). Every mistake is one UsageError line.
 */
export function chooseTopology(flags: TopologyFlags, memoryBytes: number): ChosenTopology {
  if (flags.topology !== undefined && flags.nodes !== undefined) {
    throw new UsageError('--topology and --nodes cannot be used together: the topology fixes the nodes');
  }
  const distances = flags.distances === undefined ? undefined : parseDistances(flags.distances);
  const localMissCycles = flags.localMiss === undefined ? undefined : parseCount(flags.localMiss, '--local-miss', 0, MAX_MISS_CYCLES);
  const harts = flags.smp === undefined ? undefined : parseCount(flags.smp, '--smp', 1, MAX_HARTS);
  if (flags.topology !== undefined) {
    if (!TOPOLOGY_PRESETS.includes(flags.topology)) {
      throw new UsageError(`--topology must be one of ${TOPOLOGY_PRESETS.join(', ')}, not '${flags.topology}'`);
    }
    // Too little memory fails on every node alike: say it once, as the total the preset needs.
    const presetNodes = topologyPreset(flags.topology, MIN_NODE_MEMORY * MAX_HARTS).config.nodes.length;
    if (memoryBytes < presetNodes * MIN_NODE_MEMORY) throw tooLittleMemory(memoryBytes, presetNodes, `--topology ${flags.topology} has`);
    try {
      const chosen = topologyPreset(flags.topology, memoryBytes, { harts, distances, localMissCycles });
      return { name: chosen.name, config: chosen.config, latencies: chosen.latencies };
    } catch (error) {
      if (error instanceof MachineConfigError) throw new UsageError(`--topology ${flags.topology}: ${error.problems.join('; ')}`);
      throw error;
    }
  }
  const nodes = flags.nodes === undefined ? DEFAULT_NODES : parseCount(flags.nodes, '--nodes', 1, MAX_HARTS);
  if (memoryBytes < nodes * MIN_NODE_MEMORY) throw tooLittleMemory(memoryBytes, nodes, `--nodes ${nodes} makes`);
  const config = evenTopology(harts ?? DEFAULT_HARTS, memoryBytes, nodes);
  if (distances !== undefined) {
    if (distances.length !== nodes) throw new UsageError(`--distances has ${distances.length} row${distances.length === 1 ? '' : 's'} but the machine has ${nodes} node${nodes === 1 ? '' : 's'}`);
    config.distances = distances;
  }
  return { name: 'nodes', config, latencies: latenciesFromDistances(config.distances ?? defaultDistances(nodes), localMissCycles) };
}

/** What -m asked for, and the least the machine takes: every node needs MIN_NODE_MEMORY. */
function tooLittleMemory(memoryBytes: number, nodes: number, machine: string): UsageError {
  const least = (nodes * MIN_NODE_MEMORY) / MiB;
  const who = nodes === 1 ? `the machine needs at least ${least} MiB` : `${machine} ${nodes} nodes of at least ${MIN_NODE_MEMORY / MiB} MiB each`;
  return new UsageError(`-m asks for ${describeSize(memoryBytes)} of RAM, too little: ${who}; -m must be at least ${least}M`);
}

function parseDistances(text: string): number[][] {
  try {
    return parseDistanceMatrix(text);
  } catch (error) {
    if (error instanceof MachineConfigError) throw new UsageError(`--distances: ${error.problems.join('; ')}`);
    throw error;
  }
}

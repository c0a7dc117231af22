// The NUMA placement experiment (docs/experiments.md): the multi-threaded raytrace on the 4-node machine
// with its memory placed four ways, in timing mode around the workload only. Linux boots once for every case
// (kept in the boot cache) and each case restores it.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Simulation } from '../board/simulation.js';
import { configureTiming } from '../board/timing-mode.js';
import { CPU_CYCLES_PER_SECOND, topologyPreset } from '../board/topology.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { cachedSession, contentHash } from '../guest/boot-cache.js';
import { GuestSession } from '../guest/session.js';
import { sortedJson, writeFileWhole, writeStatsOutput } from '../host/stats-output.js';
import type { StatSample } from '../timing/stats.js';
import { barChartSvg, markdownTable } from './report.js';

/** How raytrace's memory is placed: its -P option. */
export type PlacementPolicy = 'first-touch' | 'node0' | 'interleave';

export interface PlacementCase {
  name: string;
  description: string;
  policy: PlacementPolicy;
  /** Every miss costs the local latency, wherever the line lives. */
  uniformLatency: boolean;
}

/** The four placements of the issue, in the order of the table. */
export const PLACEMENT_CASES: readonly PlacementCase[] = [
  { name: 'first-touch', description: 'first touch (NUMA-aware Linux)', policy: 'first-touch', uniformLatency: false },
  { name: 'one-node', description: 'all memory on node 0', policy: 'node0', uniformLatency: false },
  { name: 'interleave', description: 'interleaved over the nodes', policy: 'interleave', uniformLatency: false },
  { name: 'uniform', description: 'uniform latency (ideal)', policy: 'first-touch', uniformLatency: true },
];

/** raytrace's size: a texture of several MiB per thread so that most samples miss a 1 MiB cache. */
export interface PlacementWorkload {
  width: number;
  spheres: number;
  textureBytes: number;
  /** Texels sampled per hit (raytrace -k): the misses per unit of work. */
  samples: number;
}

const MiB = 2 ** 20;
export const FULL_WORKLOAD: PlacementWorkload = { width: 128, spheres: 2000, textureBytes: 32 * MiB, samples: 64 };
/** A run of a few minutes, for the end-to-end test. */
export const QUICK_WORKLOAD: PlacementWorkload = { width: 32, spheres: 200, textureBytes: 16 * MiB, samples: 64 };

export const PLACEMENT_TOPOLOGY = 'numa4x2';
export const PLACEMENT_MEMORY_BYTES = 512 * MiB;

export interface PlacementOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  outDir: string;
  workload: PlacementWorkload;
  cases?: readonly PlacementCase[];
  /** One line per step, for a person watching. */
  onProgress?: (line: string) => void;
  /** What runs now (which case, booting or running), for a status line. */
  onStatus?: (text: string) => void;
}

export interface PlacementResult {
  case: string;
  description: string;
  policy: PlacementPolicy;
  uniformLatency: boolean;
  /**
   * Simulated time of the region of interest, in cycles of the 100 MHz CPUs: the workload and around it
   * the creation and teardown of its process and of mbctl's.
   */
  simulatedCycles: number;
  simulatedSeconds: number;
  /**
   * The workload's own elapsed time, from its start to its last thread's end, read from the guest's
   * clock, which in timing mode follows simulated time: the experiment's measure.
   */
  guestSeconds: number;
  checksum: string;
  missesLocal: number;
  missesRemote: number;
  /** Local misses as a percentage of all misses. */
  localPercent: number;
  /** Bytes each node's memory moved during the region. */
  nodeBytes: number[];
  instructions: number;
  hostSeconds: number;
}

export class ExperimentError extends Error {}

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'numa-placement.svg';

/** The dump the region's end asks for. */
const DUMP_TAG = 1;
const RESULT_LINE = /^RESULT raytrace elapsed=(\S+) checksum=([0-9a-f]{16})\b.*$/m;

/** The guest command of one case: reset, region of interest around raytrace, dump, end of region. */
export function placementCommand(c: PlacementCase, w: PlacementWorkload, threads: number): string {
  const raytrace = `raytrace -t ${threads} -L -P ${c.policy} -w ${w.width} -s ${w.spheres} -m ${Math.floor(w.textureBytes / 1024)}K -k ${w.samples}`;
  return `mbctl stats reset && mbctl roi begin && ${raytrace}; s=$?; mbctl stats dump ${DUMP_TAG}; mbctl roi end; exit $s`;
}

function scalar(samples: readonly StatSample[], name: string): number {
  const s = samples.find((x) => x.name === name);
  if (s === undefined || s.kind !== 'scalar') throw new ExperimentError(`the statistics dump has no scalar ${name}`);
  return s.value;
}

function vector(samples: readonly StatSample[], name: string): number[] {
  const s = samples.find((x) => x.name === name);
  if (s === undefined || s.kind !== 'vector') throw new ExperimentError(`the statistics dump has no vector ${name}`);
  return s.values;
}

/**
 * Linux booted on the 4-node machine in fast mode with no timing model, at its first idle moment: the same
 * for every case, since the cases differ only in raytrace's options and in the latencies, which fast mode
 * never reads (and Linux sees the same topology). Kept in the boot cache (guest/boot-cache.ts), so the cases
 * and later runs of the experiment restore it instead of booting.
 */
export async function bootedPlacementMachine(guest: PlacementOptions['guest']): Promise<{ bytes: Uint8Array; cached: boolean }> {
  const kernel = readFileSync(guest.kernel);
  const initrd = readFileSync(guest.initramfs);
  const { config } = topologyPreset(PLACEMENT_TOPOLOGY, PLACEMENT_MEMORY_BYTES);
  // Commands reach the guest at the same guest instant in every run (holdIdle): the statistics reproduce exactly.
  return cachedSession({ experiment: 'numa-placement', kernel: contentHash(kernel), initrd: contentHash(initrd), config },
    () => GuestSession.boot({ kernel, initrd, config, holdIdle: true }));
}

/**
 * One case: restores the booted machine (`booted`, from `bootedPlacementMachine`), gives it the case's timing
 * model (its caches cold, as at the end of a fast-mode boot), runs the case in timing mode and writes its
 * statistics into `dir`.
 */
export async function runPlacementCase(o: PlacementOptions, c: PlacementCase, dir: string, booted: Uint8Array): Promise<PlacementResult> {
  const topology = topologyPreset(PLACEMENT_TOPOLOGY, PLACEMENT_MEMORY_BYTES, { uniformLatency: c.uniformLatency });
  const started = performance.now();
  const session = await GuestSession.boot({
    kernel: readFileSync(o.guest.kernel),
    initrd: readFileSync(o.guest.initramfs),
    config: topology.config,
    restore: booted,
    holdIdle: true,
  });
  const simulation = new Simulation(session.machine, configureTiming(session.machine, topology.latencies));
  const command = placementCommand(c, o.workload, topology.config.harts);
  let output: string;
  try {
    o.onProgress?.(`${c.name}: restored (${((performance.now() - started) / 1000).toFixed(1)} s); running in timing mode`);
    o.onStatus?.(`${c.name}, running raytrace in timing mode`);
    const result = await session.exec(command);
    output = result.output;
    if (result.status !== 0) throw new ExperimentError(`case ${c.name}: the workload failed with status ${result.status}: ${output.trim().split('\n').slice(-3).join(' / ')}`);
  } catch (error) {
    await session.kill();
    throw error;
  }
  // Powered off from inside (not stopped from outside), so that the statistics at exit reproduce too.
  const exit = await session.poweroff();
  if (exit.kind !== 'poweroff') throw new ExperimentError(`case ${c.name}: the guest did not power off (${exit.kind})`);
  const hostSeconds = (performance.now() - started) / 1000;
  const sim = simulation;
  const dump = sim.dumps.find((d) => d.tag === DUMP_TAG);
  if (dump === undefined) throw new ExperimentError(`case ${c.name}: the guest asked for no statistics dump`);
  const match = RESULT_LINE.exec(output);
  if (match === null) throw new ExperimentError(`case ${c.name}: raytrace printed no RESULT line: ${output.trim().slice(-200)}`);

  const cpus = topology.config.harts;
  let missesLocal = 0;
  let missesRemote = 0;
  let instructions = 0;
  for (let cpu = 0; cpu < cpus; cpu++) {
    missesLocal += scalar(dump.samples, `system.cpu${cpu}.cache.missesLocal`);
    missesRemote += scalar(dump.samples, `system.cpu${cpu}.cache.missesRemote`);
    instructions += scalar(dump.samples, `system.cpu${cpu}.instructions`);
  }
  const simulatedCycles = scalar(dump.samples, 'system.cycles');
  const misses = missesLocal + missesRemote;

  mkdirSync(dir, { recursive: true });
  const config = {
    experiment: 'numa-placement',
    case: c,
    topology: topology.name,
    machine: topology.config,
    memoryBytes: PLACEMENT_MEMORY_BYTES,
    mode: 'timing in regions of interest',
    timing: sim.model?.parameters() ?? null,
    workload: o.workload,
    command,
  };
  writeStatsOutput(dir, config, sim.stats, sim.dumps);
  writeFileWhole(join(dir, 'output.txt'), output);
  return {
    case: c.name,
    description: c.description,
    policy: c.policy,
    uniformLatency: c.uniformLatency,
    simulatedCycles,
    simulatedSeconds: simulatedCycles / CPU_CYCLES_PER_SECOND,
    guestSeconds: Number(match[1]),
    checksum: match[2]!,
    missesLocal,
    missesRemote,
    localPercent: misses === 0 ? 0 : (100 * missesLocal) / misses,
    nodeBytes: vector(dump.samples, 'system.memory.bytes'),
    instructions,
    hostSeconds,
  };
}

/** The table of the results: one row per case, time also relative to the ideal machine when it ran. */
export function placementTable(results: readonly PlacementResult[]): string {
  const ideal = results.find((r) => r.uniformLatency);
  const headers = ['case', 'placement', 'workload time (ms)', ...(ideal ? ['vs ideal'] : []), 'region (ms)', 'local misses', 'misses', 'host time (s)'];
  const rows = results.map((r) => [
    r.case,
    r.description,
    (r.guestSeconds * 1000).toFixed(3),
    ...(ideal ? [(r.guestSeconds / ideal.guestSeconds).toFixed(2)] : []),
    (r.simulatedSeconds * 1000).toFixed(3),
    `${r.localPercent.toFixed(1)} %`,
    r.missesLocal + r.missesRemote,
    r.hostSeconds.toFixed(0),
  ]);
  return markdownTable(headers, rows);
}

/** The plot: simulated time and the share of local misses, one bar per case. */
export function placementSvg(results: readonly PlacementResult[], workload: PlacementWorkload): string {
  const label = (r: PlacementResult): string => r.description;
  const subtitle = `raytrace, 8 threads: ${workload.width}x${workload.width} pixels, ${workload.textureBytes / MiB} MiB texture, ${workload.samples} samples per hit`;
  return barChartSvg(`Memory placement on ${PLACEMENT_TOPOLOGY} (4 nodes x 2 CPUs)`, [
    { title: 'Workload time, simulated (ms)', bars: results.map((r) => ({ label: label(r), value: r.guestSeconds * 1000 })), digits: 3 },
    { title: 'Cache misses served by the local node (%)', bars: results.map((r) => ({ label: label(r), value: r.localPercent, text: `${r.localPercent.toFixed(1)} %` })), max: 100 },
  ], subtitle);
}

/**
 * Runs every case, one after the other (each restores the machine booted once), and writes `outDir`: one directory
 * per case (config.json, stats.txt, stats.json, dumps.json, the workload's output), results.json, the
 * table and the plot. The image's checksum must be the same in every case: placement changes time,
 * never results.
 */
export async function runNumaPlacement(o: PlacementOptions): Promise<PlacementResult[]> {
  const cases = o.cases ?? PLACEMENT_CASES;
  mkdirSync(o.outDir, { recursive: true });
  const results: PlacementResult[] = [];
  o.onStatus?.(`booting ${PLACEMENT_TOPOLOGY}`);
  const bootStarted = performance.now();
  const booted = await bootedPlacementMachine(o.guest);
  o.onProgress?.(booted.cached ? `${PLACEMENT_TOPOLOGY}: booted before (boot cache)` : `${PLACEMENT_TOPOLOGY}: booted (${((performance.now() - bootStarted) / 1000).toFixed(0)} s), kept for every case`);
  for (const [i, c] of cases.entries()) {
    o.onProgress?.(`${c.name}: restoring ${PLACEMENT_TOPOLOGY} (${c.description})`);
    o.onStatus?.(`${c.name} (case ${i + 1}/${cases.length}), restoring`);
    const r = await runPlacementCase(o, c, join(o.outDir, c.name), booted.bytes);
    o.onProgress?.(`${c.name}: ${(r.guestSeconds * 1000).toFixed(3)} ms simulated, ${r.localPercent.toFixed(1)} % local misses, checksum ${r.checksum} (host ${r.hostSeconds.toFixed(0)} s)`);
    results.push(r);
  }
  const checksums = new Set(results.map((r) => r.checksum));
  if (checksums.size > 1) {
    throw new ExperimentError(`the cases computed different images (${results.map((r) => `${r.case} ${r.checksum}`).join(', ')}): placement must change time, never results`);
  }
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({ experiment: 'numa-placement', topology: PLACEMENT_TOPOLOGY, memoryBytes: PLACEMENT_MEMORY_BYTES, workload: o.workload, results }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), placementTable(results));
  writeFileWhole(join(o.outDir, PLOT_SVG), placementSvg(results, o.workload));
  return results;
}

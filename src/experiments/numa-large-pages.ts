// The numa-large-pages experiment (docs/experiments.md): what moving and replicating whole 2 MiB groups buys. The
// numa experiment's VM with its pages from its home node in 2 MiB blocks (`placement: home`), running Engineering
// with no policy, with the NUMA policy moving 4 KiB pages only, with block moves and re-coalescing too, and with
// whole-group replication instead.
// Each case runs in numa-case.ts's child process (`NUMA_CASE_MODULE`), its runs one after the other in one boot.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { DEFAULT_POLICY, type NumaPolicyParameters } from '../monitor/numa-policy.js';
import { runCaseInChild } from './child-case.js';
import {
  FULL_WORKLOADS, NUMA_CASE_MODULE, NUMA_TOPOLOGY, NUMA_VCPUS, NUMA_VM_MEMORY, QUICK_WORKLOADS, type CaseRequest, type NumaCaseResult, type NumaRun,
  type NumaWorkload,
} from './numa.js';
import { ExperimentError } from './numa-placement.js';
import type { LargePageReadings } from './numa-large-pages-readings.js';
import { barChartSvg, markdownTable, median, range } from './report.js';

/** Block moves' and re-coalescing's thresholds in the `blocks` case: a group's pages missed on from one node. */
export const LARGE_PAGE_POLICY: Pick<NumaPolicyParameters, 'blockPages' | 'coalescePages'> = { blockPages: 32, coalescePages: 64 };

/** `replicateGroupPages` in the `policy + group replicas` case (the default policy's, docs/numa-policy.md). */
export const GROUP_REPLICA_PAGES = DEFAULT_POLICY.replicateGroupPages > 0 ? DEFAULT_POLICY.replicateGroupPages : 32;

export const CASES = ['home', 'policy', 'policy + blocks', 'policy + group replicas'] as const;

export interface LargePagesOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  outDir: string;
  /** Engineering of the numa experiment's quick run instead of its full one. */
  quick?: boolean;
  repeat?: number;
  /** The policy of both policy cases (default DEFAULT_POLICY); the `blocks` case adds `large`. */
  policy?: NumaPolicyParameters;
  large?: Pick<NumaPolicyParameters, 'blockPages' | 'coalescePages'>;
  /** `replicateGroupPages` of the `policy + group replicas` case (default GROUP_REPLICA_PAGES). */
  groupPages?: number;
  onProgress?: (line: string) => void;
  onStatus?: (text: string) => void;
}

/** A measure's median over the runs and its range. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface LargePagesCase {
  name: string;
  timeMs: Spread;
  localMissPercent: Spread;
  tlbRefills: Spread;
  /** The VM's groups that are one large page at the runs' ends. */
  largeGroupsAfter: Spread;
  /** Large groups scattered, groups moved whole, groups made one block again, 4 KiB pages moved, per run. */
  groupsBroken: Spread;
  blocksMoved: Spread;
  blocksCoalesced: Spread;
  migrated: Spread;
  /** The policy's cycles on blocks (moves and re-coalescing) and on the 4 KiB moves that broke a large group, per run. */
  blockCycles: Spread;
  breakCycles: Spread;
  /** Copy blocks made of groups replicated whole, such groups collapsed, per run; groups replicated whole at the end; their copies' cycles. */
  groupCopies: Spread;
  groupsCollapsed: Spread;
  groupsReplicated: Spread;
  groupCycles: Spread;
  /** Pages of the kernel's code with copies at the runs' ends (a group replicated whole counts its pages), of how many. */
  kernelTextReplicated: Spread;
  kernelTextPages: number;
  monitorCycles: Spread;
  /** The VM's large groups after the warm-up, before the first measured run. */
  largeGroupsBefore: number;
}

/** A run's large-page readings (numa.ts reads them in every run). */
function large(r: NumaRun): LargePageReadings {
  if (r.large === undefined) throw new ExperimentError(`the run with seed ${r.seed} has no large-page readings`);
  return r.large;
}

function spread(runs: readonly NumaRun[], key: (r: NumaRun) => number): Spread {
  const values = runs.map(key);
  const [min, max] = range(values);
  return { median: median(values), min, max };
}

/** The figure's numbers from the cases' runs; checks that every case computed the same per seed. */
export function summarizeLargePages(cases: readonly { result: NumaCaseResult; largeGroupsBefore: number }[]): LargePagesCase[] {
  const first = cases[0]!.result.workloads[0]!.runs;
  first.forEach((run, k) => {
    const sums = new Set(cases.map((c) => c.result.workloads[0]!.runs[k]?.checksum));
    if (sums.size !== 1) throw new ExperimentError(`engineering with seed ${run.seed} computed ${[...sums].join(' and ')} in the cases: a move changed a result`);
  });
  return cases.map(({ result, largeGroupsBefore }) => {
    const runs = result.workloads[0]!.runs;
    return {
      name: result.name, timeMs: spread(runs, (r) => r.timeMs),
      localMissPercent: spread(runs, (r) => (100 * r.missesLocal) / Math.max(1, r.missesLocal + r.missesRemote)),
      tlbRefills: spread(runs, (r) => large(r).tlbRefills), largeGroupsAfter: spread(runs, (r) => large(r).largeGroups),
      groupsBroken: spread(runs, (r) => large(r).groupsBroken), blocksMoved: spread(runs, (r) => large(r).blocksMoved),
      blocksCoalesced: spread(runs, (r) => large(r).blocksCoalesced), migrated: spread(runs, (r) => r.migrated),
      blockCycles: spread(runs, (r) => large(r).blockCycles), breakCycles: spread(runs, (r) => large(r).breakCycles),
      groupCopies: spread(runs, (r) => large(r).groupCopies), groupsCollapsed: spread(runs, (r) => large(r).groupsCollapsed),
      groupsReplicated: spread(runs, (r) => large(r).groupsReplicated), groupCycles: spread(runs, (r) => large(r).groupCycles),
      kernelTextReplicated: spread(runs, (r) => r.kernelTextReplicated), kernelTextPages: runs[0]?.kernelTextPages ?? 0,
      monitorCycles: spread(runs, (r) => r.monitorCycles), largeGroupsBefore,
    };
  });
}

export function largePagesTable(cases: readonly LargePagesCase[]): string {
  const show = (s: Spread, digits = 0): string => (s.min === s.max ? s.median.toFixed(digits) : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`);
  const mega = (s: Spread): Spread => ({ median: s.median / 1e6, min: s.min / 1e6, max: s.max / 1e6 });
  return markdownTable(
    ['case', 'time (ms)', 'local misses (%)', 'TLB refills', 'large groups before → after', 'broken', 'blocks moved', 'coalesced', '4 KiB moves', 'block Mcycles', 'breaking Mcycles',
      'group copies', 'groups collapsed', 'groups replicated at end', 'group Mcycles', 'kernel code pages with copies'],
    cases.map((c) => [
      c.name, show(c.timeMs, 1), show(c.localMissPercent, 1), show(c.tlbRefills), `${c.largeGroupsBefore} → ${show(c.largeGroupsAfter)}`, show(c.groupsBroken),
      show(c.blocksMoved), show(c.blocksCoalesced), show(c.migrated), show(mega(c.blockCycles), 2), show(mega(c.breakCycles), 2),
      show(c.groupCopies), show(c.groupsCollapsed), show(c.groupsReplicated), show(mega(c.groupCycles), 2), `${show(c.kernelTextReplicated)} / ${c.kernelTextPages}`,
    ]));
}

export function largePagesSvg(cases: readonly LargePagesCase[], workload: string): string {
  const panel = (title: string, value: (c: LargePagesCase) => Spread, digits: number) => ({
    title, digits, bars: cases.map((c) => ({ label: c.name, value: value(c).median, text: `${value(c).median.toFixed(digits)} (${value(c).min.toFixed(digits)}–${value(c).max.toFixed(digits)})` })),
  });
  return barChartSvg('Large pages under the NUMA policy: pages from the home node in 2 MiB blocks', [
    panel('time (ms, median of the runs, range)', (c) => c.timeMs, 1),
    panel('TLB refills (all CPUs)', (c) => c.tlbRefills, 0),
    panel('groups that are one large page at the run\'s end', (c) => c.largeGroupsAfter, 0),
    panel('local misses (%)', (c) => c.localMissPercent, 1),
  ], `${workload}; one VM of ${NUMA_VCPUS} vCPUs and ${NUMA_VM_MEMORY / 2 ** 20} MiB on ${NUMA_TOPOLOGY}, timing mode`);
}

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'large-pages.svg';

/** Runs the four cases, each in a child process (numa.ts's), and writes the table, the plot and results.json. */
export async function runNumaLargePages(o: LargePagesOptions): Promise<LargePagesCase[]> {
  mkdirSync(o.outDir, { recursive: true });
  const policy = { ...(o.policy ?? DEFAULT_POLICY), blockPages: 0, coalescePages: 0, replicateGroupPages: 0 };
  const blocks = o.large ?? LARGE_PAGE_POLICY;
  const workload: NumaWorkload = (o.quick ? QUICK_WORKLOADS : FULL_WORKLOADS).find((w) => w.name === 'engineering')!;
  const specs = [
    { name: CASES[0], policy: undefined },
    { name: CASES[1], policy },
    { name: CASES[2], policy: { ...policy, ...blocks } },
    { name: CASES[3], policy: { ...policy, replicateGroupPages: o.groupPages ?? GROUP_REPLICA_PAGES } },
  ];
  const results: { result: NumaCaseResult; largeGroupsBefore: number }[] = [];
  for (const [i, spec] of specs.entries()) {
    o.onProgress?.(`${spec.name}: booting the VM, warming up, then ${workload.name}`);
    o.onStatus?.(`${spec.name} (case ${i + 1}/${specs.length})`);
    const request: CaseRequest = {
      ...spec, uniform: false, placement: 'home', guest: { kernel: o.guest.kernel, initramfs: o.guest.initramfs }, workloads: [workload],
      repeat: o.repeat ?? 3, outDir: o.outDir,
    };
    const result = await runCaseInChild<NumaCaseResult>(NUMA_CASE_MODULE, request, spec.name);
    const runs = result.workloads[0]!.runs;
    const largeGroupsBefore = runs[0] === undefined ? 0 : large(runs[0]).largeGroupsAtStart;
    results.push({ result, largeGroupsBefore });
    o.onProgress?.(`${spec.name}: ${runs.map((r) => `${r.timeMs.toFixed(1)} ms, ${large(r).tlbRefills} TLB refills, ${large(r).largeGroups} large groups`).join('; ')}`);
  }
  const cases = summarizeLargePages(results);
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({
    experiment: 'numa-large-pages', topology: NUMA_TOPOLOGY, vm: { vcpus: NUMA_VCPUS, memoryBytes: NUMA_VM_MEMORY }, placement: 'home',
    workload, policy, large: blocks, groupPages: o.groupPages ?? GROUP_REPLICA_PAGES, repeat: o.repeat ?? 3, cases, runs: results.map((r) => r.result),
  }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), largePagesTable(cases));
  writeFileWhole(join(o.outDir, PLOT_SVG), largePagesSvg(cases, workload.command));
  return cases;
}

// The numa experiment (Disco's figure 8, docs/experiments.md): one VM of 8 vCPUs on flash8 whose memory the
// monitor spreads round-robin over the nodes, as a NUMA-oblivious allocator would; with no policy (`numa`),
// with Disco's policy (`policy`), and on the same machine with uniform latency (`uma`).
// Each case runs in a child process of its own (numa-case.ts). Linux boots once per machine configuration and
// each workload's warm-up once (kept in the boot cache); each measured run restores the warmed-up guest.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { DEFAULT_POLICY, type NumaPolicyParameters } from '../monitor/numa-policy.js';
import { runCaseInChild } from './child-case.js';
import {
  NUMA_CASE_MODULE, NUMA_MACHINE_MEMORY, NUMA_TOPOLOGY, NUMA_VCPUS, NUMA_VM_MEMORY, restorable,
  type CaseRequest, type CaseSpec, type NumaCase, type NumaCaseResult, type NumaRun, type NumaWorkload,
} from './numa-case.js';
import { ExperimentError } from './numa-placement.js';
import { markdownTable, medianBy, range, stackedBarsSvg } from './report.js';

export {
  caseDirectory, kernelText, NUMA_CASE_MODULE, NUMA_MACHINE_MEMORY, NUMA_TOPOLOGY, NUMA_VCPUS, NUMA_VM_MEMORY, restorable, STATS_DIR,
  type CaseRequest, type CaseSpec, type NumaCase, type NumaCaseResult, type NumaRun, type NumaWorkload,
} from './numa-case.js';

const MiB = 2 ** 20;

/**
 * Disco's two: Engineering (independent processes, large private working sets) and Raytrace (threads, a shared
 * scene). Raytrace renders 384 × 384 with 64 texture samples per hit: at 128 × 128 and 16 its numa / uma was
 * 1.26, under the 1.3 from which the gap means something, and a run of 80 ms could not repay copying its
 * texture to every node (docs/experiments.md, "numa").
 */
export const FULL_WORKLOADS: readonly NumaWorkload[] = [
  { name: 'engineering', command: 'engineering -p 8 -m 4M -n 200000' },
  { name: 'raytrace', command: 'raytrace -t 8 -w 384 -s 400 -m 4M -k 64' },
  { name: 'wshare', command: 'wshare -t 8 -g 4 -n 20000' },
];

/**
 * Small enough for the tests. wshare runs about 26 ms: at 2000 updates (11 ms, about one of the policy's
 * intervals) it measured only the policy's first moves, before anything they bought could show.
 */
export const QUICK_WORKLOADS: readonly NumaWorkload[] = [
  { name: 'engineering', command: 'engineering -p 8 -m 1M -n 20000' },
  { name: 'wshare', command: 'wshare -t 8 -g 4 -n 6000' },
];

/**
 * The policy's thresholds multiplied by `factor` (rounded, at least 1; the freeze at least 0): the trigger,
 * the write-shared count, the interval, the move limit and the freeze. `migrateShare` is a share, not a
 * threshold, and stays.
 */
export function scalePolicy(p: NumaPolicyParameters, factor: number): NumaPolicyParameters {
  const scaled = (v: number, min: number): number => Math.max(min, Math.round(v * factor));
  return {
    hotMisses: scaled(p.hotMisses, 1), tlbHotMisses: scaled(p.tlbHotMisses, 1), sharedHotMisses: scaled(p.sharedHotMisses, 0), tlbSharedHotMisses: scaled(p.tlbSharedHotMisses, 0),
    migrateShare: p.migrateShare, writeSharedWrites: scaled(p.writeSharedWrites, 1),
    intervalRounds: scaled(p.intervalRounds, 1), moveLimit: scaled(p.moveLimit, 1), freezeIntervals: scaled(p.freezeIntervals, 0),
    blockPages: p.blockPages, coalescePages: p.coalescePages, replicateGroupPages: p.replicateGroupPages,
  };
}

/** The name of the case of the policy on the TLB-miss signal. */
export const TLB_SIGNAL_CASE = 'policy, TLB misses';
/** The name of the case whose placement the TLB-miss signal makes in fast mode, measured with the policy off. */
export const FAST_PLACEMENT_CASE = 'policy, fast-mode placement';

/**
 * The cases: numa, the policy at each scale (1 is `policy`), with `tlbSignal` the policy on the TLB-miss
 * signal (acting in fast mode too, from the boot on), uma.
 */
export function caseSpecs(policy: NumaPolicyParameters, scales: readonly number[], tlbSignal = false): CaseSpec[] {
  return [
    { name: 'numa', policy: undefined, uniform: false },
    ...scales.map((f) => ({ name: f === 1 ? 'policy' : `policy ×${f}`, policy: scalePolicy(policy, f), uniform: false })),
    ...(tlbSignal ? [
      { name: TLB_SIGNAL_CASE, policy, signal: 'tlb-misses' as const, uniform: false },
      { name: FAST_PLACEMENT_CASE, policy, signal: 'tlb-misses' as const, uniform: false, placeInFastMode: true },
    ] : []),
    { name: 'uma', policy: undefined, uniform: true },
  ];
}

export interface NumaOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  outDir: string;
  workloads: readonly NumaWorkload[];
  /** Measured runs of each workload per case, run k with input seed k (default 3). */
  repeat?: number;
  policy?: NumaPolicyParameters;
  /** The policy's thresholds scaled by each factor, a case each (default [1]; the 0.5, 1, 2). */
  policyScales?: readonly number[];
  /** A case of the policy on the TLB-miss signal too (`TLB_SIGNAL_CASE`). */
  tlbSignal?: boolean;
  onProgress?: (line: string) => void;
  onStatus?: (text: string) => void;
}

/** Per workload, what the figure shows. */
export interface NumaWorkloadResult {
  name: string;
  command: string;
  cases: {
    name: NumaCase; timeMs: number; timeRangeMs: [number, number]; localMissPercent: number; migrated: number; replicated: number; collapsed: number; breakdown: NumaBreakdown;
    /** The kernel's code pages, and how many had copies at the end of the median run (did the policy replicate the kernel's text, as Disco's did?). */
    kernelTextPages: number; kernelTextReplicated: number;
  }[];
  /** (numa − policy) / (numa − uma), of the median times. */
  gapClosed: number;
  /** The same for every policy case (`policy`, `policy ×0.5`, …). */
  gapClosedBy: Record<string, number>;
  /** numa / uma: the gap is meaningful only from 1.3. */
  numaOverUma: number;
}

/** Cycles over the CPUs of the median run, by where they went. */
export interface NumaBreakdown {
  execution: number;
  localStall: number;
  remoteStall: number;
  monitor: number;
}

/** The figure's numbers from the cases' runs; checks that every case computed the same per seed. */
export function summarize(cases: readonly NumaCaseResult[]): NumaWorkloadResult[] {
  const names = cases[0]?.workloads.map((w) => w.name) ?? [];
  return names.map((name, i) => {
    const per = cases.map((c) => ({ name: c.name, runs: c.workloads[i]!.runs }));
    per[0]!.runs.forEach((run, k) => {
      const sums = new Set(per.map((c) => c.runs[k]?.checksum));
      if (sums.size !== 1) throw new ExperimentError(`${name} with seed ${run.seed} computed ${[...sums].join(' and ')} in the cases: the policy changed a result`);
    });
    const rows = per.map((c) => {
      const m = medianBy(c.runs, (r) => r.timeMs);
      const times = c.runs.map((r) => r.timeMs);
      const misses = m.missesLocal + m.missesRemote;
      const execution = m.busyCycles - m.stallLocal - m.stallRemote - m.monitorCycles;
      return {
        name: c.name, timeMs: m.timeMs, timeRangeMs: range(times),
        localMissPercent: misses === 0 ? 100 : (100 * m.missesLocal) / misses, migrated: m.migrated, replicated: m.replicated, collapsed: m.collapsed,
        kernelTextPages: m.kernelTextPages, kernelTextReplicated: m.kernelTextReplicated,
        breakdown: { execution, localStall: m.stallLocal, remoteStall: m.stallRemote, monitor: m.monitorCycles },
      };
    });
    const time = (c: NumaCase): number => rows.find((r) => r.name === c)?.timeMs ?? NaN;
    const closed = (c: NumaCase): number => (time('numa') - time(c)) / (time('numa') - time('uma'));
    return {
      name, command: cases[0]!.workloads[i]!.command, cases: rows,
      gapClosed: closed('policy'), gapClosedBy: Object.fromEntries(rows.filter((r) => r.name.startsWith('policy')).map((r) => [r.name, closed(r.name)])),
      numaOverUma: time('numa') / time('uma'),
    };
  });
}

export function numaTable(results: readonly NumaWorkloadResult[]): string {
  const rows = results.flatMap((w) => w.cases.map((c) => {
    const busy = c.breakdown.execution + c.breakdown.localStall + c.breakdown.remoteStall + c.breakdown.monitor;
    const part = (v: number): string => (busy === 0 ? '0.000' : (v / busy).toFixed(3));
    return [
      w.name, c.name, `${c.timeMs.toFixed(3)} (${c.timeRangeMs[0].toFixed(1)}–${c.timeRangeMs[1].toFixed(1)})`,
      `${c.localMissPercent.toFixed(1)} %`, part(c.breakdown.execution), part(c.breakdown.localStall), part(c.breakdown.remoteStall), part(c.breakdown.monitor),
      String(c.migrated), String(c.replicated), String(c.collapsed), c.name.startsWith('policy') ? w.gapClosedBy[c.name]!.toFixed(2) : '', c.name === 'numa' ? w.numaOverUma.toFixed(2) : '',
    ];
  }));
  const table = markdownTable(['workload', 'case', 'time (ms, range)', 'local misses', 'execution', 'local stall', 'remote stall', 'monitor', 'migrated', 'replicated', 'collapsed', 'gap closed', 'numa / uma'], rows);
  // Disco found the kernel's text hot and replicated it: did this policy?
  const text = results.flatMap((w) => w.cases.filter((c) => c.name.startsWith('policy')).map((c) =>
    `- ${w.name}, ${c.name}: ${c.kernelTextReplicated} of the kernel's ${c.kernelTextPages} code pages had copies at the end of the median run`));
  return text.length === 0 ? table : `${table}\nKernel code replicated:\n\n${text.join('\n')}\n`;
}

export function numaSvg(results: readonly NumaWorkloadResult[]): string {
  const bars = results.flatMap((w) => {
    const numa = w.cases.find((c) => c.name === 'numa')!;
    const norm = numa.breakdown.execution + numa.breakdown.localStall + numa.breakdown.remoteStall + numa.breakdown.monitor;
    return w.cases.map((c) => ({
      label: `${w.name} ${c.name}`,
      segments: [c.breakdown.execution / norm, c.breakdown.localStall / norm, c.breakdown.remoteStall / norm, c.breakdown.monitor / norm],
    }));
  });
  return stackedBarsSvg('NUMA memory management (Disco\'s figure 8): busy cycles normalized to numa, timing mode',
    ['execution', 'local stall', 'remote stall', 'monitor'], bars,
    { reference: 1, subtitle: `one VM of ${NUMA_VCPUS} vCPUs and ${NUMA_VM_MEMORY / MiB} MiB on ${NUMA_TOPOLOGY}, pages round-robin over the nodes` });
}

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'numa.svg';

/** Runs the three cases, each in a child process, and writes the table, the plot and results.json. */
export async function runNuma(o: NumaOptions): Promise<NumaWorkloadResult[]> {
  mkdirSync(o.outDir, { recursive: true });
  const policy = o.policy ?? DEFAULT_POLICY;
  const specs = caseSpecs(policy, o.policyScales ?? [1], o.tlbSignal ?? false);
  if (!specs.some((c) => c.name === 'policy')) throw new ExperimentError('the policy scales must include 1 (the policy itself)');
  const cases: NumaCaseResult[] = [];
  for (const [i, spec] of specs.entries()) {
    const name = spec.name;
    o.onProgress?.(restorable(spec)
      ? `${name}: the VM booted and warmed up once (boot cache), then ${o.workloads.map((w) => w.name).join(', ')}, each run restored`
      : `${name}: booting the VM, warming up, then ${o.workloads.map((w) => w.name).join(', ')}`);
    o.onStatus?.(`${name} (case ${i + 1}/${specs.length})`);
    const request: CaseRequest = {
      ...spec, guest: { kernel: o.guest.kernel, initramfs: o.guest.initramfs }, workloads: [...o.workloads], repeat: o.repeat ?? 3, outDir: o.outDir, restorePerRun: restorable(spec),
    };
    const r = await runCaseInChild<NumaCaseResult>(NUMA_CASE_MODULE, request, name);
    cases.push(r);
    for (const w of r.workloads) {
      const run = (x: NumaRun): string => `${x.timeMs.toFixed(1)} ms (${(100 * x.missesLocal / Math.max(1, x.missesLocal + x.missesRemote)).toFixed(1)} % local` +
        (x.migrated + x.replicated > 0 ? `, ${x.migrated} migrated, ${x.replicated} replicated, kernel code ${x.kernelTextReplicated}/${x.kernelTextPages} pages with copies)` : ')');
      o.onProgress?.(`${name} ${w.name}: ${w.runs.map(run).join('; ')}`);
    }
  }
  const results = summarize(cases);
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({
    experiment: 'numa', topology: NUMA_TOPOLOGY, machineMemory: NUMA_MACHINE_MEMORY, vm: { vcpus: NUMA_VCPUS, memoryBytes: NUMA_VM_MEMORY },
    placement: 'round-robin', policy, policyScales: o.policyScales ?? [1], scaledPolicies: Object.fromEntries(specs.filter((c) => c.policy !== undefined).map((c) => [c.name, c.policy])),
    repeat: o.repeat ?? 3, workloads: results, cases,
  }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), numaTable(results));
  writeFileWhole(join(o.outDir, PLOT_SVG), numaSvg(results));
  return results;
}

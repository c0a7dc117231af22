// The memory experiment (docs/experiments.md, "memory"; Disco's figure 6): 1, 2, 4 and 8 VMs of 128 MiB,
// root on one copy-on-write disk, run pmake with sharing off, with the disk cache (and the kernel), and with
// content sharing too; machine memory at the end of pmake in every VM, split by where the savings came from.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { SHARE_SOURCES, type ShareSource } from '../monitor/sharing-ledger.js';
import { runCaseInChild } from './child-case.js';
import {
  CASE_MODULE, DEFAULT_SHARING_CASES, MEMORY_TOPOLOGY, SETTLE_MS, pagesMiB, type MemoryCaseRequest, type MemoryCaseResult, type PmakeJob, type Sharing, SHARING_CASES, VM_CPUS, VM_MEMORY,
} from './memory-case.js';
import { memoryFigureSvg, memoryTable, overcommitTable } from './memory-report.js';
import { ExperimentError } from './numa-placement.js';
import { median, range } from './report.js';

const MiB = 2 ** 20;
/** Machine memory of the main cases: 8 VMs' worth, so none runs short. */
export const MEMORY_MACHINE = 1024 * MiB;
export const FULL_COUNTS = [1, 2, 4, 8] as const;
export const QUICK_COUNTS = [1, 2] as const;
export const FULL_JOB: PmakeJob = { files: 16, lines: 100 };
export const QUICK_JOB: PmakeJob = { files: 4, lines: 50 };
/** VM i starts its pmake i × 10 ms of simulated time after VM 0. */
export const STAGGER_MS = 10;
/**
 * The content scanner's rate, pages with a machine page looked at per simulated second over all VMs
 * (page-scanner.ts), on CPU 0. Measured on 8 VMs, three runs each (docs/experiments.md): at 60 000 the
 * second pass merged within pmake (45.3 MiB at the end) but pmake was 1.056 × `off`; at 55 000, 53.9 MiB and
 * 1.047, inside both bars (≤ 1.05 × `off`, ≤ 2 × one VM without sharing); 58 000 gave 47.0 MiB and 1.057.
 */
export const SCAN_RATE = 55_000;
/** Its rate while CPU 0 runs no vCPU (page-scanner.ts: the part above SCAN_RATE only in idle cycles, free). */
export const IDLE_SCAN_RATE = 600_000;
/** Whether it merges a page at its first hash that matches (ESX), not only once its hash held still (KSM). */
export const MERGE_ON_FIRST_MATCH = true;
export const SAMPLE_MS = 10;

export interface MemoryOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'disk'>;
  outDir: string;
  counts: readonly number[];
  cases: readonly Sharing[];
  job: PmakeJob;
  /** Runs of every case, run k with seeds 16k + 1 + i in VM i. */
  repeat: number;
  scanRate?: number;
  /** The scanner's rate while its CPU idles (0: off; default IDLE_SCAN_RATE), and its merge rule (default MERGE_ON_FIRST_MATCH). */
  idleScanRate?: number;
  mergeOnFirstMatch?: boolean;
  /** Extra runs of `content` at the largest count with the scanner's cost table scaled by each factor. */
  scanCostScales?: readonly number[];
  /** How many of the `repeat` runs have those extra runs (default all). */
  scaleRuns?: number;
  /** Machine memory (bytes) for the overcommit case (the largest count, `off` and `content`); none without it. */
  overcommitMemory?: number;
  /** Take a case's run from `outDir/runs/` when an earlier invocation left it there (a long run cut short). */
  resume?: boolean;
  /** Cases run at once, each in its own process (default 1). */
  jobs?: number;
  onProgress?: (line: string) => void;
  onStatus?: (text: string) => void;
}

/** One line of the figure: a count of VMs and a way of sharing, over its runs. */
export interface MemoryCaseSummary {
  vms: number;
  sharing: Sharing;
  scanCostScale: number;
  /** Machine memory in use at the end of pmake in every VM: median over the runs, and range. */
  machineMiB: number;
  machineMiBRange: [number, number];
  /** Each VM's pmake time (simulated, as the guest measured it), averaged over the VMs: median and range over the runs. */
  pmakeMs: number;
  pmakeMsRange: [number, number];
  /** Run by run, this pmake time over `off`'s with the same seeds: median and range (undefined without `off`). */
  pmakeVsOff?: number;
  pmakeVsOffRange?: [number, number];
  /** The median run's split (MiB): what the VMs map, private pages, one copy of each shared page, pages only the cache holds, and the savings by source. */
  mappedMiB: number;
  privateMiB: number;
  sharedMiB: number;
  cacheOnlyMiB: number;
  savedMiB: Record<ShareSource, number>;
  peakMiB: number;
  cowBreaks: number;
  /** The median run's scanner: its cycles, those charged to vCPUs, and those of the work its idle rate added (in idle time). */
  scannerCycles: number;
  scannerCharged: number;
  scannerIdleCycles: number;
  /** `content` and `report`: machine memory once every VM slept SETTLE_MS after pmake (not the figure). */
  settledMiB?: number;
  settledMiBRange?: [number, number];
  runs: MemoryCaseResult[];
}

export interface MemoryResults {
  cases: MemoryCaseSummary[];
  /** Per way of sharing: (M_max − M_1) / (max − 1), MiB per extra VM. */
  perExtraVm: Partial<Record<Sharing, number>>;
  overcommit?: { machineMiB: number; off: MemoryCaseResult; content: MemoryCaseResult };
}

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'memory.svg';

const meanPmake = (r: MemoryCaseResult): number => {
  const done = r.outcomes.filter((o) => o.pmakeMs !== null).map((o) => o.pmakeMs!);
  return done.reduce((a, b) => a + b, 0) / done.length;
};

function summarize(runs: MemoryCaseResult[], scanCostScale: number, off: MemoryCaseResult[] | undefined): MemoryCaseSummary {
  const machine = runs.map((r) => pagesMiB(r.end.inUse));
  const settled = runs.flatMap((r) => (r.settled === undefined || r.settled === null ? [] : [pagesMiB(r.settled.inUse)]));
  const times = runs.map(meanPmake);
  const m = median(machine);
  const mid = runs[machine.indexOf(m)]!;
  const ratios = off === undefined ? undefined : runs.map((r) => {
    const base = off.find((o) => o.seedBase === r.seedBase);
    if (base === undefined) throw new ExperimentError(`no run of off with seeds from ${r.seedBase}`);
    return meanPmake(r) / meanPmake(base);
  });
  return {
    vms: mid.vms, sharing: mid.sharing, scanCostScale, machineMiB: m, machineMiBRange: range(machine),
    pmakeMs: median(times), pmakeMsRange: range(times),
    ...(ratios === undefined ? {} : { pmakeVsOff: median(ratios), pmakeVsOffRange: range(ratios) }),
    mappedMiB: pagesMiB(mid.end.mapped), privateMiB: pagesMiB(mid.end.privatePages), sharedMiB: pagesMiB(mid.end.sharedPages),
    cacheOnlyMiB: pagesMiB(mid.end.cacheOnly),
    savedMiB: Object.fromEntries(SHARE_SOURCES.map((s) => [s, pagesMiB(mid.end.savedBy[s])])) as Record<ShareSource, number>,
    peakMiB: pagesMiB(mid.peakInUse), cowBreaks: mid.cowBreaks, scannerCycles: mid.scan?.cycles ?? 0,
    scannerCharged: mid.scan?.cyclesCharged ?? 0, scannerIdleCycles: mid.scan?.idleCycles ?? 0,
    ...(settled.length === runs.length ? { settledMiB: median(settled), settledMiBRange: range(settled) } : {}),
    runs,
  };
}

/**
 * Every VM's pmake output must be the one `off` computed with the same seed, and VMs with different seeds
 * must have computed different ones (VMs that did not differ would prove nothing).
 */
export function checkOutputs(results: readonly MemoryCaseResult[]): void {
  const bySeed = new Map<number, Map<string, string>>();
  for (const r of results) {
    for (const o of r.outcomes) {
      if (o.checksum === null) continue;
      const seen = bySeed.get(o.seed) ?? new Map<string, string>();
      seen.set(`${r.vms} VMs ${r.sharing}`, o.checksum);
      bySeed.set(o.seed, seen);
    }
  }
  const sums = new Map<string, number>();
  for (const [seed, seen] of bySeed) {
    const values = new Set(seen.values());
    if (values.size > 1) throw new ExperimentError(`pmake with seed ${seed} computed different results: ${[...seen].map(([c, v]) => `${c}: ${v}`).join(', ')}`);
    const sum = [...values][0]!;
    if (sums.has(sum)) throw new ExperimentError(`pmake with seeds ${sums.get(sum)} and ${seed} computed the same result ${sum}: the VMs did not differ`);
    sums.set(sum, seed);
  }
}

export async function runMemory(o: MemoryOptions): Promise<MemoryResults> {
  const scanRate = o.scanRate ?? SCAN_RATE;
  const idleScanRate = o.idleScanRate ?? IDLE_SCAN_RATE;
  const mergeOnFirstMatch = o.mergeOnFirstMatch ?? MERGE_ON_FIRST_MATCH;
  const request = (count: number, sharing: Sharing, run: number, extra: Partial<MemoryCaseRequest> = {}): MemoryCaseRequest => ({
    guest: { kernel: o.guest.kernel, disk: o.guest.disk }, count, sharing, machineMemory: MEMORY_MACHINE, job: o.job, seedBase: 16 * run + 1,
    staggerMs: STAGGER_MS, scanRate, scanCostScale: 1, idleScanRate, mergeOnFirstMatch, sampleMs: SAMPLE_MS, ...extra,
  });
  const largest = Math.max(...o.counts);
  const scales = (o.scanCostScales ?? []).filter((f) => f !== 1);
  const plan: { label: string; request: MemoryCaseRequest; kind: 'main' | 'scale' | 'overcommit' }[] = [];
  for (let run = 1; run <= o.repeat; run++) {
    for (const sharing of o.cases) for (const count of o.counts) plan.push({ label: `${count} VMs, ${sharing}, run ${run}`, request: request(count, sharing, run), kind: 'main' });
    if (o.cases.includes('content') && run <= (o.scaleRuns ?? o.repeat)) {
      for (const scale of scales) {
        plan.push({ label: `${largest} VMs, content, scanner costs x${scale}, run ${run}`, request: request(largest, 'content', run, { scanCostScale: scale }), kind: 'scale' });
      }
    }
  }
  if (o.overcommitMemory !== undefined) {
    for (const sharing of ['off', 'content'] as const) {
      plan.push({ label: `${largest} VMs in ${o.overcommitMemory / MiB} MiB, ${sharing}`, request: request(largest, sharing, 1, { machineMemory: o.overcommitMemory, allowStopped: true }), kind: 'overcommit' });
    }
  }
  mkdirSync(join(o.outDir, 'runs'), { recursive: true });
  // Cases are independent child processes whose figures do not depend on the host's speed: `jobs` of them
  // may run at once. Results keep the plan's order.
  const results = new Array<MemoryCaseResult>(plan.length);
  let next = 0;
  let finished = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.length) {
      const i = next++;
      const step = plan[i]!;
      o.onStatus?.(`${step.label} (case ${i + 1}/${plan.length}, ${finished} done)`);
      const file = join(o.outDir, 'runs', `${step.label.replace(/[^a-z0-9.]+/gi, '-')}.json`);
      const kept = o.resume === true && existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) as MemoryCaseResult : undefined;
      const result = kept ?? await runCaseInChild<MemoryCaseResult>(CASE_MODULE, step.request, step.label);
      finished++;
      const completed = result.outcomes.filter((v) => v.checksum !== null).length;
      o.onProgress?.(`${step.label}${kept === undefined ? '' : ' (kept from an earlier invocation)'}: ${pagesMiB(result.end.inUse).toFixed(1)} MiB in use at the end (peak ${pagesMiB(result.peakInUse).toFixed(1)}), ` +
        `${result.settled === undefined || result.settled === null ? '' : `${pagesMiB(result.settled.inUse).toFixed(1)} MiB ${SETTLE_MS / 1000} s later, `}pmake ${meanPmake(result).toFixed(1)} ms, ${completed}/${result.vms} VMs finished, ${result.hostSeconds.toFixed(0)} s host`);
      if (kept === undefined) writeFileWhole(file, sortedJson(result));
      results[i] = result;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs ?? 1, plan.length)) }, worker));
  const done = plan.map((step, i) => ({ ...step, result: results[i]! }));
  checkOutputs(done.map((d) => d.result));
  const main = done.filter((d) => d.kind === 'main').map((d) => d.result);
  const off = (count: number): MemoryCaseResult[] | undefined => {
    const runs = main.filter((r) => r.sharing === 'off' && r.vms === count);
    return runs.length === 0 ? undefined : runs;
  };
  const cases: MemoryCaseSummary[] = [];
  for (const sharing of o.cases) {
    for (const count of o.counts) cases.push(summarize(main.filter((r) => r.sharing === sharing && r.vms === count), 1, off(count)));
  }
  for (const scale of scales) {
    const runs = done.filter((d) => d.kind === 'scale' && d.request.scanCostScale === scale).map((d) => d.result);
    if (runs.length > 0) cases.push(summarize(runs, scale, off(largest)));
  }
  const smallest = Math.min(...o.counts);
  const perExtraVm: Partial<Record<Sharing, number>> = {};
  if (largest > smallest) {
    for (const sharing of o.cases) {
      const at = (n: number): number => cases.find((c) => c.sharing === sharing && c.vms === n && c.scanCostScale === 1)!.machineMiB;
      perExtraVm[sharing] = (at(largest) - at(smallest)) / (largest - smallest);
    }
  }
  const over = done.filter((d) => d.kind === 'overcommit').map((d) => d.result);
  const summary: MemoryResults = {
    cases, perExtraVm,
    ...(over.length === 2 ? { overcommit: { machineMiB: o.overcommitMemory! / MiB, off: over[0]!, content: over[1]! } } : {}),
  };
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({
    experiment: 'memory', topology: MEMORY_TOPOLOGY, machineMemory: MEMORY_MACHINE, vmMemory: VM_MEMORY, vcpus: VM_CPUS, job: o.job, repeat: o.repeat,
    staggerMs: STAGGER_MS, scanRate, idleScanRate, mergeOnFirstMatch, sampleMs: SAMPLE_MS,
    cases: cases.map(({ runs, ...c }) => ({ ...c, runs: runs.map((r) => ({ ...r, series: undefined })) })),
    perExtraVm, overcommit: summary.overcommit,
  }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), memoryTable(summary) + (summary.overcommit === undefined ? '' : `\n${overcommitTable(summary.overcommit)}`));
  writeFileWhole(join(o.outDir, PLOT_SVG), memoryFigureSvg(summary));
  return summary;
}

export { DEFAULT_SHARING_CASES, SHARING_CASES };

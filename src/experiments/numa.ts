// The numa experiment (Disco's figure 8, docs/experiments.md): one VM of 8 vCPUs on flash8 whose memory the
// monitor spreads round-robin over the nodes, as a NUMA-oblivious allocator would; with no policy (`numa`),
// with Disco's policy (`policy`), and on the same machine with uniform latency (`uma`).
// Each case runs in a child process of its own (child-case.ts). Linux boots once per machine configuration and
// each workload's warm-up once (kept in the boot cache); each measured run restores the warmed-up guest.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RAM_BASE } from '../board/address-map.js';
import { topologyPreset } from '../board/topology.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { cachedSession, contentHash } from '../guest/boot-cache.js';
import { MonitorSession } from '../guest/monitor-session.js';
import { sortedJson, writeFileWhole, writeStatsOutput } from '../host/stats-output.js';
import { accountVm, registerMonitorStats } from '../monitor/accounting.js';
import { StatsRegistry } from '../timing/stats.js';
import { DEFAULT_POLICY, type NumaPolicyParameters, type PolicySignal } from '../monitor/numa-policy.js';
import { runCaseInChild, serveCase } from './child-case.js';
import { ExperimentError } from './numa-placement.js';
import { parseResult, turnAslrOff } from './overhead.js';
import { markdownTable, medianBy, range, stackedBarsSvg } from './report.js';
import { largePageReadings, type LargePageReadings } from './numa-large-pages-readings.js';
import type { Placement } from '../monitor/pmap.js';

const MiB = 2 ** 20;
const PAGE_BYTES = 4096;
export const NUMA_TOPOLOGY = 'flash8';
/** The machine: flash8's 8 nodes of one CPU, 256 MiB each; the VM has 8 vCPUs and half of it. */
export const NUMA_MACHINE_MEMORY = 2048 * MiB;
export const NUMA_VM_MEMORY = 1024 * MiB;
export const NUMA_VCPUS = 8;

export interface NumaWorkload {
  name: string;
  /** The guest command without its seed; run k adds `-S k`. */
  command: string;
}

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

/** `numa`, `policy`, `policy ×0.5` (the policy's thresholds scaled), …, `uma`. */
export type NumaCase = string;

/** A case to run: its name, the policy (none for numa and uma), and whether every miss costs the local latency. */
interface CaseSpec {
  name: NumaCase;
  policy: NumaPolicyParameters | undefined;
  /** What the policy counts (default cache misses). */
  signal?: PolicySignal;
  uniform: boolean;
  /**
   * Each measured run is preceded by the same run in fast mode with the policy acting; the policy is then off
   * for the timing run, which measures the placement fast mode produced.
   */
  placeInFastMode?: boolean;
  /** Where the VM's pages come from (default round-robin: the figure's baseline); numa-large-pages.ts runs `home`. */
  placement?: Placement;
  /**
   * Each measured run restores the guest booted and warmed up once (`restoredRuns`), instead of following the
   * case's earlier runs in one boot. Only for a policy on the cache-miss signal or none (`restorable`).
   */
  restorePerRun?: boolean;
}

/**
 * Whether a case's runs can each restore a guest booted and warmed up once, the same for every such case. On
 * the cache-miss signal the policy acts in timing mode only, so a boot and warm-up in fast mode are the same
 * with or without it, and with any latencies: it and the timing model are given on restore. On the TLB-miss
 * signal it acts from the boot on, and its counters cannot be saved yet (monitor-snapshot.ts).
 */
export function restorable(spec: Pick<CaseSpec, 'signal'>): boolean {
  return (spec.signal ?? 'cache-misses') === 'cache-misses';
}

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

/** One measured run: a workload with one seed in one case. */
export interface NumaRun {
  seed: number;
  /** The workload's own elapsed time from the guest clock (simulated), ms. */
  timeMs: number;
  checksum: string;
  /** Cycles over the 8 CPUs during the run. */
  busyCycles: number;
  stallLocal: number;
  stallRemote: number;
  monitorCycles: number;
  missesLocal: number;
  missesRemote: number;
  migrated: number;
  replicated: number;
  /** Replicated pages whose copies went (a write to them, mostly). */
  collapsed: number;
  hostSeconds: number;
  /** Pages of the guest kernel's code (/proc/iomem's "Kernel code"), and how many had copies at the run's end. */
  kernelTextPages: number;
  kernelTextReplicated: number;
  /** TLB refills and large pages during the run (numa-large-pages.ts), and the large groups at its end. */
  large?: LargePageReadings;
}

/** This module, for experiments that run its cases in their own way (numa-large-pages.ts). */
export const NUMA_CASE_MODULE = import.meta.url;

export interface NumaCaseResult {
  name: NumaCase;
  workloads: { name: string; command: string; runs: NumaRun[] }[];
  bootHostSeconds: number;
}

export interface CaseRequest extends CaseSpec {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  workloads: NumaWorkload[];
  repeat: number;
  /** Where the case's statistics go: `STATS_DIR/<caseDirectory(name)>/` (config.json, stats.txt, stats.json). */
  outDir: string;
}

/** The directory of the experiment's output holding each case's statistics. */
export const STATS_DIR = 'stats';

/** A case's name as a directory name: `policy ×0.5` → `policy-x0.5`, `policy, TLB misses` → `policy-tlb-misses`. */
export function caseDirectory(name: string): string {
  return name.toLowerCase().replace(/×/g, 'x').replace(/[^a-z0-9.]+/g, '-').replace(/^-|-$/g, '');
}

/**
 * The guest-physical page numbers (from the VM's RAM base) of the kernel's code, from /proc/iomem's
 * "Kernel code" line (Linux on RISC-V lists its image's sections under System RAM).
 */
export function kernelText(iomem: string): number[] {
  const m = /^\s*([0-9a-f]+)-([0-9a-f]+) : Kernel code$/m.exec(iomem);
  if (m === null) throw new ExperimentError(`the guest's /proc/iomem has no "Kernel code" line:\n${iomem.slice(0, 400)}`);
  const [first, last] = [Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16)];
  if (first < RAM_BASE || last < first) throw new ExperimentError(`the guest's kernel code is at ${m[1]}-${m[2]}, not in RAM`);
  const from = Math.floor((first - RAM_BASE) / PAGE_BYTES);
  return Array.from({ length: Math.floor((last - RAM_BASE) / PAGE_BYTES) - from + 1 }, (_, i) => from + i);
}

/** The case's machine, its VM and the monitor's options that decide the boot (not timing or policy, given later). */
function caseMachine(request: CaseRequest) {
  const { config, latencies } = topologyPreset(NUMA_TOPOLOGY, NUMA_MACHINE_MEMORY, { uniformLatency: request.uniform });
  const kernel = readFileSync(request.guest.kernel);
  const initrd = readFileSync(request.guest.initramfs);
  return { config, latencies, kernel, initrd, vms: [{ name: 'vm', vcpus: NUMA_VCPUS, memoryBytes: NUMA_VM_MEMORY }], placement: request.placement ?? 'round-robin' };
}

/** What a measured run reads before and after: cycles, the model's stalls and misses, the policy's moves, the kernel text's copies. */
function readings(session: MonitorSession, text: readonly number[]) {
  const monitor = session.monitor;
  const vm = session.vm('vm');
  const model = monitor.timingModel!;
  const sum = (a: ArrayLike<number>): number => Array.from(a).reduce((x, y) => x + y, 0);
  const t = accountVm(monitor, vm).total;
  return {
    busy: t.guestUserCycles + t.guestKernelCycles + t.monitorCycles, monitor: t.monitorCycles,
    stallLocal: sum(model.stallLocal), stallRemote: sum(model.stallRemote),
    missesLocal: sum(model.missesLocal), missesRemote: sum(model.missesRemote),
    migrated: monitor.policy === undefined ? 0 : sum(monitor.policy.counts.migratedTo),
    replicated: monitor.policy === undefined ? 0 : sum(monitor.policy.counts.replicatedTo),
    collapsed: vm.pmap.collapses, large: largePageReadings(monitor, vm),
    kernelTextReplicated: text.filter((g) => vm.pmap.replicasOf(g) !== undefined).length,
  };
}

type Readings = ReturnType<typeof readings>;

function numaRun(seed: number, r: { guestSeconds: number; checksum: string }, before: Readings, after: Readings, hostSeconds: number, textPages: number): NumaRun {
  return {
    seed, timeMs: r.guestSeconds * 1000, checksum: r.checksum, busyCycles: after.busy - before.busy, monitorCycles: after.monitor - before.monitor,
    stallLocal: after.stallLocal - before.stallLocal, stallRemote: after.stallRemote - before.stallRemote,
    missesLocal: after.missesLocal - before.missesLocal, missesRemote: after.missesRemote - before.missesRemote,
    migrated: after.migrated - before.migrated, replicated: after.replicated - before.replicated, collapsed: after.collapsed - before.collapsed, hostSeconds,
    kernelTextPages: textPages, kernelTextReplicated: after.kernelTextReplicated,
    large: largePageReadings.since(before.large, after.large),
  };
}

/** Runs `command` in the VM and reads its RESULT line. */
async function execResult(session: MonitorSession, request: CaseRequest, command: string): Promise<{ guestSeconds: number; checksum: string }> {
  const r = await session.exec('vm', command);
  return parseResult(`\`${command}\``, `in the ${request.name} case`, r.status, r.output);
}

/** The monitor's statistics at the end of the case, at an idle moment: two runs of a case write the same bytes. */
async function writeCaseStats(session: MonitorSession, request: CaseRequest): Promise<void> {
  await session.atIdle('vm', () => {
    const stats = new StatsRegistry();
    registerMonitorStats(stats, session.monitor);
    const { outDir: _, guest: __, ...spec } = request;
    writeStatsOutput(join(request.outDir, STATS_DIR, caseDirectory(request.name)), {
      experiment: 'numa', case: spec, topology: NUMA_TOPOLOGY, machineMemory: NUMA_MACHINE_MEMORY, vm: { vcpus: NUMA_VCPUS, memoryBytes: NUMA_VM_MEMORY }, placement: request.placement ?? 'round-robin',
    }, stats);
  });
}

/**
 * One case whose runs restore (`restorePerRun`). Linux boots in fast mode with neither timing model nor policy,
 * turns ASLR off and lists /proc/iomem (kept in the boot cache: the same for every such case); per workload,
 * that is restored and the warm-up run (kept too); each measured run restores the warmed-up guest with the
 * case's timing model (caches cold, miss counters zero) and policy (fresh, as a policy that had not yet
 * acted in timing mode), runs its seed in timing mode, and is ended. The case's statistics are those of its
 * last run.
 */
async function restoredRuns(request: CaseRequest): Promise<NumaCaseResult> {
  const m = caseMachine(request);
  const started = performance.now();
  const key = { experiment: 'numa', kernel: contentHash(m.kernel), initrd: contentHash(m.initrd), config: m.config, vms: m.vms, monitor: { placement: m.placement } };
  const session = (restore?: Uint8Array, measured = false): Promise<MonitorSession> => MonitorSession.boot({
    kernel: m.kernel, initrd: m.initrd, config: m.config, vms: m.vms, restore,
    monitor: { placement: m.placement, ...(measured ? { timing: { latencies: m.latencies }, policy: request.policy } : {}) },
  });
  const booted = (await cachedSession({ ...key, step: 'ASLR off' }, () => session(), async (s) => {
    await turnAslrOff((command) => s.exec('vm', command), `in the ${request.name} case's VM`);
    kernelText((await s.exec('vm', 'cat /proc/iomem')).output);
  })).bytes;
  const warm: Uint8Array[] = [];
  for (const w of request.workloads) {
    warm.push((await cachedSession({ ...key, step: { warm: w.command } }, () => session(booted), async (s) => { await execResult(s, request, w.command); })).bytes);
  }
  const bootHostSeconds = (performance.now() - started) / 1000;
  const workloads: NumaCaseResult['workloads'] = [];
  for (const [i, w] of request.workloads.entries()) {
    const runs: NumaRun[] = [];
    for (let seed = 1; seed <= request.repeat; seed++) {
      const s = await session(warm[i], true);
      try {
        const before = await s.atIdle('vm', () => {
          s.monitor.setExecutionMode('timing');
          return readings(s, []);
        });
        const runStarted = performance.now();
        const r = await execResult(s, request, `${w.command} -S ${seed}`);
        const hostSeconds = (performance.now() - runStarted) / 1000;
        // Which of the VM's pages had copies at the run's end; the kernel's code pages are listed afterwards,
        // in fast mode, where the policy on the cache-miss signal does nothing.
        const [after, copied] = await s.atIdle('vm', () => {
          s.monitor.setExecutionMode('fast');
          const vm = s.vm('vm');
          return [readings(s, []), new Set(Array.from({ length: vm.pmap.pages }, (_, g) => g).filter((g) => vm.pmap.replicasOf(g) !== undefined))] as const;
        });
        const text = kernelText((await s.exec('vm', 'cat /proc/iomem')).output);
        runs.push(numaRun(seed, r, before, { ...after, kernelTextReplicated: text.filter((g) => copied.has(g)).length }, hostSeconds, text.length));
        if (i === request.workloads.length - 1 && seed === request.repeat) await writeCaseStats(s, request);
      } finally {
        await s.kill();
      }
    }
    workloads.push({ name: w.name, command: w.command, runs });
  }
  return { name: request.name, workloads, bootHostSeconds };
}

/**
 * One case in this process, its runs one after the other in one boot: boot, turn ASLR off, a warm-up run of
 * each workload in fast mode, then the measured runs in timing mode. For cases that cannot restore (the
 * TLB-miss signal), and for numa-large-pages.ts, whose cases measure what the runs leave to the next.
 */
async function followingRuns(request: CaseRequest): Promise<NumaCaseResult> {
  const m = caseMachine(request);
  const started = performance.now();
  const session = await MonitorSession.boot({
    kernel: m.kernel, initrd: m.initrd, config: m.config, vms: m.vms,
    monitor: { timing: { latencies: m.latencies }, placement: m.placement, policy: request.policy, policySignal: request.signal },
  });
  try {
    const monitor = session.monitor;
    const exec = (command: string): Promise<{ guestSeconds: number; checksum: string }> => execResult(session, request, command);
    await turnAslrOff((command) => session.exec('vm', command), `in the ${request.name} case's VM`);
    const text = kernelText((await session.exec('vm', 'cat /proc/iomem')).output);
    for (const w of request.workloads) await exec(w.command);
    const bootHostSeconds = (performance.now() - started) / 1000;
    const workloads: NumaCaseResult['workloads'] = [];
    for (const w of request.workloads) {
      const runs: NumaRun[] = [];
      for (let seed = 1; seed <= request.repeat; seed++) {
        if (request.placeInFastMode === true) await exec(`${w.command} -S ${seed}`);
        const before = await session.atIdle('vm', () => {
          if (request.placeInFastMode === true) monitor.setPolicy(undefined);
          monitor.setExecutionMode('timing');
          return readings(session, text);
        });
        const runStarted = performance.now();
        const r = await exec(`${w.command} -S ${seed}`);
        const hostSeconds = (performance.now() - runStarted) / 1000;
        const after = await session.atIdle('vm', () => {
          monitor.setExecutionMode('fast');
          if (request.placeInFastMode === true) monitor.setPolicy(request.policy);
          return readings(session, text);
        });
        runs.push(numaRun(seed, r, before, after, hostSeconds, text.length));
      }
      workloads.push({ name: w.name, command: w.command, runs });
    }
    await writeCaseStats(session, request);
    return { name: request.name, workloads, bootHostSeconds };
  } finally {
    await session.kill();
  }
}

/** One case in this process. */
function runCase(request: CaseRequest): Promise<NumaCaseResult> {
  return request.restorePerRun === true ? restoredRuns(request) : followingRuns(request);
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
    const r = await runCaseInChild<NumaCaseResult>(import.meta.url, request, name);
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

serveCase(import.meta.url, runCase);

// One case of the numa experiment (numa.ts, docs/experiments.md) in a child process of its own (child-case.ts):
// the machine, the VM, what a case asks for and what it measured, and the two ways a case runs: each measured run
// restored from a guest booted and warmed up once (kept in the boot cache), or the runs one after the other in
// one boot (a policy on the TLB-miss signal, which cannot be saved; numa-large-pages.ts).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RAM_BASE } from '../board/address-map.js';
import { topologyPreset } from '../board/topology.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { cachedSession, contentHash } from '../guest/boot-cache.js';
import { MonitorSession } from '../guest/monitor-session.js';
import { writeStatsOutput } from '../host/stats-output.js';
import { accountVm, registerMonitorStats } from '../monitor/accounting.js';
import type { NumaPolicyParameters, PolicySignal } from '../monitor/numa-policy.js';
import type { Placement } from '../monitor/pmap.js';
import { StatsRegistry } from '../timing/stats.js';
import { serveCase } from './child-case.js';
import { largePageReadings, type LargePageReadings } from './numa-large-pages-readings.js';
import { ExperimentError } from './numa-placement.js';
import { parseResult, turnAslrOff } from './overhead.js';

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

/** `numa`, `policy`, `policy ×0.5` (the policy's thresholds scaled), …, `uma`. */
export type NumaCase = string;

/** A case to run: its name, the policy (none for numa and uma), and whether every miss costs the local latency. */
export interface CaseSpec {
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

/** This module, the child process's entry (numa.ts, and numa-large-pages.ts, which runs its cases its own way). */
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

serveCase(import.meta.url, runCase);

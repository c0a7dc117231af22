// The fixed-work experiment (Disco's figure 7, docs/experiments.md): one pmake job of fixed size, split over
// 1, 2, 4 and 8 VMs on the 8-CPU flash8 machine, against the same job on bare 8-CPU Linux; the machine time
// of the run normalized to bare, split into guest user, guest kernel, monitor and idle cycles over all CPUs.
// Each case runs in a child process of its own (as many-vms does): its host memory and the host's garbage
// collection of the previous case's machines do not weigh on the next, and a case that fails ends its
// process, not the experiment's. Each case boots and warms up once (kept in the boot cache), and each measured
// run restores the warmed-up machine.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { configureTiming, setExecutionMode } from '../board/timing-mode.js';
import { CPU_CYCLES_PER_SECOND, topologyPreset } from '../board/topology.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { cachedSession, contentHash, type SnapshotSource } from '../guest/boot-cache.js';
import { MonitorSession } from '../guest/monitor-session.js';
import { GuestSession } from '../guest/session.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { accountVm } from '../monitor/accounting.js';
import { runCaseInChild as runChild, serveCase } from './child-case.js';
import { ExperimentError } from './numa-placement.js';
import { hartCycles, minus, turnAslrOff, type Breakdown } from './overhead.js';
import { markdownTable, median, medianBy, stackedBarsSvg } from './report.js';

const MiB = 2 ** 20;
export const FIXED_WORK_TOPOLOGY = 'flash8';
/** The machine's memory, bare Linux's, and what the VMs of a case share equally. */
export const FIXED_WORK_MEMORY = 1024 * MiB;
export const MACHINE_CPUS = 8;
/** VM counts: 1 is one VM with every CPU as a vCPU, 8 is eight VMs of one vCPU. */
export const FULL_COUNTS = [1, 2, 4, 8] as const;

/** The whole job: `pmake -j J -n files -l lines`, J the CPUs (or vCPUs) of whoever runs it. */
export interface PmakeJob {
  files: number;
  lines: number;
}

export const FULL_JOB: PmakeJob = { files: 64, lines: 200 };
/** The reference size of guest/workloads/checks.txt (`pmake -j 2 -n 8 -l 100`): 8 files, one per VM of 8. */
export const QUICK_JOB: PmakeJob = { files: 8, lines: 100 };

/** One case: bare Linux on the whole machine, or `vms` VMs of MACHINE_CPUS / vms vCPUs and 1 GiB / vms each. */
export interface CaseSpec {
  /** 0: bare Linux. */
  vms: number;
  /** The command each VM (or bare Linux) runs; all the VMs of a case run the same one. */
  command: string;
  vcpus: number;
  memoryBytes: number;
  /** The files each runs: the job's files / vms. */
  files: number;
}

export function pmakeCommand(jobs: number, files: number, lines: number): string {
  return `pmake -j ${jobs} -n ${files} -l ${lines}`;
}

/**
 * The job split over `vms` VMs (0: bare Linux, the whole job): each VM gets files / vms files, -j its
 * vCPUs, memory / vms. Throws if the split is not exact: the total work must not change from case to case.
 */
export function splitJob(job: PmakeJob, vms: number): CaseSpec {
  if (!Number.isInteger(vms) || vms < 0 || vms > MACHINE_CPUS || (vms > 0 && MACHINE_CPUS % vms !== 0)) {
    throw new ExperimentError(`${vms} VMs do not divide the machine's ${MACHINE_CPUS} CPUs`);
  }
  const k = Math.max(1, vms);
  if (!Number.isInteger(job.files) || job.files < 1 || job.files % k !== 0) {
    throw new ExperimentError(`${job.files} files do not split evenly over ${k} VMs: the total work would change`);
  }
  const vcpus = MACHINE_CPUS / k;
  const files = job.files / k;
  const memoryBytes = FIXED_WORK_MEMORY / k;
  if (files * k !== job.files || vcpus * k !== MACHINE_CPUS || memoryBytes * k !== FIXED_WORK_MEMORY) {
    throw new ExperimentError(`the split of ${job.files} files over ${k} VMs is not exact`);
  }
  return { vms, command: pmakeCommand(vcpus, files, job.lines), vcpus, memoryBytes, files };
}

/** `bare`, `1 VM × 8`, `4 VMs × 2`: how a case is named in tables and progress lines. */
export function caseName(spec: Pick<CaseSpec, 'vms' | 'vcpus'>): string {
  return spec.vms === 0 ? 'bare' : `${spec.vms} VM${spec.vms === 1 ? '' : 's'} × ${spec.vcpus}`;
}


export interface PmakeRun {
  /** pmake's own elapsed time, from the guest clock. */
  guestMs: number;
  checksum: string;
  /** Bytes pmake linked: the size of the work's output. */
  linkedBytes: number;
}

/** One measured run of a case: every pmake of it with input seed `seed` (`-S`). */
export interface SeedRun {
  seed: number;
  /** Machine time from starting every pmake at once to the last one's end, read at machine idle moments. */
  machineCycles: number;
  /** Cycles summed over the machine's CPUs during the run (idle: under the monitor also ready time). */
  breakdown: Breakdown;
  /** One per VM (one for bare Linux). */
  runs: PmakeRun[];
  runHostSeconds: number;
}

/** A case: its measured run of median machine time (the fields of SeedRun), and every seed's run. */
export interface FixedWorkCaseResult extends SeedRun {
  vms: number;
  vcpus: number;
  memoryBytes: number;
  /** The command without its seed. */
  command: string;
  bootHostSeconds: number;
  /** Every measured run, seed 1, 2, … */
  seeds: SeedRun[];
  /**
   * Bare only: checksums of the smaller jobs (`referenceKey(files, seed)` → checksum), run in fast mode after
   * the measured runs, the reference for the VMs' parts.
   */
  references: Record<string, string>;
}

/** The command of a case's run with input seed `seed`. */
export function seeded(command: string, seed: number): string {
  return `${command} -S ${seed}`;
}

/** How `references` names the checksum of `files` files with input seed `seed`. */
export function referenceKey(files: number, seed: number): string {
  return `${files} -S ${seed}`;
}

/** The run of median machine time. */
function medianSeed(seeds: readonly SeedRun[]): SeedRun {
  return medianBy(seeds, (s) => s.machineCycles);
}

const RESULT_LINE = /^RESULT pmake elapsed=(\S+) checksum=([0-9a-f]{16})\b.*\blinked_bytes=(\d+)/m;

function parsePmake(where: string, r: { status: number; output: string }): PmakeRun {
  const m = RESULT_LINE.exec(r.output);
  if (r.status !== 0 || m === null) throw new ExperimentError(`${where}: pmake failed (status ${r.status}): ${r.output.trim().split('\n').slice(-3).join(' / ')}`);
  return { guestMs: Number(m[1]) * 1000, checksum: m[2]!, linkedBytes: Number(m[3]) };
}


type Guest = Pick<GuestArtifacts, 'kernel' | 'initramfs'>;

/**
 * The snapshot of a case's machine booted in fast mode with no timing model, ASLR turned off and the case's
 * command run once unmeasured (a warm-up: the measure is the steady state, as in overhead.ts), kept in the
 * boot cache (guest/boot-cache.ts) per machine configuration: a later run of the experiment restores it. `boot`
 * boots the machine (`restore` given: continues a snapshot); `prepare` turns ASLR off, `warmUp` runs the command.
 */
async function warmedUp<S extends SnapshotSource>(
  key: object, command: string, boot: (restore?: Uint8Array) => Promise<S>, prepare: (s: S) => Promise<void>, warmUp: (s: S) => Promise<void>,
): Promise<Uint8Array> {
  const booted = await cachedSession({ ...key, step: 'ASLR off' }, () => boot(), prepare);
  return (await cachedSession({ ...key, step: { warm: command } }, () => boot(booted.bytes), warmUp)).bytes;
}

/** The boot cache's key of a case's machine: the guest, the machine and, under the monitor, the VMs. */
function machineKey(guest: { kernel: Uint8Array; initrd: Uint8Array }, config: object, vms: object | null): object {
  return { experiment: 'fixed-work', kernel: contentHash(guest.kernel), initrd: contentHash(guest.initrd), config, vms };
}

/**
 * The bare case, in this process: Linux on the whole machine, booted and warmed up once (`warmedUp`); each
 * measured run restores that, switches to timing mode at an idle moment (its caches cold) and runs the job with
 * its seed; after the last, in fast mode, the smaller jobs of `referenceFiles` for the VMs' checksums to be
 * compared with.
 */
async function runBareCase(guest: Guest, job: PmakeJob, referenceFiles: readonly number[], repeat: number): Promise<FixedWorkCaseResult> {
  const { config, latencies } = topologyPreset(FIXED_WORK_TOPOLOGY, FIXED_WORK_MEMORY);
  const spec = splitJob(job, 0);
  const started = performance.now();
  const image = { kernel: readFileSync(guest.kernel), initrd: readFileSync(guest.initramfs) };
  const boot = (restore?: Uint8Array): Promise<GuestSession> => GuestSession.boot({ ...image, config, holdIdle: true, restore });
  const warm = await warmedUp(machineKey(image, config, null), spec.command, boot,
    (s) => turnAslrOff((command) => s.exec(command), 'on bare Linux'),
    async (s) => { parsePmake('bare (warm-up)', await s.exec(spec.command)); });
  const bootHostSeconds = (performance.now() - started) / 1000;
  const seeds: SeedRun[] = [];
  const references: Record<string, string> = {};
  for (let seed = 1; seed <= repeat; seed++) {
    const session = await boot(warm);
    try {
      configureTiming(session.machine, latencies);
      const harts = session.machine.harts;
      const before = await session.atIdle(() => {
        setExecutionMode(session.machine, 'timing');
        return { cycles: session.machine.cycles, b: hartCycles(harts) };
      });
      const runStarted = performance.now();
      const r = await session.exec(seeded(spec.command, seed));
      const runHostSeconds = (performance.now() - runStarted) / 1000;
      const after = await session.atIdle(() => {
        setExecutionMode(session.machine, 'fast');
        return { cycles: session.machine.cycles, b: hartCycles(harts) };
      });
      seeds.push({ seed, machineCycles: after.cycles - before.cycles, breakdown: minus(after.b, before.b), runs: [parsePmake(`bare, seed ${seed}`, r)], runHostSeconds });
      if (seed < repeat) continue;
      // pmake's checksum depends only on its -n, -l and -S: the references need no fresh machine.
      for (let s = 1; s <= repeat; s++) {
        for (const files of referenceFiles) {
          if (files === spec.files) continue;
          const command = seeded(pmakeCommand(MACHINE_CPUS, files, job.lines), s);
          references[referenceKey(files, s)] = parsePmake(`bare (reference \`${command}\`)`, await session.exec(command)).checksum;
        }
      }
    } finally {
      await session.kill();
    }
  }
  return {
    vms: 0, vcpus: MACHINE_CPUS, memoryBytes: FIXED_WORK_MEMORY, command: spec.command, ...medianSeed(seeds), seeds, bootHostSeconds, references,
  };
}

/**
 * A VM case, in this process: `vms` VMs boot in fast mode and run their part once unmeasured (a warm-up), once
 * (`warmedUp`); each measured run restores that with the timing model (its caches cold), and at a moment when
 * every vCPU idles the monitor switches to timing mode, every VM starts its part at once, and at the next such
 * moment after the last has ended the machine time and every VM's account are read.
 */
async function runVmCase(guest: Guest, job: PmakeJob, vms: number, repeat: number): Promise<FixedWorkCaseResult> {
  const { config, latencies } = topologyPreset(FIXED_WORK_TOPOLOGY, FIXED_WORK_MEMORY);
  const spec = splitJob(job, vms);
  const names = Array.from({ length: vms }, (_, i) => `vm${i}`);
  const started = performance.now();
  const image = { kernel: readFileSync(guest.kernel), initrd: readFileSync(guest.initramfs) };
  const vmSpecs = names.map((name) => ({ name, vcpus: spec.vcpus, memoryBytes: spec.memoryBytes }));
  // Booted and warmed up with no timing configuration; a restore for a measured run gets a fresh model.
  const boot = (restore?: Uint8Array, measured = false): Promise<MonitorSession> => MonitorSession.boot({
    ...image, config, vms: vmSpecs, restore, monitor: measured ? { timing: { latencies } } : {},
  });
  const each = <T>(f: (name: string) => Promise<T>): Promise<T[]> => Promise.all(names.map(f));
  const warm = await warmedUp(machineKey(image, config, vmSpecs), spec.command, (restore) => boot(restore),
    async (s) => { await each((n) => turnAslrOff((command) => s.exec(n, command), `in ${n}`)); },
    async (s) => { (await each((n) => s.exec(n, spec.command))).forEach((r, i) => parsePmake(`${names[i]} (warm-up)`, r)); });
  const bootHostSeconds = (performance.now() - started) / 1000;
  const seeds: SeedRun[] = [];
  for (let seed = 1; seed <= repeat; seed++) {
    const session = await boot(warm, true);
    try {
      const monitor = session.monitor;
      const read = (): { cycles: number; b: Breakdown } => {
        const b: Breakdown = { user: 0, kernel: 0, monitor: 0, idle: 0 };
        for (const name of names) {
          const t = accountVm(monitor, session.vm(name)).total;
          b.user += t.guestUserCycles;
          b.kernel += t.guestKernelCycles;
          b.monitor += t.monitorCycles;
          b.idle += t.idleCycles + t.readyCycles;
        }
        return { cycles: monitor.cycles, b };
      };
      const before = await session.atMachineIdle(() => {
        monitor.setExecutionMode('timing');
        return read();
      });
      const runStarted = performance.now();
      const results = await each((n) => session.exec(n, seeded(spec.command, seed)));
      const runHostSeconds = (performance.now() - runStarted) / 1000;
      const after = await session.atMachineIdle(() => {
        monitor.setExecutionMode('fast');
        return read();
      });
      seeds.push({
        seed, machineCycles: after.cycles - before.cycles, breakdown: minus(after.b, before.b),
        runs: results.map((r, i) => parsePmake(`${names[i]!}, seed ${seed}`, r)), runHostSeconds,
      });
    } finally {
      await session.kill();
    }
  }
  return {
    vms, vcpus: spec.vcpus, memoryBytes: spec.memoryBytes, command: spec.command, ...medianSeed(seeds), seeds, bootHostSeconds, references: {},
  };
}

interface ChildRequest {
  guest: Guest;
  job: PmakeJob;
  vms: number;
  referenceFiles: number[];
  repeat: number;
}

function runCase(request: ChildRequest): Promise<FixedWorkCaseResult> {
  return request.vms === 0
    ? runBareCase(request.guest, request.job, request.referenceFiles, request.repeat)
    : runVmCase(request.guest, request.job, request.vms, request.repeat);
}

/** Runs one case in a child process (this module is its entry) and returns what it measured. */
function runCaseInChild(request: ChildRequest): Promise<FixedWorkCaseResult> {
  return runChild<FixedWorkCaseResult>(import.meta.url, request, caseName(splitJob(request.job, request.vms)));
}

/**
 * What can be checked of the results. pmake's checksum is over the files it linked, which depend only on
 * -n and -l (not -j), so a VM's part (files 0 .. n/k-1) cannot be checked against the whole job's checksum;
 * but every VM of a case runs the same command and must agree with the others, the one-VM case runs the
 * whole job and must agree with bare Linux, and every part must agree with the same command run on bare
 * Linux (`references`). Returns the problems found (none: the results are right).
 */
export function checksumProblems(results: readonly FixedWorkCaseResult[]): string[] {
  const bare = results.find((r) => r.vms === 0);
  if (bare === undefined) return ['no bare case to check against'];
  const expected = new Map<string, string>(Object.entries(bare.references));
  const filesOf = (r: FixedWorkCaseResult): number => Number(/-n (\d+)/.exec(r.command)![1]);
  for (const s of bare.seeds) expected.set(referenceKey(filesOf(bare), s.seed), s.runs[0]!.checksum);
  const problems: string[] = [];
  for (const r of results) {
    if (r.seeds.length !== bare.seeds.length) problems.push(`${caseName(r)}: ${r.seeds.length} runs, bare Linux ${bare.seeds.length}`);
    for (const s of r.seeds) {
      const want = expected.get(referenceKey(filesOf(r), s.seed));
      s.runs.forEach((run, i) => {
        const where = r.vms === 0 ? `bare, seed ${s.seed}` : `${caseName(r)}, vm${i}, seed ${s.seed}`;
        if (want === undefined) problems.push(`${where}: no reference checksum for ${filesOf(r)} files`);
        else if (run.checksum !== want) problems.push(`${where}: \`${seeded(r.command, s.seed)}\` computed ${run.checksum}, bare Linux ${want}`);
      });
    }
  }
  if (bare.seeds.length > 1 && new Set(bare.seeds.map((s) => s.runs[0]!.checksum)).size === 1) problems.push('every input seed computed the same: the runs did not differ');
  return problems;
}

/** Per seed, a case's machine time over bare's with the same seed. */
export function seedRatios(r: FixedWorkCaseResult, bare: FixedWorkCaseResult): number[] {
  return r.seeds.map((s) => s.machineCycles / (bare.seeds.find((b) => b.seed === s.seed)?.machineCycles ?? NaN));
}

export interface FixedWorkOptions {
  guest: Guest;
  outDir: string;
  job: PmakeJob;
  /** VM counts (1, 2, 4, 8); bare Linux always runs first, as the baseline. */
  counts: readonly number[];
  /** Measured runs of each case, run k with input seed k (default 1); the case's figure is the median. */
  repeat?: number;
  onProgress?: (line: string) => void;
  onStatus?: (text: string) => void;
}

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'fixed-work.svg';

const CYCLES_PER_MS = CPU_CYCLES_PER_SECOND / 1000;

/** Cycles over all CPUs: user + kernel + monitor + idle. */
function total(b: Breakdown): number {
  return b.user + b.kernel + b.monitor + b.idle;
}

/** The median of a case's per-seed ratios, with their range when there are several. */
function ratioCell(ratios: readonly number[]): string {
  const m = median(ratios).toFixed(3);
  return ratios.length === 1 ? m : `${m} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`;
}

export function fixedWorkTable(results: readonly FixedWorkCaseResult[]): string {
  const bare = results.find((r) => r.vms === 0) ?? results[0]!;
  const norm = bare.machineCycles * MACHINE_CPUS;
  const part = (v: number): string => (v / norm).toFixed(3);
  return markdownTable(
    ['case', 'command in each', 'time (ms)', 'time / bare (seeds\' range)', 'user', 'kernel', 'monitor', 'idle', 'sum', 'pmake per VM (ms, guest)', 'linked / bare', 'host run (s)', 'host boot + warm-up (s)'],
    results.map((r) => {
      const ms = r.runs.map((x) => x.guestMs);
      const linked = r.runs.reduce((s, x) => s + x.linkedBytes, 0) / bare.runs[0]!.linkedBytes;
      return [
        caseName(r), `\`${r.command}\``, (r.machineCycles / CYCLES_PER_MS).toFixed(1), ratioCell(seedRatios(r, bare)),
        part(r.breakdown.user), part(r.breakdown.kernel), part(r.breakdown.monitor), part(r.breakdown.idle), part(total(r.breakdown)),
        ms.length === 1 ? ms[0]!.toFixed(1) : `${Math.min(...ms).toFixed(1)}–${Math.max(...ms).toFixed(1)}`,
        linked.toFixed(3), r.runHostSeconds.toFixed(1), r.bootHostSeconds.toFixed(1),
      ];
    }),
  );
}

/** Disco's figure 7: per case, cycles over all CPUs normalized to bare's (so a bar's length is its time over bare's), a line at 1.0. */
export function fixedWorkSvg(results: readonly FixedWorkCaseResult[], job: PmakeJob): string {
  const bare = results.find((r) => r.vms === 0) ?? results[0]!;
  const norm = Math.max(1, bare.machineCycles * MACHINE_CPUS);
  return stackedBarsSvg(
    'Fixed work over VMs (Disco\'s figure 7): machine time normalized to bare Linux, timing mode',
    ['guest user', 'guest kernel', 'monitor', 'idle'],
    results.map((r) => ({ label: caseName(r), segments: [r.breakdown.user / norm, r.breakdown.kernel / norm, r.breakdown.monitor / norm, r.breakdown.idle / norm] })),
    { reference: 1, subtitle: `${pmakeCommand(MACHINE_CPUS, job.files, job.lines)} split over the VMs (-n and 1 GiB divided, -j the vCPUs) on ${FIXED_WORK_TOPOLOGY} (8 CPUs); cycles summed over the CPUs.` },
  );
}

/** Runs bare Linux and then each count of VMs, each in a child process; checks the checksums; writes the table, plot and results.json. */
export async function runFixedWork(o: FixedWorkOptions): Promise<FixedWorkCaseResult[]> {
  const specs = [0, ...o.counts].map((vms) => splitJob(o.job, vms));
  mkdirSync(o.outDir, { recursive: true });
  const referenceFiles = [...new Set(specs.map((s) => s.files))];
  const results: FixedWorkCaseResult[] = [];
  for (const [i, spec] of specs.entries()) {
    const name = caseName(spec);
    o.onProgress?.(`${name}: booting and warming up once (boot cache), then \`${spec.command}\`${spec.vms > 1 ? ' in every VM at once' : ''}, each run restored`);
    o.onStatus?.(`${name} (case ${i + 1}/${specs.length})`);
    const r = await runCaseInChild({ guest: { kernel: o.guest.kernel, initramfs: o.guest.initramfs }, job: o.job, vms: spec.vms, referenceFiles, repeat: o.repeat ?? 1 });
    results.push(r);
    const bare = results[0]!;
    o.onProgress?.(`${name}: ${(r.machineCycles / CYCLES_PER_MS).toFixed(1)} ms simulated, ${(r.machineCycles / bare.machineCycles).toFixed(3)} of bare; ` +
      `host ${r.bootHostSeconds.toFixed(1)} s boot and warm-up, ${r.runHostSeconds.toFixed(1)} s the run`);
  }
  const problems = checksumProblems(results);
  if (problems.length > 0) throw new ExperimentError(`pmake's results differ: ${problems.join('; ')}`);
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({
    experiment: 'fixed-work', topology: FIXED_WORK_TOPOLOGY, machineMemory: FIXED_WORK_MEMORY, cpus: MACHINE_CPUS, job: o.job, mode: 'timing', repeat: o.repeat ?? 1, results,
  }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), fixedWorkTable(results));
  writeFileWhole(join(o.outDir, PLOT_SVG), fixedWorkSvg(results, o.job));
  return results;
}

// The child's side: run the case given on the command line and send the result back.
serveCase(import.meta.url, runCase);

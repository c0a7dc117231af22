// The overhead experiment (Disco's figure 5, docs/experiments.md): the guest's workloads on bare Linux and in
// one VM under the monitor, on the same machine; time normalized to bare, with where the time went.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { MachineConfig } from '../board/address-map.js';
import { configureTiming, setExecutionMode, type ExecutionMode } from '../board/timing-mode.js';
import { latenciesFromDistances } from '../board/topology.js';
import type { Hart } from '../cpu/hart.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { MonitorSession } from '../guest/monitor-session.js';
import { cachedSession, contentHash } from '../guest/boot-cache.js';
import { GuestSession } from '../guest/session.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { PRIV_M, PRIV_S, PRIV_U } from '../isa/opcodes.js';
import { accountVm } from '../monitor/accounting.js';
import { DEFAULT_COSTS, scaleCosts } from '../monitor/costs.js';
import type { MonitorOptions } from '../monitor/monitor-options.js';
import type { MmuMode } from '../monitor/vm.js';
import { exitsTable, figure5Svg, NOMINAL, variantName, variantsTable } from './overhead-exits.js';
import type { TimingLatencies, TimingModel } from '../timing/timing-model.js';
import { ExperimentError } from './numa-placement.js';
import { markdownTable, median, medianBy } from './report.js';

export type WorkloadKind = 'cpu-bound' | 'os-intensive';

export interface OverheadWorkload {
  name: string;
  kind: WorkloadKind;
  /** The guest command; prints `RESULT <name> elapsed=SECONDS ...`. */
  command: string;
}

/** Disco's four: two CPU-bound (its engineering and raytrace), two that lean on the kernel (pmake, database). */
export const FULL_WORKLOADS: readonly OverheadWorkload[] = [
  { name: 'cpubench', kind: 'cpu-bound', command: 'cpubench -n 6' },
  { name: 'raytrace', kind: 'cpu-bound', command: 'raytrace -t 2 -w 64 -s 400 -m 4M' },
  { name: 'pmake', kind: 'os-intensive', command: 'pmake -j 2 -n 24 -l 200' },
  { name: 'dbbench', kind: 'os-intensive', command: 'dbbench -r 4000 -t 400 -o 5' },
];

/** The reference sizes of guest/workloads/checks.txt: a run of a couple of minutes, for the test. */
export const QUICK_WORKLOADS: readonly OverheadWorkload[] = [
  { name: 'cpubench', kind: 'cpu-bound', command: 'cpubench -n 2' },
  { name: 'raytrace', kind: 'cpu-bound', command: 'raytrace -t 2 -w 32 -s 100 -m 1M' },
  { name: 'pmake', kind: 'os-intensive', command: 'pmake -j 2 -n 8 -l 100' },
  { name: 'dbbench', kind: 'os-intensive', command: 'dbbench -r 500 -t 50 -o 5' },
];

/** Targets of the issue: at most this much slower under the monitor. */
export const TARGET: Record<WorkloadKind, number> = { 'cpu-bound': 0.05, 'os-intensive': 0.10 };

const MiB = 2 ** 20;
/** The machine: two CPUs, one node, 256 MiB; the VM gets both CPUs and all the memory. */
export const OVERHEAD_MACHINE: MachineConfig = { harts: 2, nodes: [{ memoryBytes: 256 * MiB, harts: [0, 1] }] };
/** Timing mode's latencies on it: one node, a miss 30 cycles, as `run --timing` on a one-node machine. */
const OVERHEAD_LATENCIES = latenciesFromDistances([[10]]);

/** Cycles of all CPUs during one run, by where they went. */
export interface Breakdown {
  user: number;
  kernel: number;
  monitor: number;
  idle: number;
}

export interface RunMeasure {
  /** The workload's own elapsed time, read from the guest clock (which follows simulated time). */
  guestSeconds: number;
  hostSeconds: number;
  checksum: string;
  breakdown: Breakdown;
  tlbMisses: number;
  secondLevelHits: number;
  monitorCalls: number;
  /** Timing mode: cycles the memory model charged (cache hits and misses, TLB walks); 0 in fast mode. */
  memoryCycles: number;
  /** In the VM: its exits during the run by cause (`exitCauses` of the account); none bare. */
  exits: Record<string, number>;
}

/** One way of running the VM: how it maps guest-physical to machine, and the cost table scaled by a factor. */
export interface VmVariant {
  mmu: MmuMode;
  costScale: number;
}

export interface VariantResult extends VmVariant {
  /** The median run, and every run's simulated seconds. */
  vm: RunMeasure;
  vmRuns: number[];
  /** Per input seed, the VM's time over bare's with the same seed; and their median. */
  ratios: number[];
  simulatedRatio: number;
}

export interface OverheadResult {
  workload: string;
  kind: WorkloadKind;
  command: string;
  /** The median run of each (by simulated time). */
  bare: RunMeasure;
  vm: RunMeasure;
  /** Simulated seconds of every measured run, and the checksum of each (input seed k + 1; the VM's agree). */
  bareRuns: number[];
  checksums: string[];
  vmRuns: number[];
  /** VM time / bare time: simulated, the median over the seeds of each seed's ratio; host, of the median runs. */
  simulatedRatio: number;
  ratios: number[];
  hostRatio: number;
  /** Whether the simulated ratio is within the issue's target for its kind. */
  withinTarget: boolean;
  /** Every way the VM ran (`vm` and `simulatedRatio` above are the first's). */
  variants: VariantResult[];
}

/** What the measuring loop (`measure`) takes: the workloads, the mode and the runs, and where to say what runs. */
export type MeasureOptions = Pick<OverheadOptions, 'workloads' | 'mode' | 'repeat' | 'onProgress' | 'onStatus'>;

export interface OverheadOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  outDir: string;
  workloads: readonly OverheadWorkload[];
  /**
   * The mode of the measured runs (boot and warm-up run in fast mode either way). Timing mode charges every
   * access and TLB walk to the cache model, bare and in the VM alike (under the monitor the caches are the
   * physical CPUs'), as Disco's figure came from a detailed simulation. Default fast.
   */
  mode?: ExecutionMode;
  /**
   * Measured runs of each workload, bare and in the VM (default 1), run k with the workload's input seed k + 1
   * (`seededCommand`): another input of the same size, so the runs spread as inputs do. The result is the
   * median over the seeds of VM / bare with the same seed.
   */
  repeat?: number;
  /** The ways to run the VM, each a boot of its own (default: software mmu, the nominal cost table). */
  variants?: readonly VmVariant[];
  onProgress?: (line: string) => void;
  /** What runs now (which side, workload and run), for a status line. */
  onStatus?: (text: string) => void;
}

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'overhead.svg';

const RESULT_LINE = /^RESULT (\S+) elapsed=(\S+) checksum=([0-9a-f]{16})\b.*$/m;

/** The elapsed time and checksum of workload `name`'s RESULT line (`where`: for the error when there is none). */
export function parseResult(name: string, where: string, status: number, output: string): { guestSeconds: number; checksum: string } {
  const m = RESULT_LINE.exec(output);
  if (status !== 0 || m === null) {
    throw new ExperimentError(`${name} ${where}: status ${status}, no RESULT line: ${output.trim().split('\n').slice(-3).join(' / ')}`);
  }
  return { guestSeconds: Number(m[2]), checksum: m[3]! };
}

/**
 * Each workload runs once before it is measured, bare and in the VM alike: the measure is the steady state
 * (as Disco's), not the first touch of memory the guest had not used since boot (which the monitor must
 * then find machine pages for) nor a cold page cache.
 */
async function warmUp(run: Promise<{ status: number; output: string }>, w: OverheadWorkload, where: string): Promise<void> {
  const r = await run;
  parseResult(w.name, `${where} (warm-up run)`, r.status, r.output);
}

/** Bare Linux's cycles so far, summed over its harts: user, kernel (S and M), no monitor, idle. */
export function hartCycles(harts: readonly Hart[]): Breakdown {
  const sum = (f: (h: Hart) => number): number => harts.reduce((s, h) => s + f(h), 0);
  return { user: sum((h) => h.cyclesAt(PRIV_U)), kernel: sum((h) => h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M)), monitor: 0, idle: sum((h) => h.idleCycles) };
}

function bareCycles(harts: readonly Hart[]): Breakdown & { tlbMisses: number } {
  return { ...hartCycles(harts), tlbMisses: harts.reduce((s, h) => s + h.tlbMisses, 0) };
}

/** Field by field, `a` − `b` (counters read after and before a run). */
export function minus<T extends object>(a: T, b: T): T {
  const x = a as Record<string, number>;
  const y = b as Record<string, number>;
  return Object.fromEntries(Object.keys(x).map((k) => [k, x[k]! - y[k]!])) as T;
}

/** Cycles the timing model charged all CPUs so far (0 without one). */
function modelCycles(model: TimingModel | undefined): number {
  if (model === undefined) return 0;
  let sum = 0;
  for (let cpu = 0; cpu < model.cpus; cpu++) sum += model.memoryCycles(cpu);
  return sum;
}

/** Cumulative counters of a subject (bare Linux or the VM), read before and after each measured run. */
type Counters = Breakdown & { tlbMisses: number; secondLevelHits: number; monitorCalls: number; memoryCycles: number };

/** What a subject has counted of its exits so far, by cause. */
type ExitCounts = Record<string, number>;

/** What the measuring loop needs of bare Linux or of the VM, as one session runs it. */
export interface Subject {
  exec(command: string): Promise<{ status: number; output: string }>;
  /** Runs `action` at the guest's next idle moment between commands: the same guest instant in every run. */
  atIdle<T>(action: () => T): Promise<T>;
  setMode(mode: ExecutionMode): void;
  counters(): Counters;
  exits(): ExitCounts;
  /** The whole machine, at the guest's next idle moment (for a restore). */
  snapshot(): Promise<Uint8Array>;
  kill(): Promise<void>;
}

/** One side of the comparison: bare Linux, or Linux in a VM run one way. */
export interface Side {
  /** "on bare Linux", "in the VM": for messages. */
  where: string;
  label: string;
  /** What decides its boot: its machine, guest and monitor (a key of the snapshot cache). */
  key: object;
  /** Boots Linux, in fast mode. */
  boot(): Promise<Subject>;
  /** Continues a snapshot a subject of this side took, ready for `mode`. */
  restore(bytes: Uint8Array, mode: ExecutionMode): Promise<Subject>;
}

/**
 * Address-space layout randomization off: bare Linux and the VM's draw their random layouts from different
 * entropy, and the direct-mapped first-level TLB's conflicts depend on the layout, so with it on the two
 * would run differently laid-out programs.
 */
const NO_ASLR = 'echo 0 > /proc/sys/kernel/randomize_va_space && cat /proc/sys/kernel/randomize_va_space';

/** Turns address-space layout randomization off in a guest (`exec` runs a command there), or throws. */
export async function turnAslrOff(exec: (command: string) => Promise<{ status: number; output: string }>, where: string): Promise<void> {
  const r = await exec(NO_ASLR);
  if (r.status !== 0 || r.output.trim() !== '0') throw new ExperimentError(`cannot turn address-space randomization off ${where}: ${r.output.trim()}`);
}

/** The run whose guest time is the median. */
function medianRun(runs: readonly RunMeasure[]): RunMeasure {
  return medianBy(runs, (r) => r.guestSeconds);
}

/**
 * Measured run `run` of a workload: its command with input seed `run + 1` (`-S`, which every workload takes:
 * another scene, netlist, file set or key order of the same sizes, docs/guest.md). The warm-up keeps seed 0.
 */
export function seededCommand(command: string, run: number): string {
  return `${command} -S ${run + 1}`;
}

/** A snapshot that `make` takes from a subject of `side`, kept in the boot cache under `step` (boot-cache.ts). */
async function kept(experiment: string, side: Side, step: object, make: () => Promise<Subject>, then: (s: Subject) => Promise<void>): Promise<Uint8Array> {
  return (await cachedSession({ experiment, ...side.key, step }, make, then)).bytes;
}

/**
 * Every workload on one side. Linux boots once per side (a snapshot, kept between runs of the experiment), with
 * ASLR turned off; each workload restores that, runs once unmeasured (the warm-up, also kept), and each
 * measured run restores the warmed-up guest and runs in the options' mode with its own input seed: every run
 * starts from the same state, its caches cold, whether the guest was booted now or earlier.
 */
export async function measure(o: MeasureOptions, side: Side, experiment = 'overhead'): Promise<RunMeasure[][]> {
  const mode = o.mode ?? 'fast';
  o.onStatus?.(`${side.label}, booting Linux`);
  const booted = await kept(experiment, side, { booted: 'ASLR off' }, () => side.boot(), (s) => turnAslrOff((command) => s.exec(command), side.where));
  const out: RunMeasure[][] = [];
  for (const w of o.workloads) {
    o.onStatus?.(`${side.label} ${w.name}, warm-up run`);
    const warm = await kept(experiment, side, { warm: w.command }, () => side.restore(booted, 'fast'), (s) => warmUp(s.exec(w.command), w, side.where));
    const runs: RunMeasure[] = [];
    for (let k = 0; k < (o.repeat ?? 1); k++) {
      o.onStatus?.(`${side.label} ${w.name}, run ${k + 1}/${o.repeat ?? 1}`);
      const subject = await side.restore(warm, mode);
      try {
        // The mode switches and the counters are read at idle moments, not whenever the host's await returns:
        // the guest runs on meanwhile, and the results would depend on the host's speed.
        const [before, exitsBefore] = await subject.atIdle(() => {
          subject.setMode(mode);
          return [subject.counters(), subject.exits()] as const;
        });
        const started = performance.now();
        const r = await subject.exec(seededCommand(w.command, k));
        const hostSeconds = (performance.now() - started) / 1000;
        const [after, exitsAfter] = await subject.atIdle(() => {
          subject.setMode('fast');
          return [subject.counters(), subject.exits()] as const;
        });
        const d = minus(after, before);
        const exits = Object.fromEntries(Object.entries(exitsAfter).map(([key, n]) => [key, n - (exitsBefore[key] ?? 0)]).filter(([, n]) => (n as number) > 0));
        const { guestSeconds, checksum } = parseResult(w.name, side.where, r.status, r.output);
        runs.push({
          guestSeconds, hostSeconds, checksum, breakdown: { user: d.user, kernel: d.kernel, monitor: d.monitor, idle: d.idle },
          tlbMisses: d.tlbMisses, secondLevelHits: d.secondLevelHits, monitorCalls: d.monitorCalls, memoryCycles: d.memoryCycles, exits,
        });
        o.onProgress?.(`${side.label} ${w.name}: ${(guestSeconds * 1000).toFixed(3)} ms simulated, ${hostSeconds.toFixed(1)} s host`);
      } finally {
        await subject.kill();
      }
    }
    out.push(runs);
  }
  return out;
}

/** Bare Linux on the machine. */
function bareSide(kernel: Uint8Array, initrd: Uint8Array): Side {
  const subject = (session: GuestSession, model: TimingModel | undefined): Subject => ({
    exec: (command) => session.exec(command),
    atIdle: (action) => session.atIdle(action),
    setMode: (mode) => { if (model !== undefined) setExecutionMode(session.machine, mode); },
    counters: () => ({ ...bareCycles(session.machine.harts), secondLevelHits: 0, monitorCalls: 0, memoryCycles: modelCycles(model) }),
    exits: () => ({}),
    snapshot: () => session.snapshot(),
    kill: () => session.kill(),
  });
  // Commands reach the guest at the same guest instant in every run (holdIdle): the results reproduce.
  const options = { kernel, initrd, config: OVERHEAD_MACHINE, holdIdle: true };
  return {
    where: 'on bare Linux', label: 'bare',
    key: { side: 'bare', kernel: contentHash(kernel), initrd: contentHash(initrd), config: OVERHEAD_MACHINE },
    boot: async () => subject(await GuestSession.boot(options), undefined),
    restore: async (bytes, mode) => {
      const session = await GuestSession.boot({ ...options, restore: bytes });
      // The model attached to the restored machine, in fast mode until the measured run: its caches start cold.
      return subject(session, mode === 'timing' ? configureTiming(session.machine, OVERHEAD_LATENCIES) : undefined);
    },
  };
}

/** The machine a VM side runs on, and the VM: overhead's one node with the VM having all of it by default. */
export interface VmMachine {
  config: MachineConfig;
  /** Timing mode's latencies on it. */
  latencies: TimingLatencies;
  vcpus: number;
  memoryBytes: number;
  /** Monitor options beyond the mmu and the cost table (`cells`), in the boot's cache key too. */
  monitor?: Omit<MonitorOptions, 'config' | 'mmu' | 'costs' | 'timing'>;
  /** "in the VM", "in the VM in 4 cells": for messages; and the side's label after `vm`. */
  where?: string;
  label?: string;
}

/** Overhead's own: the VM has both CPUs and all the memory of OVERHEAD_MACHINE. */
const OVERHEAD_VM: VmMachine = {
  config: OVERHEAD_MACHINE, latencies: OVERHEAD_LATENCIES, vcpus: OVERHEAD_MACHINE.harts,
  memoryBytes: OVERHEAD_MACHINE.nodes.reduce((s, n) => s + n.memoryBytes, 0),
};

/** The same Linux in one VM on `machine` (by default one that has the whole of overhead's machine), run as `variant` says. */
export function vmSide(kernel: Uint8Array, initrd: Uint8Array, variant: VmVariant, machine: VmMachine = OVERHEAD_VM): Side {
  const monitorOptions = { mmu: variant.mmu, costs: scaleCosts(DEFAULT_COSTS, variant.costScale), ...machine.monitor };
  const options = { kernel, initrd, config: machine.config, vms: [{ name: 'vm', vcpus: machine.vcpus, memoryBytes: machine.memoryBytes }] };
  const subject = (session: MonitorSession): Subject => {
    const monitor = session.monitor;
    const vm = session.vm('vm');
    return {
      exec: (command) => session.exec('vm', command),
      atIdle: (action) => session.atIdle('vm', action),
      setMode: (mode) => { if (monitor.timingModel !== undefined) monitor.setExecutionMode(mode); },
      counters: () => {
        const t = accountVm(monitor, vm).total;
        return {
          user: t.guestUserCycles, kernel: t.guestKernelCycles, monitor: t.monitorCycles, idle: t.idleCycles + t.readyCycles,
          tlbMisses: t.tlbMisses, secondLevelHits: t.secondLevelHits,
          monitorCalls: [...vm.monitorCalls.values()].reduce((a, b) => a + b, 0), memoryCycles: modelCycles(monitor.timingModel),
        };
      },
      exits: () => accountVm(monitor, vm).exitCauses,
      snapshot: () => session.snapshot(),
      kill: () => session.kill(),
    };
  };
  return {
    where: machine.where ?? 'in the VM', label: `vm ${variantName(variant)}${machine.label === undefined ? '' : ` ${machine.label}`}`,
    key: { side: 'vm', kernel: contentHash(kernel), initrd: contentHash(initrd), config: machine.config, vms: options.vms, monitor: monitorOptions },
    boot: async () => subject(await MonitorSession.boot({ ...options, monitor: monitorOptions })),
    // Booted and warmed up in fast mode with no timing configuration; in timing mode the monitor gets a fresh
    // model on restore (its caches cold), as if it had had one all along.
    restore: async (bytes, mode) => subject(await MonitorSession.boot({
      ...options, restore: bytes, monitor: { ...monitorOptions, timing: mode === 'timing' ? { latencies: machine.latencies } : undefined },
    })),
  };
}

export function overheadTable(results: readonly OverheadResult[]): string {
  // Disco's bars: busy cycles (user, kernel, monitor) of both runs, relative to bare's busy cycles. Idle time
  // is left out: it also counts the moments the host takes to type the command and read its answer. Memory:
  // what timing mode's model charged (part of user and kernel cycles; 0 in fast mode).
  const part = (value: number, r: OverheadResult): string => (value / busy(r.bare)).toFixed(3);
  const spread = (runs: readonly number[]): string => (runs.length === 1 ? '' : ` (${(Math.min(...runs) * 1000).toFixed(1)}–${(Math.max(...runs) * 1000).toFixed(1)})`);
  const headers = ['workload', 'kind', 'bare (ms)', 'VM (ms)', 'VM / bare', 'target', 'host bare (s)', 'host VM (s)', 'host VM / bare',
    'bare user', 'bare kernel', 'VM user', 'VM kernel', 'VM monitor', 'bare memory', 'VM memory', 'TLB misses bare', 'TLB misses VM', 'L2TLB hits', 'monitor calls'];
  const rows = results.map((r) => [
    r.workload, r.kind, `${(r.bare.guestSeconds * 1000).toFixed(3)}${spread(r.bareRuns)}`, `${(r.vm.guestSeconds * 1000).toFixed(3)}${spread(r.vmRuns)}`,
    `${r.simulatedRatio.toFixed(3)}${r.ratios.length === 1 ? '' : ` (${Math.min(...r.ratios).toFixed(3)}–${Math.max(...r.ratios).toFixed(3)})`}`,
    `≤ ${(1 + TARGET[r.kind]).toFixed(2)}${r.withinTarget ? '' : ' (missed)'}`,
    r.bare.hostSeconds.toFixed(2), r.vm.hostSeconds.toFixed(2), r.hostRatio.toFixed(2),
    part(r.bare.breakdown.user, r), part(r.bare.breakdown.kernel, r),
    part(r.vm.breakdown.user, r), part(r.vm.breakdown.kernel, r), part(r.vm.breakdown.monitor, r),
    part(r.bare.memoryCycles, r), part(r.vm.memoryCycles, r), r.bare.tlbMisses, r.vm.tlbMisses, r.vm.secondLevelHits, r.vm.monitorCalls,
  ]);
  return markdownTable(headers, rows);
}

/** Busy cycles of a run (all CPUs): user, kernel and monitor. */
export function busy(m: RunMeasure): number {
  return m.breakdown.user + m.breakdown.kernel + m.breakdown.monitor;
}

/** Runs the workloads bare, then in a VM, and writes the table, plot and results.json to `outDir`. */
export async function runOverhead(o: OverheadOptions): Promise<OverheadResult[]> {
  const kernel = readFileSync(o.guest.kernel);
  const initrd = readFileSync(o.guest.initramfs);
  mkdirSync(o.outDir, { recursive: true });
  o.onProgress?.('bare Linux');
  const bare = await measure(o, bareSide(kernel, initrd));
  const variants = o.variants ?? [NOMINAL];
  if (variants.length === 0) throw new ExperimentError('no way to run the VM was asked for');
  const vms: RunMeasure[][][] = [];
  for (const variant of variants) {
    o.onProgress?.(`Linux in a VM under the monitor (${variantName(variant)})`);
    vms.push(await measure(o, vmSide(kernel, initrd, variant)));
  }
  const results = o.workloads.map((w, i): OverheadResult => {
    const bareRuns = bare[i]!;
    bareRuns.forEach((run, k) => {
      const sums = new Set([run, ...vms.map((vm) => vm[i]![k]!)].map((r) => r.checksum));
      if (sums.size !== 1) throw new ExperimentError(`${w.name} with seed ${k + 1} computed ${[...sums].join(' and ')} bare and in the VM: the monitor changed a result`);
    });
    if (bareRuns.length > 1 && new Set(bareRuns.map((r) => r.checksum)).size === 1) {
      throw new ExperimentError(`${w.name} computed the same checksum for every input seed: its runs did not differ`);
    }
    const b = medianRun(bareRuns);
    const results = variants.map((variant, v): VariantResult => {
      const runs = vms[v]![i]!;
      const ratios = runs.map((run, k) => run.guestSeconds / bareRuns[k]!.guestSeconds);
      return { ...variant, vm: medianRun(runs), vmRuns: runs.map((r) => r.guestSeconds), ratios, simulatedRatio: median(ratios) };
    });
    const first = results[0]!;
    return {
      workload: w.name, kind: w.kind, command: w.command, bare: b, vm: first.vm, simulatedRatio: first.simulatedRatio, ratios: first.ratios,
      bareRuns: bareRuns.map((r) => r.guestSeconds), checksums: bareRuns.map((r) => r.checksum), vmRuns: first.vmRuns,
      hostRatio: first.vm.hostSeconds / b.hostSeconds, withinTarget: first.simulatedRatio <= 1 + TARGET[w.kind], variants: results,
    };
  });
  const mode = o.mode ?? 'fast';
  const latencies = mode === 'timing' ? OVERHEAD_LATENCIES : null;
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({ experiment: 'overhead', machine: OVERHEAD_MACHINE, mode, repeat: o.repeat ?? 1, latencies, monitorCosts: DEFAULT_COSTS, variants, results }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), `${overheadTable(results)}\n${variantsTable(results)}\n${exitsTable(results)}`);
  writeFileWhole(join(o.outDir, PLOT_SVG), figure5Svg(results, mode));
  return results;
}

// One case of `experiment balance` (issue 22 item 6; docs/experiments.md "balance"), in a child process of its
// own: flash8 under one cell or 4, the six VMs arriving at 0, 100 and 200 ms of simulated time, each made
// from the boot's snapshot into the running monitor, running its work until the window ends; measured: CPU
// utilization, each VM's work, the vCPUs' moves by kind, the pages borrowed, and the gang invariant over every pick.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CPU_CYCLES_PER_SECOND, topologyPreset } from '../board/topology.js';
import { cachedSession, contentHash } from '../guest/boot-cache.js';
import { MonitorSession, type SessionVm } from '../guest/monitor-session.js';
import { decodeMonitorSnapshot } from '../host/monitor-snapshot.js';
import { accountVm } from '../monitor/accounting.js';
import { CELL_MIGRATION } from '../monitor/cell-scheduler.js';
import { DEFAULT_COSTS } from '../monitor/costs.js';
import type { Monitor, MonitorOptions } from '../monitor/monitor.js';
import type { VcpuRecord } from '../monitor/vcpu-record.js';
import type { VirtualMachine } from '../monitor/vm.js';
import { serveCase } from './child-case.js';

const MiB = 2 ** 20;
export const CYCLES_PER_MS = CPU_CYCLES_PER_SECOND / 1000;

/** The machine: flash8 (8 nodes of one CPU), 128 MiB a node, in 4 cells of 2 nodes. */
export const BALANCE_TOPOLOGY = 'flash8';
export const BALANCE_MEMORY = 1024 * MiB;
export const BALANCE_CELLS = 4;
export const VM_MEMORY = 128 * MiB;
/** The periodic balancer's period (a documented parameter): 128 rounds of 4096 cycles, 5.2 ms. */
export const BALANCE_PERIOD_ROUNDS = 128;
/** The bursts' period, in simulated ms. */
export const BURST_PERIOD_MS = 200;

export type CaseName = 'one-cell' | 'static' | 'balanced';
export const CASE_NAMES: readonly CaseName[] = ['one-cell', 'static', 'balanced'];

/**
 * The monitor of each case. Gang scheduling is Cellular Disco's scheduler and is on in all three, so they differ
 * only in cells and in what may cross them: one cell of every node; 4 cells, each VM where the monitor placed it
 * (no balancer, no borrowing); 4 cells with the idle and periodic balancers and borrowing (its scaled defaults).
 */
export function caseMonitor(name: CaseName, migrationCostScale = 1): Omit<MonitorOptions, 'config'> {
  switch (name) {
    case 'one-cell': return { gang: true };
    case 'static': return { gang: true, cells: BALANCE_CELLS };
    case 'balanced': {
      // The cost of a move across cells is a parameter: its copy's rate, scaled (the bus's round trip stays).
      const costs = migrationCostScale === 1 ? {} : { costs: { ...DEFAULT_COSTS, cellMigrationPerKiB: CELL_MIGRATION.cyclesPerKiB * migrationCostScale } };
      return { gang: true, cells: BALANCE_CELLS, idleBalance: true, balancePeriodRounds: BALANCE_PERIOD_ROUNDS, borrow: {}, ...costs };
    }
  }
}

export type Kind = 'raytrace' | 'pmake' | 'burst';

/** The work of each kind of VM: its vCPUs, its command with input seed `seed`, and the reference command whose checksum seed 0 must print. */
export const KINDS: Record<Kind, { vcpus: number; command: (seed: number) => string; reference: string | null; continuous: boolean }> = {
  // raytrace's checksum does not depend on its thread count (guest/workloads/raytrace.c), so -t 4 checks against -t 2.
  raytrace: { vcpus: 4, command: (seed) => `raytrace -t 4 -w 32 -s 100 -m 1M -S ${seed}`, reference: 'raytrace -t 2 -w 32 -s 100 -m 1M', continuous: true },
  // pmake's checksum is over the linked output, whatever -j (guest/workloads/pmake.c).
  pmake: { vcpus: 2, command: (seed) => `pmake -j 2 -n 8 -l 100 -S ${seed}`, reference: 'pmake -j 2 -n 8 -l 100', continuous: true },
  // No reference of one round: the bursts are checked against each other (every VM, case and burst alike).
  burst: { vcpus: 1, command: (seed) => `cpubench -n 1 -S ${seed}`, reference: null, continuous: false },
};

/** The six VMs and their arrivals. */
export const BALANCE_VMS: readonly { name: string; kind: Kind; arriveMs: number }[] = [
  { name: 'ray0', kind: 'raytrace', arriveMs: 0 },
  { name: 'ray1', kind: 'raytrace', arriveMs: 0 },
  { name: 'pmake0', kind: 'pmake', arriveMs: 100 },
  { name: 'pmake1', kind: 'pmake', arriveMs: 100 },
  { name: 'burst0', kind: 'burst', arriveMs: 200 },
  { name: 'burst1', kind: 'burst', arriveMs: 200 },
];

export function balanceMachine(): ReturnType<typeof topologyPreset>['config'] {
  return topologyPreset(BALANCE_TOPOLOGY, BALANCE_MEMORY).config;
}

/** The VMs booted once, one of each kind, named by kind: the six are made from them. */
const BOOT_VMS: SessionVm[] = (Object.keys(KINDS) as Kind[]).map((kind) => ({ name: kind, vcpus: KINDS[kind].vcpus, memoryBytes: VM_MEMORY }));

/** The boot (one VM of each kind, at its first idle moment after boot), from the boot cache or booted and kept. */
export function bootedKinds(kernel: Uint8Array, initrd: Uint8Array, timeoutMs: number): Promise<{ bytes: Uint8Array; cached: boolean }> {
  const config = balanceMachine();
  const key = { kind: 'balance-boot', version: 1, kernel: contentHash(kernel), initrd: contentHash(initrd), config, vms: BOOT_VMS };
  return cachedSession(key, () => MonitorSession.boot({ kernel, initrd, config, vms: BOOT_VMS, holdIdle: true, timeoutMs }));
}

export interface CaseRequest {
  name: CaseName;
  /** The workloads' input seed. */
  seed: number;
  windowMs: number;
  /** The cost of a move across cells, times this (default 1). */
  migrationCostScale?: number;
  kernel: string;
  initrd: string;
  timeoutMs: number;
}

/** A kind of vCPU move: how many in the window, and the cycles they cost. */
export interface Moves {
  count: number;
  cycles: number;
}

export interface VmResult {
  name: string;
  kind: Kind;
  vcpus: number;
  arriveMs: number;
  /** Where the monitor placed it, and the cells it depended on at the end. */
  homeNode: number;
  cells: number[];
  /** Its work completed in the window, and each unit's checksum as printed (in order). */
  work: number;
  checksums: string[];
  /** Bursts due while the last was still running (not started). */
  skippedBursts: number;
  /** Cycles its vCPUs were busy in the window (guest user and kernel, and the monitor's work for them), and ready (runnable, no CPU). */
  busyCycles: number;
  readyCycles: number;
  /** Rounds in which some but not all of its runnable vCPUs were picked: in all, and within one cell. */
  partialRounds: number;
  partialInCellRounds: number;
  /** Rounds in which it had at least two runnable vCPUs. */
  multiRounds: number;
}

export interface CaseResult {
  name: CaseName;
  seed: number;
  migrationCostScale: number;
  cpus: number;
  /** Machine cycles of the window (from 0 to the round boundary where it ended). */
  windowCycles: number;
  /** Busy cycles of every VM over every CPU's cycles of the window. */
  utilization: number;
  vms: VmResult[];
  /** The vCPUs' moves in the window by kind: to another CPU of the node, to another node of the cell, to another cell. */
  migrations: { cpu: Moves; node: Moves; cell: Moves };
  /** Memory borrowing at the end (balanced only; zero otherwise): pages borrowed and of them in use, chunks asked for and given. */
  borrowing: { pagesBorrowed: number; pagesInUse: number; requests: number; granted: number; refused: number; returned: number };
  hostSeconds: number;
}

const RESULT_LINE = /^RESULT (\S+) elapsed=\S+ checksum=([0-9a-f]{16})\b/;

/** A VM's running sums, read at its arrival and at the end. */
interface Reading {
  busy: number;
  ready: number;
  moves: { cpu: Moves; node: Moves; cell: Moves };
}

function read(monitor: Monitor, vm: VirtualMachine): Reading {
  const t = accountVm(monitor, vm).total;
  return {
    busy: t.guestUserCycles + t.guestKernelCycles + t.monitorCycles,
    ready: t.readyCycles,
    moves: { cpu: { count: t.cpuMoves, cycles: t.cpuMoveCycles }, node: { count: t.nodeMoves, cycles: t.nodeMoveCycles }, cell: { count: t.cellMigrations, cycles: t.cellMoveCycles } },
  };
}

/** Runs one case: a fresh monitor, the six VMs arriving from the boot's snapshot, until the window ends. */
export async function runCase(r: CaseRequest): Promise<CaseResult> {
  const started = performance.now();
  const kernel = readFileSync(r.kernel);
  const initrd = readFileSync(r.initrd);
  const loaded = decodeMonitorSnapshot((await bootedKinds(kernel, initrd, r.timeoutMs)).bytes);
  const windowCycles = Math.round(r.windowMs * CYCLES_PER_MS);
  const state = BALANCE_VMS.map((spec) => ({
    spec, vm: undefined as VirtualMachine | undefined, at: undefined as Reading | undefined, end: undefined as Reading | undefined,
    checksums: [] as string[], skipped: 0, partial: 0, partialInCell: 0, multi: 0,
  }));
  const byName = new Map(state.map((s) => [s.spec.name, s]));
  let session: MonitorSession | undefined;
  let endCycles = 0;
  const lines = (vm: string, line: string): void => {
    const m = RESULT_LINE.exec(line.trim());
    const s = byName.get(vm);
    // Only work finished within the window counts (the line reaches the console in the round it is written).
    if (m !== null && s !== undefined && session !== undefined && session.monitor.cycles < windowCycles) s.checksums.push(m[2]!);
  };
  // The work of VM `s`, started when it arrives: a loop for the continuous kinds, printing each unit's RESULT
  // line on the console as it ends; a burst every BURST_PERIOD_MS for the others, each started at its set time.
  const start = (s: (typeof state)[number], sess: MonitorSession, vm: VirtualMachine): void => {
    s.vm = vm;
    s.at = read(sess.monitor, vm);
    const kind = KINDS[s.spec.kind];
    const unit = `${kind.command(r.seed)} | grep '^RESULT' > /dev/console`;
    if (kind.continuous) {
      sess.exec(s.spec.name, `while :; do ${unit}; done`).catch(() => {});
      return;
    }
    const burst = (at: number): void => {
      if (at >= windowCycles) return;
      void sess.atCycles(at, () => {
        // Asked at the round boundary, so the same in every run: is the last burst's command still running?
        if (sess.commandPending(s.spec.name)) s.skipped++;
        else sess.exec(s.spec.name, unit).catch(() => {});
        burst(at + BURST_PERIOD_MS * CYCLES_PER_MS);
      });
    };
    burst(Math.round(s.spec.arriveMs * CYCLES_PER_MS));
  };
  const traceGangs = (monitor: Monitor): void => {
    const pick = monitor.scheduler.pick.bind(monitor.scheduler);
    monitor.scheduler.pick = () => {
      const picks = pick();
      const chosen = new Set(picks);
      for (const s of state) {
        if (s.vm === undefined || s.vm.state !== 'running') continue;
        const runnable = s.vm.vcpus.map((_, i) => monitor.vcpuRecord(s.vm!, i) as VcpuRecord).filter((v) => v.runnable());
        if (runnable.length < 2) continue;
        s.multi++;
        const running = runnable.filter((v) => chosen.has(v));
        if (running.length > 0 && running.length < runnable.length) s.partial++;
        const cells = new Map<number, [number, number]>();
        for (const v of runnable) {
          const cell = monitor.scheduler.cellOf(s.vm.id, v.index);
          const [n, on] = cells.get(cell) ?? [0, 0];
          cells.set(cell, [n + 1, on + (chosen.has(v) ? 1 : 0)]);
        }
        if ([...cells.values()].some(([n, on]) => on > 0 && on < n)) s.partialInCell++;
      }
      return picks;
    };
  };
  const first = state.filter((s) => s.spec.arriveMs === 0);
  const ended = new Promise<void>((resolve, reject) => {
    MonitorSession.boot({
      kernel: new Uint8Array(), config: balanceMachine(), monitor: caseMonitor(r.name, r.migrationCostScale), holdIdle: true, timeoutMs: r.timeoutMs, onConsoleLine: lines,
      vms: first.map((s) => ({ name: s.spec.name, vcpus: KINDS[s.spec.kind].vcpus, memoryBytes: VM_MEMORY })),
      start: first.map((s) => ({ from: loaded, name: s.spec.kind, as: s.spec.name })),
      beforeRun: (sess) => {
        session = sess;
        traceGangs(sess.monitor);
        for (const s of first) start(s, sess, sess.vm(s.spec.name));
        for (const s of state.filter((x) => x.spec.arriveMs > 0)) {
          void sess.arriveAt(Math.round(s.spec.arriveMs * CYCLES_PER_MS), loaded, s.spec.kind, s.spec.name, {}, (vm) => start(s, sess, vm));
        }
        void sess.atCycles(windowCycles, () => {
          endCycles = sess.monitor.cycles;
          for (const s of state) if (s.vm !== undefined) s.end = read(sess.monitor, s.vm);
          resolve();
        });
      },
    }).catch(reject);
  });
  await ended;
  const monitor = session!.monitor;
  const cpus = monitor.cpus;
  const vms: VmResult[] = state.map((s) => {
    if (s.vm === undefined || s.at === undefined || s.end === undefined) throw new Error(`${s.spec.name} never arrived`);
    if (s.vm.state !== 'running') throw new Error(`${s.spec.name} ended (${s.vm.state}: ${s.vm.reason})`);
    return {
      name: s.spec.name, kind: s.spec.kind, vcpus: KINDS[s.spec.kind].vcpus, arriveMs: s.spec.arriveMs, homeNode: s.vm.pmap.homeNode, cells: [...s.vm.cells],
      work: s.checksums.length, checksums: s.checksums, skippedBursts: s.skipped,
      busyCycles: s.end.busy - s.at.busy, readyCycles: s.end.ready - s.at.ready,
      partialRounds: s.partial, partialInCellRounds: s.partialInCell, multiRounds: s.multi,
    };
  });
  const sumMoves = (k: 'cpu' | 'node' | 'cell'): Moves => ({
    count: state.reduce((n, s) => n + s.end!.moves[k].count - s.at!.moves[k].count, 0),
    cycles: state.reduce((n, s) => n + s.end!.moves[k].cycles - s.at!.moves[k].cycles, 0),
  });
  const borrowing = { pagesBorrowed: 0, pagesInUse: 0, requests: 0, granted: 0, refused: 0, returned: 0 };
  if (monitor.borrowing !== undefined) {
    for (const cell of monitor.cells.cells) {
      const b = monitor.borrowing.stats(cell.id);
      borrowing.pagesBorrowed += b.borrowedPages;
      borrowing.pagesInUse += b.borrowedInUse;
      borrowing.requests += b.requests;
      borrowing.granted += b.granted;
      borrowing.refused += b.refused;
      borrowing.returned += b.returned;
    }
  }
  await session!.kill();
  const busy = vms.reduce((n, v) => n + v.busyCycles, 0);
  const utilization = busy / (cpus * endCycles);
  // Busy cycles are CPU cycles some vCPU ran: more than the CPUs had would be an accounting error.
  if (utilization > 1 + 1e-9) throw new Error(`${r.name}: ${busy} busy cycles in ${cpus} CPUs × ${endCycles} cycles`);
  return {
    name: r.name, seed: r.seed, migrationCostScale: r.migrationCostScale ?? 1, cpus, windowCycles: endCycles, utilization, vms,
    migrations: { cpu: sumMoves('cpu'), node: sumMoves('node'), cell: sumMoves('cell') }, borrowing,
    hostSeconds: (performance.now() - started) / 1000,
  };
}

/** This module, the child process's entry (balance.ts). */
export const BALANCE_CASE_MODULE = import.meta.url;

serveCase(import.meta.url, runCase);

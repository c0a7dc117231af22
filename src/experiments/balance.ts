// `mirrorball experiment balance` (issue 22 item 6; docs/experiments.md "balance"): Cellular Disco's CPU balancing
// on a fixed load. flash8 under one cell, under 4 cells partitioned statically, and under 4 cells with the
// balancers and borrowing; six VMs arriving at 0, 100 and 200 ms; each case and input seed in a child process
// (balance-case.ts). Reported: CPU utilization, each VM's work, the vCPUs' moves by kind, the pages borrowed.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { CELL_MIGRATION, cellMigrationCycles } from '../monitor/cell-scheduler.js';
import { DEFAULT_SECOND_LEVEL_ENTRIES as SECOND_LEVEL_ENTRIES } from '../monitor/vm.js';
import {
  BALANCE_CASE_MODULE, BALANCE_CELLS, BALANCE_MEMORY, BALANCE_PERIOD_ROUNDS, BALANCE_TOPOLOGY, BALANCE_VMS, BURST_PERIOD_MS, CASE_NAMES, KINDS, VM_MEMORY,
  type CaseName, type CaseRequest, type CaseResult, type Kind,
} from './balance-case.js';
import { runCaseInChild } from './child-case.js';
import { ExperimentError } from './numa-placement.js';
import { barChartSvg, markdownTable, median, range } from './report.js';

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'balance.svg';
/** The bar: utilization with balancing at least this many times static partitioning's. */
export const BAR = 1.5;
/** Simulated ms of a run: the full one, and `--quick`'s. */
export const FULL_WINDOW_MS = 1000;
export const QUICK_WINDOW_MS = 220;

export interface BalanceOptions {
  guest: GuestArtifacts;
  outDir: string;
  windowMs?: number;
  /** Runs of each case, run k with the workloads' input seed k (default 3). */
  repeat?: number;
  cases?: readonly CaseName[];
  /** The balanced case again with the cost of a move across cells times each of these, every seed (default none). */
  migrationCostScales?: readonly number[];
  timeoutMs?: number;
  onProgress?: (line: string) => void;
  onStatus?: (text: string) => void;
}

/** A figure over the runs: the median and the range. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

function spread(values: readonly number[]): Spread {
  const [min, max] = range(values);
  return { median: median(values), min, max };
}

export interface CaseSummary {
  name: CaseName;
  /** The median over the seeds, and the range (the figure `results.json` names `utilization`). */
  utilization: number;
  utilizationRange: [number, number];
  /** Per VM: its work units in the window over the seeds. */
  work: Record<string, Spread>;
  migrations: { cpu: { count: Spread; cycles: Spread }; node: { count: Spread; cycles: Spread }; cell: { count: Spread; cycles: Spread } };
  pagesBorrowed: Spread;
  /** Rounds in which a VM ran part of its runnable vCPUs, summed over the VMs: in all, and within one cell (the gang invariant). */
  partialRounds: Spread;
  partialInCellRounds: Spread;
  hostSeconds: Spread;
  runs: CaseResult[];
}

/** The balanced case with the cost of a move across cells scaled: its utilization, its ratio to static, its moves. */
export interface CostVariant {
  scale: number;
  utilization: Spread;
  ratio: Spread | null;
  cellMoves: Spread;
  runs: CaseResult[];
}

export interface BalanceResult {
  cases: CaseSummary[];
  costVariants: CostVariant[];
  /** Balanced / static utilization: the median of each seed's ratio, and its range; null without both cases. */
  ratio: Spread | null;
  barMet: boolean | null;
  windowMs: number;
  seeds: number[];
  /** Each kind's checksum per seed (every unit of work of every VM and case agreed on it). */
  checksums: Record<Kind, (string | null)[]>;
}

/** `COMMAND<TAB>CHECKSUM` lines of the guest's reference.txt, as a map. */
export function readReferences(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [command, sum] = line.split('\t');
    if (command !== undefined && sum !== undefined && !command.startsWith('#')) map.set(command.trim(), sum.trim());
  }
  return map;
}

/**
 * Every kind's unit of work printed one checksum per seed, in every VM and case; seed 0's is its reference
 * command's (when it has one); two seeds that both did work differ. Returns the checksums, or throws with
 * each problem.
 */
export function checkChecksums(runs: readonly CaseResult[], references: ReadonlyMap<string, string>, seeds: readonly number[]): Record<Kind, (string | null)[]> {
  const problems: string[] = [];
  const out = {} as Record<Kind, (string | null)[]>;
  for (const kind of Object.keys(KINDS) as Kind[]) {
    out[kind] = seeds.map((seed) => {
      const sums = new Set(runs.filter((r) => r.seed === seed).flatMap((r) => r.vms.filter((v) => v.kind === kind).flatMap((v) => v.checksums)));
      if (sums.size > 1) problems.push(`${kind}, seed ${seed}: the VMs printed ${sums.size} different checksums (${[...sums].join(', ')})`);
      const sum = sums.size === 0 ? null : [...sums][0]!;
      const reference = KINDS[kind].reference;
      if (seed === 0 && sum !== null && reference !== null) {
        const expected = references.get(reference);
        if (expected === undefined) problems.push(`${kind}: no reference checksum for '${reference}'`);
        else if (expected !== sum) problems.push(`${kind}: seed 0 printed ${sum}, and '${reference}' is ${expected}`);
      }
      return sum;
    });
    const done = out[kind].filter((s): s is string => s !== null);
    if (done.length > 1 && new Set(done).size < done.length) problems.push(`${kind}: two input seeds printed the same checksum: the runs did not differ`);
  }
  if (problems.length > 0) throw new ExperimentError(`checksums: ${problems.join('; ')}`);
  return out;
}

/** Each run of the cases over the seeds summed up (`runs` of one case name each). */
export function summarize(name: CaseName, runs: readonly CaseResult[]): CaseSummary {
  const of = (f: (r: CaseResult) => number): Spread => spread(runs.map(f));
  const moves = (k: 'cpu' | 'node' | 'cell'): { count: Spread; cycles: Spread } => ({ count: of((r) => r.migrations[k].count), cycles: of((r) => r.migrations[k].cycles) });
  const u = of((r) => r.utilization);
  return {
    name, utilization: u.median, utilizationRange: [u.min, u.max],
    work: Object.fromEntries(BALANCE_VMS.map((spec) => [spec.name, of((r) => r.vms.find((v) => v.name === spec.name)!.work)])),
    migrations: { cpu: moves('cpu'), node: moves('node'), cell: moves('cell') },
    pagesBorrowed: of((r) => r.borrowing.pagesBorrowed),
    partialRounds: of((r) => r.vms.reduce((n, v) => n + v.partialRounds, 0)),
    partialInCellRounds: of((r) => r.vms.reduce((n, v) => n + v.partialInCellRounds, 0)),
    hostSeconds: of((r) => r.hostSeconds),
    runs: [...runs],
  };
}

/** Balanced / static utilization, seed by seed. */
export function utilizationRatio(cases: readonly CaseSummary[]): Spread | null {
  const balanced = cases.find((c) => c.name === 'balanced');
  const stat = cases.find((c) => c.name === 'static');
  if (balanced === undefined || stat === undefined) return null;
  return spread(balanced.runs.map((b) => b.utilization / stat.runs.find((s) => s.seed === b.seed)!.utilization));
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}`;
const fmt = (s: Spread, digits = 0, scale = 1): string => (s.min === s.max ? (s.median * scale).toFixed(digits) : `${(s.median * scale).toFixed(digits)} (${(s.min * scale).toFixed(digits)}–${(s.max * scale).toFixed(digits)})`);

export function balanceTable(r: BalanceResult): string {
  const cases = markdownTable(
    ['case', 'CPU utilization (%)', 'moves in a node (count, kcycles)', 'moves across nodes', 'moves across cells', 'pages borrowed', 'partial-gang rounds (VM / within a cell)', 'host s'],
    r.cases.map((c) => [
      c.name, `${pct(c.utilization)} (${pct(c.utilizationRange[0])}–${pct(c.utilizationRange[1])})`,
      ...(['cpu', 'node', 'cell'] as const).map((k) => `${fmt(c.migrations[k].count)}, ${fmt(c.migrations[k].cycles, 1, 1e-3)}`),
      fmt(c.pagesBorrowed), `${fmt(c.partialRounds)} / ${fmt(c.partialInCellRounds)}`, fmt(c.hostSeconds, 1),
    ]),
  );
  const work = markdownTable(
    ['VM', 'vCPUs', 'arrives (ms)', 'work', ...r.cases.map((c) => c.name)],
    BALANCE_VMS.map((spec) => [spec.name, KINDS[spec.kind].vcpus, spec.arriveMs, unitName(spec.kind), ...r.cases.map((c) => fmt(c.work[spec.name]!))]),
  );
  const ratio = r.ratio === null ? '' : `\nBalanced / static utilization: ${fmt(r.ratio, 2)} (bar: at least ${BAR}; ${r.barMet === true ? 'met' : 'not met'}).\n`;
  const variants = r.costVariants.length === 0 ? '' : `\n${markdownTable(
    ['move across cells costs', 'balanced utilization (%)', 'balanced / static', 'moves across cells'],
    [{ scale: 1, utilization: spread(r.cases.find((c) => c.name === 'balanced')?.runs.map((x) => x.utilization) ?? [Number.NaN]), ratio: r.ratio, cellMoves: r.cases.find((c) => c.name === 'balanced')?.migrations.cell.count ?? spread([Number.NaN]) }, ...r.costVariants]
      .sort((a, b) => a.scale - b.scale)
      .map((v) => [`× ${v.scale} (${cellMigrationCycles(SECOND_LEVEL_ENTRIES, CELL_MIGRATION.handoff, { ...CELL_MIGRATION, cyclesPerKiB: CELL_MIGRATION.cyclesPerKiB * v.scale })} cycles)`, fmt(v.utilization, 1, 100), v.ratio === null ? '' : fmt(v.ratio, 2), fmt(v.cellMoves)]),
  )}`;
  return `${cases}\n${work}${ratio}${variants}\nflash8 in ${BALANCE_CELLS} cells of 2 nodes, ${r.windowMs} ms of simulated time, fast mode; median (range) over input seeds ${r.seeds.join(', ')}.\n`;
}

function unitName(kind: Kind): string {
  return kind === 'raytrace' ? 'frames' : kind === 'pmake' ? 'makes' : 'bursts';
}

export function balanceSvg(r: BalanceResult): string {
  const panels = [
    { title: 'CPU utilization (%): busy cycles of every vCPU over every CPU\'s cycles', max: 100, digits: 1, bars: r.cases.map((c) => ({ label: c.name, value: 100 * c.utilization })) },
    ...(Object.keys(KINDS) as Kind[]).map((kind) => ({
      title: `${kind}: ${unitName(kind)} done, all its VMs (median)`, digits: 0,
      bars: r.cases.map((c) => ({ label: c.name, value: BALANCE_VMS.filter((v) => v.kind === kind).reduce((n, v) => n + c.work[v.name]!.median, 0) })),
    })),
    { title: 'vCPU moves across cells (median)', digits: 0, bars: r.cases.map((c) => ({ label: c.name, value: c.migrations.cell.count.median })) },
  ];
  const subtitle = r.ratio === null ? undefined : `balanced / static utilization ${r.ratio.median.toFixed(2)} (bar ${BAR}); ${r.windowMs} ms, seeds ${r.seeds.join(', ')}`;
  return barChartSvg('Balancing on flash8: one cell, 4 cells static, 4 cells balanced', panels, subtitle);
}

/** Runs every case for every seed, each in a child process, and writes the table, plot and results.json to `outDir`. */
export async function runBalance(o: BalanceOptions): Promise<BalanceResult> {
  mkdirSync(o.outDir, { recursive: true });
  const windowMs = o.windowMs ?? FULL_WINDOW_MS;
  const seeds = Array.from({ length: o.repeat ?? 3 }, (_, k) => k);
  const names = o.cases ?? CASE_NAMES;
  const runs: CaseResult[] = [];
  for (const seed of seeds) {
    for (const name of names) {
      o.onStatus?.(`${name}, seed ${seed}`);
      const request: CaseRequest = { name, seed, windowMs, kernel: o.guest.kernel, initrd: o.guest.initramfs, timeoutMs: o.timeoutMs ?? 30 * 60_000 };
      const r = await runCaseInChild<CaseResult>(BALANCE_CASE_MODULE, request, `${name}, seed ${seed}`);
      o.onProgress?.(`${name}, seed ${seed}: utilization ${pct(r.utilization)} %, ${r.migrations.cell.count} moves across cells, ${r.hostSeconds.toFixed(1)} s`);
      runs.push(r);
    }
  }
  const references = readReferences(readFileSync(join(o.guest.workloads, 'reference.txt'), 'utf8'));
  const checksums = checkChecksums(runs, references, seeds);
  const cases = names.map((name) => summarize(name, runs.filter((r) => r.name === name)));
  const ratio = utilizationRatio(cases);
  const stat = cases.find((c) => c.name === 'static');
  const costVariants: CostVariant[] = [];
  for (const scale of o.migrationCostScales ?? []) {
    const variant: CaseResult[] = [];
    for (const seed of seeds) {
      o.onStatus?.(`balanced, seed ${seed}, moves across cells × ${scale}`);
      const request: CaseRequest = { name: 'balanced', seed, windowMs, migrationCostScale: scale, kernel: o.guest.kernel, initrd: o.guest.initramfs, timeoutMs: o.timeoutMs ?? 30 * 60_000 };
      const r = await runCaseInChild<CaseResult>(BALANCE_CASE_MODULE, request, `balanced, seed ${seed}, moves × ${scale}`);
      o.onProgress?.(`balanced, seed ${seed}, moves across cells × ${scale}: utilization ${pct(r.utilization)} %, ${r.migrations.cell.count} moves across cells, ${r.hostSeconds.toFixed(1)} s`);
      variant.push(r);
    }
    checkChecksums([...runs, ...variant], references, seeds);
    costVariants.push({
      scale, utilization: spread(variant.map((r) => r.utilization)), cellMoves: spread(variant.map((r) => r.migrations.cell.count)), runs: variant,
      ratio: stat === undefined ? null : spread(variant.map((b) => b.utilization / stat.runs.find((s) => s.seed === b.seed)!.utilization)),
    });
  }
  const result: BalanceResult = { cases, costVariants, ratio, barMet: ratio === null ? null : ratio.median >= BAR, windowMs, seeds, checksums };
  const json = {
    experiment: 'balance', machine: { topology: BALANCE_TOPOLOGY, memoryBytes: BALANCE_MEMORY, cells: BALANCE_CELLS }, vmMemoryBytes: VM_MEMORY,
    vms: BALANCE_VMS.map((v) => ({ ...v, vcpus: KINDS[v.kind].vcpus, command: KINDS[v.kind].command(0) })),
    parameters: { balancePeriodRounds: BALANCE_PERIOD_ROUNDS, burstPeriodMs: BURST_PERIOD_MS, cellMigration: CELL_MIGRATION, gang: true },
    bar: BAR, ...result,
    cases: cases.map((c) => ({ ...c, runs: c.runs.map((run) => ({ ...run, vms: run.vms.map((v) => ({ ...v, checksums: [...new Set(v.checksums)] })) })) })),
  };
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson(json));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), balanceTable(result));
  writeFileWhole(join(o.outDir, PLOT_SVG), balanceSvg(result));
  return result;
}

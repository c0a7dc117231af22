// The cost of cells (issue 22, item 7; docs/experiments.md "cells-cost"): overhead's workloads in the same VM on
// the same 4-node machine, under one monolithic monitor (one cell) and under 4 cells with the VM confined to one.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { topologyPreset } from '../board/topology.js';
import type { ExecutionMode } from '../board/timing-mode.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { DEFAULT_COSTS } from '../monitor/costs.js';
import { ExperimentError } from './numa-placement.js';
import { NOMINAL } from './overhead-exits.js';
import { busy, measure, type OverheadOptions, type OverheadWorkload, type RunMeasure, type VmMachine, vmSide } from './overhead.js';
import { barChartSvg, markdownTable, median, medianBy } from './report.js';

const MiB = 2 ** 20;
export const CELLS_COST_TOPOLOGY = 'numa4x2';
/** 512 MiB a node: overhead's VM (2 vCPUs, 256 MiB) fits on one node with the monitor's data beside it. */
export const CELLS_COST_MEMORY = 2048 * MiB;
export const CELLS_COST_VCPUS = 2;
export const CELLS_COST_VM_MEMORY = 256 * MiB;
export const CELLS = 4;
/** The bar: cells cost at most this much against the monolithic monitor. */
export const BAR = 0.10;

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'cells-cost.svg';

export type CellsCostOptions = Pick<OverheadOptions, 'guest' | 'outDir' | 'workloads' | 'mode' | 'repeat' | 'onProgress' | 'onStatus'>;

/** One measure, cells against monolithic: the median over the seeds of each seed's ratio, and the ratios. */
export interface Ratio {
  median: number;
  ratios: number[];
}

export interface CellsCostResult {
  workload: string;
  command: string;
  /** The median run of each (by simulated time), and every run's simulated seconds (run k: input seed k + 1). */
  monolithic: RunMeasure;
  cells: RunMeasure;
  monolithicRuns: number[];
  cellsRuns: number[];
  checksums: string[];
  /** Cells / monolithic: the workload's simulated time, the monitor's cycles charged to the VM, and busy cycles. */
  time: Ratio;
  monitor: Ratio;
  busy: Ratio;
  /** Whether the time ratio is within the bar. */
  withinBar: boolean;
}

/** The machine and the VM of both sides; `cells` undefined is the monolithic monitor (one cell of every node). */
export function cellsCostMachine(cells: number | undefined): VmMachine {
  const { config, latencies } = topologyPreset(CELLS_COST_TOPOLOGY, CELLS_COST_MEMORY);
  return {
    config, latencies, vcpus: CELLS_COST_VCPUS, memoryBytes: CELLS_COST_VM_MEMORY,
    ...(cells === undefined ? { where: 'in the VM, one cell', label: 'one cell' } : { monitor: { cells }, where: `in the VM, ${cells} cells`, label: `${cells} cells` }),
  };
}

function ratio(cells: readonly RunMeasure[], mono: readonly RunMeasure[], of: (r: RunMeasure) => number): Ratio {
  const ratios = cells.map((c, k) => of(c) / of(mono[k]!));
  return { median: median(ratios), ratios };
}

/** Runs the workloads in the VM under one cell, then under 4, and writes the table, plot and results.json to `outDir`. */
export async function runCellsCost(o: CellsCostOptions): Promise<CellsCostResult[]> {
  const kernel = readFileSync(o.guest.kernel);
  const initrd = readFileSync(o.guest.initramfs);
  mkdirSync(o.outDir, { recursive: true });
  o.onProgress?.('the VM under one monolithic monitor (one cell)');
  const mono = await measure(o, vmSide(kernel, initrd, NOMINAL, cellsCostMachine(undefined)), 'cells-cost');
  o.onProgress?.(`the VM under ${CELLS} cells, confined to one`);
  const cells = await measure(o, vmSide(kernel, initrd, NOMINAL, cellsCostMachine(CELLS)), 'cells-cost');
  const results = o.workloads.map((w: OverheadWorkload, i): CellsCostResult => {
    const m = mono[i]!;
    const c = cells[i]!;
    m.forEach((run, k) => {
      if (run.checksum !== c[k]!.checksum) throw new ExperimentError(`${w.name} with seed ${k + 1} computed ${run.checksum} under one cell and ${c[k]!.checksum} under ${CELLS}: the cells changed a result`);
    });
    if (m.length > 1 && new Set(m.map((r) => r.checksum)).size === 1) throw new ExperimentError(`${w.name} computed the same checksum for every input seed: its runs did not differ`);
    const time = ratio(c, m, (r) => r.guestSeconds);
    return {
      workload: w.name, command: w.command,
      monolithic: medianBy(m, (r) => r.guestSeconds), cells: medianBy(c, (r) => r.guestSeconds),
      monolithicRuns: m.map((r) => r.guestSeconds), cellsRuns: c.map((r) => r.guestSeconds), checksums: m.map((r) => r.checksum),
      time, monitor: ratio(c, m, (r) => r.breakdown.monitor), busy: ratio(c, m, busy), withinBar: time.median <= 1 + BAR,
    };
  });
  const mode = o.mode ?? 'fast';
  const machine = cellsCostMachine(CELLS);
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({
    experiment: 'cells-cost', topology: CELLS_COST_TOPOLOGY, machine: machine.config, cells: CELLS, vm: { vcpus: CELLS_COST_VCPUS, memoryBytes: CELLS_COST_VM_MEMORY },
    mode, repeat: o.repeat ?? 1, latencies: mode === 'timing' ? machine.latencies : null, monitorCosts: DEFAULT_COSTS, bar: 1 + BAR, results,
  }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), cellsCostTable(results));
  writeFileWhole(join(o.outDir, PLOT_SVG), cellsCostSvg(results, mode));
  return results;
}

/** `1.000 (0.998–1.002)`: a ratio's median and range. */
function ratioText(r: Ratio): string {
  return r.ratios.length === 1 ? r.median.toFixed(3) : `${r.median.toFixed(3)} (${Math.min(...r.ratios).toFixed(3)}–${Math.max(...r.ratios).toFixed(3)})`;
}

/** Milliseconds of the median run, with the range over the seeds. */
function msText(median: number, runs: readonly number[]): string {
  const ms = (s: number): string => (s * 1000).toFixed(3);
  return runs.length === 1 ? ms(median) : `${ms(median)} (${ms(Math.min(...runs))}–${ms(Math.max(...runs))})`;
}

export function cellsCostTable(results: readonly CellsCostResult[]): string {
  const headers = ['workload', 'one cell (ms)', `${CELLS} cells (ms)`, 'cells / one, time', 'bar', 'monitor Mcycles, one cell', `monitor Mcycles, ${CELLS} cells`,
    'cells / one, monitor', 'cells / one, busy', 'TLB misses one / cells', 'memory Mcycles one / cells'];
  const mega = (n: number): string => (n / 1e6).toFixed(3);
  const rows = results.map((r) => [
    r.workload, msText(r.monolithic.guestSeconds, r.monolithicRuns), msText(r.cells.guestSeconds, r.cellsRuns), ratioText(r.time),
    `≤ ${(1 + BAR).toFixed(2)}${r.withinBar ? '' : ' (missed)'}`, mega(r.monolithic.breakdown.monitor), mega(r.cells.breakdown.monitor),
    ratioText(r.monitor), ratioText(r.busy), `${r.monolithic.tlbMisses} / ${r.cells.tlbMisses}`, `${mega(r.monolithic.memoryCycles)} / ${mega(r.cells.memoryCycles)}`,
  ]);
  return markdownTable(headers, rows);
}

/** Per workload, cells / one cell of the time and of the monitor's cycles, with the bar in the subtitle. */
export function cellsCostSvg(results: readonly CellsCostResult[], mode: ExecutionMode): string {
  const panel = (title: string, of: (r: CellsCostResult) => Ratio) => ({
    title, digits: 3, max: Math.max(1 + BAR, ...results.map((r) => of(r).median)),
    bars: results.map((r) => ({ label: r.workload, value: of(r).median, text: ratioText(of(r)) })),
  });
  return barChartSvg(`The cost of cells: ${CELLS} cells against one monolithic monitor, ${mode} mode`, [
    panel('workload time, cells / one cell', (r) => r.time),
    panel('monitor cycles, cells / one cell', (r) => r.monitor),
  ], `One VM (${CELLS_COST_VCPUS} vCPUs, ${CELLS_COST_VM_MEMORY / MiB} MiB) on ${CELLS_COST_TOPOLOGY}, confined to one of ${CELLS} cells; the bar is ${(1 + BAR).toFixed(2)}.`);
}

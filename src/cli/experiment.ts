// `mirrorball experiment NAME`: the paper experiments, each writing a table, a plot and its statistics (docs/experiments.md).

import { accessSync, appendFileSync, constants, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describeGuestKernel, findBuiltGuest } from '../guest/artifacts.js';
import { GuestSessionError } from '../guest/session.js';
import {
  ExperimentError, FULL_WORKLOAD, PLACEMENT_CASES, PLOT_SVG, QUICK_WORKLOAD, RESULTS_JSON, RESULTS_TABLE, placementTable, runNumaPlacement,
  type PlacementWorkload,
} from '../experiments/numa-placement.js';
import * as manyVms from '../experiments/many-vms.js';
import * as faults from '../experiments/faults.js';
import { faultsTable } from '../experiments/faults-report.js';
import * as memory from '../experiments/memory.js';
import { memoryTable, overcommitTable } from '../experiments/memory-report.js';
import * as fixedWork from '../experiments/fixed-work.js';
import * as numa from '../experiments/numa.js';
import * as largePages from '../experiments/numa-large-pages.js';
import * as overhead from '../experiments/overhead.js';
import * as cellsCost from '../experiments/cells-cost.js';
import * as balance from '../experiments/balance.js';
import * as giant from '../experiments/giant.js';
import { BALANCE_CELLS, BALANCE_MEMORY, BALANCE_TOPOLOGY } from '../experiments/balance-case.js';
import { variantsTable } from '../experiments/overhead-exits.js';
import type { VmVariant } from '../experiments/overhead.js';
import type { MmuMode } from '../monitor/vm.js';
import { parseCount, parseSize, UsageError } from './options.js';
import { withProgress } from './progress.js';

interface PlacementFlags {
  out: string;
  quick?: boolean;
  cases?: string;
  width?: string;
  texture?: string;
  spheres?: string;
  samples?: string;
}

export function registerExperimentCommands(program: Command): void {
  const experiment = program
    .command('experiment')
    .description('run one of the paper experiments; each writes a table, an SVG plot and per-run statistics into --out');

  experiment
    .command('numa-placement')
    .description('raytrace (8 threads) on the 4-node numa4x2 machine in timing mode, its memory placed by first touch, ' +
      'on one node, interleaved, and on an ideal machine with uniform latency; prints simulated time and % local misses')
    .option('--out <dir>', 'output directory', 'out/numa-placement')
    .option('--quick', `a small run (${QUICK_WORKLOAD.width}x${QUICK_WORKLOAD.width} pixels, ${QUICK_WORKLOAD.textureBytes / 2 ** 20} MiB texture) instead of the full one (${FULL_WORKLOAD.width}x${FULL_WORKLOAD.width}, ${FULL_WORKLOAD.textureBytes / 2 ** 20} MiB)`)
    .option('--cases <list>', `comma-separated cases to run (default all: ${PLACEMENT_CASES.map((c) => c.name).join(',')})`)
    .option('--width <pixels>', 'image width and height')
    .option('--texture <size>', 'shared texture size (e.g. 32M); most samples miss when it is several times 8 MiB of caches')
    .option('--spheres <n>', 'spheres in the scene')
    .option('--samples <n>', 'texels sampled per hit (each a likely miss)')
    .action(async (flags: PlacementFlags) => {
      const base = flags.quick ? QUICK_WORKLOAD : FULL_WORKLOAD;
      const workload: PlacementWorkload = {
        width: flags.width === undefined ? base.width : parseCount(flags.width, '--width', 8, 4096),
        spheres: flags.spheres === undefined ? base.spheres : parseCount(flags.spheres, '--spheres', 1, 1_000_000),
        textureBytes: flags.texture === undefined ? base.textureBytes : parseSize(flags.texture, '--texture'),
        samples: flags.samples === undefined ? base.samples : parseCount(flags.samples, '--samples', 1, 4096),
      };
      if (workload.textureBytes < 2 ** 20 || workload.textureBytes > 64 * 2 ** 20) throw new UsageError('--texture must be between 1M and 64M (it must fit on one node for the one-node case)');
      const cases = flags.cases === undefined ? PLACEMENT_CASES : flags.cases.split(',').map((name) => {
        const found = PLACEMENT_CASES.find((c) => c.name === name.trim());
        if (found === undefined) throw new UsageError(`no case '${name}'; the cases are ${PLACEMENT_CASES.map((c) => c.name).join(', ')}`);
        return found;
      });
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('numa-placement', (p) => runNumaPlacement({ guest, outDir: flags.out, workload, cases, ...p }));
        process.stdout.write(placementTable(results));
        process.stdout.write(noteGuest(flags.out, RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${RESULTS_TABLE}, ${RESULTS_JSON}, ${PLOT_SVG}, and per case config.json, stats.txt, stats.json, dumps.json\n`);
      } catch (error) {
        reportFailure('numa-placement', error);
      }
    });

  experiment
    .command('overhead')
    .description('Disco\'s figure 5: cpubench, raytrace, pmake and dbbench on bare Linux and in one VM under the monitor ' +
      '(2 CPUs, 256 MiB); prints each workload\'s time in the VM normalized to bare, simulated and host, with user, kernel, monitor and idle cycles')
    .option('--out <dir>', 'output directory', 'out/overhead')
    .option('--quick', 'the small reference sizes of guest/workloads/checks.txt instead of the full ones')
    .option('--mode <mode>', 'timing: every access and TLB walk charged to the cache model, bare and in the VM alike, as Disco\'s ' +
      'figure came from a detailed simulation; fast: one cycle per instruction plus the monitor\'s costs (bare Linux\'s TLB walks then cost nothing)', 'timing')
    .option('--repeat <n>', 'measured runs of each workload, bare and in the VM, run k with input seed k + 1; the result is the median of the seeds\' VM / bare ratios', '5')
    .option('--mmu <mode>', 'how the VM maps guest-physical to machine: software (Disco\'s software-refilled TLB), nested (H\'s two-stage walk) or both (a VM of each)', 'software')
    .option('--cost-scales <list>', 'run the VM once per factor with the monitor\'s cost table multiplied by it, e.g. 0.5,1,2 (docs/monitor.md)', '1')
    .option('--workloads <list>', `comma-separated workloads to run, of ${overhead.FULL_WORKLOADS.map((w) => w.name).join(', ')} (default: all)`)
    .action(async (flags: { out: string; quick?: boolean; mode: string; repeat: string; mmu: string; costScales: string; workloads?: string }) => {
      if (flags.mode !== 'fast' && flags.mode !== 'timing') throw new UsageError(`--mode takes fast or timing, not '${flags.mode}'`);
      const repeat = parseCount(flags.repeat, '--repeat', 1, 15);
      const variants = overheadVariants(flags.mmu, flags.costScales);
      const workloads = pickWorkloads(flags.quick ? overhead.QUICK_WORKLOADS : overhead.FULL_WORKLOADS, flags.workloads);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('overhead', (p) => overhead.runOverhead({
          guest, outDir: flags.out, workloads, mode: flags.mode as 'fast' | 'timing', repeat, variants, ...p,
        }));
        process.stdout.write(overhead.overheadTable(results));
        if (variants.length > 1) process.stdout.write(`\n${variantsTable(results)}`);
        process.stdout.write(noteGuest(flags.out, overhead.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${overhead.RESULTS_TABLE}, ${overhead.RESULTS_JSON}, ${overhead.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('overhead', error);
      }
    });

  registerCellsCost(experiment);
  registerBalance(experiment);
  registerManyVms(experiment);
  registerGiant(experiment);
  registerMemory(experiment);
  registerFixedWork(experiment);
  registerNuma(experiment);
  registerNumaLargePages(experiment);
  registerFaults(experiment);
}

/** The workloads `--workloads` names (every one without it), in the experiment's order. */
export function pickWorkloads<W extends { name: string }>(all: readonly W[], names: string | undefined): readonly W[] {
  if (names === undefined) return all;
  const wanted = names.split(',').map((n) => n.trim());
  const unknown = wanted.filter((n) => !all.some((w) => w.name === n));
  if (unknown.length > 0 || wanted.length === 0) {
    throw new UsageError(`--workloads takes names from ${all.map((w) => w.name).join(', ')} separated by commas, not '${names}'`);
  }
  return all.filter((w) => wanted.includes(w.name));
}

/** The VMs `--mmu` and `--cost-scales` ask for: every mode with every factor, the nominal table first. */
export function overheadVariants(mmu: string, costScales: string): VmVariant[] {
  const modes: MmuMode[] = mmu === 'both' ? ['software', 'nested'] : mmu === 'software' || mmu === 'nested' ? [mmu] : [];
  if (modes.length === 0) throw new UsageError(`--mmu takes software, nested or both, not '${mmu}'`);
  const scales = costScales.split(',').map((text) => {
    const factor = Number(text.trim());
    if (text.trim() === '' || !Number.isFinite(factor) || factor < 0 || factor > 100) {
      throw new UsageError(`--cost-scales takes factors from 0 to 100 separated by commas, like 0.5,1,2, not '${costScales}'`);
    }
    return factor;
  });
  const ordered = [...new Set(scales)].sort((a, b) => (a === 1 ? -1 : b === 1 ? 1 : a - b));
  return modes.flatMap((m) => ordered.map((costScale) => ({ mmu: m, costScale })));
}

function registerCellsCost(experiment: Command): void {
  experiment
    .command('cells-cost')
    .description(`the cost of cells (issue 22): overhead's workloads in one VM (${cellsCost.CELLS_COST_VCPUS} vCPUs, ${cellsCost.CELLS_COST_VM_MEMORY / 2 ** 20} MiB) ` +
      `on the 4-node ${cellsCost.CELLS_COST_TOPOLOGY} machine (${cellsCost.CELLS_COST_MEMORY / 2 ** 30} GiB), under one monolithic monitor and under ` +
      `${cellsCost.CELLS} cells with the VM confined to one; prints each workload's simulated time and monitor cycles under cells against one cell`)
    .option('--out <dir>', 'output directory', 'out/cells-cost')
    .option('--quick', 'the small reference sizes of guest/workloads/checks.txt instead of the full ones')
    .option('--mode <mode>', 'timing: every access charged to the cache model with numa4x2\'s latencies; fast: one cycle per instruction plus the monitor\'s costs', 'timing')
    .option('--repeat <n>', 'measured runs of each workload on each side, run k with input seed k + 1; the result is the median of the seeds\' cells / one-cell ratios', '5')
    .option('--workloads <list>', `comma-separated workloads to run, of ${overhead.FULL_WORKLOADS.map((w) => w.name).join(', ')} (default: all)`)
    .action(async (flags: { out: string; quick?: boolean; mode: string; repeat: string; workloads?: string }) => {
      if (flags.mode !== 'fast' && flags.mode !== 'timing') throw new UsageError(`--mode takes fast or timing, not '${flags.mode}'`);
      const repeat = parseCount(flags.repeat, '--repeat', 1, 15);
      const workloads = pickWorkloads(flags.quick ? overhead.QUICK_WORKLOADS : overhead.FULL_WORKLOADS, flags.workloads);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('cells-cost', (p) => cellsCost.runCellsCost({
          guest, outDir: flags.out, workloads, mode: flags.mode as 'fast' | 'timing', repeat, ...p,
        }));
        process.stdout.write(cellsCost.cellsCostTable(results));
        process.stdout.write(noteGuest(flags.out, cellsCost.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${cellsCost.RESULTS_TABLE}, ${cellsCost.RESULTS_JSON}, ${cellsCost.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('cells-cost', error);
      }
    });
}

function registerBalance(experiment: Command): void {
  experiment
    .command('balance')
    .description(`Cellular Disco's balancing (issue 22): six VMs (raytrace in two of 4 vCPUs, pmake in two of 2, bursts of cpubench every 200 ms in two of 1) ` +
      `arriving at 0, 100 and 200 ms on ${BALANCE_TOPOLOGY} (${BALANCE_MEMORY / 2 ** 30} GiB) under one cell, under ${BALANCE_CELLS} cells partitioned statically, and under ` +
      `${BALANCE_CELLS} cells with the balancers and borrowing; prints CPU utilization, each VM's work, vCPU moves by kind and pages borrowed`)
    .option('--out <dir>', 'output directory', 'out/balance')
    .option('--quick', `${balance.QUICK_WINDOW_MS} ms of simulated time instead of ${balance.FULL_WINDOW_MS}, one seed`)
    .option('--repeat <n>', 'runs of each case, run k with the workloads\' input seed k; figures are the median and range (default 3, 1 with --quick)')
    .option('--migration-costs', 'also run the balanced case with the cost of a move across cells halved and doubled')
    .action(async (flags: { out: string; quick?: boolean; repeat?: string; migrationCosts?: boolean }) => {
      const repeat = flags.repeat === undefined ? (flags.quick ? 1 : 3) : parseCount(flags.repeat, '--repeat', 1, 15);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const result = await withProgress('balance', (p) => balance.runBalance({
          guest, outDir: flags.out, windowMs: flags.quick ? balance.QUICK_WINDOW_MS : balance.FULL_WINDOW_MS, repeat, migrationCostScales: flags.migrationCosts === true ? [0.5, 2] : [], ...p,
        }));
        process.stdout.write(balance.balanceTable(result));
        process.stdout.write(noteGuest(flags.out, balance.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${balance.RESULTS_TABLE}, ${balance.RESULTS_JSON}, ${balance.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('balance', error);
      }
    });
}

function registerManyVms(experiment: Command): void {
  experiment
    .command('many-vms')
    .description(`1, 2, 4 and 8 VMs (${manyVms.VM_MEMORY / 2 ** 20} MiB, ${manyVms.VM_CPUS} vCPUs each) on the 8-CPU ${manyVms.MANY_VMS_TOPOLOGY} machine ` +
      'boot Linux and run pmake together; prints time to every shell, pmake time, host memory (RSS) and machine memory in use')
    .option('--out <dir>', 'output directory', 'out/many-vms')
    .option('--counts <list>', 'comma-separated numbers of VMs (1 to 8)', manyVms.FULL_COUNTS.join(','))
    .option('--quick', `a smaller pmake job (${manyVms.QUICK_PMAKE}) instead of ${manyVms.FULL_PMAKE}`)
    .action(async (flags: { out: string; counts: string; quick?: boolean }) => {
      const counts = flags.counts.split(',').map((c) => parseCount(c.trim(), '--counts', 1, 8));
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('many-vms', (p) => manyVms.runManyVms({
          guest, outDir: flags.out, counts, pmake: flags.quick ? manyVms.QUICK_PMAKE : manyVms.FULL_PMAKE, ...p,
        }));
        process.stdout.write(manyVms.manyVmsTable(results));
        process.stdout.write(noteGuest(flags.out, manyVms.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${manyVms.RESULTS_TABLE}, ${manyVms.RESULTS_JSON}, ${manyVms.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('many-vms', error);
      }
    });
}

function registerGiant(experiment: Command): void {
  experiment
    .command('giant')
    .description(`GiantVM (docs/giantvm.md): Linux on ${giant.GIANT_HARTS} harts over 1, 2 and 4 host processes (run --hosts N) runs raytrace and pmake; ` +
      'prints wall time, DSM faults per second, the fault round trip, bytes moved, relayed IPIs, fences and interrupts, the most-bounced pages. Not reproducible')
    .option('--out <dir>', 'output directory', 'out/giant')
    .option('--hosts <list>', 'comma-separated numbers of hosts (1 to 4)', giant.FULL_HOSTS.join(','))
    .option('--quick', `smaller workloads (${Object.values(giant.QUICK_WORKLOADS).join('; ')})`)
    .action(async (flags: { out: string; hosts: string; quick?: boolean }) => {
      const hosts = flags.hosts.split(',').map((c) => parseCount(c.trim(), '--hosts', 1, giant.GIANT_HARTS));
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const cases = await giant.runGiant({ guest, outDir: flags.out, hosts, quick: flags.quick === true, onCase: (line) => process.stderr.write(`giant: ${line}\n`) });
        process.stdout.write(giant.giantTable(cases));
        process.stdout.write(noteGuest(flags.out, giant.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${giant.RESULTS_TABLE}, ${giant.RESULTS_JSON}, ${giant.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('giant', error);
      }
    });
}

function registerMemory(experiment: Command): void {
  const job = (j: memory.MemoryOptions['job']): string => `pmake -j 2 -n ${j.files} -l ${j.lines}`;
  experiment
    .command('memory')
    .description('Disco\'s figure 6: 1, 2, 4 and 8 VMs of 128 MiB, root on one copy-on-write disk, each different (rng seed, hostname, MAC, ' +
      `a staggered start, its own pmake input seed), run ${job(memory.FULL_JOB)} with sharing off, with the disk cache (disk) and with content ` +
      'sharing too (content); prints machine memory at the end of pmake in every VM split by where the savings came from, MiB per extra VM, ' +
      'and pmake\'s simulated time against off')
    .option('--out <dir>', 'output directory', 'out/memory')
    .option('--quick', `1 and 2 VMs and a smaller pmake (${job(memory.QUICK_JOB)}), one run, no overcommit case`)
    .option('--repeat <n>', 'runs of every case, run k with its own seeds; the figures are medians with their range (1 with --quick)', '3')
    .option('--counts <list>', 'comma-separated numbers of VMs (1 to 8)')
    .option('--cases <list>', `comma-separated ways of sharing, of ${memory.SHARING_CASES.join(', ')} (report: content with every VM's free memory reported through a virtio balloon)`, memory.DEFAULT_SHARING_CASES.join(','))
    .option('--scan-rate <n>', 'the content scanner\'s pages per simulated second', String(memory.SCAN_RATE))
    .option('--idle-scan-rate <n>', 'its pages per simulated second while its CPU runs no vCPU (the part above --scan-rate only as far as the idle cycles go, charged to no one; 0 for off)', String(memory.IDLE_SCAN_RATE))
    .option('--merge-on-first-match <on|off>', 'merge a page at its first hash that matches a page of equal bytes (VMware ESX), not only once its hash held still over two looks (KSM)', memory.MERGE_ON_FIRST_MATCH ? 'on' : 'off')
    .option('--scan-cost-scales <list>', 'extra runs of content at the largest count with the scanner\'s costs multiplied by each factor (default 0.5,2; none with --quick)')
    .option('--scale-runs <n>', 'how many of the runs have the scanner-cost runs (default all)')
    .option('--resume', 'take each run that an earlier invocation left in --out\'s runs/ instead of running it again')
    .option('--jobs <n>', 'cases run at once, each in a process of its own (the figures do not depend on it)', '1')
    .option('--overcommit <size>', 'machine memory of the overcommit case (the largest count, off and content; default 240M, none with --quick; 0 for none)')
    .action(async (flags: { out: string; quick?: boolean; repeat: string; counts?: string; cases: string; scanRate: string; idleScanRate: string; mergeOnFirstMatch: string; scanCostScales?: string; overcommit?: string; jobs: string; scaleRuns?: string; resume?: boolean }) => {
      const repeat = parseCount(flags.repeat, '--repeat', 1, 15);
      const counts = (flags.counts ?? (flags.quick ? memory.QUICK_COUNTS : memory.FULL_COUNTS).join(',')).split(',').map((c) => parseCount(c.trim(), '--counts', 1, 8));
      const cases = flags.cases.split(',').map((c) => c.trim());
      const unknown = cases.filter((c) => !(memory.SHARING_CASES as readonly string[]).includes(c));
      if (unknown.length > 0 || cases.length === 0) throw new UsageError(`--cases takes ${memory.SHARING_CASES.join(', ')} separated by commas, not '${flags.cases}'`);
      const scanRate = parseCount(flags.scanRate, '--scan-rate', 1, 10_000_000);
      const idleScanRate = parseCount(flags.idleScanRate, '--idle-scan-rate', 0, 100_000_000);
      if (flags.mergeOnFirstMatch !== 'on' && flags.mergeOnFirstMatch !== 'off') throw new UsageError(`--merge-on-first-match takes on or off, not '${flags.mergeOnFirstMatch}'`);
      const scales = (flags.scanCostScales ?? (flags.quick ? '' : '0.5,2')).split(',').filter((t) => t.trim() !== '').map((t) => {
        const v = Number(t.trim());
        if (!Number.isFinite(v) || v <= 0 || v > 100) throw new UsageError(`--scan-cost-scales takes factors above 0 and up to 100, like 0.5,2, not '${flags.scanCostScales}'`);
        return v;
      });
      const overcommit = flags.overcommit ?? (flags.quick ? '0' : '240M');
      const overcommitMemory = overcommit === '0' ? undefined : parseSize(overcommit, '--overcommit');
      const jobs = parseCount(flags.jobs, '--jobs', 1, 8);
      const scaleRuns = flags.scaleRuns === undefined ? undefined : parseCount(flags.scaleRuns, '--scale-runs', 1, 15);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('memory', (p) => memory.runMemory({
          guest, outDir: flags.out, counts, cases: cases as memory.MemoryOptions['cases'], job: flags.quick ? memory.QUICK_JOB : memory.FULL_JOB,
          repeat: flags.quick && flags.repeat === '3' ? 1 : repeat, scanRate, idleScanRate, mergeOnFirstMatch: flags.mergeOnFirstMatch === 'on', scanCostScales: scales, overcommitMemory, jobs, scaleRuns, resume: flags.resume, ...p,
        }));
        process.stdout.write(memoryTable(results));
        if (results.overcommit !== undefined) process.stdout.write(`\n${overcommitTable(results.overcommit)}`);
        process.stdout.write(noteGuest(flags.out, memory.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${memory.RESULTS_TABLE}, ${memory.RESULTS_JSON}, ${memory.PLOT_SVG}, runs/ (each run with its memory over time)\n`);
      } catch (error) {
        reportFailure('memory', error);
      }
    });
}

function registerFixedWork(experiment: Command): void {
  const job = (j: fixedWork.PmakeJob): string => fixedWork.pmakeCommand(fixedWork.MACHINE_CPUS, j.files, j.lines);
  experiment
    .command('fixed-work')
    .description(`Disco's figure 7: one pmake job (${job(fixedWork.FULL_JOB)}) on bare 8-CPU Linux and split over 1, 2, 4 and 8 VMs ` +
      `(8 vCPUs and ${fixedWork.FIXED_WORK_MEMORY / 2 ** 20} MiB divided among them) on the ${fixedWork.FIXED_WORK_TOPOLOGY} machine in timing mode; ` +
      'prints each case\'s machine time normalized to bare, with guest user, guest kernel, monitor and idle cycles over all CPUs')
    .option('--out <dir>', 'output directory', 'out/fixed-work')
    .option('--counts <list>', 'comma-separated numbers of VMs (1, 2, 4 or 8: one VM of 8 vCPUs ... eight of 1); bare Linux always runs as the baseline', fixedWork.FULL_COUNTS.join(','))
    .option('--quick', `a smaller job (${job(fixedWork.QUICK_JOB)}) instead of ${job(fixedWork.FULL_JOB)}`)
    .option('--repeat <n>', 'measured runs of each case, run k with input seed k; the figure is the median of the seeds\' ratios to bare', '3')
    .action(async (flags: { out: string; counts: string; quick?: boolean; repeat: string }) => {
      const repeat = parseCount(flags.repeat, '--repeat', 1, 15);
      const counts = flags.counts.split(',').map((c) => parseCount(c.trim(), '--counts', 1, 8));
      const bad = counts.filter((c) => fixedWork.MACHINE_CPUS % c !== 0);
      if (bad.length > 0) throw new UsageError(`--counts takes 1, 2, 4 or 8 (VMs that divide the 8 CPUs), not ${bad.join(', ')}`);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('fixed-work', (p) => fixedWork.runFixedWork({
          guest, outDir: flags.out, counts, repeat, job: flags.quick ? fixedWork.QUICK_JOB : fixedWork.FULL_JOB, ...p,
        }));
        process.stdout.write(fixedWork.fixedWorkTable(results));
        process.stdout.write(noteGuest(flags.out, fixedWork.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${fixedWork.RESULTS_TABLE}, ${fixedWork.RESULTS_JSON}, ${fixedWork.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('fixed-work', error);
      }
    });
}

/** The kernel the figures were measured with, after the table and at the end of its file: its line for stdout. */
function noteGuest(out: string, table: string, guest: { dir: string; hash: string }): string {
  const line = `\nMeasured with the guest's ${describeGuestKernel(guest.dir)} (guest ${guest.hash}).\n`;
  appendFileSync(join(out, table), line);
  return line;
}

function writableOut(out: string): void {
  try {
    mkdirSync(out, { recursive: true });
    accessSync(out, constants.W_OK);
  } catch (error) {
    throw new UsageError(`cannot write to --out '${out}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function builtGuest(): NonNullable<ReturnType<typeof findBuiltGuest>> {
  const guest = findBuiltGuest();
  if (guest === undefined) throw new UsageError('no guest built yet: run `mirrorball guest build` first');
  return guest;
}

/** A guest that did not boot or answer (its message ends with the console's last lines) is one message, exit 1. */
function reportFailure(name: string, error: unknown): void {
  if (!(error instanceof ExperimentError) && !(error instanceof GuestSessionError)) throw error;
  process.stderr.write(`mirrorball: experiment ${name}: ${error.message}\n`);
  process.exitCode = 1;
}

function registerNumaLargePages(experiment: Command): void {
  experiment
    .command('numa-large-pages')
    .description(`the numa experiment's VM (${numa.NUMA_VCPUS} vCPUs, ${numa.NUMA_VM_MEMORY / 2 ** 20} MiB on ${numa.NUMA_TOPOLOGY}, timing mode) with its pages from its home node ` +
      'in 2 MiB blocks, running Engineering with no policy, with the NUMA policy moving 4 KiB pages, with whole-group moves and re-coalescing too, ' +
      'and with whole-group replication; prints time, TLB refills, the groups that are large pages and what the moves cost')
    .option('--out <dir>', 'output directory', 'out/numa-large-pages')
    .option('--quick', 'the numa experiment\'s quick Engineering')
    .option('--repeat <n>', 'measured runs per case, run k with input seed k; the median is the figure', '3')
    .option('--group-pages <n>', `replicateGroupPages of the group-replicas case (default ${largePages.GROUP_REPLICA_PAGES})`)
    .action(async (flags: { out: string; quick?: boolean; repeat: string; groupPages?: string }) => {
      const repeat = parseCount(flags.repeat, '--repeat', 1, 15);
      const groupPages = flags.groupPages === undefined ? undefined : parseCount(flags.groupPages, '--group-pages', 1, 512);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const cases = await withProgress('numa-large-pages', (p) => largePages.runNumaLargePages({ guest, outDir: flags.out, quick: flags.quick, repeat, groupPages, ...p }));
        process.stdout.write(largePages.largePagesTable(cases));
        process.stdout.write(noteGuest(flags.out, largePages.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${largePages.RESULTS_TABLE}, ${largePages.RESULTS_JSON}, ${largePages.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('numa-large-pages', error);
      }
    });
}

function registerNuma(experiment: Command): void {
  experiment
    .command('numa')
    .description(`Disco's figure 8: one VM of ${numa.NUMA_VCPUS} vCPUs and ${numa.NUMA_VM_MEMORY / 2 ** 20} MiB on ${numa.NUMA_TOPOLOGY} in timing mode, ` +
      'its pages round-robin over the nodes; Engineering, Raytrace and a write-shared microbenchmark with no policy (numa), ' +
      'with Disco\'s NUMA policy (policy) and with uniform latency (uma); prints time, local misses, where the cycles went and the share of the gap closed')
    .option('--out <dir>', 'output directory', 'out/numa')
    .option('--quick', 'smaller runs (engineering and wshare only), for the tests')
    .option('--repeat <n>', 'measured runs of each workload per case, run k with input seed k; the median is the figure', '3')
    .option('--policy-scales <list>', 'a policy case per factor, the policy\'s thresholds multiplied by it (default 0.5,1,2; 1 with --quick)')
    .option('--tlb-signal', `a case of the policy on the TLB-miss signal too ('${numa.TLB_SIGNAL_CASE}'), which fast mode has as well (default without --quick)`)
    .option('--no-tlb-signal', 'no such case')
    .option('--workloads <list>', `comma-separated workloads to run, of ${numa.FULL_WORKLOADS.map((w) => w.name).join(', ')} (default: all; with --quick ${numa.QUICK_WORKLOADS.map((w) => w.name).join(', ')})`)
    .action(async (flags: { out: string; quick?: boolean; repeat: string; policyScales?: string; workloads?: string; tlbSignal?: boolean }) => {
      const repeat = parseCount(flags.repeat, '--repeat', 1, 15);
      const list = flags.policyScales ?? (flags.quick ? '1' : '0.5,1,2');
      const policyScales = [...new Set(list.split(',').map((text) => {
        const factor = Number(text.trim());
        if (text.trim() === '' || !Number.isFinite(factor) || factor <= 0 || factor > 100) {
          throw new UsageError(`--policy-scales takes factors above 0 and up to 100 separated by commas, like 0.5,1,2, not '${list}'`);
        }
        return factor;
      }))];
      if (!policyScales.includes(1)) throw new UsageError(`--policy-scales must include 1 (the policy itself), not '${list}'`);
      const workloads = pickWorkloads(flags.quick ? numa.QUICK_WORKLOADS : numa.FULL_WORKLOADS, flags.workloads);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('numa', (p) => numa.runNuma({
          guest, outDir: flags.out, workloads, repeat, policyScales, tlbSignal: flags.tlbSignal ?? !flags.quick, ...p,
        }));
        process.stdout.write(numa.numaTable(results));
        process.stdout.write(noteGuest(flags.out, numa.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${numa.RESULTS_TABLE}, ${numa.RESULTS_JSON}, ${numa.PLOT_SVG}\n`);
      } catch (error) {
        reportFailure('numa', error);
      }
    });
}

function registerFaults(experiment: Command): void {
  experiment
    .command('faults')
    .description('a fault-containment campaign (issue 21): six Linux VMs (four confined to one node each, two spread over every node) ' +
      'on the 4-node numa4x2 machine in 4 cells do checksummed work; each injection fails a random node, CPU, link, router, page or ' +
      'line at a random moment into the work, and checks the VMs the monitor ended against the ground truth read from the machine ' +
      '(which VMs had vCPU state, pages or devices on what failed), and the survivors\' checksums. The injections run one after ' +
      'another on one machine, booted once: between them it is repaired, its failed cells rejoin, and the VMs lost are made again. ' +
      'Prints VMs lost, dependent VMs kept, survivors correct and recovery times')
    .option('--out <dir>', 'output directory', 'out/faults')
    .option('--injections <n>', 'faults injected, one after another on the same machine', String(faults.FULL_INJECTIONS))
    .option('--seed <n>', 'the campaign\'s seed: kinds, targets and moments are a function of it', '1')
    .option('--quick', `${faults.QUICK_INJECTIONS} injections (the first ${faults.QUICK_INJECTIONS} of the same seed's campaign)`)
    .action(async (flags: { out: string; injections: string; seed: string; quick?: boolean }) => {
      const injections = flags.quick ? faults.QUICK_INJECTIONS : parseCount(flags.injections, '--injections', 1, 100_000);
      const seed = parseCount(flags.seed, '--seed', 0, 2 ** 32 - 1);
      writableOut(flags.out);
      const guest = builtGuest();
      try {
        const results = await withProgress('faults', (p) => faults.runFaults({ guest, outDir: flags.out, injections, seed, ...p }));
        process.stdout.write(faultsTable(results));
        process.stdout.write(noteGuest(flags.out, faults.RESULTS_TABLE, guest));
        process.stdout.write(`\n${flags.out}/: ${faults.RESULTS_TABLE} (with every injection), ${faults.RESULTS_JSON}, ${faults.PLOT_SVG}\n`);
        if (results.independentVmsLost > 0 || results.survivorsCorrect !== results.survivors) {
          process.stderr.write(`mirrorball: experiment faults: ${results.independentVmsLost} independent VMs lost, ${results.survivorsCorrect} of ${results.survivors} survivors correct\n`);
          process.exitCode = 1;
        }
      } catch (error) {
        reportFailure('faults', error);
      }
    });
}

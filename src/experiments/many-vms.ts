// The many-VMs experiment (docs/experiments.md): 1, 2, 4 and 8 VMs of 128 MiB on the 8-CPU machine boot
// Linux and run the pmake job together; time to every shell, host memory, machine memory in use.
// Each case runs in a child process of its own, so that one case's host memory does not count in the next.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CPU_CYCLES_PER_SECOND, topologyPreset } from '../board/topology.js';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { MonitorSession } from '../guest/monitor-session.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { PAGE } from '../monitor/machine-memory.js';
import { runCaseInChild as runChild, serveCase } from './child-case.js';
import { ExperimentError } from './numa-placement.js';
import { barChartSvg, markdownTable } from './report.js';

const MiB = 2 ** 20;
export const MANY_VMS_TOPOLOGY = 'numa4x2';
/** Machine memory: exactly eight VMs' worth. */
export const MANY_VMS_MEMORY = 1024 * MiB;
export const VM_MEMORY = 128 * MiB;
export const VM_CPUS = 2;
export const FULL_COUNTS = [1, 2, 4, 8] as const;
export const FULL_PMAKE = 'pmake -j 2 -n 16 -l 100';
export const QUICK_PMAKE = 'pmake -j 2 -n 4 -l 50';

export interface ManyVmsCaseResult {
  vms: number;
  /** Machine time until every VM's agent answered (its shell is up), and host time for the same. */
  bootSimulatedMs: number;
  bootHostSeconds: number;
  /** Machine time and host time for all VMs' pmake runs, started together. */
  pmakeSimulatedMs: number;
  pmakeHostSeconds: number;
  /** Each VM's pmake elapsed time as the guest measured it (ms). */
  pmakeGuestMs: number[];
  checksums: string[];
  /** The host process's resident memory at the end, and machine memory in VMs' pages. */
  hostRssMiB: number;
  machineMiBInUse: number;
  /** The same after one pass of content-based sharing (page-sharing.ts) at the end. */
  machineMiBShared: number;
  worldSwitches: number;
}

const RESULT_LINE = /^RESULT pmake elapsed=(\S+) checksum=([0-9a-f]{16})\b/m;
const CYCLES_PER_MS = CPU_CYCLES_PER_SECOND / 1000;

/** One case, in this process: boots `count` VMs, waits for every shell, runs pmake in all of them at once. */
export async function runManyVmsCase(guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>, count: number, pmake: string): Promise<ManyVmsCaseResult> {
  const { config } = topologyPreset(MANY_VMS_TOPOLOGY, MANY_VMS_MEMORY);
  const started = performance.now();
  const session = await MonitorSession.boot({
    kernel: readFileSync(guest.kernel), initrd: readFileSync(guest.initramfs), config,
    vms: Array.from({ length: count }, (_, i) => ({ name: `vm${i}`, vcpus: VM_CPUS, memoryBytes: VM_MEMORY })),
  });
  try {
    const bootHostSeconds = (performance.now() - started) / 1000;
    const ready = Array.from({ length: count }, (_, i) => session.readyCycles(`vm${i}`) ?? 0);
    const bootCycles = Math.max(...ready);
    // Machine time is read where every VM waits for the host, not whenever the host's await returns.
    const cyclesBefore = await session.atMachineIdle(() => session.monitor.cycles);
    const pmakeStarted = performance.now();
    const results = await Promise.all(Array.from({ length: count }, (_, i) => session.exec(`vm${i}`, pmake)));
    const pmakeHostSeconds = (performance.now() - pmakeStarted) / 1000;
    const ended = await session.atMachineIdle(() => ({
      cycles: session.monitor.cycles, pages: session.monitor.memory.pagesInUse(), worldSwitches: session.monitor.worldSwitches,
    }));
    // Then one pass of content-based sharing: what the same VMs need when their equal pages are one page.
    const shared = await session.atMachineIdle(() => session.monitor.sharePages());
    const pmakeCycles = ended.cycles - cyclesBefore;
    const parsed = results.map((r, i) => {
      const m = RESULT_LINE.exec(r.output);
      if (r.status !== 0 || m === null) throw new ExperimentError(`vm${i}: pmake failed (status ${r.status}): ${r.output.trim().split('\n').slice(-3).join(' / ')}`);
      return { ms: Number(m[1]) * 1000, checksum: m[2]! };
    });
    return {
      vms: count,
      bootSimulatedMs: bootCycles / CYCLES_PER_MS,
      bootHostSeconds,
      pmakeSimulatedMs: pmakeCycles / CYCLES_PER_MS,
      pmakeHostSeconds,
      pmakeGuestMs: parsed.map((p) => p.ms),
      checksums: parsed.map((p) => p.checksum),
      hostRssMiB: process.memoryUsage().rss / MiB,
      machineMiBInUse: (ended.pages * PAGE) / MiB,
      machineMiBShared: (shared.pagesAfter * PAGE) / MiB,
      worldSwitches: ended.worldSwitches,
    };
  } finally {
    await session.kill();
  }
}

/** Runs one case in a child process (this module is its entry) and returns what it measured. */
function runCaseInChild(guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>, count: number, pmake: string): Promise<ManyVmsCaseResult> {
  return runChild<ManyVmsCaseResult>(import.meta.url, { guest: { kernel: guest.kernel, initramfs: guest.initramfs }, count, pmake }, `${count} VMs`);
}

export interface ManyVmsOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  outDir: string;
  counts: readonly number[];
  pmake: string;
  onProgress?: (line: string) => void;
  /** What runs now (which case), for a status line. */
  onStatus?: (text: string) => void;
}

export const RESULTS_JSON = 'results.json';
export const RESULTS_TABLE = 'results.md';
export const PLOT_SVG = 'many-vms.svg';

export function manyVmsTable(results: readonly ManyVmsCaseResult[]): string {
  return markdownTable(
    ['VMs', 'vCPUs', 'all shells (ms, simulated)', 'all shells (s, host)', 'pmake in all (ms, simulated)', 'pmake in all (s, host)',
      'pmake per VM (ms, guest)', 'host RSS (MiB)', 'machine memory in use (MiB)', 'after sharing equal pages (MiB)', 'world switches'],
    results.map((r) => [
      r.vms, r.vms * VM_CPUS, r.bootSimulatedMs.toFixed(1), r.bootHostSeconds.toFixed(1), r.pmakeSimulatedMs.toFixed(1), r.pmakeHostSeconds.toFixed(1),
      `${Math.min(...r.pmakeGuestMs).toFixed(1)}–${Math.max(...r.pmakeGuestMs).toFixed(1)}`, r.hostRssMiB.toFixed(0), r.machineMiBInUse.toFixed(0),
      r.machineMiBShared.toFixed(0), r.worldSwitches,
    ]),
  );
}

export function manyVmsSvg(results: readonly ManyVmsCaseResult[]): string {
  const label = (r: ManyVmsCaseResult): string => `${r.vms} VM${r.vms === 1 ? '' : 's'}`;
  return barChartSvg(`Many VMs on ${MANY_VMS_TOPOLOGY} (8 CPUs), ${VM_MEMORY / MiB} MiB and ${VM_CPUS} vCPUs each`, [
    { title: 'Time to every shell, simulated (ms)', bars: results.map((r) => ({ label: label(r), value: r.bootSimulatedMs })), digits: 1 },
    { title: 'pmake in every VM at once, simulated (ms)', bars: results.map((r) => ({ label: label(r), value: r.pmakeSimulatedMs })), digits: 1 },
    { title: 'Host resident memory (MiB)', bars: results.map((r) => ({ label: label(r), value: r.hostRssMiB })), digits: 0 },
    { title: 'Machine memory in VMs\' pages (MiB)', bars: results.map((r) => ({ label: label(r), value: r.machineMiBInUse })), digits: 0 },
    { title: 'The same after sharing equal pages (MiB)', bars: results.map((r) => ({ label: label(r), value: r.machineMiBShared })), digits: 0 },
  ]);
}

export async function runManyVms(o: ManyVmsOptions): Promise<ManyVmsCaseResult[]> {
  const results: ManyVmsCaseResult[] = [];
  for (const [i, count] of o.counts.entries()) {
    o.onProgress?.(`${count} VMs: booting`);
    o.onStatus?.(`${count} VMs (case ${i + 1}/${o.counts.length}), booting and running pmake in every VM`);
    const r = await runCaseInChild(o.guest, count, o.pmake);
    o.onProgress?.(`${count} VMs: shells after ${r.bootSimulatedMs.toFixed(1)} ms simulated (${r.bootHostSeconds.toFixed(1)} s host), ` +
      `pmake ${r.pmakeSimulatedMs.toFixed(1)} ms, RSS ${r.hostRssMiB.toFixed(0)} MiB, machine memory in use ${r.machineMiBInUse.toFixed(0)} MiB`);
    results.push(r);
  }
  const sums = new Set(results.flatMap((r) => r.checksums));
  if (sums.size > 1) throw new ExperimentError(`pmake computed different results in different VMs: ${[...sums].join(', ')}`);
  writeFileWhole(join(o.outDir, RESULTS_JSON), sortedJson({ experiment: 'many-vms', topology: MANY_VMS_TOPOLOGY, machineMemory: MANY_VMS_MEMORY, vmMemory: VM_MEMORY, vcpus: VM_CPUS, pmake: o.pmake, results }));
  writeFileWhole(join(o.outDir, RESULTS_TABLE), manyVmsTable(results));
  writeFileWhole(join(o.outDir, PLOT_SVG), manyVmsSvg(results));
  return results;
}

// The child's side: run the case given on the command line and send the result back.
serveCase(import.meta.url, (r: { guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>; count: number; pmake: string }) => runManyVmsCase(r.guest, r.count, r.pmake));

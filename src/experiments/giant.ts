// The GiantVM experiment (issue 24, docs/giantvm.md; a first version): Linux on 4 harts over 1, 2 and 4
// host processes of this machine (`run --hosts N`), booted to its shell, where raytrace and pmake are typed
// in turn; each run's wall time, the workload's own time, and what the DSM did (faults, bytes, the fault
// round trip, the relayed SBI calls and interrupt lines, the most-bounced pages). The DSM's counters are
// the whole run's (boot included): a run reports them only when it ends.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { GuestArtifacts } from '../guest/artifacts.js';
import type { HostReport } from '../host/dsm-host.js';
import { quantile } from '../host/hosts-runner.js';
import { sortedJson, writeFileWhole } from '../host/stats-output.js';
import { ExperimentError } from './numa-placement.js';
import { barChartSvg, markdownTable } from './report.js';

export const RESULTS_TABLE = 'results.md';
export const RESULTS_JSON = 'results.json';
export const PLOT_SVG = 'giant.svg';
export const GIANT_HARTS = 4;
export const FULL_HOSTS = [1, 2, 4] as const;
export const WORKLOADS = { raytrace: 'raytrace -t 4 -w 128 -H 96 -s 200 -m 1M', pmake: 'pmake -j 4 -n 16 -l 100' } as const;
export const QUICK_WORKLOADS = { raytrace: 'raytrace -t 4 -w 32 -s 100 -m 1M', pmake: 'pmake -j 4 -n 8 -l 100' } as const;
const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const PROMPT = 'mirrorball:/# ';
const BEGIN = '@@BEGIN@@';
const END = '@@END@@';
const RUN_TIMEOUT_MS = 1_800_000;

/** One run of `mirrorball run` driven through its console: boot, one command, leaving the shell (power-off). */
export interface SpannedRun {
  /** Host seconds from the spawn to the prompt, and from typing the command to its end. */
  bootSeconds: number;
  commandSeconds: number;
  /** What the command printed. */
  output: string;
  instructions: number;
  guestSeconds: number;
  /** Each host's DSM report (none for one host). */
  reports: HostReport[];
}

export function runSpanned(guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>, harts: number, hosts: number, command: string): Promise<SpannedRun> {
  const dir = mkdtempSync(join(tmpdir(), 'mb-giant-'));
  const args = [CLI, 'run', '--smp', String(harts), '--memory', '256M', '--kernel', guest.kernel, '--initrd', guest.initramfs, '--stats', '--stats-dir', dir];
  if (hosts > 1) args.push('--hosts', String(hosts));
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let bootSeconds = 0;
    let typedAt = 0;
    let commandSeconds = 0;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new ExperimentError(`--hosts ${hosts}: no end in ${RUN_TIMEOUT_MS / 60000} minutes; console:\n${out.slice(-2000)}`));
    }, RUN_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
      if (bootSeconds === 0 && out.includes(PROMPT)) {
        typedAt = performance.now();
        bootSeconds = (typedAt - started) / 1000;
        child.stdin.write(`echo '@@BEG''IN@@'; ${command}; echo '@@E''ND@@'; exit\n`);
      }
      if (commandSeconds === 0 && typedAt > 0 && out.replace(/\r\n/g, '\n').includes(`\n${END}\n`)) commandSeconds = (performance.now() - typedAt) / 1000;
    });
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString('latin1'); });
    child.on('close', (status) => {
      clearTimeout(timer);
      try {
        if (status !== 0) throw new ExperimentError(`--hosts ${hosts}: the run ended with ${status}: ${err.trim().slice(-1000)}`);
        const text = out.replace(/\r\n/g, '\n');
        const begin = text.lastIndexOf(`${BEGIN}\n`);
        const output = text.slice(begin + BEGIN.length + 1, text.indexOf(`${END}\n`, begin));
        const reports = hosts > 1 ? (JSON.parse(readFileSync(join(dir, 'dsm.json'), 'utf8')) as { hosts: HostReport[] }).hosts : [];
        resolve({
          bootSeconds, commandSeconds, output, reports,
          instructions: Number(/instructions=(\d+)/.exec(err)?.[1]), guestSeconds: Number(/guest-seconds=([\d.]+)/.exec(err)?.[1]),
        });
      } catch (error) {
        reject(error);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

export interface GiantCase {
  hosts: number;
  workload: string;
  command: string;
  /** Host milliseconds from typing the workload to its end. */
  wallMs: number;
  /** The workload's own elapsed time as it printed it (`elapsed=`), when it did. */
  guestElapsed: string | null;
  bootSeconds: number;
  /** DSM faults of every host per host second of the whole run (boot included), by kind, and in all. */
  faultsPerSec: number;
  faultsByKind: { read: number; write: number; upgrade: number };
  faultRttUsMedian: number | null;
  faultRttUsP99: number | null;
  bytesMoved: number;
  signalsSent: number;
  fencesSent: number;
  linesSent: number;
  /** The most-bounced pages (guest-physical address, ownership moves). */
  bounced: [string, number][];
}

/** One case: a fresh boot on `hosts` hosts and one workload. */
export async function runGiantCase(guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>, hosts: number, workload: string, command: string): Promise<GiantCase> {
  return summarize(hosts, workload, command, await runSpanned(guest, GIANT_HARTS, hosts, command));
}

/** A case's figures from its run: every host's counters summed, their round trips pooled. */
export function summarize(hosts: number, workload: string, command: string, r: SpannedRun): GiantCase {
  const sum = (f: (h: HostReport) => number): number => r.reports.reduce((s, h) => s + f(h), 0);
  const read = sum((h) => h.readFaults);
  const write = sum((h) => h.writeFaults);
  const upgrade = sum((h) => h.upgradeFaults);
  const rtts = r.reports.flatMap((h) => h.roundTripsUs).sort((a, b) => a - b);
  const bounced = r.reports.flatMap((h) => h.bounces).sort((a, b) => b[1] - a[1]).slice(0, 5)
    .map(([page, n]): [string, number] => [`0x${(0x8000_0000 + page * 4096).toString(16)}`, n]);
  return {
    hosts, workload, command, wallMs: Math.round(r.commandSeconds * 1000), guestElapsed: /elapsed=(\S+)/.exec(r.output)?.[1] ?? null,
    bootSeconds: r.bootSeconds, faultsPerSec: (read + write + upgrade) / (r.bootSeconds + r.commandSeconds), faultsByKind: { read, write, upgrade },
    faultRttUsMedian: rtts.length === 0 ? null : quantile(rtts, 0.5), faultRttUsP99: rtts.length === 0 ? null : quantile(rtts, 0.99),
    bytesMoved: sum((h) => h.bytesSent), signalsSent: sum((h) => h.relay?.signalsSent ?? 0), fencesSent: sum((h) => h.relay?.fencesSent ?? 0),
    linesSent: sum((h) => h.linesSent ?? 0), bounced,
  };
}

export interface GiantOptions {
  guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>;
  outDir: string;
  hosts: readonly number[];
  quick: boolean;
  onCase?: (line: string) => void;
}

export async function runGiant(options: GiantOptions): Promise<GiantCase[]> {
  const workloads = options.quick ? QUICK_WORKLOADS : WORKLOADS;
  const cases: GiantCase[] = [];
  for (const hosts of options.hosts) {
    for (const [workload, command] of Object.entries(workloads)) {
      options.onCase?.(`--hosts ${hosts}, ${workload}`);
      cases.push(await runGiantCase(options.guest, hosts, workload, command));
    }
  }
  writeFileWhole(join(options.outDir, RESULTS_JSON), sortedJson({ harts: GIANT_HARTS, cases }));
  writeFileWhole(join(options.outDir, RESULTS_TABLE), giantTable(cases));
  const label = (c: GiantCase): string => `${c.workload}, ${c.hosts} host${c.hosts === 1 ? '' : 's'}`;
  writeFileWhole(join(options.outDir, PLOT_SVG), barChartSvg(`Linux on ${GIANT_HARTS} harts over host processes`, [
    { title: 'workload wall time (s)', bars: cases.map((c) => ({ label: label(c), value: c.wallMs / 1000 })), digits: 1 },
    { title: 'DSM faults per second (whole run)', bars: cases.map((c) => ({ label: label(c), value: c.faultsPerSec })), digits: 0 },
  ], 'one run per case; the DSM counters include the boot'));
  return cases;
}

export function giantTable(cases: readonly GiantCase[]): string {
  const us = (v: number | null): string => (v === null ? '-' : v.toFixed(0));
  return `${markdownTable(
    ['hosts', 'workload', 'wall s', 'guest elapsed', 'boot s', 'faults/s (r/w/u)', 'rtt median µs', 'rtt p99 µs', 'MB moved', 'signals', 'fences', 'lines', 'most-bounced'],
    cases.map((c) => [
      c.hosts, c.workload, (c.wallMs / 1000).toFixed(1), c.guestElapsed ?? '-', c.bootSeconds.toFixed(1),
      `${c.faultsPerSec.toFixed(0)} (${c.faultsByKind.read}/${c.faultsByKind.write}/${c.faultsByKind.upgrade})`, us(c.faultRttUsMedian), us(c.faultRttUsP99),
      (c.bytesMoved / 1e6).toFixed(1), c.signalsSent, c.fencesSent, c.linesSent, c.bounced.map(([a, n]) => `${a}:${n}`).join(' ') || '-',
    ]),
  )}\nLinux on ${GIANT_HARTS} harts (hart i on host i mod N), 256 MiB; one run per case; the DSM's counters are the whole run's, boot included.\n`;
}

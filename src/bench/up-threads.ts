// The up-threads bench (`npm run bench -- --only up-threads`, docs/threads.md "The monitor on threads"):
// eight VMs of the built guest under `up`, on one host thread and on two (`--threads`), alternating, timed
// from starting `up` until every VM's console shows its shell prompt. Each pair comes with the host's
// calibration (how much of a second core it gives now) and its load average, and each run with the CPU
// time `up` took, so that what a second thread got is seen beside what it gained.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { withControl } from '../cli/vm-client.js';
import { BenchError, processCpuSeconds } from './measure.js';
import { formatSpread } from './options.js';
import { calibrate, loadavg } from './threads.js';

/** The VMs and the machine: 8 VMs of 128 MiB on 2 CPUs and 2 GiB, split in two parts by `--threads 2`. */
export const UP_THREADS_VMS = 8;
const MACHINE = 'machine:\n  topology: uma\n  smp: 2\n  memory: 2G\n';
const PROMPT = 'mirrorball:/# ';
/** Longest a run may take to reach every shell. */
const RUN_LIMIT_MS = 20 * 60_000;

interface Run {
  seconds: number;
  /** User and system CPU seconds of the `up` process by then. */
  cpu: number;
  /** Guest instructions run by then (all VMs). */
  instructions: number;
}

/** `up` with `threads` on a machine file of eight VMs, until every console shows its prompt; then `down`. */
async function upRun(mirrorball: string, dir: string, threads: number, k: number): Promise<Run> {
  const file = join(dir, 'eight.yaml');
  const names = Array.from({ length: UP_THREADS_VMS }, (_, i) => `vm${i}`);
  writeFileSync(file, `${MACHINE}vms:\n${names.map((n) => `  - name: ${n}\n    memory: 128M\n`).join('')}`);
  const runDir = join(dir, `run-${threads}-${k}`);
  const started = performance.now();
  const child = spawn(process.execPath, [mirrorball, 'up', file, '--run-dir', runDir, '--threads', String(threads)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  let exited = false;
  child.on('exit', () => { exited = true; });
  const prompted = (name: string): boolean => {
    const log = join(runDir, `${name}.console.log`);
    return existsSync(log) && readFileSync(log, 'latin1').includes(PROMPT);
  };
  try {
    const waiting = new Set(names);
    while (waiting.size > 0) {
      if (exited) throw new BenchError(`up-threads: up --threads ${threads} ended before every shell: ${stderr.trim()}`);
      if (performance.now() - started > RUN_LIMIT_MS) throw new BenchError(`up-threads: up --threads ${threads}: ${waiting.size} shells not reached in ${RUN_LIMIT_MS / 60_000} min`);
      for (const name of [...waiting]) if (prompted(name)) waiting.delete(name);
      if (waiting.size > 0) await sleep(100);
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = processCpuSeconds(child.pid!);
    // One monitor counts every VM's instructions; with threads, each worker's monitor counts its own.
    const instructions = await withControl({ runDir }, async (c) => (threads === 1
      ? ((await c.execute('query-monitor')) as { instructions: number }).instructions
      : ((await c.execute('query-threads')) as { instructions: number }[]).reduce((n, t) => n + t.instructions, 0)));
    return { seconds, cpu, instructions };
  } finally {
    child.kill('SIGTERM');
    await new Promise<void>((resolve) => { if (exited) resolve(); else child.on('exit', () => resolve()); });
  }
}

export async function upThreadsBench(mirrorball: string, repeat: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mirrorball-up-threads-'));
  const pairs: { one: Run; two: Run; cores: number; load: string }[] = [];
  try {
    for (let k = 1; k <= repeat; k++) {
      process.stderr.write(`bench: up-threads, pair ${k}/${repeat}\n`);
      const load = loadavg();
      const cores = await calibrate();
      // Alternate which goes first, so that a trend in the host's load falls on both.
      const first = k % 2 === 1 ? 1 : 2;
      const a = await upRun(mirrorball, dir, first, k);
      const b = await upRun(mirrorball, dir, 3 - first, k);
      const [one, two] = first === 1 ? [a, b] : [b, a];
      pairs.push({ one, two, cores, load });
      process.stderr.write(`bench: up-threads: 1 thread ${one.seconds.toFixed(1)} s (cpu ${one.cpu.toFixed(1)} s, ${(one.instructions / 1e6).toFixed(0)} M instructions), ` +
        `2 threads ${two.seconds.toFixed(1)} s (cpu ${two.cpu.toFixed(1)} s, ${(two.instructions / 1e6).toFixed(0)} M instructions), host cores ${cores.toFixed(2)}, load ${load}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const f = (values: number[], digits = 1): string => formatSpread(values, digits);
  return [
    `up-threads: ${UP_THREADS_VMS} VMs of the built guest (128 MiB each) under up on 2 CPUs and 2 GiB, wall seconds from starting up to every shell prompt (${repeat} pair${repeat === 1 ? '' : 's'}, alternating)`,
    `  --threads 1: ${f(pairs.map((p) => p.one.seconds))} s, CPU ${f(pairs.map((p) => p.one.cpu))} s`,
    `  --threads 2: ${f(pairs.map((p) => p.two.seconds))} s, CPU ${f(pairs.map((p) => p.two.cpu))} s`,
    `  guest instructions by then (M): --threads 1 ${f(pairs.map((p) => p.one.instructions / 1e6), 0)}, --threads 2 ${f(pairs.map((p) => p.two.instructions / 1e6), 0)}`,
    `  CPU per instruction, --threads 2 against 1, pair by pair: ${f(pairs.map((p) => (p.two.cpu / p.two.instructions) / (p.one.cpu / p.one.instructions)), 2)}x`,
    `  speed-up, pair by pair: ${f(pairs.map((p) => p.one.seconds / p.two.seconds), 2)}x`,
    `  cores used by --threads 2 (CPU / wall): ${f(pairs.map((p) => p.two.cpu / p.two.seconds), 2)}`,
    `  host cores given (2 workers' fixed work against 1): ${f(pairs.map((p) => p.cores), 2)}`,
    `  load average before each pair: ${pairs.map((p) => p.load).join('; ')}`,
  ].join('\n');
}

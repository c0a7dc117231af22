// The threads bench (`npm run bench -- --only threads`, docs/threads.md "Measured"): the parallel raytrace
// in Linux on 2 harts, with the harts on one host thread and on two, alternating, timed from typing the
// command to its end on the console. Each pair of runs comes with a calibration of the host: how much of a
// second core it gives now (two workers doing fixed JavaScript work against one), and /proc/loadavg.

import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { GuestArtifacts } from '../guest/artifacts.js';
import { consoleScript } from './console-script.js';
import { BenchError } from './measure.js';
import { formatSpread } from './options.js';

/** The raytrace: 2 threads, a scene and image big enough for about 10 s on one host thread (1 s in QEMU). */
export const RAYTRACE = 'raytrace -t 2 -w 256 -H 160 -s 800 -m 1M';
/** Iterations of the calibration's work per worker: about a second on one core here. */
const CALIBRATION_WORK = 150_000_000;

/** One worker's fixed work: integer arithmetic in a loop, nothing shared. */
const WORK = `
const { parentPort, workerData } = require('node:worker_threads');
let x = 1;
for (let i = 0; i < workerData; i++) x = (Math.imul(x, 1103515245) + 12345) | 0;
parentPort.postMessage(x);
`;

async function workers(count: number): Promise<number> {
  const started = performance.now();
  await Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve, reject) => {
    const w = new Worker(WORK, { eval: true, workerData: CALIBRATION_WORK });
    w.once('message', () => resolve());
    w.once('error', reject);
  })));
  return (performance.now() - started) / 1000;
}

/**
 * How many cores the host gives this process now, from 1 to 2: two workers' fixed work against one's
 * (2 when the two take as long as one, 1 when they take twice as long).
 */
export async function calibrate(): Promise<number> {
  const one = await workers(1);
  const two = await workers(2);
  return (2 * one) / two;
}

export function loadavg(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

interface ThreadsRun {
  oneThread: number;
  twoThreads: number;
  /** CPU seconds of the command (every thread of the process): what a loaded host does not stretch. */
  oneThreadCpu: number;
  twoThreadsCpu: number;
  cores: number;
  loadBefore: string;
}

export async function threadsBench(guest: GuestArtifacts, mirrorball: string, repeat: number): Promise<string> {
  const command = `${RAYTRACE} | grep -o 'checksum=[0-9a-f]*'`;
  const run = async (threads: number): Promise<{ seconds: number; cpu: number; checksum: string }> => {
    const r = await consoleScript(process.execPath, [mirrorball, 'run', '--smp', '2', '--threads', String(threads), '--memory', '256M',
      '--kernel', guest.kernel, '--initrd', guest.initramfs], command, 1_800_000);
    const checksum = /checksum=[0-9a-f]+/.exec(r.output)?.[0];
    if (checksum === undefined) throw new BenchError(`threads: no checksum from the raytrace on ${threads} thread(s): ${r.output.trim()}`);
    return { seconds: r.commandSeconds, cpu: r.commandCpuSeconds, checksum };
  };
  const runs: ThreadsRun[] = [];
  const checksums = new Set<string>();
  for (let k = 1; k <= repeat; k++) {
    process.stderr.write(`bench: threads, run ${k}/${repeat}\n`);
    const loadBefore = loadavg();
    const cores = await calibrate();
    // Alternate which goes first, so that a trend in the host's load falls on both.
    const first = k % 2 === 1 ? 1 : 2;
    const a = await run(first);
    const b = await run(3 - first);
    checksums.add(a.checksum).add(b.checksum);
    const [one, two] = first === 1 ? [a, b] : [b, a];
    runs.push({ oneThread: one.seconds, twoThreads: two.seconds, oneThreadCpu: one.cpu, twoThreadsCpu: two.cpu, cores, loadBefore });
    process.stderr.write(`bench: threads: 1 thread ${one.seconds.toFixed(2)} s (CPU ${one.cpu.toFixed(2)} s), ` +
      `2 threads ${two.seconds.toFixed(2)} s (CPU ${two.cpu.toFixed(2)} s), ` +
      `host cores ${cores.toFixed(2)}, load ${loadBefore}\n`);
  }
  if (checksums.size !== 1) throw new BenchError(`threads: the raytrace printed different checksums: ${[...checksums].join(' ')}`);
  const lines = [
    `threads: \`${RAYTRACE}\` in Linux on --smp 2, wall seconds from typing it to its end (${repeat} run${repeat === 1 ? '' : 's'}, alternating)`,
    `  --threads 1: ${formatSpread(runs.map((r) => r.oneThread), 2)} s`,
    `  --threads 2: ${formatSpread(runs.map((r) => r.twoThreads), 2)} s`,
    `  speed-up, run by run: ${formatSpread(runs.map((r) => r.oneThread / r.twoThreads), 2)}x`,
    `  CPU seconds of the command (every thread): --threads 1 ${formatSpread(runs.map((r) => r.oneThreadCpu), 2)}, ` +
    `--threads 2 ${formatSpread(runs.map((r) => r.twoThreadsCpu), 2)}; 2 against 1, run by run: ` +
    `${formatSpread(runs.map((r) => r.twoThreadsCpu / r.oneThreadCpu), 2)}x`,
    `  host cores given (2 workers' fixed work against 1): ${formatSpread(runs.map((r) => r.cores), 2)}`,
    `  load average before each run: ${runs.map((r) => r.loadBefore).join('; ')}`,
  ];
  return lines.join('\n');
}

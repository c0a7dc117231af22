// Runs a benchmark command as a child process and measures its wall time and peak memory.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface Measurement {
  /** Seconds from spawn to exit. */
  seconds: number;
  /** Peak resident set in KiB, when it could be measured. */
  peakKiB?: number;
  /** Exit status. */
  status: number;
  /** Everything the command wrote to stdout and stderr. */
  output: string;
}

export interface MeasureOptions {
  /** Sees everything the command prints and may type on its standard input (a pipe). */
  interact?: (output: Uint8Array, type: (bytes: Uint8Array) => void) => void;
  /** Give up after this many seconds. */
  timeoutSeconds: number;
}

export class BenchError extends Error {}

const GNU_TIME = '/usr/bin/time';

/** Runs `command args` to its end, under GNU time (when installed) for its peak RSS. */
export async function measure(command: string, args: string[], options: MeasureOptions): Promise<Measurement> {
  const useTime = existsSync(GNU_TIME);
  const scratch = mkdtempSync(join(tmpdir(), 'mirrorball-bench-'));
  const timeFile = join(scratch, 'rss');
  const argv = useTime ? ['-f', '%M', '-o', timeFile, command, ...args] : args;
  const started = performance.now();
  const child = spawn(useTime ? GNU_TIME : command, argv, {
    stdio: [options.interact === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true, // its own process group, so a timeout kills the command and not only GNU time
  });
  const type = (bytes: Uint8Array): void => { child.stdin?.write(bytes); };
  let output = '';
  const onData = (chunk: Buffer): void => { output += chunk.toString('latin1'); };
  child.stdout!.on('data', (chunk: Buffer) => { onData(chunk); options.interact?.(chunk, type); });
  child.stdin?.on('error', () => {}); // the command may exit before reading what was typed
  child.stderr!.on('data', onData);
  const timer = setTimeout(() => { if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL'); }, options.timeoutSeconds * 1000);
  try {
    const status = await new Promise<number | null>((resolve, reject) => {
      child.on('error', (error) => reject(new BenchError(`cannot run ${command}: ${error.message}`)));
      child.on('close', (code) => resolve(code));
    });
    const seconds = (performance.now() - started) / 1000;
    if (status === null) throw new BenchError(`${command} did not finish within ${options.timeoutSeconds} s`);
    const peak = useTime && existsSync(timeFile) ? Number.parseInt(readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '', 10) : undefined;
    return { seconds, peakKiB: Number.isFinite(peak) ? peak : undefined, status, output };
  } finally {
    clearTimeout(timer);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** True when `command` is on the PATH. */
export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, command)));
}

/** Clock ticks a second in /proc/PID/stat (Linux's USER_HZ). */
const USER_HZ = 100;

/** User and system CPU seconds of process `pid` so far, every thread's, from /proc (NaN off Linux). */
export function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return Number.NaN;
  }
}

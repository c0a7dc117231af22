// Runs a benchmark command as a child process and measures its wall time and peak memory.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface Measurement {
  /** Seconds from spawn to exit (or to the marker). */
  seconds: number;
  /** Peak resident set in KiB, when it could be measured. */
  peakKiB?: number;
  /** Exit status (undefined when stopped at a marker). */
  status?: number;
  /** Everything the command wrote to stdout and stderr. */
  output: string;
}

export interface MeasureOptions {
  /** Stop the command (SIGKILL) as soon as its output contains this; the time is taken then. */
  marker?: string;
  /** Give up after this many seconds. */
  timeoutSeconds: number;
}

export class BenchError extends Error {}

const GNU_TIME = '/usr/bin/time';

/**
 * Runs `command args`. Without a marker the command runs to its end under GNU time (when installed) for
 * its peak RSS; with a marker, the peak is the child's VmHWM read from /proc just before it is killed.
 */
export async function measure(command: string, args: string[], options: MeasureOptions): Promise<Measurement> {
  const useTime = options.marker === undefined && existsSync(GNU_TIME);
  const scratch = mkdtempSync(join(tmpdir(), 'mirrorball-bench-'));
  const timeFile = join(scratch, 'rss');
  const argv = useTime ? ['-f', '%M', '-o', timeFile, command, ...args] : args;
  const started = performance.now();
  const child = spawn(useTime ? GNU_TIME : command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let markerSeconds: number | undefined;
  let markerPeak: number | undefined;
  const onData = (chunk: Buffer): void => {
    output += chunk.toString('latin1');
    if (options.marker !== undefined && markerSeconds === undefined && output.includes(options.marker)) {
      markerSeconds = (performance.now() - started) / 1000;
      markerPeak = vmHwm(child.pid);
      child.kill('SIGKILL');
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutSeconds * 1000);
  try {
    const status = await new Promise<number | null>((resolve, reject) => {
      child.on('error', (error) => reject(new BenchError(`cannot run ${command}: ${error.message}`)));
      child.on('close', (code) => resolve(code));
    });
    const seconds = (performance.now() - started) / 1000;
    if (options.marker !== undefined) {
      if (markerSeconds === undefined) throw new BenchError(`${command} did not print '${options.marker}' within ${options.timeoutSeconds} s`);
      return { seconds: markerSeconds, peakKiB: markerPeak, output };
    }
    if (status === null) throw new BenchError(`${command} did not finish within ${options.timeoutSeconds} s`);
    const peak = useTime && existsSync(timeFile) ? Number.parseInt(readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '', 10) : undefined;
    return { seconds, peakKiB: Number.isFinite(peak) ? peak : undefined, status, output };
  } finally {
    clearTimeout(timer);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Peak resident set (KiB) of a live process, from /proc; undefined when unreadable. */
function vmHwm(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/** True when `command` is on the PATH. */
export function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, command)));
}

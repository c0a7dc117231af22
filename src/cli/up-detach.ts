// `up --detach`: `up` again in the background, its output in the run directory's up.log; and the run directory itself.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { socketAnswers } from '../host/console-socket.js';
import { makePrivateDirectory, openPrivateFile } from '../host/private-files.js';
import { UsageError } from './options.js';

/** How long `up --detach` waits for the monitor in the background to answer on its control socket. */
const DETACH_WAIT_MS = 120_000;

/** A path as the user would type it: relative to here when inside, else absolute. */
export function shown(path: string): string {
  const r = relative(process.cwd(), path);
  return r === '' || r.startsWith('..') || isAbsolute(r) ? path : r;
}

/**
 * `up --detach`: the same command again, in the background with its output in RUN-DIR/up.log; returns when
 * it answers on its control socket, or with its status and its own words when it stops before that.
 */
export async function detach(file: string, runDir: string, control: string, restore: string | undefined, web: string | undefined, threads?: number): Promise<number> {
  if (await socketAnswers(control)) throw new UsageError(`control socket '${control}' is in use by another process`);
  makeRunDir(runDir);
  const logPath = join(runDir, 'up.log');
  const log = openPrivateFile(logPath, 'a', true);
  const logStart = fstatSync(log).size;
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'up', file, '--run-dir', runDir, '--control', control, ...(restore === undefined ? [] : ['--restore', restore]), ...(web === undefined ? [] : ['--web', web]), ...(threads === undefined ? [] : ['--threads', String(threads)])],
    { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  let status: number | undefined;
  child.on('exit', (code, signal) => { status = code ?? (signal === null ? 1 : 128); });
  child.unref();
  const deadline = Date.now() + DETACH_WAIT_MS;
  while (status === undefined && Date.now() < deadline) {
    if (await socketAnswers(control)) {
      process.stdout.write(`mirrorball: up in the background (pid ${child.pid}); control socket ${shown(control)}, log ${shown(logPath)}\n`);
      // With --web, the dashboard's line too (its port may have been picked), once the monitor has printed it.
      while (web !== undefined && status === undefined && Date.now() < deadline) {
        const line = /^mirrorball: dashboard .*$/m.exec(readFrom(logPath, logStart));
        if (line !== null) {
          process.stdout.write(`${line[0]}\n`);
          break;
        }
        await sleep(50);
      }
      return 0;
    }
    await sleep(100);
  }
  if (status === undefined) {
    process.stderr.write(`mirrorball: the monitor (pid ${child.pid}) did not answer on '${control}' within ${DETACH_WAIT_MS / 1000} s; see ${shown(logPath)}\n`);
    return 1;
  }
  process.stderr.write(readFrom(logPath, logStart));
  return status;
}

export function makeRunDir(runDir: string): void {
  try {
    makePrivateDirectory(runDir);
  } catch (error) {
    throw new UsageError(`cannot create the run directory '${runDir}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** The text of `path` from byte `start` on. */
function readFrom(path: string, start: number): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size - start;
    const bytes = Buffer.alloc(Math.max(0, size));
    readSync(fd, bytes, 0, bytes.length, start);
    return bytes.toString('utf8');
  } finally {
    closeSync(fd);
  }
}


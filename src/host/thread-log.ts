// A threaded run's counters over time (docs/threads.md, "Where the time goes"): with MIRRORBALL_THREAD_LOG
// set to a file, every 100 ms one JSON line of the wall clock (ms since the epoch) and every counter (thread-counters.ts) goes into
// it, so a phase of the run (a command typed on the console, its end) can be cut out by its host time.

import { closeSync, openSync, writeSync } from 'node:fs';
import type { ThreadCounters } from '../board/thread-counters.js';

const PERIOD_MS = 100;

/** Starts the log when MIRRORBALL_THREAD_LOG names a file; returns what stops it. */
export function logCounters(counters: ThreadCounters, path = process.env.MIRRORBALL_THREAD_LOG): () => void {
  if (path === undefined || path === '') return () => {};
  const fd = openSync(path, 'w');
  const write = (): void => {
    writeSync(fd, `${JSON.stringify({ ms: Date.now(), devices: counters.devices, slots: [...counters.slots] })}\n`);
  };
  write();
  // The threaded runner yields to the event loop every few milliseconds, so the timer fires during a run.
  const timer = setInterval(write, PERIOD_MS);
  return () => {
    clearInterval(timer);
    write();
    closeSync(fd);
  };
}

// Drives the monitor from Node's event loop, as runner.ts drives a bare machine: rounds in batches.

import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { Monitor } from '../monitor/monitor.js';
import { INSTRUCTIONS_PER_TICK, TIMEBASE_HZ } from '../timing/clock.js';
import { heldAtIdle, type IdleHold, type RunGate } from './runner.js';

export interface MonitorRunOptions {
  /**
   * Idle time flows at the host's rate instead of jumping to the next timer: for VMs that wait on a person
   * or on the host (consoles typed into, commands sent by a session). Not reproducible.
   */
  pace?: boolean;
  /** Called after each batch of rounds. */
  onBatch?: () => void;
  gate?: RunGate;
  /** Stop when this returns true (checked between batches), besides when no VM runs any more. */
  done?: () => boolean;
  /**
   * Holds machine time at round boundaries where every vCPU of every VM idles while the host has nothing
   * for them (as runner.ts's IdleHold); `atIdle` may give them input there. With `afterRound` a host can
   * also give one VM its input at that VM's own idle moments. Runs driven so reproduce exactly. Not with `pace`.
   */
  idleHold?: IdleHold;
  /** Called after every round (cheap: it runs thousands of times a second). */
  afterRound?: () => void;
  /** Host milliseconds of rounds between two looks at the event loop (20). Runs held at idle do not depend on it. */
  batchMs?: number;
}

const DEFAULT_BATCH_MS = 20;
const IDLE_SLEEP_MS = 2;
/** Machine cycles per host millisecond when idle time is paced. */
const CYCLES_PER_MS = (TIMEBASE_HZ / 1000) * INSTRUCTIONS_PER_TICK;

/** Runs until no VM is left running (or `done`). */
export async function runMonitor(monitor: Monitor, options: MonitorRunOptions = {}): Promise<void> {
  const pace = options.pace === true;
  let anchorCycles = monitor.cycles;
  let anchorHost = performance.now();
  const finished = (): boolean => !monitor.running || options.done?.() === true;
  const hold = options.idleHold;
  const holding = (): boolean => hold !== undefined && heldAtIdle(hold, () => monitor.idle);
  const batchMs = options.batchMs ?? DEFAULT_BATCH_MS;
  while (!finished()) {
    if (holding()) {
      await hold!.whenReleased();
      continue;
    }
    if (options.gate?.paused) {
      await options.gate.whenOpen();
      anchorCycles = monitor.cycles;
      anchorHost = performance.now();
      continue;
    }
    const until = performance.now() + batchMs;
    let waiting = false;
    do {
      if (pace) {
        if (!monitor.idle) {
          anchorCycles = monitor.cycles;
          anchorHost = performance.now();
        }
        const allowed = anchorCycles + (performance.now() - anchorHost) * CYCLES_PER_MS - monitor.cycles;
        waiting = monitor.idle && allowed < 1;
        if (waiting) break;
        monitor.idleSkipLimit = Math.max(1, allowed);
      }
      // Held: while the VMs wait for the host, their idle time must not run ahead of it.
      if (hold !== undefined) monitor.idleSkipLimit = hold.waitingForHost() ? 0 : Infinity;
      monitor.runRound();
      options.afterRound?.();
    } while (monitor.running && performance.now() < until && !holding());
    options.onBatch?.();
    if (waiting) await sleep(IDLE_SLEEP_MS);
    else await yieldToEventLoop();
  }
}


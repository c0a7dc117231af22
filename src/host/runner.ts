// Drives a machine from Node's event loop: rounds in batches, yielding so that input and timers get in.

import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { ExitReason, Machine } from '../board/machine.js';
import { TIMEBASE_HZ } from '../timing/clock.js';

export interface RunOptions {
  /** Stop with { kind: 'limit' } after this many instructions (all harts together). */
  maxInstructions?: number;
  /**
   * When every hart is idle, do not let guest time run ahead of host time: sleep instead. For interactive
   * use, so an idle shell does not spin through simulated time; output is the same either way.
   */
  pace?: boolean;
  /** Called after each batch of rounds (e.g. to feed an agent). */
  onBatch?: () => void;
}

/** Host milliseconds of emulation between two yields to the event loop. */
const BATCH_MS = 20;

export async function runMachine(machine: Machine, options: RunOptions = {}): Promise<ExitReason> {
  const limit = options.maxInstructions ?? Infinity;
  const start = performance.now();
  while (machine.exit === undefined) {
    const until = performance.now() + BATCH_MS;
    do {
      machine.runRound();
      if (machine.instructions >= limit) machine.stopWith({ kind: 'limit' });
    } while (machine.exit === undefined && performance.now() < until && !(options.pace === true && machine.idle));
    options.onBatch?.();
    if (options.pace === true && machine.idle) {
      const ahead = machine.clock.now() / (TIMEBASE_HZ / 1000) - (performance.now() - start);
      await sleep(Math.max(1, Math.min(ahead, 10)));
    } else {
      await yieldToEventLoop();
    }
  }
  return machine.exit;
}

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
   * use and for guests that wait on something outside the machine (a person, a network peer), whose
   * timeouts must not expire in a skipped instant. Guest time then depends on the host: not reproducible.
   */
  pace?: boolean;
  /** Called after each batch of rounds (e.g. to feed an agent). */
  onBatch?: () => void;
}

/** Host milliseconds of emulation between two yields to the event loop. */
const BATCH_MS = 20;
/** Longest sleep of an idle paced machine before it looks at its input again. */
const MAX_SLEEP_MS = 10;
const TICKS_PER_MS = TIMEBASE_HZ / 1000;

export async function runMachine(machine: Machine, options: RunOptions = {}): Promise<ExitReason> {
  const limit = options.maxInstructions ?? Infinity;
  const start = performance.now();
  const pace = options.pace === true;
  const hostTicks = (): number => (performance.now() - start) * TICKS_PER_MS;
  // Paced: an idle machine's time may catch up with the host's but not pass it.
  const waiting = (): boolean => pace && machine.idle && machine.clock.now() >= machine.idleSkipLimit;
  while (machine.exit === undefined) {
    const until = performance.now() + BATCH_MS;
    do {
      if (pace) machine.idleSkipLimit = hostTicks();
      machine.runRound();
      if (machine.instructions >= limit) machine.stopWith({ kind: 'limit' });
    } while (machine.exit === undefined && performance.now() < until && !waiting());
    options.onBatch?.();
    if (machine.exit === undefined && waiting()) {
      const ahead = (machine.clock.now() - hostTicks()) / TICKS_PER_MS;
      await sleep(Math.max(1, Math.min(ahead, MAX_SLEEP_MS)));
    } else {
      await yieldToEventLoop();
    }
  }
  return machine.exit;
}

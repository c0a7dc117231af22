// Drives a machine from Node's event loop: the shared round loop (board/run-loop.ts) on Node's clock and timers.

import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import type { ExitReason, Machine } from '../board/machine.js';
import { runMachineOn, type HostLoop, type RunOptions } from '../board/run-loop.js';

export { heldAtIdle, RunGate, type IdleHold, type RunOptions } from '../board/run-loop.js';

/** Node's clock and yields: setImmediate lets pending I/O callbacks (terminal input, sockets) run first. */
export const NODE_LOOP: HostLoop = {
  now: () => performance.now(),
  yield: async () => { await yieldToEventLoop(); },
  sleep: async (ms) => { await sleep(ms); },
};

export function runMachine(machine: Machine, options: RunOptions = {}): Promise<ExitReason> {
  return runMachineOn(NODE_LOOP, machine, options);
}

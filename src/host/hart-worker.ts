// A worker thread running a group of harts (board/hart-group.ts) in the rounds the main thread starts
// (threaded-runner.ts, docs/threads.md). Its last message is the harts' final state.

import { parentPort, workerData } from 'node:worker_threads';
import { ring } from '../board/forwarded-mmio.js';
import { HartGroup } from '../board/hart-group.js';
import { CONTROL, NUMBERS, type WorkerData } from './threaded-control.js';

const data = workerData as WorkerData;
const group = new HartGroup(data.spec);
const control = new Int32Array(data.control);
const numbers = new Float64Array(data.numbers);
const doorbell = new Int32Array(data.spec.forwarding.doorbell);
const mine = NUMBERS.WORKERS + data.index * NUMBERS.PER_WORKER;
let generation = 0;
for (;;) {
  // Sleep until the main thread starts the next round (or says stop).
  Atomics.wait(control, CONTROL.GENERATION, generation);
  generation = Atomics.load(control, CONTROL.GENERATION);
  if (Atomics.load(control, CONTROL.STOP) !== 0) break;
  const round = group.runRound(numbers[NUMBERS.START]!, numbers[NUMBERS.END]!);
  numbers[mine] = round.instructions;
  numbers[mine + 1] = round.idle ? 1 : 0;
  // The atomic add publishes the plain writes above with it.
  Atomics.add(control, CONTROL.DONE, 1);
  ring(doorbell);
}
parentPort!.postMessage(group.save());

// A worker thread running a group of harts (board/hart-group.ts) in the rounds the main thread starts
// (threaded-runner.ts, docs/threads.md). Its last message is the harts' final state.

import { parentPort, workerData } from 'node:worker_threads';
import { ring } from '../board/forwarded-mmio.js';
import { HartGroup } from '../board/hart-group.js';
import { WORKER_DONE } from '../board/threaded-sbi.js';
import { CONTROL, NUMBERS, type WorkerData } from './threaded-control.js';

const data = workerData as WorkerData;
const group = new HartGroup(data.spec);
const control = new Int32Array(data.control);
const numbers = new Float64Array(data.numbers);
const doorbell = new Int32Array(data.spec.forwarding.doorbell);
const kicks = group.signals.kicks;
const states = group.signals.states;
const me = data.spec.index;
const mine = NUMBERS.WORKERS + me * NUMBERS.PER_WORKER;
let generation = 0;
for (;;) {
  // Between rounds the worker sleeps on its kick word, which the main thread bumps to start a round (or
  // stop), and other workers to ask its harts for a fence, an IPI or a start: those are served at once.
  const kick = Atomics.load(kicks, me);
  group.serve();
  const now = Atomics.load(control, CONTROL.GENERATION);
  if (now === generation) {
    Atomics.wait(kicks, me, kick);
    continue;
  }
  generation = now;
  if (Atomics.load(control, CONTROL.STOP) !== 0) break;
  const round = group.runRound(numbers[NUMBERS.START]!, numbers[NUMBERS.END]!);
  numbers[mine] = round.instructions;
  numbers[mine + 1] = round.idle ? 1 : 0;
  Atomics.store(states, me, WORKER_DONE);
  // The atomic add publishes the plain writes above with it.
  Atomics.add(control, CONTROL.DONE, 1);
  ring(doorbell);
}
parentPort!.postMessage(group.save());

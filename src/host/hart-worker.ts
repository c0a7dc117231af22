// A worker thread running a group of harts (board/hart-group.ts) in the rounds the main thread starts
// (threaded-runner.ts, docs/threads.md). Its last message is the harts' final state.

import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { ring } from '../board/forwarded-mmio.js';
import { HartGroup } from '../board/hart-group.js';
import { WORKER_COUNTER } from '../board/thread-counters.js';
import { WORKER_DONE } from '../board/threaded-sbi.js';
import { CONTROL, NUMBERS, type WorkerData } from './threaded-control.js';

const data = workerData as WorkerData;
const group = new HartGroup(data.spec, () => performance.now());
const counters = group.counters;
const control = new Int32Array(data.control);
const numbers = new Float64Array(data.numbers);
const doorbell = new Int32Array(data.spec.forwarding.doorbell);
const kicks = group.signals.kicks;
const states = group.signals.states;
const me = data.spec.index;
const mine = NUMBERS.WORKERS + me * NUMBERS.PER_WORKER;
const workers = data.spec.workers;
let generation = 0;
/** When the worker last finished a round: from then to the next round's start is time at the barrier. */
let finished = counters.clock();
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
  const started = counters.since(WORKER_COUNTER.BARRIER_MS, finished);
  const round = group.runRound(numbers[NUMBERS.START]!, numbers[NUMBERS.END]!);
  finished = counters.since(WORKER_COUNTER.ROUND_MS, started);
  numbers[mine] = round.instructions;
  numbers[mine + 1] = round.idle ? 1 : 0;
  Atomics.store(states, me, WORKER_DONE);
  // The atomic add publishes the plain writes above with it.
  const last = Atomics.add(control, CONTROL.DONE, 1) + 1 === workers;
  // The others asleep in the round, if no worker runs now, finish it: one of them is then the last.
  if (!last) group.signals.closeIfQuiet();
  // The main thread is woken only once the round is over: waking it for nothing costs a context switch,
  // and on a loaded host the woken thread can take the core of a worker still running (docs/threads.md).
  else ring(doorbell);
}
parentPort!.postMessage(group.save());

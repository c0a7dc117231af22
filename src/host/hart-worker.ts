// A worker thread running a group of harts (board/hart-group.ts) in rounds (threaded-runner.ts,
// docs/threads.md): the main thread starts a run of rounds, and the last worker to finish each round starts
// the next itself while the main thread allows it. Its last message is the harts' final state.

import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { ring } from '../board/forwarded-mmio.js';
import { HartGroup } from '../board/hart-group.js';
import { WORKER_COUNTER } from '../board/thread-counters.js';
import { WORKER_DONE, WORKER_RUNNING } from '../board/threaded-sbi.js';
import { INSTRUCTIONS_PER_TICK } from '../timing/clock.js';
import { CONTROL, NUMBERS, type WorkerData } from './threaded-control.js';

const data = workerData as WorkerData;
const group = new HartGroup(data.spec, () => performance.now());
const counters = group.counters;
const control = new Int32Array(data.control);
const numbers = new Float64Array(data.numbers);
const time = new Float64Array(data.spec.time);
const doorbell = new Int32Array(data.spec.forwarding.doorbell);
const signals = group.signals;
const kicks = signals.kicks;
const states = signals.states;
const me = data.spec.index;
const workers = data.spec.workers;
const mine = NUMBERS.WORKERS + me * NUMBERS.PER_WORKER;

/** Did every worker's harts only wait in the round just done? (Read by the last to finish it.) */
function everyoneIdle(): boolean {
  for (let w = 0; w < workers; w++) if (numbers[NUMBERS.WORKERS + w * NUMBERS.PER_WORKER + 1] === 0) return false;
  return true;
}

/**
 * The last worker to finish a round starts the next, as the main thread would: the round's bounds and its
 * guest time (the instruction clock moves by a round, as Machine.closeRound moves it), then the others are
 * kicked. The main thread catches its clock and devices up when it next wakes (threaded-runner.ts).
 */
function startNextRound(): void {
  const quantum = numbers[NUMBERS.QUANTUM]!;
  numbers[NUMBERS.START] = numbers[NUMBERS.END]!;
  numbers[NUMBERS.END] = numbers[NUMBERS.END]! + quantum;
  numbers[NUMBERS.CLOCK] = numbers[NUMBERS.CLOCK]! + quantum;
  time[0] = Math.floor(numbers[NUMBERS.CLOCK]! / INSTRUCTIONS_PER_TICK);
  Atomics.store(control, CONTROL.DONE, 0);
  for (let w = 0; w < workers; w++) Atomics.store(states, w, WORKER_RUNNING);
  // The atomic add publishes the plain writes above with it.
  Atomics.add(control, CONTROL.GENERATION, 1);
  for (let w = 0; w < workers; w++) if (w !== me) signals.kick(w);
}

let generation = 0;
/** When the worker last finished a round: from then to the next round's start is time at the barrier. */
let finished = counters.clock();
for (;;) {
  // Between rounds the worker sleeps on its kick word, which is bumped to start a round (or stop), and
  // by other workers to ask its harts for a fence, an IPI or a start: those are served at once.
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
  numbers[mine] = numbers[mine]! + round.instructions;
  numbers[mine + 1] = round.idle ? 1 : 0;
  Atomics.store(states, me, WORKER_DONE);
  // The atomic add publishes the plain writes above with it.
  const last = Atomics.add(control, CONTROL.DONE, 1) + 1 === workers;
  if (!last) {
    // The others asleep in the round, if no worker runs now, finish it: one of them is then the last.
    signals.closeIfQuiet();
    continue;
  }
  // The main thread is woken only when it must act: every hart waits (it skips to a timer), it asked for
  // the rounds to stop, or the rounds it allowed are used up. Waking it costs a context switch, and on a
  // loaded host the woken thread can take the core of a worker (docs/threads.md).
  if (!everyoneIdle() && Atomics.sub(control, CONTROL.RUN_AHEAD, 1) > 0) startNextRound();
  else {
    Atomics.store(control, CONTROL.PARKED, 1);
    ring(doorbell);
  }
}
parentPort!.postMessage(group.save());

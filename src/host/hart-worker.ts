// A worker thread running a group of harts (board/hart-group.ts) in rounds (threaded-runner.ts,
// docs/threads.md): the main thread starts a run of rounds, which each worker runs by itself, a bounded
// number of rounds ahead of the slowest at most. Its last message is the harts' final state.

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
const lag = Atomics.load(control, CONTROL.LAG);

/** The smallest number of rounds any worker has finished in this run. */
function slowest(): number {
  let m = Infinity;
  for (let w = 0; w < workers; w++) m = Math.min(m, Atomics.load(control, CONTROL.ROUNDS + w));
  return m;
}

/**
 * After this worker finished a round: if every worker has now finished `m` rounds, guest time moves to
 * the start of round `m` (as Machine.closeRound moves the instruction clock), and the workers waiting to
 * run ahead are kicked. Under a lock, so that time is only ever written forward.
 */
function raiseGlobal(clock0: number, quantum: number): void {
  const m = slowest();
  if (m <= Atomics.load(control, CONTROL.GLOBAL)) return;
  while (Atomics.compareExchange(control, CONTROL.TIME_LOCK, 0, 1) !== 0);
  const raised = m > Atomics.load(control, CONTROL.GLOBAL);
  if (raised) {
    time[0] = Math.floor((clock0 + m * quantum) / INSTRUCTIONS_PER_TICK);
    Atomics.store(control, CONTROL.GLOBAL, m);
  }
  Atomics.store(control, CONTROL.TIME_LOCK, 0);
  // Only a worker between rounds can be waiting for this (too far ahead): one that runs needs no kick.
  // (It stores its state before it looks at GLOBAL again, and this looks at the state after storing GLOBAL.)
  if (raised) for (let w = 0; w < workers; w++) if (w !== me && Atomics.load(states, w) === WORKER_DONE) signals.kick(w);
}

/** Round `k` may start: the main thread allows it, and it is not too far ahead of the slowest worker. */
function mayStart(k: number): boolean {
  return k >= Atomics.load(control, CONTROL.ALLOWED) || k < Atomics.load(control, CONTROL.GLOBAL) + lag;
}

let generation = 0;
/** When the worker last finished a round: from then to the next round's start is time at the barrier. */
let finished = counters.clock();
for (;;) {
  // Between runs of rounds the worker sleeps on its kick word, which is bumped to start a run (or stop),
  // and by other workers to ask its harts for a fence, an IPI or a start: those are served at once.
  const kick = Atomics.load(kicks, me);
  group.serve();
  const now = Atomics.load(control, CONTROL.GENERATION);
  if (now === generation) {
    Atomics.wait(kicks, me, kick);
    continue;
  }
  generation = now;
  if (Atomics.load(control, CONTROL.STOP) !== 0) break;
  // A run of rounds: each worker runs them by itself, up to `lag` rounds ahead of the slowest, so that a
  // worker the host does not run for a while holds the others up only once they are that far ahead.
  const first = numbers[NUMBERS.START]!;
  const quantum = numbers[NUMBERS.QUANTUM]!;
  const clock0 = numbers[NUMBERS.CLOCK]!;
  let k = 0;
  while (k < Atomics.load(control, CONTROL.ALLOWED) && Atomics.load(control, CONTROL.STOP) === 0) {
    if (!mayStart(k)) {
      // Too far ahead: not running (the others asleep in a round may then be closed), until the slowest moves.
      Atomics.store(states, me, WORKER_DONE);
      signals.closeIfQuiet();
      for (;;) {
        const kicked = Atomics.load(kicks, me);
        group.serve();
        if (mayStart(k) || Atomics.load(control, CONTROL.STOP) !== 0) break;
        Atomics.wait(kicks, me, kicked);
      }
      continue;
    }
    Atomics.store(states, me, WORKER_RUNNING);
    const started = counters.since(WORKER_COUNTER.BARRIER_MS, finished);
    const round = group.runRound(first + k * quantum, first + (k + 1) * quantum);
    finished = counters.since(WORKER_COUNTER.ROUND_MS, started);
    numbers[mine] = numbers[mine]! + round.instructions;
    numbers[mine + 1] = round.idle ? 1 : 0;
    k++;
    // The atomic store publishes the plain writes above with it.
    Atomics.store(control, CONTROL.ROUNDS + me, k);
    raiseGlobal(clock0, quantum);
  }
  Atomics.store(states, me, WORKER_DONE);
  // The last worker to finish the run wakes the main thread; the others close the round for the workers
  // asleep in one, if no worker runs now (one of those is then the last).
  if (Atomics.add(control, CONTROL.DONE, 1) + 1 === workers) {
    Atomics.store(control, CONTROL.PARKED, 1);
    ring(doorbell);
  } else signals.closeIfQuiet();
}
parentPort!.postMessage(group.save());

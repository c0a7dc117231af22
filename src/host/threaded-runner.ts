// Runs a machine's harts on worker threads over its shared memory (docs/threads.md): the main thread keeps
// the clock, the devices, the SBI's shared state and HTIF, and starts each round; the workers run their
// harts to its end. The workers' harts reach the devices through mailboxes, the devices' interrupt lines
// reach them, and the built-in SBI runs on each worker (board/threaded-sbi.ts). Not reproducible.

import { setImmediate as yieldToEventLoop, setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { HartGroupSpec } from '../board/hart-group.js';
import type { ExitReason, Machine } from '../board/machine.js';
import { restoreHart, saveHart, type HartSnapshot } from '../cpu/hart-snapshot.js';
import { forwardingMemory, MmioServer } from '../board/forwarded-mmio.js';
import { runControlRequest } from '../devices/control.js';
import { Signals, signalMemory, WORKER_RUNNING } from '../board/threaded-sbi.js';
import { MAIN_COUNTER, ThreadCounters } from '../board/thread-counters.js';
import { InstructionClock, INSTRUCTIONS_PER_TICK, TIMEBASE_HZ } from '../timing/clock.js';
import { CONTROL, NUMBERS, type WorkerData } from './threaded-control.js';

/**
 * Cycles per round when threaded: a round's barrier costs tens of microseconds, as much as a 4096-cycle
 * slice takes to run, so threaded rounds are longer. Guest time moves once a round: this is also how far
 * a hart can run ahead of the time it reads (docs/threads.md).
 */
export const THREADED_QUANTUM = 65536;
/**
 * Rounds the workers run by themselves before they wait for the main thread again (docs/threads.md,
 * "Where the time goes"). The main thread catches up whenever it wakes (an MMIO access, the end of the
 * rounds): the CLINT's timer interrupts, the devices' host input and HTIF can come this many rounds late.
 */
export const RUN_AHEAD_ROUNDS = 16;
/**
 * How many rounds a worker may run ahead of the slowest: guest time is the start of the slowest one's
 * round, so a hart can run this many rounds more ahead of the time it reads (the bound of docs/threads.md).
 * 1, every round a barrier: with a free second core, 4 rounds measured no faster (docs/threads.md, "Measured").
 */
export const LAG_ROUNDS = 1;
/** Host milliseconds of rounds between two yields to the event loop. */
const BATCH_MS = 20;
/** How long an idle paced machine sleeps before it looks at the time and its input again (as runner.ts). */
const IDLE_SLEEP_MS = 2;
const TICKS_PER_MS = TIMEBASE_HZ / 1000;

export interface ThreadedOptions {
  /** Worker threads (at most one per hart). */
  threads: number;
  maxInstructions?: number;
  translate?: boolean;
  quantum?: number;
  /**
   * When every hart idles, guest time does not run ahead of host time (runner.ts's `pace`): for a guest
   * that waits on someone typing.
   */
  pace?: boolean;
  /** Rounds a worker may run ahead of the slowest (default LAG_ROUNDS; 1: every round is a barrier). */
  lag?: number;
  /** Given the run's counters as it starts: where each thread's time goes (`--stats`), read at any time. */
  counted?: (counters: ThreadCounters) => void;
}

/** A machine the threaded runner cannot run yet: one line for the user. */
export class ThreadedRunError extends Error {}

export async function runThreaded(machine: Machine, options: ThreadedOptions): Promise<ExitReason> {
  const quantum = options.quantum ?? THREADED_QUANTUM;
  const limit = options.maxInstructions ?? Infinity;
  const regions = machine.bus.machineRam;
  if (regions.some((r) => !(r.buffer instanceof SharedArrayBuffer))) throw new ThreadedRunError('threads need machine memory in SharedArrayBuffers');
  if (machine.harts.some((h) => h.timed)) throw new ThreadedRunError('timing mode runs on one thread only');
  const workers = Math.max(1, Math.min(options.threads, machine.harts.length));
  const time = new SharedArrayBuffer(8);
  const timeNow = new Float64Array(time);
  const control = new Int32Array(new SharedArrayBuffer((CONTROL.WORDS + machine.harts.length) * 4));
  const lag = options.lag ?? LAG_ROUNDS;
  if (!Number.isInteger(lag) || lag < 1) throw new ThreadedRunError(`the lag must be a whole number of rounds from 1, not ${lag}`);
  Atomics.store(control, CONTROL.LAG, lag);
  const numbers = new Float64Array(new SharedArrayBuffer((NUMBERS.WORKERS + workers * NUMBERS.PER_WORKER) * 8));
  const forwarding = forwardingMemory(machine.harts.length);
  const doorbell = new Int32Array(forwarding.doorbell);
  const server = new MmioServer(machine.bus, forwarding, machine.harts.length, {
    reset: (type, reason) => machine.sbiReset(type, reason),
    consoleWrite: (bytes) => machine.consoleWrite(bytes),
    control: (request, argument) => runControlRequest(machine.control, request, argument),
  });
  const signalsMemory = signalMemory(machine.harts.length, workers);
  const signals = new Signals(signalsMemory, workers);
  const lines = (hart: number): number => machine.harts[hart]!.mipLines;
  /** Publishes the devices' lines; the workers of harts whose lines changed are kicked (a hart asleep in WFI wakes). */
  const publish = (): boolean => {
    const changed = server.publishLines(lines);
    for (let hart = 0; hart < machine.harts.length; hart++) if ((changed >>> hart) & 1) signals.kick(signals.workerOf(hart));
    return changed !== 0;
  };
  publish();
  const devices = machine.bus.devices.map((w) => ({ base: w.base, size: w.size, name: w.device.name }));
  const counters = ThreadCounters.create(workers, devices.map((d) => d.name));
  const count = counters.slots;
  options.counted?.(counters);
  const shared = regions.map((r) => ({ node: r.node, base: r.base, size: r.size, buffer: r.buffer as SharedArrayBuffer }));
  const reservations = machine.reservations.memory();
  if (!(reservations instanceof SharedArrayBuffer)) throw new ThreadedRunError('threads need the reservation table in shared memory');
  const groups: number[][] = Array.from({ length: workers }, () => []);
  for (const h of machine.harts) groups[h.id % workers]!.push(h.id);

  const finals: HartSnapshot[][] = [];
  let failure: Error | undefined;
  const threads = groups.map((ids, index) => {
    const spec: HartGroupSpec = {
      harts: machine.harts.length, ids, states: ids.map((id) => saveHart(machine.harts[id]!, regions)),
      regions: shared, reservations, time, translate: options.translate ?? true, devices, forwarding,
      index, workers, signals: signalsMemory, sbi: machine.sbi?.shared(), counters: counters.buffer,
    };
    const data: WorkerData = { index, spec, control: control.buffer as SharedArrayBuffer, numbers: numbers.buffer as SharedArrayBuffer };
    const worker = startWorker(data);
    const ended = new Promise<void>((resolve) => {
      worker.on('message', (states: HartSnapshot[]) => { finals[index] = states; });
      worker.on('error', (error) => { failure ??= error; resolve(); });
      worker.on('exit', () => resolve());
    });
    return { worker, ended };
  });

  const pace = options.pace === true;
  if (!(machine.clock instanceof InstructionClock)) throw new ThreadedRunError('threads need the instruction clock');
  const clock = machine.clock;
  // Paced, idle time flows at the host's rate from the moment the machine went idle (runner.ts).
  let anchorGuest = machine.clock.now();
  let anchorHost = performance.now();
  const kickAll = (): void => { for (let w = 0; w < workers; w++) signals.kick(w); };
  const instructionSlot = (w: number): number => NUMBERS.WORKERS + w * NUMBERS.PER_WORKER;
  /** The workers' instructions (each its running total) already in machine.instructions. */
  let counted = 0;
  /** The first cycle of the run of rounds the main thread started last. */
  let first = 0;
  /** The rounds of that run (every worker's) the main thread's clock and devices were caught up with. */
  let seen = 0;
  /** The last of those rounds whose closing raised an interrupt line. */
  let raisedAt = -1;
  /**
   * Every hart waited in the last round: the next run is one round, as before runs of rounds, so that an
   * idle machine's time moves by the skips (paced: not past the host's time), not by a run's idle rounds.
   */
  let lastIdle = false;
  numbers[NUMBERS.QUANTUM] = quantum;

  /**
   * Starts a run of rounds, the workers parked: RUN_AHEAD_ROUNDS (fewer near the instruction limit), each
   * worker running them by itself (hart-worker.ts).
   */
  const startRounds = (): void => {
    const rounds = lastIdle ? 1 : Math.max(1, Math.min(RUN_AHEAD_ROUNDS, Math.ceil((limit - machine.instructions) / (quantum * machine.harts.length))));
    timeNow[0] = machine.clock.now();
    numbers[NUMBERS.START] = machine.cycles;
    numbers[NUMBERS.END] = machine.cycles + quantum;
    numbers[NUMBERS.CLOCK] = clock.instructions;
    Atomics.store(control, CONTROL.DONE, 0);
    Atomics.store(control, CONTROL.PARKED, 0);
    Atomics.store(control, CONTROL.GLOBAL, 0);
    for (let w = 0; w < workers; w++) Atomics.store(control, CONTROL.ROUNDS + w, 0);
    Atomics.store(control, CONTROL.ALLOWED, rounds);
    for (let w = 0; w < workers; w++) Atomics.store(signals.states, w, WORKER_RUNNING);
    first = machine.cycles;
    seen = 0;
    raisedAt = -1;
    count[MAIN_COUNTER.RUNS]! += 1;
    Atomics.add(control, CONTROL.GENERATION, 1);
    kickAll();
  };
  /**
   * While the workers run rounds by themselves: the clock, timers and devices move on to the start of the
   * round running now, so that the CLINT's mtime agrees with the harts' time and devices' input comes in.
   */
  const catchUp = (): void => {
    const global = Atomics.load(control, CONTROL.GLOBAL);
    if (global === seen) return;
    count[MAIN_COUNTER.ROUNDS]! += global - seen;
    seen = global;
    machine.closeRound(first + global * quantum);
    if (publish()) raisedAt = global;
  };
  /** Stops the workers soon (an exit): each runs up to the round the furthest ahead is in, then they park. */
  const hold = (): void => {
    let furthest = 0;
    for (let w = 0; w < workers; w++) furthest = Math.max(furthest, Atomics.load(control, CONTROL.ROUNDS + w));
    const allowed = Atomics.load(control, CONTROL.ALLOWED);
    if (furthest + 1 < allowed) Atomics.store(control, CONTROL.ALLOWED, furthest + 1);
  };

  try {
    let parked = true;
    // An exit ends the run once the workers have parked after their round, which is then counted.
    const going = (): boolean => failure === undefined && (!parked || machine.exit === undefined);
    while (going()) {
      const until = performance.now() + BATCH_MS;
      let sleepAfter = false;
      do {
        if (parked) {
          startRounds();
          parked = false;
        }
        // While the rounds run, the main thread answers the workers' MMIO and sleeps on the doorbell in
        // between, until the workers park (or it is time to yield to the event loop: they go on meanwhile).
        for (;;) {
          const bell = Atomics.load(doorbell, 0);
          const serving = performance.now();
          const served = server.serve();
          if (served > 0) {
            publish();
            count[MAIN_COUNTER.SERVED]! += served;
            count[MAIN_COUNTER.SERVE_MS]! += performance.now() - serving;
          }
          catchUp();
          // An exit (a power-off through a device, a reset): the workers stop at the end of this round.
          if (machine.exit !== undefined) hold();
          if (failure !== undefined) break;
          if (Atomics.load(control, CONTROL.PARKED) !== 0) {
            parked = true;
            break;
          }
          if (performance.now() >= until) break;
          signals.closeIfQuiet();
          const sleeping = performance.now();
          const woke = Atomics.wait(doorbell, 0, bell, 100);
          count[MAIN_COUNTER.WAIT_MS]! += performance.now() - sleeping;
          if (woke === 'timed-out') await yieldToEventLoop(); // a worker's error arrives as an event
        }
        if (!parked) break;
        // The workers are parked after a round: it closes as on one thread.
        const closing = performance.now();
        // Time, timers and HTIF move on as after any round: every worker finished the run's rounds.
        catchUp();
        // Closing the last round raised a line: a hart may run now, so no skip.
        const raised = raisedAt === seen;
        let total = 0;
        let idle = true;
        for (let w = 0; w < workers; w++) {
          total += numbers[instructionSlot(w)]!;
          if (numbers[instructionSlot(w) + 1] === 0) idle = false;
        }
        machine.instructions += total - counted;
        counted = total;
        if (!idle) {
          anchorGuest = machine.clock.now();
          anchorHost = performance.now();
        }
        if (idle) count[MAIN_COUNTER.IDLE_ROUNDS]! += 1;
        lastIdle = idle;
        if (machine.instructions >= limit) machine.stopWith({ kind: 'limit' });
        else if (idle && !raised && machine.exit === undefined) {
          // Every hart waits: skip to the next timer deadline, as the one-thread machine does; paced, not
          // past the host's time (then sleep a little).
          let wait = machine.cyclesToDeadline(true);
          if (pace) wait = Math.min(wait, Math.max(0, (anchorGuest + (performance.now() - anchorHost) * TICKS_PER_MS - machine.clock.now()) * INSTRUCTIONS_PER_TICK));
          if (wait === Infinity) throw new ThreadedRunError('every hart waits for an interrupt and no timer is set to send one');
          if (wait > 0) machine.skipCycles(Math.ceil(wait));
          else if (pace) sleepAfter = true;
          publish();
        }
        count[MAIN_COUNTER.CLOSE_MS]! += performance.now() - closing;
      } while (going() && !sleepAfter && performance.now() < until);
      if (sleepAfter) await sleep(IDLE_SLEEP_MS);
      else await yieldToEventLoop();
    }
  } finally {
    Atomics.store(control, CONTROL.STOP, 1);
    Atomics.add(control, CONTROL.GENERATION, 1);
    kickAll();
    // A worker that failed leaves the others waiting for it (an ack, a round): they are ended.
    if (failure !== undefined) for (const t of threads) void t.worker.terminate();
    await Promise.all(threads.map((t) => t.ended));
  }
  if (failure !== undefined) throw failure;
  // The main thread's harts take the state the workers left them in (counters, registers, for reports).
  groups.forEach((ids, index) => ids.forEach((id, i) => {
    const state = finals[index]?.[i];
    if (state !== undefined) restoreHart(machine.harts[id]!, state, regions, `hart ${id}`);
  }));
  return machine.exit ?? { kind: 'limit' };
}

/**
 * The worker's module is beside this one. When this runs from the sources (tests, under tsx), it is
 * TypeScript, and the worker registers tsx's loader before importing it: Node 20's workers inherit no
 * module hooks.
 */
function startWorker(data: WorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./hart-worker.js', import.meta.url), { workerData: data });
  const url = new URL('./hart-worker.ts', import.meta.url).href;
  const bootstrap = `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(url)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

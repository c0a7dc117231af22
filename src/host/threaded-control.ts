// The shared control block between the main thread and the hart workers (docs/threads.md, "Rounds").

import type { HartGroupSpec } from '../board/hart-group.js';

/** Int32 words of the control block. */
export const CONTROL = {
  /** Bumped by the main thread to start a round (or to wake the workers to stop). */
  GENERATION: 0,
  /** Workers that finished the round (the threaded runner: every round the main thread allowed). */
  DONE: 1,
  /** Non-zero: the workers leave their loop and send their harts' state. */
  STOP: 2,
  /**
   * The threaded runner: rounds each worker runs, by itself, in the run of rounds the main thread started
   * (so that the main thread is not on every round's path). The main thread lowers it to stop them early (an exit).
   */
  ALLOWED: 3,
  /** Non-zero: every worker ran its rounds and waits for the main thread to start more (it was rung). */
  PARKED: 4,
  /** Rounds of the run every worker has finished: the round whose start is the guest time. */
  GLOBAL: 5,
  /** A lock word for raising GLOBAL with the guest time (0 free). */
  TIME_LOCK: 6,
  /** How many rounds a worker may run ahead of GLOBAL. */
  LAG: 7,
  /** Then one word per worker: the rounds of the run it has finished. */
  ROUNDS: 8,
  WORDS: 8,
} as const;

/** Float64 slots: the round, then per worker what it did. */
export const NUMBERS = {
  START: 0,
  END: 1,
  /** The machine's instruction clock (InstructionClock.instructions) at the round's start: its guest time. */
  CLOCK: 2,
  /** Cycles of a round. */
  QUANTUM: 3,
  /**
   * The first worker's slots: instructions run in the round (the threaded runner: all its rounds so
   * far), then 1 if all its harts idle.
   */
  WORKERS: 4,
  PER_WORKER: 2,
} as const;

export interface WorkerData {
  index: number;
  spec: HartGroupSpec;
  control: SharedArrayBuffer;
  numbers: SharedArrayBuffer;
}

// The shared control block between the main thread and the hart workers (docs/threads.md, "Rounds").

import type { HartGroupSpec } from '../board/hart-group.js';

/** Int32 words of the control block. */
export const CONTROL = {
  /** Bumped by the main thread to start a round (or to wake the workers to stop). */
  GENERATION: 0,
  /** Workers that finished the round. */
  DONE: 1,
  /** Non-zero: the workers leave their loop and send their harts' state. */
  STOP: 2,
  /**
   * Rounds the workers may still start by themselves: the last to finish a round starts the next while
   * this is above 0 (taking one), so that the main thread is not on every round's path. The main thread
   * sets it when it starts rounds, and to 0 when it wants them to stop (an exit).
   */
  RUN_AHEAD: 3,
  /** Non-zero: the workers finished a round and wait for the main thread to start the next (it was rung). */
  PARKED: 4,
  WORDS: 5,
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

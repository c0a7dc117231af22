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
  WORDS: 3,
} as const;

/** Float64 slots: the round, then per worker what it did. */
export const NUMBERS = {
  START: 0,
  END: 1,
  /** The first worker's slots: instructions run in the round, then 1 if all its harts idle. */
  WORKERS: 2,
  PER_WORKER: 2,
} as const;

export interface WorkerData {
  index: number;
  spec: HartGroupSpec;
  control: SharedArrayBuffer;
  numbers: SharedArrayBuffer;
}

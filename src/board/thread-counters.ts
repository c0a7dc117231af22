// Where each hart worker's wall time goes, and what crosses between threads (docs/threads.md, "Where the
// time goes"): a few Float64 slots per worker in shared memory, which the worker adds to and the main
// thread reads at the end of a run for `--stats`. Plain JavaScript: the host gives the clock (milliseconds),
// so the hardware layers read no host time themselves. Without a clock the counts still count and the
// times stay 0.

/** Float64 slots of one worker's counters. */
export const WORKER_COUNTER = {
  /** Milliseconds running harts (the interpreter and the translated blocks, between two looks at the signals). */
  RUN_MS: 0,
  /** Milliseconds asleep in a round: every hart of the worker in WFI or stopped, while others still run. */
  IDLE_MS: 1,
  /**
   * Milliseconds between rounds: too far ahead of the slowest worker, or done with the rounds the main
   * thread allowed and waiting for it to allow more (what is left of a barrier).
   */
  BARRIER_MS: 2,
  /** Milliseconds waiting for the main thread's answer to a forwarded MMIO access or SBI call. */
  MAILBOX_MS: 3,
  /** Milliseconds in remote fences: waiting for the targets' acks. */
  FENCE_MS: 4,
  /** Rounds run. */
  ROUNDS: 5,
  /** Times the worker, asleep in a round, was woken to run one of its harts again. */
  WAKES: 6,
  /** Forwarded firmware requests (SBI console, reset, simulation control). */
  FIRMWARE: 7,
  IPIS_SENT: 8,
  IPIS_TAKEN: 9,
  /** Remote fences asked of harts on other workers, and those done for them. */
  FENCES_SENT: 10,
  FENCES_SERVED: 11,
  /** Instructions its harts retired. */
  INSTRUCTIONS: 12,
  /** Milliseconds from a round's start to its end on this worker (the host: hart-worker.ts). */
  ROUND_MS: 13,
  /** Then one slot per device window: forwarded MMIO accesses to it. */
  DEVICES: 14,
} as const;

/** Float64 slots of the main thread's counters. */
export const MAIN_COUNTER = {
  /** Milliseconds answering the workers' forwarded requests. */
  SERVE_MS: 0,
  SERVED: 1,
  /** Milliseconds closing rounds: time, the CLINT, timers, devices' polling, the lines' publication. */
  CLOSE_MS: 2,
  /** Milliseconds asleep on the doorbell while the workers run a round. */
  WAIT_MS: 3,
  ROUNDS: 4,
  /** Runs of rounds that ended with every hart waiting (the main thread then skips idle time). */
  IDLE_ROUNDS: 5,
  /** Runs of rounds the main thread started. */
  RUNS: 6,
  WORDS: 7,
} as const;

/** The shared counters of a threaded run: the main thread's, then each worker's. */
export class ThreadCounters {
  readonly slots: Float64Array;
  readonly perWorker: number;

  constructor(readonly buffer: SharedArrayBuffer, readonly workers: number, readonly devices: readonly string[]) {
    this.slots = new Float64Array(buffer);
    this.perWorker = WORKER_COUNTER.DEVICES + devices.length;
  }

  static create(workers: number, devices: readonly string[]): ThreadCounters {
    const words = MAIN_COUNTER.WORDS + workers * (WORKER_COUNTER.DEVICES + devices.length);
    return new ThreadCounters(new SharedArrayBuffer(words * 8), workers, devices);
  }

  /** The first slot of worker `index` (add a WORKER_COUNTER). */
  worker(index: number): number {
    return MAIN_COUNTER.WORDS + index * this.perWorker;
  }

  /** Lines for `--stats`: one for the main thread and one per worker; counts of zero are left out. */
  report(): string[] {
    const s = this.slots;
    const ms = (v: number): string => (v / 1000).toFixed(3);
    const lines = [`mirrorball: main thread: serving ${ms(s[MAIN_COUNTER.SERVE_MS]!)} s (${s[MAIN_COUNTER.SERVED]} requests), ` +
      `closing rounds ${ms(s[MAIN_COUNTER.CLOSE_MS]!)} s, asleep in rounds ${ms(s[MAIN_COUNTER.WAIT_MS]!)} s; ` +
      `rounds ${s[MAIN_COUNTER.ROUNDS]} in ${s[MAIN_COUNTER.RUNS]} runs (${s[MAIN_COUNTER.IDLE_ROUNDS]} ending with every hart idle)`];
    for (let w = 0; w < this.workers; w++) {
      const at = this.worker(w);
      const c = (k: number): number => s[at + k]!;
      const devices = this.devices.map((name, i) => [name, c(WORKER_COUNTER.DEVICES + i)] as const).filter(([, n]) => n > 0);
      const mmio = devices.length === 0 ? 'none' : devices.map(([name, n]) => `${name} ${n}`).join(', ');
      lines.push(`mirrorball: worker ${w}: running ${ms(c(WORKER_COUNTER.RUN_MS))} s, idle in rounds ${ms(c(WORKER_COUNTER.IDLE_MS))} s ` +
        `(woken ${c(WORKER_COUNTER.WAKES)} times), between rounds ${ms(c(WORKER_COUNTER.BARRIER_MS))} s, ` +
        `on the mailbox ${ms(c(WORKER_COUNTER.MAILBOX_MS))} s, in remote fences ${ms(c(WORKER_COUNTER.FENCE_MS))} s; ` +
        `rounds ${c(WORKER_COUNTER.ROUNDS)}, instructions ${c(WORKER_COUNTER.INSTRUCTIONS)}; IPIs sent ${c(WORKER_COUNTER.IPIS_SENT)}, taken ${c(WORKER_COUNTER.IPIS_TAKEN)}; ` +
        `fences sent ${c(WORKER_COUNTER.FENCES_SENT)}, served ${c(WORKER_COUNTER.FENCES_SERVED)}; ` +
        `firmware requests ${c(WORKER_COUNTER.FIRMWARE)}; MMIO: ${mmio}`);
    }
    return lines;
  }
}

/** One worker's side: adds to its slots. */
export class WorkerCounters {
  private readonly slots: Float64Array;
  private readonly at: number;

  /** `clock`: host milliseconds (performance.now); without one, times stay 0. */
  constructor(counters: ThreadCounters, index: number, readonly clock: () => number = () => 0) {
    this.slots = counters.slots;
    this.at = counters.worker(index);
  }

  add(slot: number, amount: number): void {
    this.slots[this.at + slot]! += amount;
  }

  /** Adds the time since `since` (a reading of the clock) to `slot`, and returns the clock now. */
  since(slot: number, since: number): number {
    const now = this.clock();
    this.slots[this.at + slot]! += now - since;
    return now;
  }
}

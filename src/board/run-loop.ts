// The round/slice structure every driver of a machine shares: rounds in batches of host time, yielding between
// batches so that input and timers get in. The host's clock and ways of yielding are given (HostLoop), so that
// Node (host/runner.ts) and a browser tab (web/tab) run the same loop.

import type { ExitReason, Machine } from './machine.js';
import { TIMEBASE_HZ } from '../timing/clock.js';

/**
 * What the loop needs from its host: a monotonic clock in milliseconds, a yield that lets pending input and
 * timers run and comes back as soon as it can, and a sleep. The loop reads host time only to size its batches
 * and, when pacing, to let idle guest time flow at the host's rate.
 */
export interface HostLoop {
  now(): number;
  yield(): Promise<void>;
  sleep(ms: number): Promise<void>;
}


export interface RunOptions {
  /** Stop with { kind: 'limit' } after this many instructions (all harts together). */
  maxInstructions?: number;
  /**
   * When every hart is idle, do not let guest time run ahead of host time: sleep instead. For interactive
   * use and for guests that wait on something outside the machine (a person, a network peer), whose
   * timeouts must not expire in a skipped instant. Guest time then depends on the host: not reproducible.
   */
  pace?: boolean;
  /** Called after each batch of rounds (e.g. to feed an agent). */
  onBatch?: () => void;
  /** Pauses the machine between batches while closed (the control socket's `stop` and `cont`). */
  gate?: RunGate;
  /**
   * Lets the host give the guest its input only at round boundaries where every hart idles, and holds
   * guest time there while the host has nothing for it. A host that drives the guest through its console
   * (GuestSession with holdIdle) then types each command at the same guest instant however fast the host
   * is, and runs reproduce exactly. Not for guests that wait on something else outside (a network peer).
   */
  idleHold?: IdleHold;
}

export interface IdleHold {
  /** True while the guest waits for the host: its idle time must then not be skipped but held. */
  waitingForHost(): boolean;
  /**
   * Called at each round boundary where every hart idles: the host gives the guest what it has for it
   * now (and returns false: run on), or returns true to hold the machine until `whenReleased()`.
   */
  atIdle(): boolean;
  whenReleased(): Promise<void>;
}

/** At most this many of the host's deliveries in a row at one idle moment before a round runs. */
const DELIVERIES_PER_IDLE = 1024;

/**
 * Whether to hold a machine (or monitor) whose `idle` says every hart idles: asks `hold` again after each
 * delivery that left the guest idle and waiting for the host (a mode switch, a counter read), so that no round
 * runs in between. Such a round would be empty, but how many ran would depend on when the host's next action
 * arrived (within a batch or after it), that is on the host's speed; and a round is what the NUMA policy's
 * intervals count.
 */
export function heldAtIdle(hold: IdleHold, idle: () => boolean): boolean {
  for (let i = 0; i < DELIVERIES_PER_IDLE && idle(); i++) {
    if (hold.atIdle()) return true;
    if (!hold.waitingForHost()) return false;
  }
  return false;
}

/**
 * A machine's pause switch. `pause()` takes effect at the end of the current batch (commands arrive on the
 * event loop, which runs between batches, so in practice at once); guest time stands still while paused.
 */
export class RunGate {
  private resumed: (() => void) | undefined;
  private waiting: Promise<void> | undefined;

  get paused(): boolean {
    return this.waiting !== undefined;
  }

  pause(): void {
    this.waiting ??= new Promise((resolve) => { this.resumed = resolve; });
  }

  resume(): void {
    const resolve = this.resumed;
    this.waiting = undefined;
    this.resumed = undefined;
    resolve?.();
  }

  /** Resolves when the gate is open. */
  whenOpen(): Promise<void> {
    return this.waiting ?? Promise.resolve();
  }
}

/** Host milliseconds of emulation between two yields to the event loop. */
const BATCH_MS = 20;
/** How long an idle paced machine sleeps before it looks at the time and its input again. */
const IDLE_SLEEP_MS = 2;
const TICKS_PER_MS = TIMEBASE_HZ / 1000;

/** Runs `machine` until it exits, in batches of rounds of about BATCH_MS of host time, yielding to `host` between them. */
export async function runMachineOn(host: HostLoop, machine: Machine, options: RunOptions = {}): Promise<ExitReason> {
  const limit = options.maxInstructions ?? Infinity;
  const pace = options.pace === true;
  // Paced, idle time flows at the host's rate from the moment the machine went idle: busy time still
  // comes from instructions, but a guest waiting on the outside world waits in host time.
  let anchorGuest = machine.clock.now();
  let anchorHost = host.now();
  const idleLimit = (): number => anchorGuest + (host.now() - anchorHost) * TICKS_PER_MS;
  const waiting = (): boolean => pace && machine.idle && machine.clock.now() >= machine.idleSkipLimit;
  const hold = options.idleHold;
  const holding = (): boolean => hold !== undefined && heldAtIdle(hold, () => machine.idle);
  while (machine.exit === undefined) {
    if (holding()) {
      await hold!.whenReleased();
      continue;
    }
    if (options.gate?.paused) {
      await options.gate.whenOpen();
      anchorGuest = machine.clock.now();
      anchorHost = host.now();
      continue;
    }
    const until = host.now() + BATCH_MS;
    do {
      if (pace) {
        if (!machine.idle) {
          anchorGuest = machine.clock.now();
          anchorHost = host.now();
        }
        machine.idleSkipLimit = idleLimit();
      }
      if (hold !== undefined) machine.idleSkipLimit = hold.waitingForHost() ? machine.clock.now() : Infinity;
      machine.runRound();
      if (machine.instructions >= limit) machine.stopWith({ kind: 'limit' });
    } while (machine.exit === undefined && host.now() < until && !waiting() && !holding());
    options.onBatch?.();
    if (machine.exit === undefined && waiting()) await host.sleep(IDLE_SLEEP_MS);
    else await host.yield();
  }
  return machine.exit;
}

// The built-in SBI for harts on worker threads (docs/threads.md, "SBI" and "Translated code and TLB
// shootdowns across threads"): what a call does to a hart on another thread goes through shared words
// (IPIs, hart starts, remote fences with request and ack counters), and what acts on the machine (reset,
// console, simulation control) through the hart's mailbox. Plain JavaScript (SharedArrayBuffer, Atomics).

import type { HartState } from '../cpu/hart-state.js';
import { MIP_SSIP } from '../isa/opcodes.js';
import { FIRMWARE_CONSOLE, FIRMWARE_CONTROL, FIRMWARE_RESET, type Mailboxes } from './forwarded-mmio.js';
import { WORKER_COUNTER, type WorkerCounters } from './thread-counters.js';
import {
  HSM_START_PENDING, HSM_STOPPED, SBI_ERR_ALREADY_AVAILABLE, SBI_SUCCESS, SbiFirmware, type SbiPlatform, type SbiShared,
} from './sbi.js';

/** Int32 words per hart in `SignalMemory.harts`. */
const REQUEST = 0;
const ACK = 1;
const WHAT = 2;
const PENDING = 3;
const HART_WORDS = 4;

/** A PENDING bit: the hart was asked to start (HSM), at the entry and with the opaque value of `starts`. */
export const PENDING_START = 1 << 30;

/** What a worker is doing in a round (its word of `SignalMemory.states`), for the other threads. */
export const WORKER_RUNNING = 0;
/** Nothing of it can run now, but a hart of it could be woken before the round ends: it sleeps on its kick word. */
export const WORKER_IDLE = 1;
/** The round was ended for an idle worker (every other worker was done or idle too: closeIfQuiet). */
export const WORKER_CLOSED = 2;
/** Between rounds: done with them, or too far ahead of the slowest worker to start the next (hart-worker.ts). */
export const WORKER_DONE = 3;

/** Shared memory of the signals between threads. */
export interface SignalMemory {
  /** HART_WORDS Int32 words per hart: fence request and ack counters, what the fences ask, pending bits. */
  harts: SharedArrayBuffer;
  /** Per hart: a start's entry (Float64) and opaque (BigInt64), two 8-byte slots. */
  starts: SharedArrayBuffer;
  /** One Int32 per worker: bumped, with a notify, whenever something for it happens (its harts, the round). */
  kicks: SharedArrayBuffer;
  /** One Int32 per worker: WORKER_RUNNING, IDLE, CLOSED or DONE. */
  states: SharedArrayBuffer;
}

export function signalMemory(harts: number, workers: number): SignalMemory {
  return {
    harts: new SharedArrayBuffer(harts * HART_WORDS * 4),
    starts: new SharedArrayBuffer(harts * 16),
    kicks: new SharedArrayBuffer(workers * 4),
    states: new SharedArrayBuffer(workers * 4),
  };
}

/** The signals seen from one thread. Hart i runs on worker i mod `workers`. */
export class Signals {
  readonly words: Int32Array;
  readonly kicks: Int32Array;
  readonly states: Int32Array;
  private readonly entries: Float64Array;
  private readonly opaques: BigInt64Array;

  constructor(memory: SignalMemory, readonly workers: number) {
    this.words = new Int32Array(memory.harts);
    this.kicks = new Int32Array(memory.kicks);
    this.states = new Int32Array(memory.states);
    this.entries = new Float64Array(memory.starts);
    this.opaques = new BigInt64Array(memory.starts);
  }

  workerOf(hart: number): number {
    return hart % this.workers;
  }

  kick(worker: number): void {
    Atomics.add(this.kicks, worker, 1);
    Atomics.notify(this.kicks, worker);
  }

  /** Asks hart `target` for a fence (FENCE_I, FENCE_VMA bits) and returns the request's number. */
  requestFence(target: number, what: number): number {
    const at = target * HART_WORDS;
    // `what` before the count: whoever sees the count sees the bits.
    Atomics.or(this.words, at + WHAT, what);
    const number = Atomics.add(this.words, at + REQUEST, 1) + 1;
    this.kick(this.workerOf(target));
    return number;
  }

  /** True once hart `target` has done every fence up to request `number`. */
  acked(target: number, number: number): boolean {
    return (Atomics.load(this.words, target * HART_WORDS + ACK) - number | 0) >= 0;
  }

  /** Sets pending bits of hart `target` (MIP_SSIP, PENDING_START) and kicks its worker. */
  post(target: number, bits: number): void {
    Atomics.or(this.words, target * HART_WORDS + PENDING, bits);
    this.kick(this.workerOf(target));
  }

  setStart(target: number, entry: number, opaque: bigint): void {
    this.entries[target * 2] = entry;
    this.opaques[target * 2 + 1] = opaque;
  }

  /**
   * The target's side: the fences asked of hart `hart` since the last call, done by `act`, then acked
   * (and every other worker kicked, since one of them waits for it). Returns whether there were any.
   */
  serveFences(hart: number, act: (what: number) => void): boolean {
    const at = hart * HART_WORDS;
    const request = Atomics.load(this.words, at + REQUEST);
    if (request === Atomics.load(this.words, at + ACK)) return false;
    act(Atomics.exchange(this.words, at + WHAT, 0));
    Atomics.store(this.words, at + ACK, request);
    const mine = this.workerOf(hart);
    for (let w = 0; w < this.workers; w++) if (w !== mine) this.kick(w);
    return true;
  }

  /**
   * For a host that relays the fences asked of a hart it does not run (docs/giantvm.md): hart `target`'s
   * request count if it moved past `seen`, and what those requests ask (taken); else undefined.
   */
  takeFenceRequests(target: number, seen: number): { request: number; what: number } | undefined {
    const at = target * HART_WORDS;
    const request = Atomics.load(this.words, at + REQUEST);
    if (request === seen) return undefined;
    return { request, what: Atomics.exchange(this.words, at + WHAT, 0) };
  }

  /** The relay's side: hart `target` did every fence up to request `number` on its host; the waiters are kicked. */
  ackFences(target: number, number: number): void {
    const at = target * HART_WORDS + ACK;
    if ((number - Atomics.load(this.words, at) | 0) > 0) Atomics.store(this.words, at, number);
    for (let w = 0; w < this.workers; w++) this.kick(w);
  }

  /** The target's side: the pending bits of hart `hart`, taken (0 if none). */
  takePending(hart: number): number {
    const at = hart * HART_WORDS + PENDING;
    return Atomics.load(this.words, at) === 0 ? 0 : Atomics.exchange(this.words, at, 0);
  }

  startOf(hart: number): { entry: number; opaque: bigint } {
    return { entry: this.entries[hart * 2]!, opaque: this.opaques[hart * 2 + 1]! };
  }

  /**
   * Closes the round for the workers asleep in it (WORKER_IDLE) once no worker runs: each is done or
   * asleep, so no hart can wake another. Any thread may call it after its own worker's state became done or
   * idle (the last to do so sees every other's). A sleeper that was woken just before keeps running (its
   * compare-and-swap won).
   */
  closeIfQuiet(): void {
    const states = this.states;
    for (let w = 0; w < this.workers; w++) {
      const state = Atomics.load(states, w);
      if (state !== WORKER_IDLE && state !== WORKER_DONE) return;
    }
    for (let w = 0; w < this.workers; w++) {
      if (Atomics.compareExchange(states, w, WORKER_IDLE, WORKER_CLOSED) === WORKER_IDLE) this.kick(w);
    }
  }
}

/** What the worker's firmware needs from the group of harts it serves. */
export interface WorkerSbiHost {
  /** The group's own harts, by id (undefined: on another thread). */
  readonly harts: readonly (HartState | undefined)[];
  readonly signals: Signals;
  readonly mailboxes: Mailboxes;
  /** Where the IPIs sent are counted. */
  readonly counters?: WorkerCounters;
  /** Guest time in ticks (the round's). */
  now(): number;
  readPhysical(address: number, length: number): Uint8Array | undefined;
  /** Sleeps until every fence request of `waits` (a hart and its request number) is acked, serving the group's own harts meanwhile. */
  awaitAcks(waits: readonly (readonly [number, number])[]): void;
  /** The machine was reset (powered off, rebooted): the group's harts stop running. */
  resetRequested(): void;
}

/**
 * The built-in SBI on a worker thread: the same calls as SbiFirmware, sharing its timer deadlines and HSM
 * states with the main thread's (SbiShared). A call's effect on a hart of this thread is immediate; on a
 * hart of another thread it is a signal, and a remote fence returns only once every target has done it.
 */
export class WorkerSbi extends SbiFirmware {
  private readonly host: WorkerSbiHost;
  /** The hart whose ECALL is being answered: the platform's calls to the main thread use its mailbox. */
  private readonly caller: { hart: number };

  constructor(host: WorkerSbiHost, shared: SbiShared, harts: number) {
    const caller = { hart: 0 };
    super(workerPlatform(host, caller), shared, harts);
    this.host = host;
    this.caller = caller;
  }

  override handle(h: HartState): boolean {
    this.caller.hart = h.id;
    return super.handle(h);
  }

  protected override sendIpi(target: number): void {
    if (this.host.harts[target] !== undefined) super.sendIpi(target);
    else {
      this.host.signals.post(target, MIP_SSIP);
      this.host.counters?.add(WORKER_COUNTER.IPIS_SENT, 1);
    }
  }

  protected override hartStart(target: number, entry: number, opaque: bigint): number {
    if (this.host.harts[target] !== undefined) return super.hartStart(target, entry, opaque);
    if (Atomics.compareExchange(this.hsmState, target, HSM_STOPPED, HSM_START_PENDING) !== HSM_STOPPED) return SBI_ERR_ALREADY_AVAILABLE;
    this.host.signals.setStart(target, entry, opaque);
    this.host.signals.post(target, PENDING_START);
    return SBI_SUCCESS;
  }

  /**
   * Harts of this thread are fenced at once; the others get a request (a range becomes the whole TLB, which
   * is always allowed), and the call waits for every ack: what the fence protects (a page-table page reused,
   * new code run) happens only after each target has dropped what it held.
   */
  protected override fenceHarts(mask: number, base: number, what: number, act: (hart: number) => void): number {
    const targets: number[] = [];
    const result = this.forHarts(mask, base, (t) => targets.push(t));
    if (result !== SBI_SUCCESS) return result;
    const waits: [number, number][] = [];
    for (const t of targets) {
      if (this.host.harts[t] !== undefined) act(t);
      else waits.push([t, this.host.signals.requestFence(t, what)]);
    }
    if (waits.length > 0) this.host.awaitAcks(waits);
    return SBI_SUCCESS;
  }
}

function workerPlatform(host: WorkerSbiHost, caller: { hart: number }): SbiPlatform {
  const request = (kind: number, address: number, size: number, value: number): number =>
    host.mailboxes.request(caller.hart, kind, address, size, value);
  return {
    harts: host.harts as HartState[],
    now: () => host.now(),
    consoleWrite: (bytes) => {
      for (let i = 0; i < bytes.length; i += 4) {
        const n = Math.min(4, bytes.length - i);
        let value = 0;
        for (let j = n - 1; j >= 0; j--) value = (value << 8) | bytes[i + j]!;
        request(FIRMWARE_CONSOLE, 0, n, value);
      }
    },
    consoleRead: () => -1,
    reset: (type, reason) => {
      request(FIRMWARE_RESET, type, 4, reason | 0);
      host.resetRequested();
    },
    readPhysical: (address, length) => host.readPhysical(address, length),
    wake: (hart) => {
      const h = host.harts[hart];
      if (h !== undefined) h.stop = true;
    },
    control: (req, argument) => request(FIRMWARE_CONTROL, req, 4, argument | 0) | 0,
  };
}

// Messages between cells in simulated time: RPCs with a timeout and at-most-once execution, one-way posts,
// local timers, and cancelling what is stuck on a dead cell (docs/cell-rpc.md).
//
// The emulator is single-threaded and deterministic, so a call is synchronous in host terms; what it costs
// is simulated cycles. The bus learns whether a message can get through only from the `reachable` function
// its owner supplies: it never looks at the fault model, as a cell learns of a fault only when a message
// gets no answer.

import { nanosecondsToCycles } from '../board/topology.js';

/**
 * One way of one message: the sender writes it into a queue in the receiver's memory (about two remote misses
 * on FLASH, 2 × 900 ns) and raises an interrupt that the receiver takes and dispatches (about the monitor's
 * exit round trip, ~1.6 µs at 100 MHz, costs.ts). 3 µs, 300 cycles.
 */
export const DEFAULT_LATENCY = nanosecondsToCycles(3_000);
/**
 * How long a caller waits for a reply: 1 ms, 100 000 cycles. A round trip is 6 µs, but a live receiver busy
 * in a slice takes the interrupt only at its next round boundary (4096 cycles, 41 µs), and a cell may be
 * slowed by the fault itself; 1 ms is ~24 slices, so a live cell is not taken for dead. The price is that
 * finding a dead cell costs a timeout per round in which it is found.
 */
export const DEFAULT_TIMEOUT = nanosecondsToCycles(1_000_000);
/** A handler's own work when it declares none: a dispatch and a small update of the receiver's state, 1 µs. */
export const DEFAULT_HANDLER_CYCLES = nanosecondsToCycles(1_000);

export interface CellBusOptions {
  /** Number of cells, ids 0 to cells − 1. */
  cells: number;
  /**
   * Whether a message from `from` can reach `to` now. `reachable(c, c)` is whether cell `c` still runs: a
   * cell that does not runs no timer and takes no reply. The owner derives it from what the hardware lets
   * through; the bus asks nothing else.
   */
  reachable: (from: number, to: number) => boolean;
  /** One-way latency of a message, in cycles (default DEFAULT_LATENCY). */
  latency?: number;
  /** How long a caller waits for a reply, in cycles (default DEFAULT_TIMEOUT). */
  timeout?: number;
}

export interface HandlerContext {
  readonly from: number;
  /** Simulated time at which the message is handled. */
  readonly now: number;
}

export interface HandlerOptions {
  /**
   * True when running the handler twice with the same arguments has the effect of once: the bus then keeps
   * no reply for it and a retry simply runs it again. False (the default) gives at-most-once execution.
   */
  idempotent?: boolean;
  /** Cycles the receiver spends in it (default DEFAULT_HANDLER_CYCLES). */
  cycles?: number;
}

export type Handler<A = never, R = unknown> = (args: A, context: HandlerContext) => R;

export type FailReason = 'timeout' | 'dead' | 'cancelled';

/** What a call came to, and the simulated cycles the caller spent on it. */
export type CallResult<R = unknown> =
  | { ok: true; value: R; cycles: number; request: number }
  | { ok: false; reason: FailReason; cycles: number; request: number };

export interface CallOptions {
  /** Simulated time of the call. */
  now: number;
  /** The request id of an earlier call this one repeats (after a timeout): the receiver runs it at most once. */
  retry?: number;
  /** Test hook: the reply of this request is lost on its way back (the handler has run). */
  dropReply?: boolean;
}

export interface PostOptions {
  now: number;
  /** Called when the reply arrives, the wait times out, or the message is cancelled; none: a one-way message. */
  onReply?: (result: CallResult) => void;
  retry?: number;
}

export interface CellBusCounters {
  sent: number;
  delivered: number;
  timedOut: number;
  cancelled: number;
  /** Repeats of a non-idempotent request that were answered from the reply cache or dropped, not run again. */
  duplicatesSuppressed: number;
}

interface Registered {
  readonly fn: Handler<unknown>;
  readonly idempotent: boolean;
  readonly cycles: number;
}

interface Message {
  readonly from: number;
  readonly to: number;
  readonly op: string;
  readonly args: unknown;
  readonly request: number;
  readonly sentAt: number;
  readonly onReply: ((result: CallResult) => void) | undefined;
  /** Set once the caller has its result (reply, timeout or cancel): later events for it do nothing. */
  settled: boolean;
}

type Event =
  | { time: number; seq: number; kind: 'deliver'; message: Message }
  | { time: number; seq: number; kind: 'reply'; message: Message; value: unknown }
  | { time: number; seq: number; kind: 'timeout'; message: Message }
  | { time: number; seq: number; kind: 'timer'; cell: number; id: number; fn: (now: number) => void };

/** The receiver's record of one sender: its highest request run, and that request's reply. */
interface ReplyCacheEntry {
  request: number;
  value: unknown;
}

/** What running a request at its receiver gave: a value to send back, or nothing (an old duplicate, dropped). */
type Received = { answered: true; value: unknown; cycles: number } | { answered: false };

export class CellBus {
  readonly cells: number;
  readonly latency: number;
  readonly timeout: number;
  readonly counters: CellBusCounters = { sent: 0, delivered: 0, timedOut: 0, cancelled: 0, duplicatesSuppressed: 0 };
  private readonly reachable: (from: number, to: number) => boolean;
  private readonly handlers: Map<string, Registered>[];
  /**
   * Per receiver, per sender: the last non-idempotent request run and its reply. One entry per sender is
   * enough because a sender retries only its latest request to a receiver: a new request acknowledges the
   * older ones (Birrell and Nelson's implicit acknowledgement), so their replies can go.
   */
  private readonly replies: Map<number, ReplyCacheEntry>[];
  private readonly nextRequest: number[];
  private readonly dead = new Set<number>();
  /** Events in order of (time, seq). */
  private readonly queue: Event[] = [];
  private seq = 0;
  private nextTimer = 1;
  private readonly clearedTimers = new Set<number>();
  /** One-way messages that could not be delivered, by receiver: they wait there until cancelled. */
  private readonly stuck: Message[][];

  constructor(options: CellBusOptions) {
    const { cells, latency = DEFAULT_LATENCY, timeout = DEFAULT_TIMEOUT } = options;
    if (!Number.isInteger(cells) || cells < 1) throw new RangeError(`a bus needs at least one cell, not ${cells}`);
    if (!(latency >= 0) || !(timeout > 2 * latency)) throw new RangeError(`the timeout (${timeout}) must exceed a round trip (2 × ${latency} cycles)`);
    this.cells = cells;
    this.latency = latency;
    this.timeout = timeout;
    this.reachable = options.reachable;
    this.handlers = Array.from({ length: cells }, () => new Map());
    this.replies = Array.from({ length: cells }, () => new Map());
    this.nextRequest = new Array<number>(cells).fill(1);
    this.stuck = Array.from({ length: cells }, () => []);
  }

  /** Cell `cell` answers `op` with `fn`. */
  handle<A, R>(cell: number, op: string, fn: Handler<A, R>, options: HandlerOptions = {}): void {
    this.check(cell);
    if (this.handlers[cell]!.has(op)) throw new Error(`cell ${cell} already handles ${op}`);
    this.handlers[cell]!.set(op, { fn: fn as Handler<unknown>, idempotent: options.idempotent ?? false, cycles: options.cycles ?? DEFAULT_HANDLER_CYCLES });
  }

  /**
   * A synchronous RPC at simulated time `now`. Success costs the caller a round trip and the handler's cycles;
   * a receiver that cannot be reached, or a reply that is lost, costs the timeout; a cell declared dead
   * (`cancel`) fails at once, at no cost, as the caller knows it locally.
   */
  call<R = unknown>(from: number, to: number, op: string, args: unknown, options: CallOptions): CallResult<R> {
    const message = this.send(from, to, op, args, options.now, undefined, options.retry);
    if (this.dead.has(to)) return this.fail(message, 'dead', 0) as CallResult<R>;
    if (!this.reachable(from, to)) return this.fail(message, 'timeout', this.timeout) as CallResult<R>;
    const received = this.receive(message, options.now + this.latency);
    if (!received.answered || options.dropReply === true || this.dead.has(from) || !this.reachable(to, from)) return this.fail(message, 'timeout', this.timeout) as CallResult<R>;
    const cycles = 2 * this.latency + received.cycles;
    if (cycles > this.timeout) return this.fail(message, 'timeout', this.timeout) as CallResult<R>;
    message.settled = true;
    return { ok: true, value: received.value as R, cycles, request: message.request };
  }

  /**
   * Sends a message at `now` that arrives `latency` later (delivered by `deliverUntil`). With `onReply` it is a
   * request: the reply arrives a latency after it was handled, or the caller gets 'timeout' at `now + timeout`.
   * Without, a one-way message: one the receiver cannot take waits, stuck, until `cancel`. Returns the request id.
   */
  post(from: number, to: number, op: string, args: unknown, options: PostOptions): number {
    const message = this.send(from, to, op, args, options.now, options.onReply, options.retry);
    if (this.dead.has(to)) {
      if (message.onReply !== undefined) this.fail(message, 'dead', 0);
      return message.request;
    }
    this.push({ time: options.now + this.latency, seq: 0, kind: 'deliver', message });
    if (message.onReply !== undefined) this.push({ time: options.now + this.timeout, seq: 0, kind: 'timeout', message });
    return message.request;
  }

  /** Runs `fn` at simulated time `at` on cell `cell`, if it still runs then. Returns an id for `clearTimer`. */
  timer(cell: number, at: number, fn: (now: number) => void): number {
    this.check(cell);
    const id = this.nextTimer++;
    this.push({ time: at, seq: 0, kind: 'timer', cell, id, fn });
    return id;
  }

  clearTimer(id: number): void {
    this.clearedTimers.add(id);
  }

  /** The time of the next event (delivery, reply, timeout, timer), if any. */
  nextTime(): number | undefined {
    // Events that can no longer do anything (a timeout whose reply came, a cleared timer) are let go first.
    while (this.queue.length > 0 && this.spent(this.queue[0]!)) this.queue.shift();
    return this.queue[0]?.time;
  }

  /**
   * Handles every event due at or before `now`, in order of time and then of sending. Returns their number.
   * More than `limit` throws: handlers that keep sending at one instant would otherwise never return.
   */
  deliverUntil(now: number, limit = Infinity): number {
    let handled = 0;
    while (this.queue.length > 0 && this.queue[0]!.time <= now) {
      const event = this.queue.shift()!;
      if (++handled > limit) throw new Error(`more than ${limit} events at or before ${now}: the handlers do not settle`);
      this.dispatch(event);
    }
    return handled;
  }

  /**
   * Cell `to` has failed (the survivors agreed on it): every request waiting on it ends 'cancelled' now,
   * every message queued or stuck for it is dropped, and later calls to it fail 'dead' at once. Returns the
   * number of messages cancelled.
   */
  cancel(to: number, now: number): number {
    this.check(to);
    this.dead.add(to);
    this.replies[to]!.clear();
    // Requests to it that wait for delivery, for a reply it owes, or only for their timeout: none will come.
    const cancelled: Message[] = [];
    for (const event of this.queue) {
      if (event.kind === 'timer' || event.message.settled || event.message.to !== to) continue;
      event.message.settled = true;
      cancelled.push(event.message);
    }
    const left = this.queue.filter((event) => event.kind === 'timer' || !event.message.settled);
    this.queue.length = 0;
    this.queue.push(...left);
    let count = cancelled.length;
    count += this.stuck[to]!.length;
    for (const message of this.stuck[to]!) message.settled = true;
    this.stuck[to]!.length = 0;
    this.counters.cancelled += count;
    // Callers hear of it after the queue is whole again, since they may send at once.
    for (const message of cancelled) if (this.reachable(message.from, message.from)) message.onReply?.({ ok: false, reason: 'cancelled', cycles: now - message.sentAt, request: message.request });
    return count;
  }

  /**
   * Cell `cell`, declared dead, rejoins (its hardware repaired, its monitor started afresh): messages reach it
   * again. What its old life left on the bus goes without a word: its timers, and its requests still waiting
   * for delivery, a reply or a timeout (nobody is left to hear of them). Its request numbers go on from where
   * they were, so the other cells' reply caches cannot take a new request for an old one.
   */
  readmit(cell: number): void {
    this.check(cell);
    if (!this.dead.has(cell)) throw new Error(`cell ${cell} is not dead: there is nothing to readmit`);
    this.dead.delete(cell);
    const left = this.queue.filter((event) => (event.kind === 'timer' ? event.cell !== cell : event.message.from !== cell));
    for (const event of this.queue) if (event.kind !== 'timer' && event.message.from === cell) event.message.settled = true;
    this.queue.length = 0;
    this.queue.push(...left);
    for (const stuck of this.stuck) {
      const kept = stuck.filter((message) => message.from !== cell);
      stuck.length = 0;
      stuck.push(...kept);
    }
  }

  /** Whether `cell` has been declared dead by `cancel`. */
  isDead(cell: number): boolean {
    return this.dead.has(cell);
  }

  /** One-way messages waiting, stuck, for `to`. */
  stuckFor(to: number): number {
    return this.stuck[to]!.length;
  }

  private send(from: number, to: number, op: string, args: unknown, now: number, onReply: Message['onReply'], retry: number | undefined): Message {
    this.check(from);
    this.check(to);
    let request: number;
    if (retry === undefined) request = this.nextRequest[from]!++;
    else if (Number.isInteger(retry) && retry >= 1 && retry < this.nextRequest[from]!) request = retry;
    else throw new RangeError(`cell ${from} never sent request ${retry}`);
    this.counters.sent++;
    return { from, to, op, args, request, sentAt: now, onReply, settled: false };
  }

  /** The receiver takes `message` at `now`: runs its handler, or answers a repeat from the reply cache. */
  private receive(message: Message, now: number): Received {
    const handler = this.handlers[message.to]!.get(message.op);
    if (handler === undefined) throw new Error(`cell ${message.to} has no handler for ${message.op}`);
    this.counters.delivered++;
    if (handler.idempotent) return { answered: true, value: handler.fn(message.args, { from: message.from, now }), cycles: handler.cycles };
    const cache = this.replies[message.to]!;
    const last = cache.get(message.from);
    if (last !== undefined && message.request <= last.request) {
      this.counters.duplicatesSuppressed++;
      // The reply of an older request went with the newer one's arrival: the repeat is dropped unanswered.
      return message.request === last.request ? { answered: true, value: last.value, cycles: 0 } : { answered: false };
    }
    const value = handler.fn(message.args, { from: message.from, now });
    cache.set(message.from, { request: message.request, value });
    return { answered: true, value, cycles: handler.cycles };
  }

  private dispatch(event: Event): void {
    if (event.kind === 'timer') {
      if (this.clearedTimers.delete(event.id)) return;
      if (this.reachable(event.cell, event.cell)) event.fn(event.time);
      return;
    }
    const message = event.message;
    if (message.settled) return;
    switch (event.kind) {
      case 'deliver': {
        if (this.dead.has(message.to) || !this.reachable(message.from, message.to)) {
          if (message.onReply === undefined) this.stuck[message.to]!.push(message);
          return; // a request's caller times out
        }
        const received = this.receive(message, event.time);
        if (message.onReply === undefined) {
          message.settled = true;
        } else if (received.answered) {
          this.push({ time: event.time + received.cycles + this.latency, seq: 0, kind: 'reply', message, value: received.value });
        }
        return;
      }
      case 'reply':
        // A reply a caller cannot take (it stopped, or the way back is cut) is lost: it times out.
        if (!this.reachable(message.to, message.from) || !this.reachable(message.from, message.from)) return;
        message.settled = true;
        message.onReply!({ ok: true, value: event.value, cycles: event.time - message.sentAt, request: message.request });
        return;
      case 'timeout':
        message.settled = true;
        if (!this.reachable(message.from, message.from)) return; // the caller stopped: nobody waits
        this.counters.timedOut++;
        message.onReply!({ ok: false, reason: 'timeout', cycles: this.timeout, request: message.request });
        return;
    }
  }

  private spent(event: Event): boolean {
    if (event.kind !== 'timer') return event.message.settled;
    if (!this.clearedTimers.has(event.id)) return false;
    this.clearedTimers.delete(event.id);
    return true;
  }

  private fail(message: Message, reason: FailReason, cycles: number): CallResult {
    message.settled = true;
    if (reason === 'timeout') this.counters.timedOut++;
    const result: CallResult = { ok: false, reason, cycles, request: message.request };
    message.onReply?.(result);
    return result;
  }

  private push(event: Event): void {
    event.seq = this.seq++;
    // Binary search for the first event later than this one: equal times keep the order of sending.
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.queue[mid]!.time <= event.time) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, event);
  }

  private check(cell: number): void {
    if (!Number.isInteger(cell) || cell < 0 || cell >= this.cells) throw new RangeError(`no cell ${cell}: the bus has cells 0 to ${this.cells - 1}`);
  }
}

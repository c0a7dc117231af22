// Tests of the cell bus: costs in simulated time, timeouts, at-most-once execution, cancelling, and that the
// bus knows of faults only through its owner's `reachable`.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CellBus, DEFAULT_HANDLER_CYCLES, DEFAULT_LATENCY, DEFAULT_TIMEOUT, type CallResult } from './cell-bus.js';

/** A bus over `cells` cells where `down` cells answer nothing (and run nothing). */
function world(cells: number): { bus: CellBus; down: Set<number> } {
  const down = new Set<number>();
  const bus = new CellBus({ cells, reachable: (from, to) => !down.has(from) && !down.has(to) });
  return { bus, down };
}

test('a call costs a round trip and the handler; a call to a cell that cannot answer costs the timeout', () => {
  const { bus, down } = world(3);
  bus.handle<{ x: number }, number>(1, 'double', (args) => args.x * 2, { idempotent: true });
  bus.handle<null, number>(2, 'answer', () => 42, { cycles: 500 });
  assert.deepEqual(bus.call(0, 1, 'double', { x: 21 }, { now: 0 }), { ok: true, value: 42, cycles: 2 * DEFAULT_LATENCY + DEFAULT_HANDLER_CYCLES, request: 1 });
  assert.equal(bus.call(0, 2, 'answer', null, { now: 0 }).cycles, 2 * DEFAULT_LATENCY + 500);
  down.add(2);
  const failed = bus.call(0, 2, 'answer', null, { now: 10 });
  assert.deepEqual(failed, { ok: false, reason: 'timeout', cycles: DEFAULT_TIMEOUT, request: 3 });
  assert.deepEqual(bus.counters, { sent: 3, delivered: 2, timedOut: 1, cancelled: 0, duplicatesSuppressed: 0 });
});

test('the defaults are a few microseconds a message and a millisecond of timeout at 100 MHz; options change them', () => {
  assert.equal(DEFAULT_LATENCY, 300);
  assert.equal(DEFAULT_TIMEOUT, 100_000);
  const bus = new CellBus({ cells: 2, reachable: () => true, latency: 600, timeout: 200_000 });
  bus.handle(1, 'nop', () => null, { cycles: 0 });
  assert.equal(bus.call(0, 1, 'nop', null, { now: 0 }).cycles, 1200);
  assert.throws(() => new CellBus({ cells: 2, reachable: () => true, latency: 600, timeout: 1000 }), /must exceed a round trip/);
});

test('at most once: a non-idempotent handler whose reply was lost runs once, and the retry gets the cached reply', () => {
  const { bus } = world(2);
  let runs = 0;
  bus.handle<number, number>(1, 'add', (n) => (runs += n));
  const lost = bus.call(0, 1, 'add', 5, { now: 0, dropReply: true });
  assert.deepEqual(lost, { ok: false, reason: 'timeout', cycles: DEFAULT_TIMEOUT, request: 1 });
  assert.equal(runs, 5, 'the handler ran though its reply was lost');
  const retry = bus.call<number>(0, 1, 'add', 5, { now: DEFAULT_TIMEOUT, retry: lost.request });
  assert.deepEqual(retry, { ok: true, value: 5, cycles: 2 * DEFAULT_LATENCY, request: 1 });
  assert.equal(runs, 5, 'the retry did not run it again');
  assert.equal(bus.counters.duplicatesSuppressed, 1);
  // A new request is new work; after it, a repeat of the old one is dropped unanswered (its reply is gone).
  assert.equal(bus.call<number>(0, 1, 'add', 1, { now: 2 * DEFAULT_TIMEOUT }).ok, true);
  assert.equal(runs, 6);
  assert.equal(bus.call(0, 1, 'add', 5, { now: 3 * DEFAULT_TIMEOUT, retry: 1 }).ok, false);
  assert.equal(runs, 6);
  assert.equal(bus.counters.duplicatesSuppressed, 2);
  assert.throws(() => bus.call(0, 1, 'add', 5, { now: 0, retry: 9 }), /never sent request 9/);
});

test('an idempotent handler keeps no reply: a retry runs it again', () => {
  const { bus } = world(2);
  let runs = 0;
  bus.handle(1, 'ping', () => ++runs, { idempotent: true });
  const lost = bus.call(0, 1, 'ping', null, { now: 0, dropReply: true });
  assert.equal(bus.call(0, 1, 'ping', null, { now: DEFAULT_TIMEOUT, retry: lost.request }).ok, true);
  assert.equal(runs, 2);
  assert.equal(bus.counters.duplicatesSuppressed, 0);
});

test('posted requests are delivered in simulated time, and their replies come a round trip later', () => {
  const { bus } = world(3);
  const log: string[] = [];
  bus.handle<string, string>(1, 'echo', (s, context) => (log.push(`1 got ${s} from ${context.from} at ${context.now}`), s.toUpperCase()), { idempotent: true, cycles: 0 });
  const results: CallResult[] = [];
  bus.post(0, 1, 'echo', 'a', { now: 100, onReply: (r) => results.push(r) });
  bus.post(2, 1, 'echo', 'b', { now: 100 });
  assert.equal(bus.nextTime(), 100 + DEFAULT_LATENCY);
  assert.equal(bus.deliverUntil(100 + DEFAULT_LATENCY - 1), 0);
  bus.deliverUntil(100 + DEFAULT_LATENCY);
  assert.deepEqual(log, [`1 got a from 0 at ${100 + DEFAULT_LATENCY}`, `1 got b from 2 at ${100 + DEFAULT_LATENCY}`]);
  assert.deepEqual(results, []);
  bus.deliverUntil(100 + 2 * DEFAULT_LATENCY);
  assert.deepEqual(results, [{ ok: true, value: 'A', cycles: 2 * DEFAULT_LATENCY, request: 1 }]);
  assert.equal(bus.nextTime(), undefined, 'the answered request leaves no timeout behind');
});

test('a posted request to a cell that cannot answer times out; a one-way message to it is stuck', () => {
  const { bus, down } = world(2);
  bus.handle(1, 'op', () => 1);
  down.add(1);
  const results: CallResult[] = [];
  bus.post(0, 1, 'op', null, { now: 0, onReply: (r) => results.push(r) });
  bus.post(0, 1, 'op', null, { now: 0 });
  bus.deliverUntil(DEFAULT_TIMEOUT);
  assert.deepEqual(results, [{ ok: false, reason: 'timeout', cycles: DEFAULT_TIMEOUT, request: 1 }]);
  assert.equal(bus.stuckFor(1), 1);
  assert.equal(bus.counters.timedOut, 1);
});

test('cancel: messages stuck or waiting on a dead cell end at once, counted, and later calls fail without waiting', () => {
  const { bus, down } = world(3);
  bus.handle(2, 'op', () => 1);
  bus.handle(1, 'op', () => 1, { idempotent: true });
  down.add(2);
  const results: CallResult[] = [];
  bus.post(0, 2, 'op', null, { now: 0, onReply: (r) => results.push(r) });
  bus.post(1, 2, 'op', null, { now: 0, onReply: (r) => results.push(r) });
  bus.post(0, 2, 'op', null, { now: 0 });
  bus.post(0, 1, 'op', null, { now: 0, onReply: (r) => results.push(r) });
  bus.deliverUntil(5_000);
  assert.equal(results.length, 1, 'only the request to the live cell is answered');
  assert.equal(bus.cancel(2, 5_000), 3);
  assert.deepEqual(results.slice(1), [
    { ok: false, reason: 'cancelled', cycles: 5_000, request: 1 },
    { ok: false, reason: 'cancelled', cycles: 5_000, request: 1 },
  ]);
  assert.equal(bus.stuckFor(2), 0);
  assert.equal(bus.nextTime(), undefined, 'nothing is left waiting on the dead cell');
  assert.deepEqual(bus.call(1, 2, 'op', null, { now: 6_000 }), { ok: false, reason: 'dead', cycles: 0, request: 2 });
  assert.equal(bus.counters.cancelled, 3);
  assert.equal(bus.counters.timedOut, 0);
});

test('readmit: a dead cell rejoins; what its old life left (timers, its waiting requests) goes silently, and calls reach it again', () => {
  const { bus, down } = world(3);
  let runs = 0;
  bus.handle(2, 'op', () => ++runs);
  bus.handle(0, 'slow', () => 1);
  const heard: string[] = [];
  down.add(0);
  bus.post(2, 0, 'slow', null, { now: 0, onReply: (r) => heard.push(`old request: ${r.ok}`) });
  bus.timer(2, 50_000, () => heard.push('old timer'));
  down.delete(0);
  down.add(2);
  bus.cancel(2, 100);
  assert.throws(() => bus.readmit(1), /cell 1 is not dead/);
  down.delete(2);
  bus.readmit(2);
  assert.equal(bus.isDead(2), false);
  assert.equal(bus.nextTime(), undefined, 'its old timer and its old request are gone');
  bus.deliverUntil(200_000);
  assert.deepEqual(heard, [], 'nobody hears of them');
  const r = bus.call(1, 2, 'op', null, { now: 200_000 });
  assert.equal(r.ok, true);
  assert.equal(runs, 1);
  const again = bus.call(2, 0, 'slow', null, { now: 300_000 });
  assert.ok(again.ok && again.request > 1, 'its request numbers go on');
});

test('timers run only on a cell that still runs, and a cleared one not at all', () => {
  const { bus, down } = world(2);
  const ran: number[] = [];
  bus.timer(0, 10, () => ran.push(0));
  bus.timer(1, 10, () => ran.push(1));
  bus.clearTimer(bus.timer(0, 20, () => ran.push(99)));
  down.add(1);
  bus.deliverUntil(100);
  assert.deepEqual(ran, [0]);
});

test('deliverUntil stops with an error when handlers keep sending at one instant, past its limit', () => {
  const { bus } = world(1);
  let ran = 0;
  const again = (now: number): void => {
    ran++;
    bus.timer(0, now, again);
  };
  bus.timer(0, 5, again);
  assert.throws(() => bus.deliverUntil(10, 100), /more than 100 events at or before 10: the handlers do not settle/);
  assert.equal(ran, 100);
});

test('the bus learns of faults only through reachable: the same calls change outcome when it changes its answer', () => {
  let cut = false;
  const asked: string[] = [];
  const bus = new CellBus({ cells: 2, reachable: (from, to) => (asked.push(`${from}-${to}`), !(cut && from !== to)) });
  bus.handle(1, 'op', () => 'ok', { idempotent: true });
  assert.equal(bus.call(0, 1, 'op', null, { now: 0 }).ok, true);
  cut = true;
  assert.equal(bus.call(0, 1, 'op', null, { now: 0 }).ok, false);
  assert.ok(asked.includes('0-1') && asked.includes('1-0'), 'both ways are asked');
  // Its only import is the topology's cycle arithmetic: no fault state, no injector, no hardware.
  const source = readFileSync(new URL('./cell-bus.ts', import.meta.url), 'utf8');
  assert.deepEqual([...source.matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]), ['../board/topology.js']);
});

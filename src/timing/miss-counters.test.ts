// Tests of the per-page per-node miss counters and their hot-page event.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MissCounters } from './miss-counters.js';

const BASE = 0x80000000;
const PAGE = 4096;

test('counters are sized from the machine memory and count per page and node', () => {
  const counters = new MissCounters(BASE, 16 * PAGE, 4);
  assert.equal(counters.pages, 16);
  counters.record(BASE + 5, 0);
  counters.record(BASE + PAGE - 1, 0);
  counters.record(BASE + 3 * PAGE + 100, 2);
  counters.record(BASE + 3 * PAGE, 3);
  assert.equal(counters.count(0, 0), 2);
  assert.deepEqual(counters.countsOf(3), [0, 0, 1, 1]);
  assert.equal(counters.total(3), 2);
  assert.equal(counters.pageOf(BASE + 3 * PAGE + 100), 3);
  assert.equal(counters.addressOf(3), BASE + 3 * PAGE);
});

test('addresses outside RAM are not counted', () => {
  const counters = new MissCounters(BASE, 2 * PAGE, 1);
  counters.record(0x10000000, 0);
  counters.record(BASE - 1, 0);
  counters.record(BASE + 2 * PAGE, 0);
  assert.equal(counters.pageOf(BASE + 2 * PAGE), -1);
  assert.equal(counters.total(0) + counters.total(1), 0);
  assert.deepEqual(counters.hottest(10), []);
});

test('the hot-page event fires once when a node\'s count reaches the threshold, and again after a reset', () => {
  const counters = new MissCounters(BASE, 4 * PAGE, 2);
  const events: [number, number, number][] = [];
  counters.onHotPage(3, (page, node, count) => events.push([page, node, count]));
  for (let i = 0; i < 5; i++) counters.record(BASE + PAGE, 1);
  counters.record(BASE + PAGE, 0);
  counters.record(BASE + PAGE, 0);
  assert.deepEqual(events, [[1, 1, 3]], 'node 0 has 2 misses, below the threshold; node 1 fired only once');

  counters.record(BASE + PAGE, 0);
  assert.deepEqual(events, [[1, 1, 3], [1, 0, 3]], 'each node of a page has its own event');

  counters.resetPage(1);
  assert.deepEqual(counters.countsOf(1), [0, 0]);
  for (let i = 0; i < 3; i++) counters.record(BASE + PAGE, 1);
  assert.deepEqual(events.at(-1), [1, 1, 3], 're-armed by the reset');
  assert.equal(events.length, 3);
});

test('turning the event off and resetting everything', () => {
  const counters = new MissCounters(BASE, 4 * PAGE, 2);
  let fired = 0;
  counters.onHotPage(1, () => fired++);
  counters.record(BASE, 0);
  counters.onHotPage(0, () => fired++);
  counters.record(BASE + PAGE, 0);
  assert.equal(fired, 1);
  counters.resetAll();
  assert.equal(counters.total(0), 0);
  assert.throws(() => counters.onHotPage(-1, undefined), RangeError);
});

test('hottest pages come most-missed first with their per-node counts', () => {
  const counters = new MissCounters(BASE, 8 * PAGE, 2);
  const misses: [page: number, node: number, n: number][] = [[2, 0, 1], [5, 1, 4], [5, 0, 1], [7, 0, 3], [1, 1, 3]];
  for (const [page, node, n] of misses) for (let i = 0; i < n; i++) counters.record(BASE + page * PAGE, node);
  assert.deepEqual(counters.hottest(3), [
    { page: 5, total: 5, perNode: [1, 4] },
    { page: 1, total: 3, perNode: [0, 3] },
    { page: 7, total: 3, perNode: [3, 0] },
  ]);
});

test('bad sizes are refused with every problem named', () => {
  assert.throws(() => new MissCounters(BASE, 1000, 0), /at least one node, not 0; RAM a whole number of pages, not 1000 bytes/);
});

test('hot pages queue once until taken; writes and their nodes are counted; decay halves every count', () => {
  const c = new MissCounters(0x8000_0000, 16 * 4096, 4);
  c.queueHot(3);
  for (let k = 0; k < 5; k++) c.recordPage(2, 1);
  c.recordPage(7, 0, true);
  c.recordPage(7, 3, true);
  c.recordPage(7, 3);
  assert.deepEqual(c.takeHot(), [2], 'a page queued twice, or one that is not hot');
  assert.deepEqual(c.takeHot(), []);
  // Taken pages queue again once a count reaches the threshold again (after a reset).
  c.resetPage(2);
  for (let k = 0; k < 3; k++) c.recordPage(2, 0);
  c.recordPage(7, 3);
  assert.deepEqual(c.takeHot(), [2, 7]);
  assert.equal(c.writesTo(7), 2);
  assert.equal(c.writersOf(7), 0b1001);
  assert.equal(c.writesTo(2), 0);
  c.decay();
  assert.deepEqual(c.countsOf(7), [0, 0, 0, 1]);
  assert.equal(c.writesTo(7), 1);
  c.resetPage(7);
  assert.deepEqual([c.writesTo(7), c.writersOf(7)], [0, 0]);
  c.queueHot(0);
  for (let k = 0; k < 9; k++) c.recordPage(4, 2);
  assert.deepEqual(c.takeHot(), [], 'a threshold of 0 queued a page');
  assert.throws(() => c.queueHot(-1), /whole number/);
});

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

test('a page still hot when an interval ends queues again; one that cooled does not', () => {
  const c = new MissCounters(0x8000_0000, 16 * 4096, 2);
  c.queueHot(4);
  for (let k = 0; k < 9; k++) c.recordPage(3, 1);
  for (let k = 0; k < 5; k++) c.recordPage(5, 0);
  assert.deepEqual(c.takeHot(), [3, 5]);
  // Counts past the threshold never reach it again on the way up: the end of the interval re-queues them.
  for (let k = 0; k < 20; k++) c.recordPage(3, 1);
  assert.deepEqual(c.takeHot(), []);
  c.decay();
  assert.deepEqual(c.takeHot(), [3], 'page 3 (14 after halving) is still hot; page 5 (2) is not');
  // Queued once, however many intervals pass before it is taken.
  c.decay();
  c.decay();
  assert.deepEqual(c.takeHot(), [3]);
  c.queueHot(0);
  for (let k = 0; k < 40; k++) c.recordPage(3, 1);
  c.decay();
  assert.deepEqual(c.takeHot(), [], 'a threshold of 0 re-queued a page');
});

test('a page every node misses on a little is queued when its misses from all nodes together reach the shared threshold', () => {
  const c = new MissCounters(0x8000_0000, 16 * 4096, 4);
  c.queueHot(8, 12);
  // Page 2: 3 misses from each of 4 nodes, each under 8; 12 together. Page 6: 2 from each, 8 together.
  for (let k = 0; k < 3; k++) for (let n = 0; n < 4; n++) c.recordPage(2, n);
  for (let k = 0; k < 2; k++) for (let n = 0; n < 4; n++) c.recordPage(6, n);
  assert.deepEqual(c.takeHot(), [2]);
  // Once on the way up; after an interval's halving (page 2: 4 together) it is not queued again.
  c.recordPage(2, 0);
  assert.deepEqual(c.takeHot(), []);
  c.decay();
  assert.deepEqual(c.takeHot(), []);
  // Page 6 (4 together after the halving) goes on to 20: queued on the way up past 12; then to 28, and after
  // the next halving 12 are left (3 from each node, under 8): queued again.
  for (let k = 0; k < 4; k++) for (let n = 0; n < 4; n++) c.recordPage(6, n);
  assert.deepEqual(c.takeHot(), [6]);
  for (let k = 0; k < 2; k++) for (let n = 0; n < 4; n++) c.recordPage(6, n);
  c.decay();
  assert.deepEqual(c.takeHot(), [6]);
  // 0 turns the shared threshold off.
  c.queueHot(8, 0);
  for (let k = 0; k < 5; k++) for (let n = 0; n < 4; n++) c.recordPage(9, n);
  c.decay();
  assert.deepEqual(c.takeHot(), []);
  assert.throws(() => c.queueHot(8, -1), /shared hot-page threshold/);
});

test('who writes a page is remembered for this interval and the one before; the last write by interval', () => {
  const c = new MissCounters(0x8000_0000, 16 * 4096, 4);
  assert.equal(c.intervalsSinceWrite(6), Infinity);
  c.recordPage(6, 1, true);
  c.recordPage(6, 2);
  assert.deepEqual([c.writersOf(6), c.intervalsSinceWrite(6)], [0b0010, 0]);
  c.decay();
  c.recordPage(6, 3, true);
  assert.deepEqual([c.writersOf(6), c.intervalsSinceWrite(6)], [0b1010, 0]);
  c.decay();
  assert.deepEqual([c.writersOf(6), c.intervalsSinceWrite(6)], [0b1000, 1], 'node 1 wrote two intervals ago: forgotten');
  c.decay();
  assert.deepEqual([c.writersOf(6), c.intervalsSinceWrite(6)], [0, 2]);
  c.resetPage(6);
  assert.equal(c.intervalsSinceWrite(6), Infinity);
});

test('counts move with a page\'s contents, and the page they left starts from zero', () => {
  const c = new MissCounters(0x8000_0000, 16 * 4096, 3);
  for (let k = 0; k < 4; k++) c.recordPage(1, 2);
  c.recordPage(1, 0, true);
  c.recordPage(9, 1);
  c.movePage(1, 9);
  assert.deepEqual(c.countsOf(9), [1, 0, 4], 'the old contents of page 9 are not counted');
  assert.deepEqual([c.writesTo(9), c.writersOf(9), c.intervalsSinceWrite(9)], [1, 0b001, 0]);
  assert.deepEqual([c.countsOf(1), c.writesTo(1), c.writersOf(1), c.intervalsSinceWrite(1)], [[0, 0, 0], 0, 0, Infinity]);
  // Out of range or onto itself: nothing.
  c.movePage(9, 99);
  c.movePage(9, 9);
  assert.deepEqual(c.countsOf(9), [1, 0, 4]);
});

test('the watch state saves and restores the write windows and the interval', () => {
  const c = new MissCounters(0x8000_0000, 8 * 4096, 2);
  c.queueHot(2);
  c.recordPage(2, 0, true);
  c.decay();
  c.recordPage(2, 1, true);
  c.recordPage(3, 1);
  c.recordPage(3, 1);
  const copy = new MissCounters(0x8000_0000, 8 * 4096, 2);
  copy.restoreWatch(c.saveWatch());
  for (const x of [c, copy]) x.decay();
  assert.deepEqual([copy.writersOf(2), copy.intervalsSinceWrite(2), copy.takeHot()], [c.writersOf(2), c.intervalsSinceWrite(2), c.takeHot()]);
});

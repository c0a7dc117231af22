import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GStageTlb } from './g-stage-tlb.js';

const PAGE = 4096;
const LARGE = 2 * 1024 * 1024;

test('the G-stage TLB holds pages and large groups, evicts the least recently used, and flushes', () => {
  const g = new GStageTlb(2);
  assert.equal(g.lookup(5 * PAGE), false);
  g.fill(5 * PAGE + 8, false);
  assert.equal(g.lookup(5 * PAGE + 4000), true, 'another address in the same page');
  assert.equal(g.lookup(6 * PAGE), false, 'a 4 KiB entry covers its page only');
  // A large entry covers its whole 2 MiB group, and not the next one.
  g.fill(3 * LARGE + 17 * PAGE, true);
  assert.equal(g.lookup(3 * LARGE + 500 * PAGE), true);
  assert.equal(g.lookup(4 * LARGE), false);
  // Page 5 was used before the group: a third entry evicts it, and the group stays.
  g.fill(9 * PAGE, false);
  assert.equal(g.lookup(5 * PAGE), false);
  assert.equal(g.lookup(3 * LARGE), true);
  assert.equal(g.lookup(9 * PAGE), true);
  assert.deepEqual([g.hits, g.misses], [4, 4]);
  g.flush();
  assert.equal(g.lookup(9 * PAGE) || g.lookup(3 * LARGE), false);
});

test('a page number and a group number never alias: group 0 is not page 0', () => {
  const g = new GStageTlb(4);
  g.fill(0, true);
  assert.equal(g.lookup(LARGE), false);
  const h = new GStageTlb(4);
  h.fill(0, false);
  assert.equal(h.lookup(PAGE), false);
  assert.equal(h.lookup(0), true);
});

test('its state saves and restores, and a size of zero is refused', () => {
  const g = new GStageTlb(3);
  g.fill(PAGE, false);
  g.fill(2 * PAGE, false);
  g.lookup(PAGE);
  const copy = new GStageTlb(3);
  copy.restoreState(g.saveState());
  // The same next victim (page 2, least recently used) in both.
  for (const t of [g, copy]) {
    t.fill(3 * PAGE, false);
    t.fill(4 * PAGE, false);
  }
  assert.deepEqual([copy.lookup(PAGE), copy.lookup(2 * PAGE)], [g.lookup(PAGE), g.lookup(2 * PAGE)]);
  assert.throws(() => new GStageTlb(2).restoreState(g.saveState()), /3/);
  assert.throws(() => new GStageTlb(0), /at least one/);
});

// The NUMA policy's moves as events: each move an event while the rate allows, a burst cut to the limit with what
// was left out counted and said, and the listener following the policy when set-policy replaces it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PolicyTally, type PolicyMove } from '../monitor/policy-tally.js';
import { DROPPED_EVERY_MS, EVENT_BURST, EVENTS_PER_SECOND, PageEvents } from './page-events.js';

function setup(): { events: { name: string; data: Record<string, unknown> }[]; clock: { now: number }; host: { tally: PolicyTally | undefined }; pages: PageEvents } {
  const events: { name: string; data: Record<string, unknown> }[] = [];
  const clock = { now: 1000 };
  const host = { tally: new PolicyTally(2) as PolicyTally | undefined };
  const pages = new PageEvents({
    tally: () => host.tally,
    vmName: (id) => ['web', 'db'][id] ?? String(id),
    emit: (name, data) => events.push({ name, data: data as Record<string, unknown> }),
    now: () => clock.now,
  });
  return { events, clock, host, pages };
}

const move = (kind: PolicyMove['kind'], i: number): PolicyMove => ({ kind, vm: 1, address: 0x8000_0000 + i * 4096, pages: 1, from: 0, to: 1 });

test('each move is an event with its VM\'s name, the page, and the nodes', () => {
  const { events, host, pages } = setup();
  host.tally!.onMove!(move('migrated', 3));
  host.tally!.onMove!({ kind: 'replicated', vm: 0, address: 0x8020_0000, pages: 512, from: 1, to: 0 });
  assert.deepEqual(events, [], 'events wait for the batch to end');
  pages.flush();
  assert.deepEqual(events, [
    { name: 'PAGE_MIGRATED', data: { vm: 'db', page: 0x8000_3000, pages: 1, from: 0, to: 1 } },
    { name: 'PAGE_REPLICATED', data: { vm: 'web', page: 0x8020_0000, pages: 512, from: 1, to: 0 } },
  ]);
});

test('a burst is cut to the limit; what was left out is counted and said once a second at most', () => {
  const { events, clock, host, pages } = setup();
  for (let i = 0; i < 300; i++) host.tally!.onMove!(move(i % 3 === 0 ? 'replicated' : 'migrated', i));
  pages.flush();
  const moves = events.filter((e) => e.name !== 'PAGE_EVENTS_DROPPED');
  assert.equal(moves.length, EVENT_BURST);
  const dropped = events.filter((e) => e.name === 'PAGE_EVENTS_DROPPED');
  assert.equal(dropped.length, 1);
  const d = dropped[0]!.data;
  assert.equal((d.migrated as number) + (d.replicated as number), 300 - EVENT_BURST);
  assert.deepEqual(pages.dropped, { migrated: d.migrated, replicated: d.replicated });
  // More dropped soon after: counted, said only once a second has passed.
  events.length = 0;
  clock.now += 10;
  for (let i = 0; i < 20; i++) host.tally!.onMove!(move('migrated', i));
  pages.flush();
  assert.equal(events.filter((e) => e.name === 'PAGE_MIGRATED').length, Math.floor((10 * EVENTS_PER_SECOND) / 1000));
  assert.equal(events.filter((e) => e.name === 'PAGE_EVENTS_DROPPED').length, 0);
  clock.now += DROPPED_EVERY_MS;
  pages.flush();
  const later = events.filter((e) => e.name === 'PAGE_EVENTS_DROPPED');
  assert.equal(later.length, 1);
  assert.equal(later[0]!.data.migrated, 20 - Math.floor((10 * EVENTS_PER_SECOND) / 1000));
  // The rate comes back with time: a second later, a second's worth of events.
  events.length = 0;
  clock.now += 1000;
  for (let i = 0; i < 10; i++) host.tally!.onMove!(move('migrated', i));
  pages.flush();
  assert.equal(events.filter((e) => e.name === 'PAGE_MIGRATED').length, 10);
});

test('a policy made or replaced between batches is followed; the old one is let go', () => {
  const { events, host, pages } = setup();
  const old = host.tally!;
  host.tally = new PolicyTally(2);
  pages.flush();
  assert.equal(old.onMove, undefined);
  host.tally.onMove!(move('migrated', 1));
  pages.flush();
  assert.equal(events.length, 1);
  host.tally = undefined;
  pages.flush();
  pages.close();
});

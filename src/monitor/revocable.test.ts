// Tests of revocable cell state: after `revoke`, every way into a failed cell's objects throws DeadCellError.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CellObjects, DeadCellError } from './revocable.js';

class RunQueue {
  #count = 0;
  readonly waiting: number[] = [];
  push(vcpu: number): number {
    this.waiting.push(vcpu);
    return ++this.#count;
  }
  get count(): number {
    return this.#count;
  }
}

const dead = (cell: number) => (error: unknown): boolean => error instanceof DeadCellError && error.cell === cell && error.message === `cell ${cell} has failed: its state is unreachable`;

test('a live cell\'s proxies behave as their objects, private fields, getters, Maps and typed arrays included', () => {
  const objects = new CellObjects(2);
  const queue = objects.create(1, new RunQueue());
  assert.equal(queue.push(7), 1);
  assert.equal(queue.count, 1);
  assert.deepEqual([...queue.waiting], [7]);
  const state = objects.create(1, { pages: new Map<number, { node: number }>(), counts: new Uint32Array(4) });
  state.pages.set(3, { node: 2 });
  assert.equal(state.pages.size, 1);
  assert.equal(state.pages.get(3)!.node, 2);
  state.counts[2] = 9;
  assert.equal(state.counts.length, 4);
  assert.equal(state.counts[2], 9);
  assert.equal(queue.waiting, queue.waiting, 'an object read twice is the same proxy');
});

test('a proxy stored back into its cell\'s state stays one proxy: reads do not nest a level per round trip', () => {
  const objects = new CellObjects(2);
  const member = objects.create(0, { view: [0, 1, 2, 3] });
  // As the agreement does with its views: read, filter, store back, many times over.
  for (let round = 0; round < 1_000; round++) {
    const next = member.view.filter(() => true);
    member.view = next;
    assert.equal(member.view, next, `round ${round}: read back as a proxy of the proxy`);
  }
  assert.deepEqual([...member.view], [0, 1, 2, 3]);
  // A proxy of another cell stored here is still wrapped, so it dies with either cell.
  const other = objects.create(1, { list: [5] });
  member.view = other.list;
  assert.notEqual(member.view, other.list);
  objects.revoke(1);
  assert.throws(() => member.view[0], dead(1));
});

test('after revoke, get, set, has, keys, method calls and held references of the cell all throw; other cells go on', () => {
  const objects = new CellObjects(3);
  const queue = objects.create(2, new RunQueue());
  const state = objects.create(2, { epoch: 1, view: [0, 1, 2], pages: new Map<number, number>([[1, 1]]) });
  const other = objects.create(1, { epoch: 5 });
  // References taken before the failure: a nested array, a Map, a method.
  const view = state.view;
  const pages = state.pages;
  const push = queue.push;
  assert.equal(objects.revoke(2), 4, 'the two objects, the array and the Map read through them');
  assert.ok(objects.isRevoked(2));
  assert.throws(() => state.epoch, dead(2));
  assert.throws(() => {
    state.epoch = 2;
  }, dead(2));
  assert.throws(() => 'epoch' in state, dead(2));
  assert.throws(() => Object.keys(state), dead(2));
  assert.throws(() => delete (state as { epoch?: number }).epoch, dead(2));
  assert.throws(() => Object.getPrototypeOf(state), dead(2));
  assert.throws(() => queue.push(1), dead(2));
  assert.throws(() => push.call(queue, 1), dead(2));
  assert.throws(() => queue.count, dead(2));
  assert.throws(() => view[0], dead(2));
  assert.throws(() => view.length, dead(2));
  assert.throws(() => [...view], dead(2));
  assert.throws(() => pages.get(1), dead(2));
  assert.throws(() => JSON.stringify(state), dead(2));
  assert.throws(() => objects.create(2, {}), dead(2), 'a failed cell makes no new state');
  assert.equal(other.epoch, 5);
  other.epoch = 6;
  assert.equal(other.epoch, 6);
});

test('a method fetched before the failure and called after throws too', () => {
  const objects = new CellObjects(1);
  const queue = objects.create(0, new RunQueue());
  const push = queue.push.bind(queue);
  assert.equal(push(1), 1);
  objects.revoke(0);
  assert.throws(() => push(2), dead(0));
});

test('a readmitted cell makes new state; every proxy of its old state, and what was read through them, still throws', () => {
  const objects = new CellObjects(2);
  const old = objects.create(1, { queue: new RunQueue(), map: new Map([[1, 'a']]) });
  const oldQueue = old.queue;
  const oldMethod = old.queue.push;
  objects.revoke(1);
  assert.throws(() => objects.readmit(0), /cell 0 has not failed/);
  objects.readmit(1);
  assert.equal(objects.isRevoked(1), false);
  const fresh = objects.create(1, { queue: new RunQueue() });
  assert.equal(fresh.queue.push(3), 1, 'the new generation works');
  const dead = (fn: () => unknown): void => assert.throws(fn, (e: unknown) => e instanceof DeadCellError && e.cell === 1);
  dead(() => old.queue);
  dead(() => oldQueue.push(2));
  dead(() => oldMethod.call(oldQueue, 2));
  dead(() => old.map.get(1));
  // Stored into the new state, an old proxy is not taken for a new one.
  const holder = objects.create(1, { kept: undefined as unknown });
  holder.kept = oldQueue;
  dead(() => (holder.kept as RunQueue).waiting);
  objects.revoke(1);
  dead(() => fresh.queue.count);
});

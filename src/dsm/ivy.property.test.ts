// Ivy's protocol as a model: hosts fault, read and write pages while the network delays, reorders and
// duplicates every message. After every step there is one writer or many readers of each page, every
// valid copy holds the page's last written version (no write lost, no stale copy), and at the end every
// waiting fault has been served and every host reads the last version.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DsmNode, DsmProtocolError, INVALID, MODIFIED, SHARED, type DsmMessage, type PageFrames, type PageState } from './ivy.js';

const HOSTS = 3;
const PAGES = 4;
const HOLD = 5;
const LONG = process.env.MIRRORBALL_LONG === '1';

/** One host's copies: each page's content is the version of the write that made it, in 8 bytes. */
class ModelFrames implements PageFrames {
  readonly versions = new Array<number>(PAGES).fill(0);
  readonly states = new Array<PageState>(PAGES).fill(INVALID);
  read(page: number): Uint8Array {
    assert.ok(this.states[page] !== MODIFIED, 'a page is read for sending only after its write permission went');
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, this.versions[page], true);
    return bytes;
  }
  write(page: number, data: Uint8Array): void {
    this.versions[page] = new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(0, true);
  }
  setState(page: number, state: PageState): void {
    this.states[page] = state;
  }
}

interface InFlight { from: number; to: number; message: DsmMessage }

type Op =
  | { kind: 'access'; host: number; page: number; write: boolean }
  | { kind: 'deliver'; pick: number }
  | { kind: 'duplicate'; pick: number }
  | { kind: 'time'; dt: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('access' as const), host: fc.nat(HOSTS - 1), page: fc.nat(PAGES - 1), write: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('time' as const), dt: fc.integer({ min: 1, max: 2 * HOLD }) }) },
);

/** The hosts, the network between them, the writes made, and the checks. */
class World {
  readonly frames = Array.from({ length: HOSTS }, () => new ModelFrames());
  readonly nodes: DsmNode[];
  readonly network: InFlight[] = [];
  /** The version of the last write of each page (0: as loaded). */
  readonly latest = new Array<number>(PAGES).fill(0);
  /** Faults waiting: host × page. */
  readonly waiting = new Set<string>();
  now = 0;
  writes = 0;

  constructor(hold: number) {
    this.nodes = this.frames.map((f, h) => new DsmNode(h, HOSTS, PAGES, f, { holdUs: hold, rangePages: 1 }));
    for (let p = 0; p < PAGES; p++) this.frames[0].states[p] = MODIFIED;
  }

  private collect(host: number): void {
    const out = this.nodes[host].takeOutput();
    for (const e of out.sends) this.network.push({ from: host, to: e.to, message: e.message });
    for (const page of out.resumed) {
      assert.ok(this.waiting.delete(`${host}:${page}`), `host ${host} resumed page ${page}, which it did not wait for`);
    }
  }

  access(host: number, page: number, write: boolean): void {
    const frames = this.frames[host];
    const node = this.nodes[host];
    if (node.fault(page, write, this.now)) {
      if (write) {
        assert.equal(frames.states[page], MODIFIED);
        frames.versions[page] = this.latest[page] = ++this.writes;
      } else {
        assert.equal(frames.versions[page], this.latest[page], `host ${host} read a stale page ${page}`);
      }
    } else {
      this.waiting.add(`${host}:${page}`);
    }
    this.collect(host);
  }

  deliver(index: number): void {
    const [m] = this.network.splice(index, 1);
    this.nodes[m.to].receive(m.message, this.now);
    this.collect(m.to);
  }

  advance(dt: number): void {
    this.now += dt;
    for (let h = 0; h < HOSTS; h++) {
      this.nodes[h].tick(this.now);
      this.collect(h);
    }
  }

  /** One writer or many readers, and every copy the last version. */
  check(): void {
    for (let p = 0; p < PAGES; p++) {
      const states = this.frames.map((f) => f.states[p]);
      const writers = states.filter((s) => s === MODIFIED).length;
      const readers = states.filter((s) => s === SHARED).length;
      assert.ok(writers <= 1, `page ${p}: ${writers} writers`);
      assert.ok(writers === 0 || readers === 0, `page ${p}: a writer and ${readers} readers`);
      for (let h = 0; h < HOSTS; h++) {
        assert.equal(states[h], this.nodes[h].stateOf(p), `host ${h} page ${p}: the protocol's state is the permission set`);
        if (states[h] !== INVALID) assert.equal(this.frames[h].versions[p], this.latest[p], `host ${h} holds page ${p} at an old version`);
      }
    }
  }

  /** Every message delivered and every Δ over, in the order `order` picks. */
  drain(order: (n: number) => number): void {
    for (let steps = 0; this.network.length > 0 || this.nodes.some((n) => n.nextDue() !== undefined); steps++) {
      assert.ok(steps < 10_000, 'the protocol settles');
      if (this.network.length > 0) this.deliver(order(this.network.length));
      else this.advance(HOLD);
      this.check();
    }
  }
}

function run(ops: Op[], hold: number, seed: number): World {
  const world = new World(hold);
  for (const o of ops) {
    switch (o.kind) {
      case 'access': world.access(o.host, o.page, o.write); break;
      case 'deliver': if (world.network.length > 0) world.deliver(o.pick % world.network.length); break;
      case 'duplicate': if (world.network.length > 0) world.network.push({ ...world.network[o.pick % world.network.length] }); break;
      case 'time': world.advance(o.dt); break;
    }
    world.check();
  }
  let state = seed >>> 0;
  const order = (n: number): number => { state = (Math.imul(state, 1103515245) + 12345) >>> 0; return (state >>> 8) % n; };
  world.drain(order);
  assert.deepEqual([...world.waiting], [], 'every fault was served');
  // Every host reads every page: each must come to the last version.
  for (let h = 0; h < HOSTS; h++) for (let p = 0; p < PAGES; p++) {
    world.access(h, p, false);
    world.drain(order);
    world.access(h, p, false);
    assert.ok(!world.waiting.has(`${h}:${p}`), `host ${h} can read page ${p} once its fault is served`);
  }
  return world;
}

test('Ivy: one writer or many readers, no write lost, every fault served, under delay, reordering and duplication', () => {
  fc.assert(fc.property(fc.array(op, { maxLength: 120 }), fc.constantFrom(0, HOLD), fc.nat(), (ops, hold, seed) => { run(ops, hold, seed); }),
    { numRuns: LONG ? 20_000 : 400 });
});

test('Ivy: a write of each host in turn moves the page and counts its bounces at the manager', () => {
  const world = run([], 0, 1);
  const before = world.nodes[1].bounces.get(1) ?? 0;
  for (const h of [1, 2, 0, 1]) {
    world.access(h, 1, true);
    world.drain(() => 0);
    world.access(h, 1, true);
  }
  // Page 1 is managed by host 1 (rangePages 1); it ended on host 1 having been on 2, 0 and 1 in turn.
  assert.equal((world.nodes[1].bounces.get(1) ?? 0) - before, 4);
  assert.equal(world.latest[1], world.writes);
  assert.equal(world.nodes[1].stateOf(1), MODIFIED);
});

test('Ivy: a page is held for Δ before a forward takes it away', () => {
  const world = new World(HOLD);
  world.advance(100);
  world.access(1, 0, true);
  world.drain(() => 0);
  assert.equal(world.nodes[1].stateOf(0), MODIFIED);
  const got = world.now;
  world.access(2, 0, false);
  // Deliver the request and the forward, but no time passes: host 1 holds the page.
  while (world.network.length > 0) world.deliver(0);
  assert.equal(world.nodes[1].stateOf(0), MODIFIED);
  assert.equal(world.nodes[1].counters.held, 1);
  assert.equal(world.nodes[1].nextDue(), got + HOLD);
  world.advance(HOLD);
  world.drain(() => 0);
  assert.equal(world.nodes[1].stateOf(0), SHARED);
  assert.equal(world.nodes[2].stateOf(0), SHARED);
  assert.equal(world.nodes[2].counters.readFaults, 1);
});

test('Ivy: a message about a page outside the VM, or from a host that is not there, is a protocol error', () => {
  const node = new DsmNode(0, 2, 4, new ModelFrames(), { rangePages: 1 });
  assert.throws(() => node.receive({ kind: 'read-request', page: 9, from: 1, seq: 1 }, 0), DsmProtocolError);
  assert.throws(() => node.receive({ kind: 'read-request', page: 0, from: 5, seq: 1 }, 0), DsmProtocolError);
  assert.throws(() => node.receive({ kind: 'read-request', page: 1, from: 1, seq: 1 }, 0), /does not manage/);
  assert.throws(() => node.receive({ kind: 'page-data', page: 2, txn: 3, write: false, data: new Uint8Array(8) }, 0), /did not ask/);
});

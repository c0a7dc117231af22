// Tests of the survivors' agreement: exact costs without and with a dead cell, the coordinator dying mid-protocol
// (reported or silent), partitions, the primary lost, that recovery never touches a failed cell's state, and
// issue 21's property: after faults before and during recovery (the coordinator among them), the surviving
// cells agree on exactly the cells alive and reachable from the primary, the protocol ends, and its simulated
// time is bounded:
//   cycles ≤ (last fault − start) + 2 × timeout + 2 × (2 × latency + handler)
// After the last fault every cell starts again at once: the lowest survivor learns in at most one timeout that
// the cells below it are gone, its first probe round finds (in one more timeout) every dead cell above it, and
// a clean probe round and a decision round follow, each a round trip and a handler.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CellAgreement, type AgreementFault } from './cell-agreement.js';
import { CellBus, DEFAULT_HANDLER_CYCLES as H, DEFAULT_LATENCY as L, DEFAULT_TIMEOUT as T } from './cell-bus.js';
import { CellObjects } from './revocable.js';

/** The test's machine: which cells run, and which side of a partition each is on. */
class CellWorld {
  readonly alive: boolean[];
  readonly side: number[];
  private sides = 1;

  constructor(readonly cells: number) {
    this.alive = new Array<boolean>(cells).fill(true);
    this.side = new Array<number>(cells).fill(0);
  }

  /** Reachability among live cells is an equivalence: the same side of every partition. */
  readonly reachable = (from: number, to: number): boolean => this.alive[from]! && this.alive[to]! && this.side[from] === this.side[to];

  kill(cell: number): void {
    this.alive[cell] = false;
  }

  /** A partition: `cells` go apart from the others of their side. */
  cut(cells: readonly number[]): void {
    const moved = new Map<number, number>();
    for (const cell of cells) {
      if (!moved.has(this.side[cell]!)) moved.set(this.side[cell]!, this.sides++);
      this.side[cell] = moved.get(this.side[cell]!)!;
    }
  }

  /** The true survivors: live cells on the primary's side, none if the primary is dead. */
  survivors(primary: number): number[] {
    if (!this.alive[primary]) return [];
    return this.alive.flatMap((alive, cell) => (alive && this.side[cell] === this.side[primary] ? [cell] : []));
  }
}

function setUp(cells: number, primary = 0, objects?: CellObjects): { world: CellWorld; bus: CellBus; agreement: CellAgreement } {
  const world = new CellWorld(cells);
  const bus = new CellBus({ cells, reachable: world.reachable });
  const agreement = new CellAgreement(bus, { primary, objects });
  return { world, bus, agreement };
}

/** A message round: out, handled, back. */
const ROUND = 2 * L + H;

test('a false alarm: every cell answers, one probe round and one decision round', () => {
  const { agreement } = setUp(4);
  const result = agreement.run(1_000);
  assert.deepEqual(result.live, [0, 1, 2, 3]);
  assert.deepEqual(result.stopped, []);
  assert.equal(result.cycles, 2 * ROUND);
  assert.equal(result.rounds, 2);
  assert.equal(result.restarts, 0);
  assert.ok(result.decisions.every((d) => d !== undefined && d.live.join() === '0,1,2,3'));
});

test('a cell dead before the report costs one timeout: it is dropped and the round restarts', () => {
  const { world, agreement, bus } = setUp(4);
  world.kill(2);
  bus.post(1, 2, 'agree.probe', { epoch: 0 }, { now: 0 }); // a message stuck on the dead cell
  const result = agreement.run(0);
  assert.deepEqual(result.live, [0, 1, 3]);
  assert.equal(result.decisions[2], undefined, 'a dead cell reports nothing');
  assert.equal(result.cycles, T + 2 * ROUND);
  assert.equal(result.restarts, 1);
  assert.equal(result.epoch, 2);
  assert.equal(result.cancelled, 1, 'the survivors cancel what was stuck on it');
  assert.equal(bus.stuckFor(2), 0);
});

test('the coordinator dies in the middle of the protocol (reported): the others agree without it', () => {
  const { world, agreement } = setUp(5, 3);
  world.kill(4);
  const faults: AgreementFault[] = [{ at: T + L, apply: () => world.kill(0) }];
  const result = agreement.run(0, faults);
  assert.deepEqual(result.live, [1, 2, 3]);
  assert.ok([1, 2, 3].every((c) => result.decisions[c]!.live.join() === '1,2,3'));
  assert.ok(result.cycles <= T + L + 2 * T + 2 * ROUND, `${result.cycles}`);
});

test('the coordinator dies silently while the others wait: their watchdog finds it, and they agree', () => {
  const { world, agreement } = setUp(4, 2);
  // Its probe round is over (every cell answered) and its decision is on the way when it dies: lost.
  const result = agreement.run(0, [{ at: ROUND + 1, apply: () => world.kill(0), reported: false }]);
  assert.deepEqual(result.live, [1, 2, 3]);
  assert.ok([1, 2, 3].every((c) => result.decisions[c]!.live.join() === '1,2,3'));
  assert.ok(result.restarts > 0);
  assert.ok(result.cycles > 2 * T, `the watchdog (2 × timeout) found it, after ${result.cycles} cycles`);
});

test('a partition: the primary\'s side decides, the other side stops itself', () => {
  const { world, agreement } = setUp(6, 4);
  world.cut([0, 1, 5]);
  const result = agreement.run(0);
  assert.deepEqual(result.live, [2, 3, 4]);
  assert.deepEqual(result.stopped, [0, 1, 5]);
  assert.ok([0, 1, 5].every((c) => result.decisions[c]!.stopSelf));
});

test('the primary lost: no side may go on, every cell stops', () => {
  const { world, agreement } = setUp(3, 1);
  world.kill(1);
  const result = agreement.run(0);
  assert.deepEqual(result.live, []);
  assert.deepEqual(result.stopped, [0, 2]);
});

test('cells that stopped themselves count as gone: a report reaching their coordinator late ends, not a loop', () => {
  const { world, agreement } = setUp(4, 0);
  world.kill(0);
  // Cell 1 coordinates after cell 0's timeout; its decision (stop: the primary is gone) reaches cells 2 and 3,
  // and then a report restarts cell 1 before their acks come back. Its next round finds them stopped.
  const result = agreement.run(0, [{ at: T + ROUND + L + 1, apply: () => {} }], 10_000);
  assert.deepEqual(result.live, []);
  assert.deepEqual(result.stopped, [1, 2, 3]);
  assert.ok(result.decisions.slice(1).every((d) => d!.stopSelf));
});

test('a cell cut off unheard after it adopted a decision is fenced: the survivors\' newer decision leaves it out', () => {
  const { world, agreement } = setUp(8, 2);
  // The cut comes just before the decision's acks return, and no report tells of it: cell 6's ack is lost,
  // the coordinator decides again without it, and cell 6 keeps the first decision.
  const result = agreement.run(0, [{ at: 2 * ROUND - 6, apply: () => world.cut([6]), reported: false }]);
  assert.deepEqual(result.live, [0, 1, 2, 3, 4, 5, 7]);
  assert.deepEqual(result.fenced, [6]);
  assert.deepEqual(result.decisions[6]!.live, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.ok(result.decisions[6]!.epoch < result.epoch);
});

test('recovery never touches a failed cell\'s state: it is revoked when the cell dies, and the protocol runs on', () => {
  const objects = new CellObjects(4);
  const { world, agreement } = setUp(4, 3, objects);
  const die = (cell: number) => (): void => {
    world.kill(cell);
    objects.revoke(cell);
  };
  const result = agreement.run(0, [{ at: L, apply: die(0) }, { at: T + 3 * L, apply: die(2) }]);
  assert.deepEqual(result.live, [1, 3]);
  // The check has teeth: a live cell's state revoked by mistake makes the protocol fail where it touches it.
  const wrong = new CellObjects(3);
  const second = setUp(3, 0, wrong);
  wrong.revoke(1);
  assert.throws(() => second.agreement.run(0), /cell 1 has failed: its state is unreachable/);
});

test('a later agreement starts from the last decision: only the newly failed cell is timed out', () => {
  const { world, agreement } = setUp(4);
  world.kill(3);
  assert.deepEqual(agreement.run(0).live, [0, 1, 2]);
  world.kill(2);
  const second = agreement.run(1_000_000);
  assert.deepEqual(second.live, [0, 1]);
  assert.equal(second.cycles, T + 2 * ROUND);
  assert.ok(second.epoch > 2);
});

test('a repaired cell is admitted: the next agreement takes it in, and its old state stays dead', () => {
  const objects = new CellObjects(3);
  const { world, bus, agreement } = setUp(3, 0, objects);
  world.kill(0);
  objects.revoke(0);
  agreement.primaryCell = 1;
  assert.deepEqual(agreement.run(0).live, [1, 2]);
  assert.equal(bus.isDead(0), true);
  // Cell 0 (the lowest, so the joiner coordinates) is repaired and rejoins.
  world.alive[0] = true;
  objects.readmit(0);
  bus.readmit(0);
  agreement.admit(0, objects);
  const joined = agreement.run(1_000_000);
  assert.deepEqual(joined.live, [0, 1, 2]);
  assert.deepEqual(joined.fenced, []);
  assert.equal(joined.cycles, 2 * ROUND, 'one probe round and one decision round: everyone answers');
  assert.ok(joined.decisions.every((d) => d !== undefined && d.live.join() === '0,1,2'));
  // A joiner that dies again during its admission is left out as any silent cell.
  world.kill(2);
  objects.revoke(2);
  assert.deepEqual(agreement.run(2_000_000).live, [0, 1]);
  world.alive[2] = true;
  objects.readmit(2);
  bus.readmit(2);
  agreement.admit(2, objects);
  const again = agreement.run(3_000_000, [{ at: 3_000_000 + L, apply: () => { world.kill(2); objects.revoke(2); } }]);
  assert.deepEqual(again.live, [0, 1]);
});

type Fault = { kind: 'kill'; cell: number } | { kind: 'kill-coordinator' } | { kind: 'cut'; cells: number[] };

const fault = (cells: number): fc.Arbitrary<Fault> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('kill' as const), cell: fc.integer({ min: 0, max: cells - 1 }) }) },
    // The lowest live cell coordinates: kill it, whichever it is by then.
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('kill-coordinator' as const) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut' as const), cells: fc.subarray(Array.from({ length: cells }, (_, c) => c), { minLength: 1 }) }) },
  );

const scenario = fc.integer({ min: 2, max: 8 }).chain((cells) =>
  fc.record({
    cells: fc.constant(cells),
    primary: fc.integer({ min: 0, max: cells - 1 }),
    before: fc.array(fault(cells), { maxLength: 2 }),
    // During the protocol: from its first messages to well past a few timeouts.
    during: fc.array(fc.record({ at: fc.integer({ min: 0, max: 4 * T }), fault: fault(cells) }), { maxLength: 3 }),
  }),
);

function apply(world: CellWorld, objects: CellObjects, f: Fault): void {
  const kill = (cell: number): void => {
    world.kill(cell);
    objects.revoke(cell);
  };
  if (f.kind === 'kill') kill(f.cell);
  else if (f.kind === 'kill-coordinator') {
    const lowest = world.alive.indexOf(true);
    if (lowest >= 0) kill(lowest);
  } else world.cut(f.cells);
}

/** A world of `cells` cells with its bus and agreement, and the faults `before` already applied. */
function staged(cells: number, primary: number, before: readonly Parameters<typeof apply>[2][]): { world: CellWorld; objects: CellObjects; agreement: CellAgreement } {
  const world = new CellWorld(cells);
  const objects = new CellObjects(cells);
  const bus = new CellBus({ cells, reachable: world.reachable });
  const agreement = new CellAgreement(bus, { primary, objects });
  for (const f of before) apply(world, objects, f);
  return { world, objects, agreement };
}

test('property: survivors agree on exactly the live cells on the primary\'s side, in bounded simulated time', () => {
  fc.assert(
    fc.property(scenario, ({ cells, primary, before, during }) => {
      const { world, objects, agreement } = staged(cells, primary, before);
      const start = 1_000;
      const faults: AgreementFault[] = during.map(({ at, fault: f }) => ({ at: start + at, apply: () => apply(world, objects, f) }));
      const result = agreement.run(start, faults, 20_000);

      const survivors = world.survivors(primary);
      assert.deepEqual(result.live, survivors);
      for (let cell = 0; cell < cells; cell++) {
        const decision = result.decisions[cell];
        if (!world.alive[cell]) assert.equal(decision, undefined, `dead cell ${cell} reported`);
        else if (survivors.includes(cell)) assert.deepEqual({ live: decision?.live, stop: decision?.stopSelf }, { live: survivors, stop: false }, `cell ${cell}`);
        else assert.equal(decision?.stopSelf, true, `cell ${cell}, cut off from the primary, did not stop`);
      }
      const last = Math.max(start, ...faults.map((f) => f.at));
      assert.ok(result.cycles <= last - start + 2 * T + 2 * (2 * L + H), `${result.cycles} cycles, last fault at ${last - start}`);
    }),
    { numRuns: 300 },
  );
});

test('property: with faults no report tells of, the survivors still agree and keep every cell that answers', () => {
  fc.assert(
    fc.property(scenario, ({ cells, primary, before, during }) => {
      const { world, objects, agreement } = staged(cells, primary, before);
      const faults: AgreementFault[] = during.map(({ at, fault: f }) => ({ at, apply: () => apply(world, objects, f), reported: false }));
      const result = agreement.run(0, faults, 20_000);
      // A fault found by no message after the decision is not in it, but no survivor is ever left out.
      const survivors = world.survivors(primary);
      const deciding = survivors.filter((c) => result.decisions[c] !== undefined && !result.decisions[c]!.stopSelf);
      for (const cell of deciding) assert.deepEqual(result.decisions[cell]!.live, result.live);
      if (deciding.length > 0) assert.ok(survivors.every((c) => result.live.includes(c)), `[${result.live.join()}] lacks a survivor of [${survivors.join()}]`);
    }),
    { numRuns: 300 },
  );
});

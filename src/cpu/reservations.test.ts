// The reservation table: one table seen by two `Reservations` (as by two threads), snapshots, and the
// threaded SC's compare-and-swap (docs/threads.md, "LR/SC").

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hart } from './hart.js';
import { Reservations } from './reservations.js';
import { executeAmo } from './amo.js';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';

const BASE = 0x8000_0000;

test('two Reservations over one table: a store on one breaks a reservation made on the other, and the count is shared', () => {
  const main = new Reservations(4);
  const other = new Reservations(4, main.memory());
  assert.equal(other.threaded, true);
  assert.equal(main.threaded, false);
  main.reserve(0, BASE + 0x40);
  other.reserve(3, BASE + 0x1000);
  assert.equal(other.count, 2);
  assert.equal(main.count, 2);
  // Hart 2 (on the other thread) stores into hart 0's line: hart 0 loses it, hart 3 keeps its own.
  other.storeBy(2, BASE + 0x7c, 4);
  assert.equal(main.count, 1);
  assert.equal(main.take(0, BASE + 0x40), false);
  assert.equal(main.take(3, BASE + 0x1000), true);
  assert.equal(other.count, 0);
});

test('a store spanning two lines breaks reservations on both; the storing hart keeps its own', () => {
  const r = new Reservations(3);
  r.reserve(0, BASE + 0x3c);
  r.reserve(1, BASE + 0x40);
  r.reserve(2, BASE + 0x40);
  r.storeBy(2, BASE + 0x3e, 4);
  assert.deepEqual([...r.saveState()], [-1, -1, (BASE + 0x40) / 64]);
  assert.equal(r.count, 1);
});

test('saveState and restoreState round-trip lines and the count', () => {
  const r = new Reservations(3);
  r.reserve(1, BASE + 0x80);
  const saved = r.saveState();
  const back = new Reservations(3);
  back.restoreState(saved);
  assert.equal(back.count, 1);
  assert.equal(back.take(1, BASE + 0x80), true);
  assert.throws(() => back.restoreState(Float64Array.of(2 ** 40, -1, -1)), /beyond/);
});

test('a table of the wrong size for the harts is refused', () => {
  assert.throws(() => new Reservations(4, new Reservations(2).memory()), /reservation table/);
});

/** A hart on a bus with one page of RAM, using `reservations`. */
function hartWith(reservations: Reservations): { hart: Hart; ram: RamRegion } {
  const bus = new Bus();
  const ram = new RamRegion(0, BASE, 4096);
  bus.addRam(ram);
  const hart = new Hart(0, { bus, clock: { now: () => 0 }, reservations });
  hart.reset(BASE);
  return { hart, ram };
}

/** AMO encodings (ISA §8.4): funct5 | aq | rl | rs2 | rs1 | width | rd | AMO opcode. */
const LR_W = (rd: number, rs1: number): number => ((0x02 << 27) | (rs1 << 15) | (2 << 12) | (rd << 7) | 0x2f) | 0;
const SC_W = (rd: number, rs2: number, rs1: number): number => ((0x03 << 27) | (rs2 << 20) | (rs1 << 15) | (2 << 12) | (rd << 7) | 0x2f) | 0;
const LR_D = (rd: number, rs1: number): number => ((0x02 << 27) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x2f) | 0;
const SC_D = (rd: number, rs2: number, rs1: number): number => ((0x03 << 27) | (rs2 << 20) | (rs1 << 15) | (3 << 12) | (rd << 7) | 0x2f) | 0;

for (const width of ['w', 'd'] as const) {
  test(`threaded SC.${width} fails if the word changed under it without the table seeing it; one thread's SC does not compare`, () => {
    for (const threaded of [false, true]) {
      const table = new Reservations(1);
      const { hart, ram } = hartWith(threaded ? new Reservations(1, table.memory()) : table);
      ram.i32[2] = 5;
      hart.x64[11] = BigInt(BASE + 8);
      hart.x64[13] = 9n;
      executeAmo(hart, width === 'w' ? LR_W(12, 11) : LR_D(12, 11), BASE + 8);
      assert.equal(hart.x64[12], 5n);
      // Another thread's store landed after this hart's SC found its reservation held (the race the
      // compare-and-swap closes): modelled by writing memory behind the table's back.
      ram.i32[2] = 6;
      executeAmo(hart, width === 'w' ? SC_W(14, 13, 11) : SC_D(14, 13, 11), BASE + 8);
      assert.equal(hart.x64[14], threaded ? 1n : 0n, `SC result with threaded=${threaded}`);
      assert.equal(ram.i32[2], threaded ? 6 : 9, 'memory after the SC');
    }
  });
}

test('threaded LR/SC with nothing in between succeeds and stores', () => {
  const { hart, ram } = hartWith(new Reservations(1, new Reservations(1).memory()));
  ram.i64[1] = -3n;
  hart.x64[11] = BigInt(BASE + 8);
  hart.x64[13] = 1n << 40n;
  executeAmo(hart, LR_D(12, 11), BASE + 8);
  assert.equal(hart.x64[12], -3n);
  executeAmo(hart, SC_D(14, 13, 11), BASE + 8);
  assert.equal(hart.x64[14], 0n);
  assert.equal(ram.i64[1], 1n << 40n);
});

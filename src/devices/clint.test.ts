// Tests of the CLINT: msip, mtimecmp and mtime through MMIO, MTIP against a settable clock.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Clint, MIP_MSIP, MIP_MTIP } from './clint.js';

const MTIMECMP = 0x4000;
const MTIME = 0xbff8;

function setup(harts = 2) {
  let now = 0;
  const clock = { now: () => now };
  const events: Array<[number, number, boolean]> = [];
  const pending = new Map<string, boolean>();
  const sink = {
    setPending(hart: number, bit: number, level: boolean) {
      events.push([hart, bit, level]);
      pending.set(`${hart}:${bit}`, level);
    },
  };
  const clint = new Clint(harts, clock, sink);
  const is = (hart: number, bit: number) => pending.get(`${hart}:${bit}`) ?? false;
  const setCompare = (hart: number, value: number) => {
    clint.write(MTIMECMP + 8 * hart, 4, value % 2 ** 32, 0);
    clint.write(MTIMECMP + 8 * hart + 4, 4, Math.floor(value / 2 ** 32), 0);
  };
  return { clint, events, is, setCompare, tick: (t: number) => (now = t) };
}

describe('Clint', () => {
  it('drives MSIP of the addressed hart from bit 0 of msip', () => {
    const { clint, is } = setup();
    clint.write(4, 4, 0xffffffff, 0);
    assert.equal(is(1, MIP_MSIP), true);
    assert.equal(is(0, MIP_MSIP), false);
    assert.equal(clint.read(4, 4, 0), 1);
    clint.write(4, 4, 0, 0);
    assert.equal(is(1, MIP_MSIP), false);
  });

  it('reads mtime from the clock in two halves', () => {
    const { clint, tick } = setup();
    tick(0x1_2345_6789);
    assert.equal(clint.read(MTIME, 4, 0), 0x2345_6789);
    assert.equal(clint.read(MTIME + 4, 4, 0), 1);
    assert.equal(clint.read(MTIME + 2, 2, 0), 0x2345);
  });

  it('raises MTIP when mtime reaches mtimecmp, and clears it when mtimecmp moves on', () => {
    const { clint, is, setCompare, tick } = setup();
    setCompare(1, 1000);
    assert.equal(clint.mtimecmp(1), 1000);
    tick(999);
    clint.update();
    assert.equal(is(1, MIP_MTIP), false);
    tick(1000);
    clint.update();
    assert.equal(is(1, MIP_MTIP), true);
    assert.equal(is(0, MIP_MTIP), false, 'hart 0 keeps its quiet reset value');
    setCompare(1, 2 ** 40);
    assert.equal(is(1, MIP_MTIP), false, 'a write re-evaluates at once');
    assert.equal(clint.read(MTIMECMP + 12, 4, 0), 2 ** 8);
  });

  it('tells the sink only about changes', () => {
    const { clint, events, setCompare, tick } = setup(1);
    setCompare(0, 10);
    tick(20);
    clint.update();
    clint.update();
    assert.deepEqual(events, [[0, MIP_MTIP, true]]);
  });

  it('reports the earliest deadline for idle skipping', () => {
    const { clint, setCompare } = setup(3);
    assert.equal(clint.nextDeadline(), Infinity, 'the reset value is no deadline');
    setCompare(2, 500);
    setCompare(0, 700);
    assert.equal(clint.nextDeadline(), 500);
  });

  it('gives the deadline in clock time when the guest has moved mtime', () => {
    const { clint, setCompare } = setup(1);
    clint.write(MTIME, 4, 1000, 0);
    setCompare(0, 1500);
    assert.equal(clint.nextDeadline(), 500);
  });

  it('lets the guest set mtime', () => {
    const { clint, tick } = setup();
    tick(100);
    clint.write(MTIME, 4, 5000, 0);
    assert.equal(clint.mtime(), 5000);
    tick(150);
    assert.equal(clint.read(MTIME, 4, 0), 5050);
  });

  it('reads zero and ignores writes for harts it does not have', () => {
    const { clint, events } = setup(2);
    clint.write(8, 4, 1, 0);
    clint.write(MTIMECMP + 16, 4, 0, 0);
    assert.equal(clint.read(8, 4, 0), 0);
    assert.equal(clint.read(MTIMECMP + 16, 4, 0), 0);
    assert.deepEqual(events, []);
  });
});

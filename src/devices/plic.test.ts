// Tests of the PLIC: priorities, enables, thresholds and the claim/complete gateway, through MMIO.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MIP_MEIP, MIP_SEIP, Plic } from './plic.js';

const PENDING = 0x1000;
const enable = (context: number) => 0x2000 + 0x80 * context;
const threshold = (context: number) => 0x200000 + 0x1000 * context;
const claim = (context: number) => threshold(context) + 4;

function setup(harts = 2, sources = 96) {
  const pending = new Map<string, boolean>();
  const calls: Array<[number, number, boolean]> = [];
  const plic = new Plic(harts, sources, {
    setPending(hart, bit, level) {
      calls.push([hart, bit, level]);
      pending.set(`${hart}:${bit}`, level);
    },
  });
  const is = (hart: number, bit: number) => pending.get(`${hart}:${bit}`) ?? false;
  const rd = (offset: number) => plic.read(offset, 4, 0);
  const wr = (offset: number, value: number) => plic.write(offset, 4, value, 0);
  return { plic, is, rd, wr, calls };
}

describe('Plic', () => {
  it('sizes its register space by contexts, two per hart', () => {
    const { plic } = setup(4);
    assert.equal(plic.contexts, 8);
    assert.equal(plic.size, 0x200000 + 8 * 0x1000);
  });

  it('signals S-mode external interrupts of the right hart through the sink', () => {
    const { plic, is, rd, wr } = setup();
    const line = plic.irqLine(10);
    wr(4 * 10, 1);
    wr(enable(3), 1 << 10); // context 3 = hart 1, S-mode
    line(true);
    assert.equal(rd(PENDING), 1 << 10);
    assert.equal(is(1, MIP_SEIP), true);
    assert.equal(is(1, MIP_MEIP), false);
    assert.equal(is(0, MIP_SEIP), false);
  });

  it('claims the highest priority, lowest id first, and clears pending', () => {
    const { plic, rd, wr } = setup();
    for (const [source, priority] of [[5, 2], [3, 2], [40, 7], [7, 1]] as const) {
      wr(4 * source, priority);
      plic.irqLine(source)(true);
    }
    wr(enable(0), (1 << 5) | (1 << 3) | (1 << 7));
    wr(enable(0) + 4, 1 << (40 - 32));
    assert.equal(rd(claim(0)), 40);
    assert.equal(rd(claim(0)), 3);
    assert.equal(rd(claim(0)), 5);
    assert.equal(rd(claim(0)), 7);
    assert.equal(rd(claim(0)), 0);
    assert.equal(rd(PENDING), 0);
  });

  it('masks priorities at or below the threshold, and never interrupts at priority 0', () => {
    const { plic, is, rd, wr } = setup();
    plic.irqLine(1)(true);
    plic.irqLine(2)(true);
    wr(enable(0), 0b110);
    wr(4 * 1, 3);
    wr(threshold(0), 3);
    assert.equal(is(0, MIP_MEIP), false);
    assert.equal(rd(claim(0)), 0);
    wr(threshold(0), 2);
    assert.equal(is(0, MIP_MEIP), true);
    assert.equal(rd(threshold(0)), 2);
    assert.equal(rd(claim(0)), 1);
    assert.equal(is(0, MIP_MEIP), false, 'source 2 has priority 0');
  });

  it('forwards no new request until completion, then re-raises a line still high', () => {
    const { plic, is, rd, wr } = setup();
    const line = plic.irqLine(9);
    wr(4 * 9, 1);
    wr(enable(1), 1 << 9);
    line(true);
    assert.equal(rd(claim(1)), 9);
    line(false);
    line(true);
    assert.equal(rd(PENDING), 0, 'gateway closed while in service');
    assert.equal(is(0, MIP_SEIP), false);
    wr(claim(1), 9);
    assert.equal(rd(PENDING), 1 << 9);
    assert.equal(is(0, MIP_SEIP), true);
    assert.equal(rd(claim(1)), 9);
    line(false);
    wr(claim(1), 9);
    assert.equal(rd(PENDING), 0);
    assert.equal(is(0, MIP_SEIP), false);
  });

  it('ignores completion of a source not enabled for the context', () => {
    const { plic, rd, wr } = setup();
    const line = plic.irqLine(4);
    wr(4 * 4, 1);
    wr(enable(0), 1 << 4);
    line(true);
    assert.equal(rd(claim(0)), 4);
    wr(claim(2), 4);
    assert.equal(rd(PENDING), 0, 'still in service');
    wr(claim(0), 4);
    assert.equal(rd(PENDING), 1 << 4);
  });

  it('ignores writes to source 0, pending bits and missing contexts', () => {
    const { plic, rd, wr, calls } = setup(1, 8);
    wr(0, 7);
    wr(PENDING, 0xff);
    wr(enable(0), 0xffffffff);
    wr(enable(2), 0xff);
    wr(threshold(2), 1);
    assert.equal(rd(0), 0);
    assert.equal(rd(PENDING), 0);
    assert.equal(rd(enable(0)), 0xfe, 'only sources 1..7 exist');
    assert.equal(rd(enable(2)), 0);
    assert.equal(rd(claim(2)), 0);
    assert.deepEqual(calls, []);
    assert.throws(() => plic.irqLine(8), RangeError);
  });

  it('supports byte access to priority and enable registers', () => {
    const { plic, rd } = setup();
    plic.write(enable(0) + 1, 1, 0x01, 0);
    assert.equal(rd(enable(0)), 1 << 8);
    plic.write(4 * 8, 1, 5, 0);
    assert.equal(plic.read(4 * 8, 1, 0), 5);
  });
});

// A threaded hart's doublewords (docs/threads.md, "The memory model"): aligned loads and stores as one
// 8-byte access give the same words as the one-thread path, negative halves and words given unsigned
// included, in RAM's little-endian order, and every bit pattern a float64 can carry (NaNs included).
// And the warm tier is primed with the threaded class of hart.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import { Reservations } from './reservations.js';
import { ThreadedHart } from './threaded-hart.js';
import { warmTierPrimed } from './warm-prime.js';

const RAM = 0x8000_0000;

class Probe extends ThreadedHart {
  high(): number {
    return this.loadHi;
  }
}

test('a threaded hart stores and loads aligned doublewords as word pairs, low word first', () => {
  const bus = new Bus();
  bus.addRam(new RamRegion(0, RAM, 1 << 20));
  const h = new Probe(0, { bus, clock: { now: () => 0 }, reservations: new Reservations(1) });
  h.reset(RAM);
  const memory = bus.guestMemory();
  const cases: [number, number][] = [[0, 0], [1, 0], [-1, -1], [0x12345678, -0x789abcdf], [-0x80000000, 0x7fffffff], [0xffffffff, 0x80000000]];
  cases.forEach(([lo, hi], i) => {
    const at = RAM + 0x100 + 8 * i;
    h.store64(at, lo, hi);
    assert.equal(memory.readU32(at), lo >>> 0, `low word of case ${i}`);
    assert.equal(memory.readU32(at + 4), hi >>> 0, `high word of case ${i}`);
    memory.writeU32(at + 0x1000, hi);
    memory.writeU32(at + 0x1004, lo);
    assert.equal(h.load64(at + 0x1000), hi | 0);
    assert.equal(h.high(), lo | 0);
  });
});

test('a threaded hart primes the warm tier with its own class, so that a worker\'s runner sees one class of hart', () => {
  const bus = new Bus();
  bus.addRam(new RamRegion(0, RAM, 1 << 20));
  const h = new ThreadedHart(0, { bus, clock: { now: () => 0 }, reservations: new Reservations(1) });
  assert.equal(warmTierPrimed(ThreadedHart), false);
  h.setTranslation(true);
  assert.equal(warmTierPrimed(ThreadedHart), true);
  // A subclass is a class of its own: priming stays per class.
  assert.equal(warmTierPrimed(Probe), false);
});

test('a threaded hart\'s doublewords keep every bit pattern, NaNs of every sign and payload included, once V8 has optimized the path too', () => {
  const bus = new Bus();
  bus.addRam(new RamRegion(0, RAM, 1 << 20));
  const h = new Probe(0, { bus, clock: { now: () => 0 }, reservations: new Reservations(1) });
  h.reset(RAM);
  const memory = bus.guestMemory();
  // [low, high]: signalling and quiet NaNs (both signs, payloads in either word), infinities, a subnormal, -0.
  const patterns: [number, number][] = [
    [1, 0x7ff00000], [0, 0x7ff00001], [-1, 0x7ff7ffff], [1, 0xfff00000], [0x12345678, 0xfff40000], [0, 0x7ff80000],
    [0xdeadbeef, 0x7ff80000], [0, 0xfff80000], [-1, -1], [0, 0x7ff00000], [0, 0xfff00000], [1, 0], [0, 0x80000000],
  ];
  // Enough rounds for V8 to optimize load64 and store64: a NaN must not be made quiet or canonical on either tier.
  for (let round = 0; round < 20000; round++) {
    patterns.forEach(([lo, hi], i) => {
      const at = RAM + 0x2000 + 8 * i;
      h.store64(at, lo, hi);
      const back = h.load64(at);
      if (back !== (lo | 0) || h.high() !== (hi | 0) || memory.readU32(at) !== lo >>> 0 || memory.readU32(at + 4) !== hi >>> 0) {
        assert.fail(`round ${round}, pattern ${i}: stored ${hi >>> 0}:${lo >>> 0}, memory ${memory.readU32(at + 4)}:${memory.readU32(at)}, loaded ${h.high() >>> 0}:${back >>> 0}`);
      }
    });
  }
});

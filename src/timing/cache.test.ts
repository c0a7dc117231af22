// Tests of the coherent cache model against hand-computed traces and a plain reference model.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ACCESS_HIT, ACCESS_MISS, ACCESS_UPGRADE, CoherentCaches, DEFAULT_CACHE_GEOMETRY, LINE_EXCLUSIVE, LINE_INVALID,
  LINE_MODIFIED, LINE_SHARED, cacheGeometryProblems, type AccessResult,
} from './cache.js';

const H = ACCESS_HIT;
const M = ACCESS_MISS;
const U = ACCESS_UPGRADE;
/** 256 bytes, 2 ways, 32-byte lines: 4 sets, so addresses 0, 128, 256, 384 all fall in set 0. */
const SMALL = { sizeBytes: 256, ways: 2, lineBytes: 32 };

function run(caches: CoherentCaches, trace: [cpu: number, paddr: number, write: boolean][]): AccessResult[] {
  return trace.map(([cpu, paddr, write]) => caches.access(cpu, paddr, write));
}

test('the default geometry is the R10000 board cache of Disco\'s FLASH: 1 MiB, 2-way, 128-byte lines', () => {
  const caches = new CoherentCaches(1);
  assert.deepEqual(caches.geometry, DEFAULT_CACHE_GEOMETRY);
  assert.equal(caches.sets, 4096);
});

test('bad geometries are refused with every problem named', () => {
  assert.deepEqual(cacheGeometryProblems({ sizeBytes: 1000, ways: 3, lineBytes: 64 }), [
    'cache sizeBytes must be a power of two, not 1000',
    'cache ways must be a power of two, not 3',
  ]);
  assert.deepEqual(cacheGeometryProblems({ sizeBytes: 64, ways: 4, lineBytes: 32 }), [
    'a cache of 64 bytes cannot hold 4 ways of 32-byte lines',
  ]);
  assert.throws(() => new CoherentCaches(0, SMALL), /at least one CPU/);
});

test('a direct-mapped cache misses on every access of two lines that share a set', () => {
  const caches = new CoherentCaches(1, { ...SMALL, ways: 1 }); // 8 sets of one 32-byte line
  const trace: [number, number, boolean][] = [[0, 0, false], [0, 256, false], [0, 4, false], [0, 260, false], [0, 8, false]];
  assert.deepEqual(run(caches, trace), [M, M, M, M, M]);
  // Neighbouring lines map to other sets and coexist.
  assert.deepEqual(run(caches, [[0, 32, false], [0, 8, false], [0, 40, false]]), [M, H, H]);
});

test('words of one line hit after the first miss', () => {
  const caches = new CoherentCaches(1, SMALL);
  assert.deepEqual(run(caches, [[0, 64, false], [0, 68, false], [0, 95, true], [0, 96, false]]), [M, H, H, M]);
});

test('the least recently used way is the one replaced', () => {
  const caches = new CoherentCaches(1, SMALL);
  // A=0, B=128, C=256 share set 0. After A B A, B is the LRU: C replaces B, so A still hits and B misses.
  const trace: [number, number, boolean][] = [[0, 0, false], [0, 128, false], [0, 0, false], [0, 256, false], [0, 0, false], [0, 128, false]];
  assert.deepEqual(run(caches, trace), [M, M, H, M, H, M]);
  // B replaced C (the LRU after the hit on A), so now A and B are in and C misses.
  assert.deepEqual(run(caches, [[0, 0, false], [0, 128, false], [0, 256, false]]), [H, H, M]);
});

test('a lone reader holds a line Exclusive and writes it without a bus transaction', () => {
  const caches = new CoherentCaches(2, SMALL);
  assert.equal(caches.access(0, 0x40, false), M);
  assert.equal(caches.stateOf(0, 0x40), LINE_EXCLUSIVE);
  assert.equal(caches.access(0, 0x40, true), H);
  assert.equal(caches.stateOf(0, 0x40), LINE_MODIFIED);
  assert.equal(caches.invalidationsSent[0], 0);
});

test('a store invalidates the other CPU\'s copy, and its re-read misses and shares the line again', () => {
  const caches = new CoherentCaches(2, SMALL);
  assert.deepEqual(run(caches, [[0, 0x80, false], [1, 0x80, false]]), [M, M]);
  assert.equal(caches.stateOf(0, 0x80), LINE_SHARED);
  assert.equal(caches.stateOf(1, 0x80), LINE_SHARED);

  assert.equal(caches.access(0, 0x84, true), U, 'a write to a Shared line is an upgrade');
  assert.equal(caches.stateOf(0, 0x80), LINE_MODIFIED);
  assert.equal(caches.stateOf(1, 0x80), LINE_INVALID);
  assert.equal(caches.invalidationsSent[0], 1);
  assert.equal(caches.invalidationsReceived[1], 1);

  assert.equal(caches.access(1, 0x80, false), M, 're-read after invalidation misses');
  assert.equal(caches.stateOf(0, 0x80), LINE_SHARED, 'the owner supplies the line and keeps a Shared copy');
  assert.equal(caches.stateOf(1, 0x80), LINE_SHARED);
  assert.equal(caches.writebacks[0], 1, 'the Modified copy was written back');
  assert.equal(caches.lastFromModified, true);
  assert.equal(caches.access(0, 0x100, false), M);
  assert.equal(caches.lastFromModified, false);
});

test('a write miss takes the line from a Modified owner', () => {
  const caches = new CoherentCaches(3, SMALL);
  assert.deepEqual(run(caches, [[0, 0, true], [1, 0, true], [2, 0, false]]), [M, M, M]);
  assert.deepEqual([0, 1, 2].map((cpu) => caches.stateOf(cpu, 0)), [LINE_INVALID, LINE_SHARED, LINE_SHARED]);
  assert.deepEqual([...caches.writebacks], [1, 1, 0]);
  assert.deepEqual([...caches.invalidationsReceived], [1, 0, 0]);
});

test('evicting a Modified line reports its address for write-back', () => {
  const caches = new CoherentCaches(1, SMALL);
  caches.access(0, 0x100 + 4, true);
  caches.access(0, 0x000, false);
  assert.equal(caches.lastWriteback, -1);
  caches.access(0, 0x080, false); // set 0 is full; the LRU is the dirty line at 0x100
  assert.equal(caches.lastWriteback, 0x100);
  assert.equal(caches.writebacks[0], 1);
  caches.access(0, 0x180, false); // evicts the clean line at 0
  assert.equal(caches.lastWriteback, -1);
});

test('addresses above 4 GiB keep distinct lines', () => {
  const caches = new CoherentCaches(1, SMALL);
  const high = 2 ** 36 + 0x40;
  assert.equal(caches.access(0, high, false), M);
  assert.equal(caches.access(0, 0x40, false), M, 'same set index, different tag');
  assert.equal(caches.access(0, high + 4, false), H);
});

test('DMA invalidation and flushes drop lines in every cache', () => {
  const caches = new CoherentCaches(2, SMALL);
  run(caches, [[0, 0, false], [1, 32, false], [1, 64, false]]);
  caches.invalidateRange(16, 32); // covers the lines at 0 and 32, not 64
  assert.deepEqual([caches.stateOf(0, 0), caches.stateOf(1, 32), caches.stateOf(1, 64)], [LINE_INVALID, LINE_INVALID, LINE_EXCLUSIVE]);
  caches.flushAll();
  assert.equal(caches.access(1, 64, false), M);
});

/** A plain model of the same caches: per CPU, per set, an array of lines in LRU order (last = most recent). */
class ReferenceCaches {
  private readonly sets: { line: number; state: number }[][][];
  constructor(cpus: number, private readonly g: typeof SMALL) {
    const sets = g.sizeBytes / g.ways / g.lineBytes;
    this.sets = Array.from({ length: cpus }, () => Array.from({ length: sets }, () => []));
  }
  access(cpu: number, paddr: number, write: boolean): AccessResult {
    const line = Math.floor(paddr / this.g.lineBytes);
    const index = line % this.sets[0]!.length;
    const set = this.sets[cpu]![index]!;
    const at = set.findIndex((e) => e.line === line);
    const others = this.sets.filter((_, c) => c !== cpu).map((s) => s[index]!);
    if (at >= 0) {
      const [entry] = set.splice(at, 1);
      set.push(entry!);
      if (!write || entry!.state === LINE_MODIFIED) return H;
      const upgrade = entry!.state === LINE_SHARED;
      entry!.state = LINE_MODIFIED;
      if (upgrade) for (const s of others) removeLine(s, line);
      return upgrade ? U : H;
    }
    let sharers = 0;
    for (const s of others) {
      if (write) removeLine(s, line);
      else for (const e of s) if (e.line === line) { e.state = LINE_SHARED; sharers++; }
    }
    if (set.length === this.g.ways) set.shift();
    set.push({ line, state: write ? LINE_MODIFIED : sharers > 0 ? LINE_SHARED : LINE_EXCLUSIVE });
    return M;
  }
}

function removeLine(set: { line: number }[], line: number): void {
  const at = set.findIndex((e) => e.line === line);
  if (at >= 0) set.splice(at, 1);
}

test('random traces on 3 CPUs agree with the reference model', () => {
  const op = fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 1023 }), fc.boolean());
  fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (trace) => {
    const caches = new CoherentCaches(3, SMALL);
    const reference = new ReferenceCaches(3, SMALL);
    for (const [cpu, paddr, write] of trace) assert.equal(caches.access(cpu, paddr, write), reference.access(cpu, paddr, write));
  }), { numRuns: 200 });
});

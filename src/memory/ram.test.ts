// RAM regions: shared memory where the platform has it, and a second view over another region's buffer.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RamRegion, SHARED_MEMORY } from './ram.js';

test('RAM is a SharedArrayBuffer in Node, and a region over its buffer sees the same memory', () => {
  assert.equal(SHARED_MEMORY, true);
  const a = new RamRegion(0, 0x8000_0000, 8192);
  assert.ok(a.buffer instanceof SharedArrayBuffer);
  const b = new RamRegion(0, 0x8000_0000, 8192, a.buffer);
  a.i64[3] = -2n;
  assert.equal(b.i32[6], -2);
  assert.equal(b.i32[7], -1);
  b.u8[4100] = 7;
  assert.equal(a.view.getUint8(4100), 7);
});

test('a buffer of another size than the region is refused', () => {
  assert.throws(() => new RamRegion(0, 0x8000_0000, 8192, new SharedArrayBuffer(4096)), /RAM buffer of 4096 bytes/);
});

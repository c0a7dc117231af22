// Tests of the virtio entropy device and its deterministic default source.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MmioRegister as R } from './mock-driver.js';
import { SeededEntropy, VirtioRng } from './rng.js';
import { DEVICE_ID_ENTROPY } from './spec.js';
import { virtioFixture } from './test-support.js';

function draw(seed: number, lengths: number[]): Uint8Array[] {
  const { driver } = virtioFixture(new VirtioRng(new SeededEntropy(seed)));
  assert.equal(driver.read(R.deviceId), DEVICE_ID_ENTROPY);
  const [queue] = driver.start([8]);
  for (const length of lengths) queue.add([{ writable: length }]);
  queue.kick();
  return queue.takeUsed().map((u) => u.written);
}

describe('VirtioRng', () => {
  it('fills requests, the same way for the same seed', () => {
    const first = draw(7, [16, 5, 64]);
    assert.deepEqual(first.map((b) => b.length), [16, 5, 64]);
    assert.deepEqual(draw(7, [16, 5, 64]), first);
    assert.notDeepEqual(draw(8, [16, 5, 64]), first);
    assert.ok(new Set(first[2]).size > 16, 'bytes vary');
  });

  it('caps a huge request at 4 KiB', () => {
    assert.equal(draw(1, [100_000])[0].length, 4096);
  });

  it('gives a well-spread, non-zero stream even for seed 0', () => {
    const source = new SeededEntropy(0);
    const bytes = new Uint8Array(65536);
    source.fill(bytes);
    const counts = new Array(256).fill(0);
    for (const b of bytes) counts[b]++;
    assert.ok(Math.min(...counts) > 150 && Math.max(...counts) < 370, 'each byte value near 256 times');
  });
});

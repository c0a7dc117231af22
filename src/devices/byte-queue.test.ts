// Tests of the host-input byte queue.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteQueue } from './byte-queue.js';

describe('ByteQueue', () => {
  it('hands bytes out in order across chunk boundaries', () => {
    const queue = new ByteQueue();
    queue.push(Uint8Array.of(1, 2, 3));
    queue.push([]);
    queue.push([4, 5]);
    assert.equal(queue.length, 5);
    assert.deepEqual(queue.take(2), Uint8Array.of(1, 2));
    assert.deepEqual(queue.take(2), Uint8Array.of(3, 4));
    assert.deepEqual(queue.take(10), Uint8Array.of(5));
    assert.deepEqual(queue.take(1), new Uint8Array(0));
    assert.deepEqual(queue.take(-1), new Uint8Array(0));
  });

  it('copies what it is given', () => {
    const queue = new ByteQueue();
    const bytes = Uint8Array.of(7);
    queue.push(bytes);
    bytes[0] = 8;
    assert.deepEqual(queue.take(1), Uint8Array.of(7));
  });
});

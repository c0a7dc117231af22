// A console socket's clients cannot grow the host's memory: typed input waits in the socket while the
// guest's queue is long (and none of it is lost), and a client that stops reading output is disconnected.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteQueue } from '../devices/byte-queue.js';
import { ConsoleSocket, MAX_CLIENT_PENDING } from './console-socket.js';
import { INPUT_HIGH_WATER } from './input-gate.js';

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path, () => resolve(socket));
    socket.once('error', reject);
  });
}

test('a client typing faster than the guest reads waits in its socket; every byte arrives, in order', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-console-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const queue = new ByteQueue();
  let mostQueued = 0;
  const console = await ConsoleSocket.listen(join(dir, 'c.sock'), {
    onInput: (bytes) => { queue.push(bytes); mostQueued = Math.max(mostQueued, queue.length); },
    queued: () => queue.length,
  });
  t.after(() => console.close());
  const client = await connect(join(dir, 'c.sock'));
  const sent = new Uint8Array(4 * 1024 * 1024).map((_, k) => (k * 7 + (k >> 12)) & 0xff);
  client.write(sent);
  // The guest reads nothing for a while: the socket stops being read near the high mark.
  await until('the queue to reach the high mark', () => queue.length >= INPUT_HIGH_WATER);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const stalled = queue.length;
  assert.ok(stalled < sent.length / 4, `the host queued ${stalled} of ${sent.length} bytes while the guest read none`);
  // Then it reads: everything comes, in order, and the queue never held much more than the mark.
  const received: Uint8Array[] = [];
  let got = 0;
  await until('every byte', () => {
    const bytes = queue.take(64 * 1024);
    received.push(bytes);
    got += bytes.length;
    return got === sent.length;
  });
  assert.deepEqual(Buffer.concat(received), Buffer.from(sent));
  assert.equal(queue.dropped, 0);
  assert.ok(mostQueued < 4 * INPUT_HIGH_WATER, `at most ${mostQueued} bytes were queued`);
  client.destroy();
});

test('a client that stops reading the output is disconnected instead of buffered without end', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-console-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const console = await ConsoleSocket.listen(join(dir, 'c.sock'), { onInput: () => {} });
  t.after(() => console.close());
  const reader = await connect(join(dir, 'c.sock'));
  const stalled = await connect(join(dir, 'c.sock'));
  stalled.pause();
  let read = 0;
  reader.on('data', (chunk: Buffer) => { read += chunk.length; });
  await until('both clients attached', () => console.attached === 2);
  const chunk = new Uint8Array(64 * 1024).fill(0x41);
  let written = 0;
  while (console.attached === 2 && written < 4 * MAX_CLIENT_PENDING) {
    console.write(chunk);
    written += chunk.length;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(console.attached, 1, `the stalled client was still attached after ${written} bytes of output`);
  assert.ok(written > MAX_CLIENT_PENDING && written < 2 * MAX_CLIENT_PENDING, `dropped after ${written} bytes`);
  // The client that reads keeps getting everything.
  await until('the reader to get every byte', () => read === written);
  reader.destroy();
  stalled.destroy();
});

test('a device keeps at most its limit of host input and counts what it dropped', () => {
  const queue = new ByteQueue(10);
  assert.equal(queue.push(new Uint8Array(6).fill(1)), 6);
  assert.equal(queue.push(new Uint8Array(6).fill(2)), 4);
  assert.equal(queue.push([3]), 0);
  assert.equal(queue.length, 10);
  assert.equal(queue.dropped, 3);
  assert.deepEqual([...queue.take(10)], [1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
  assert.equal(queue.push([4]), 1);
});

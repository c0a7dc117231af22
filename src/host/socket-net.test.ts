// The socket netdev: its framing, two backends joined over loopback, and a hostile peer dropped in one line.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection } from 'node:net';
import { MAX_FRAME } from '../devices/virtio/net.js';
import { FrameReader, SocketNet, SocketNetError, frameForStream } from './socket-net.js';
import { freePort } from './free-port.js';

const frame = (n: number, fill: number) => new Uint8Array(n).fill(fill);


const until = async (condition: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((done) => setTimeout(done, 10));
};

describe('the socket netdev', () => {
  it('frames with a 4-byte big-endian length, whatever the stream\'s cuts', () => {
    const stream = new Uint8Array([...frameForStream(frame(14, 1)), ...frameForStream(frame(1500, 2)), ...frameForStream(frame(60, 3))]);
    assert.deepEqual([...stream.subarray(0, 4)], [0, 0, 0, 14]);
    for (const cut of [1, 3, 7, 100, stream.length]) {
      const reader = new FrameReader();
      const got: Uint8Array[] = [];
      for (let at = 0; at < stream.length; at += cut) got.push(...reader.frames(stream.subarray(at, at + cut))!);
      assert.deepEqual(got.map((f) => [f.length, f[0]]), [[14, 1], [1500, 2], [60, 3]], `cut every ${cut}`);
    }
  });

  it('reads a largest frame sent a byte at a time', () => {
    const reader = new FrameReader();
    const stream = frameForStream(frame(MAX_FRAME, 9));
    const got: Uint8Array[] = [];
    for (let at = 0; at < stream.length; at++) got.push(...reader.frames(stream.subarray(at, at + 1))!);
    assert.equal(got.length, 1);
    assert.equal(got[0].length, MAX_FRAME);
    assert.equal(got[0][MAX_FRAME - 1], 9);
  });

  it('refuses lengths no Ethernet frame has', () => {
    for (const length of [0, 13, MAX_FRAME + 1, 0xffffffff]) {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, length);
      assert.equal(new FrameReader().frames(bytes), undefined, String(length));
    }
  });

  it('joins two backends, both ways; a peer sending a bad length is dropped with one line and another may join', async () => {
    const port = await freePort();
    const lines: string[] = [];
    const listener = await SocketNet.listen('127.0.0.1', port, (line) => lines.push(line));
    const connector = await SocketNet.connect('127.0.0.1', port, () => {});
    const atListener: Uint8Array[] = [];
    const atConnector: Uint8Array[] = [];
    listener.attach((f) => atListener.push(f));
    connector.attach((f) => atConnector.push(f));
    await until(() => listener.connected);
    connector.send(frame(60, 7));
    listener.send(frame(1514, 8));
    await until(() => atListener.length === 1 && atConnector.length === 1);
    assert.deepEqual([atListener[0].length, atListener[0][0]], [60, 7]);
    assert.deepEqual([atConnector[0].length, atConnector[0][0]], [1514, 8]);
    await connector.close();
    await until(() => !listener.connected);

    const hostile = createConnection(port, '127.0.0.1');
    await new Promise<void>((done) => hostile.once('connect', () => done()));
    const closed = new Promise<void>((done) => hostile.once('close', () => done()));
    hostile.on('error', () => {});
    hostile.write(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3));
    await closed;
    assert.equal(lines.length, 1);
    assert.match(lines[0], /frame length of 4294967295 bytes .* link dropped/);
    listener.send(frame(60, 1)); // no peer: dropped, no throw
    assert.ok(listener.dropped >= 1);

    const again = await SocketNet.connect('127.0.0.1', port, () => {});
    await until(() => listener.connected);
    assert.equal(listener.connected, true);
    await again.close();
    await listener.close();
  });

  it('fails to connect with one line when no one listens', async () => {
    const port = await freePort();
    await assert.rejects(SocketNet.connect('127.0.0.1', port, () => {}), (error: Error) => error instanceof SocketNetError && /cannot connect to 127\.0\.0\.1:\d+: ECONNREFUSED/.test(error.message));
  });
});

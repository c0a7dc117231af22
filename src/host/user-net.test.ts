// The user network's Node side over loopback, with constructed guest frames: a guest connection reaches a
// host server on 127.0.0.1, a host connection to a hostfwd port reaches the guest, a taken port is one line.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../net/packet.js';
import { GUEST_MAC, asTcp, guestTcp } from '../net/test-frames.js';
import { HOST_ADDRESS } from '../net/user-network.js';
import { UserNet, UserNetError } from './user-net.js';

const until = async (condition: () => boolean): Promise<void> => {
  for (let i = 0; i < 300 && !condition(); i++) await new Promise((done) => setTimeout(done, 10));
};

describe('the user network on host sockets', () => {
  it('connects a guest SYN to 10.0.2.2 to the host\'s 127.0.0.1 and carries data both ways', async () => {
    const server = createServer((socket) => socket.on('data', (chunk) => socket.write(Buffer.concat([Buffer.from('echo:'), chunk]))));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
    const port = (server.address() as AddressInfo).port;
    const net = await UserNet.start({ guestMac: GUEST_MAC, forwards: [], restrict: true, log: () => {} });
    const toGuest: Uint8Array[] = [];
    net.network.attach((frame) => toGuest.push(frame));
    try {
      net.network.send(guestTcp(HOST_ADDRESS, { destinationPort: port, flags: TCP_SYN, sequence: 100 }));
      await until(() => toGuest.length > 0);
      const synAck = asTcp(toGuest.shift()!)!;
      assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
      const ours = synAck.sequence + 1;
      net.network.send(guestTcp(HOST_ADDRESS, { destinationPort: port, flags: TCP_ACK | TCP_PSH, sequence: 101, acknowledgment: ours, payload: new TextEncoder().encode('hi') }));
      await until(() => toGuest.some((f) => asTcp(f)!.payload.length > 0));
      const reply = toGuest.map((f) => asTcp(f)!).find((s) => s.payload.length > 0)!;
      assert.equal(new TextDecoder().decode(reply.payload), 'echo:hi');
      assert.equal(reply.sequence, ours);
    } finally {
      await net.close();
      await new Promise<void>((done) => server.close(() => done()));
    }
  });

  it('turns a connection to a hostfwd port into a SYN to the guest\'s port', async () => {
    const probe = createServer();
    await new Promise<void>((done) => probe.listen(0, '127.0.0.1', () => done()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((done) => probe.close(() => done()));
    const net = await UserNet.start({ guestMac: GUEST_MAC, forwards: [{ address: '127.0.0.1', hostPort: port, guestPort: 80 }], restrict: true, log: () => {} });
    const toGuest: Uint8Array[] = [];
    net.network.attach((frame) => toGuest.push(frame));
    const client = createConnection(port, '127.0.0.1');
    client.on('error', () => {});
    try {
      await until(() => toGuest.length > 0);
      const syn = asTcp(toGuest[0])!;
      assert.deepEqual([syn.flags, syn.destinationPort, syn.source], [TCP_SYN, 80, HOST_ADDRESS]);
      // A second forward on the same port cannot listen: one line.
      await assert.rejects(UserNet.start({ guestMac: GUEST_MAC, forwards: [{ address: '127.0.0.1', hostPort: port, guestPort: 80 }], restrict: true, log: () => {} }),
        (error: Error) => error instanceof UserNetError && error.message === `hostfwd cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      client.destroy();
      await net.close();
    }
  });
});

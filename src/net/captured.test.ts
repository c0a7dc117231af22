// The user network against frames a real guest sent: the built guest's udhcpc (DISCOVER, REQUEST), its ARP request
// for the router and a Linux 6.1 SYN with every option Linux puts in one (MSS, SACK permitted, timestamps, window
// scale), captured from a `run --net user` guest on 2026-12-07.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ARP_REPLY, parseArp, parseEthernet, TCP_ACK, TCP_SYN } from './packet.js';
import { FakeHost, GUEST_MAC, asTcp, asUdp, guestTcp } from './test-frames.js';
import { HOST_ADDRESS, UserNetwork } from './user-network.js';

const hex = (parts: string[]): Uint8Array => Uint8Array.from(parts.join('').match(/../g)!.map((b) => parseInt(b, 16)));

const DISCOVER = hex([
  'ffffffffffff52540012345608004500014800000000401179a600000000ffffffff004400430134fae6010106008979713300000000000000000000',
  '000000000000000000005254001234560000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000000000000000000638253633501013902024037070103060c0f1c2a3c0c',
  '756468637020312e33352e303d0701525400123456ff0000000000000000000000000000000000000000',
]);
const REQUEST = hex([
  'ffffffffffff52540012345608004500014800000000401179a600000000ffffffff004400430134df66010106008979713300000000000000000000',
  '000000000000000000005254001234560000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000',
  '00000000000000000000000000000000000000000000000000000000000000000000000000006382536335010332040a00020f36040a000202390202',
  '4037070103060c0f1c2a3c0c756468637020312e33352e303d0701525400123456ff0000000000000000',
]);
const ARP_FOR_ROUTER = hex([
  'ffffffffffff525400123456080600010800060400015254001234560a00020f0000000000000a000202',
]);
const SYN = hex([
  '52550a00020252540012345608004500003cf23f40004006306c0a00020f0a000202a6c046b344fca06e00000000a002faf015190000020405b40402',
  '080a37e815210000000001030305',
]);

function setup() {
  const host = new FakeHost();
  const net = new UserNetwork({ host, guestMac: GUEST_MAC, now: () => 0, names: new Map(), restrict: true });
  const out: Uint8Array[] = [];
  net.attach((frame) => out.push(frame));
  return { net, host, out };
}

describe('frames captured from the guest', () => {
  it('udhcpc\'s DISCOVER and REQUEST get an OFFER and an ACK of 10.0.2.15 with its transaction id', () => {
    const { net, out } = setup();
    for (const [frame, type] of [[DISCOVER, 2], [REQUEST, 5]] as const) {
      net.send(frame);
      const reply = asUdp(out.pop()!)!;
      assert.deepEqual([...reply.payload.subarray(4, 8)], [...frame.subarray(14 + 20 + 8 + 4, 14 + 20 + 8 + 8)], 'xid');
      assert.deepEqual([...reply.payload.subarray(16, 20)], [10, 0, 2, 15]);
      assert.deepEqual([...reply.payload.subarray(240, 243)], [53, 1, type]);
    }
  });

  it('its ARP request for 10.0.2.2 is answered', () => {
    const { net, out } = setup();
    net.send(ARP_FOR_ROUTER);
    const reply = parseArp(parseEthernet(out[0])!.payload)!;
    assert.equal(reply.operation, ARP_REPLY);
    assert.equal(reply.senderIp, HOST_ADDRESS);
  });

  it('Linux\'s SYN, with all its options, opens a host connection; its MSS is read past the others', () => {
    const { net, host, out } = setup();
    net.send(SYN);
    assert.equal(net.statistics.dropped, 0);
    assert.deepEqual([host.streams[0].host, host.streams[0].port], ['127.0.0.1', 18099]);
    host.streams[0].events.connected();
    const synAck = asTcp(out[0])!;
    assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
    const sequence = new DataView(SYN.buffer).getUint32(14 + 20 + 4);
    assert.equal(synAck.acknowledgment, (sequence + 1) >>> 0);
    // The handshake done, 3000 bytes from the host go in segments of the guest's MSS (1460), not the default 536.
    const sourcePort = new DataView(SYN.buffer).getUint16(14 + 20);
    net.send(guestTcp(HOST_ADDRESS, { sourcePort, destinationPort: 18099, flags: TCP_ACK, sequence: sequence + 1, acknowledgment: synAck.sequence + 1 }));
    out.length = 0;
    host.streams[0].events.data(new Uint8Array(3000));
    assert.deepEqual(out.map((f) => asTcp(f)!.payload.length), [1460, 1460, 80]);
  });
});

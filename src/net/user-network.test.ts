// The user network against constructed frames: ARP, DHCP, DNS, ICMP, UDP, and TCP both ways, with hostile input.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ARP_REPLY, ARP_REQUEST, BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, PROTOCOL_ICMP, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST,
  TCP_SYN, buildArp, buildEthernet, buildIcmp, buildIpv4, parseArp, parseEthernet, parseIcmp, parseIpv4, parseIpv4Address,
} from './packet.js';
import { OUR_MSS, SEND_BUFFER_LIMIT } from './tcp.js';
import { FakeHost, GUEST_MAC, asTcp, asUdp, guestTcp, guestUdp } from './test-frames.js';
import { DNS_ADDRESS, GUEST_ADDRESS, HOST_ADDRESS, MAX_TCP_CONNECTIONS, ROUTER_MAC, UserNetwork } from './user-network.js';

const ip = (text: string): number => parseIpv4Address(text)!;

function setup(restrict = true): { net: UserNetwork; host: FakeHost; out: Uint8Array[]; clock: { now: number } } {
  const host = new FakeHost();
  const clock = { now: 0 };
  const net = new UserNetwork({ host, guestMac: GUEST_MAC, now: () => clock.now, names: new Map([['myhost', HOST_ADDRESS]]), restrict });
  const out: Uint8Array[] = [];
  net.attach((frame) => out.push(frame));
  return { net, host, out, clock };
}

/** A DHCP message from the guest's client: op 1, Ethernet, the xid, chaddr, the cookie and options. */
function dhcp(type: number, requested?: number): Uint8Array {
  const m = new Uint8Array(300);
  const view = new DataView(m.buffer);
  m[0] = 1; m[1] = 1; m[2] = 6;
  view.setUint32(4, 0xdeadbeef);
  m.set(GUEST_MAC, 28);
  view.setUint32(236, 0x63825363);
  let at = 240;
  m.set([53, 1, type], at); at += 3;
  if (requested !== undefined) { m.set([50, 4], at); view.setUint32(at + 2, requested); at += 6; }
  m[at] = 255;
  return m;
}

function dhcpOptions(reply: Uint8Array): Map<number, Uint8Array> {
  const options = new Map<number, Uint8Array>();
  for (let i = 240; reply[i] !== 255;) { options.set(reply[i], reply.subarray(i + 2, i + 2 + reply[i + 1])); i += 2 + reply[i + 1]; }
  return options;
}

function dnsQuery(name: string, type = 1): Uint8Array {
  const labels = name.split('.').flatMap((l) => [l.length, ...[...l].map((c) => c.charCodeAt(0))]);
  return Uint8Array.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, type, 0, 1]);
}

/** Opens a guest connection to 10.0.2.2:`port` and completes the handshake; returns what the test needs. */
function connected(port = 80) {
  const s = setup();
  s.net.send(guestTcp(HOST_ADDRESS, { destinationPort: port, flags: TCP_SYN, sequence: 999, mss: 1460 }));
  const stream = s.host.streams[0];
  stream.events.connected();
  const synAck = asTcp(s.out.pop()!)!;
  s.net.send(guestTcp(HOST_ADDRESS, { destinationPort: port, flags: TCP_ACK, sequence: 1000, acknowledgment: synAck.sequence + 1 }));
  return { ...s, stream, ours: (synAck.sequence + 1) >>> 0 };
}

describe('the user network', () => {
  it('answers ARP for the host and the DNS server, and nothing else', () => {
    const { net, out } = setup();
    const ask = (target: string) => buildEthernet(BROADCAST_MAC, GUEST_MAC, ETHERTYPE_ARP, buildArp({ operation: ARP_REQUEST, senderMac: GUEST_MAC, senderIp: GUEST_ADDRESS, targetMac: new Uint8Array(6), targetIp: ip(target) }));
    net.send(ask('10.0.2.2'));
    net.send(ask('10.0.2.3'));
    net.send(ask('10.0.2.77'));
    assert.equal(out.length, 2);
    const reply = parseArp(parseEthernet(out[0])!.payload)!;
    assert.equal(reply.operation, ARP_REPLY);
    assert.deepEqual(reply.senderMac, ROUTER_MAC);
    assert.equal(reply.senderIp, HOST_ADDRESS);
    assert.deepEqual(parseEthernet(out[0])!.destination, GUEST_MAC);
    assert.equal(parseArp(parseEthernet(out[1])!.payload)!.senderIp, DNS_ADDRESS);
  });

  it('leases 10.0.2.15 by DHCP with the router and DNS server, and refuses another address', () => {
    const { net, out } = setup();
    const send = (message: Uint8Array) => net.send(guestUdp(0, 0xffffffff, { sourcePort: 68, destinationPort: 67, payload: message }, BROADCAST_MAC));
    send(dhcp(1));
    const offer = asUdp(out.pop()!)!;
    assert.equal(offer.sourcePort, 67);
    assert.equal(offer.destinationPort, 68);
    const view = new DataView(offer.payload.buffer, offer.payload.byteOffset);
    assert.equal(view.getUint32(4), 0xdeadbeef);
    assert.equal(view.getUint32(16), GUEST_ADDRESS);
    const options = dhcpOptions(offer.payload);
    assert.deepEqual([...options.get(53)!], [2]);
    assert.deepEqual([...options.get(1)!], [255, 255, 255, 0]);
    assert.deepEqual([...options.get(3)!], [10, 0, 2, 2]);
    assert.deepEqual([...options.get(6)!], [10, 0, 2, 3]);
    send(dhcp(3, GUEST_ADDRESS));
    assert.deepEqual([...dhcpOptions(asUdp(out.pop()!)!.payload).get(53)!], [5]);
    send(dhcp(3, ip('192.168.1.9')));
    assert.deepEqual([...dhcpOptions(asUdp(out.pop()!)!.payload).get(53)!], [6]);
  });

  it('resolves the host\'s names only: an A record for them, NXDOMAIN for the rest', () => {
    const { net, out } = setup();
    const ask = (query: Uint8Array) => {
      net.send(guestUdp(GUEST_ADDRESS, DNS_ADDRESS, { sourcePort: 5353, destinationPort: 53, payload: query }));
      const reply = asUdp(out.pop()!)!;
      assert.equal(reply.source, DNS_ADDRESS);
      assert.equal(reply.destinationPort, 5353);
      return reply.payload;
    };
    const known = ask(dnsQuery('MyHost'));
    assert.equal(known[3] & 0x0f, 0);
    assert.equal(known[7], 1, 'one answer');
    assert.deepEqual([...known.subarray(known.length - 4)], [10, 0, 2, 2]);
    const aaaa = ask(dnsQuery('myhost', 28));
    assert.equal(aaaa[3] & 0x0f, 0);
    assert.equal(aaaa[7], 0, 'no AAAA record');
    const unknown = ask(dnsQuery('example.com'));
    assert.equal(unknown[3] & 0x0f, 3, 'NXDOMAIN');
    const cut = ask(dnsQuery('example.com').subarray(0, 16));
    assert.equal(cut[3] & 0x0f, 1, 'FORMERR');
  });

  it('answers pings to the host', () => {
    const { net, out } = setup();
    const echo = buildIcmp(ICMP_ECHO_REQUEST, 0, Uint8Array.of(0, 7, 0, 1, 9, 9, 9));
    net.send(buildEthernet(ROUTER_MAC, GUEST_MAC, ETHERTYPE_IPV4, buildIpv4(GUEST_ADDRESS, HOST_ADDRESS, PROTOCOL_ICMP, echo)));
    const reply = parseIpv4(parseEthernet(out[0])!.payload)!;
    assert.equal(reply.source, HOST_ADDRESS);
    const icmp = parseIcmp(reply)!;
    assert.equal(icmp.type, ICMP_ECHO_REPLY);
    assert.deepEqual([...icmp.rest], [0, 7, 0, 1, 9, 9, 9]);
  });

  it('carries UDP to the host\'s loopback and replies back from 10.0.2.2', () => {
    const { net, host, out } = setup();
    net.send(guestUdp(GUEST_ADDRESS, HOST_ADDRESS, { sourcePort: 4000, destinationPort: 7, payload: Uint8Array.of(1, 2, 3) }));
    assert.deepEqual(host.datagrams.map((d) => [d.guestPort, d.host, d.port, [...d.payload]]), [[4000, '127.0.0.1', 7, [1, 2, 3]]]);
    net.udpReply(4000, '127.0.0.1', 7, Uint8Array.of(4, 5));
    const reply = asUdp(out[0])!;
    assert.deepEqual([reply.source, reply.sourcePort, reply.destinationPort, [...reply.payload]], [HOST_ADDRESS, 7, 4000, [4, 5]]);
    net.udpReply(4001, '127.0.0.1', 7, Uint8Array.of(4, 5)); // no flow for that port
    assert.equal(out.length, 1);
  });

  it('restricted, reaches no address but the host; unrestricted, any outside one', () => {
    const restricted = setup(true);
    restricted.net.send(guestTcp(ip('192.0.2.1'), { destinationPort: 80, flags: TCP_SYN }));
    restricted.net.send(guestUdp(GUEST_ADDRESS, ip('192.0.2.1'), { sourcePort: 1, destinationPort: 2, payload: new Uint8Array(1) }));
    assert.equal(restricted.host.streams.length, 0);
    assert.equal(restricted.host.datagrams.length, 0);
    const reset = asTcp(restricted.out[0])!;
    assert.equal(reset.flags, TCP_RST | TCP_ACK);
    assert.equal(reset.acknowledgment, 1001);
    const open = setup(false);
    open.net.send(guestTcp(ip('192.0.2.1'), { destinationPort: 80, flags: TCP_SYN }));
    assert.deepEqual([open.host.streams[0].host, open.host.streams[0].port], ['192.0.2.1', 80]);
  });
});

describe('TCP from the guest to the host', () => {
  it('connects to 127.0.0.1 first, then answers the SYN with our MSS', () => {
    const { net, host, out } = setup();
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 8080, flags: TCP_SYN, sequence: 999 }));
    assert.deepEqual([host.streams[0].host, host.streams[0].port], ['127.0.0.1', 8080]);
    assert.equal(out.length, 0, 'nothing until the host socket connects');
    host.streams[0].events.connected();
    const synAck = asTcp(out[0])!;
    assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
    assert.equal(synAck.acknowledgment, 1000);
    assert.equal(synAck.mss, OUR_MSS);
    assert.equal(synAck.source, HOST_ADDRESS);
    assert.equal(synAck.sourcePort, 8080);
  });

  it('resets the guest when the host refuses', () => {
    const { net, host, out } = setup();
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 1, flags: TCP_SYN, sequence: 5 }));
    host.streams[0].events.error();
    const reset = asTcp(out[0])!;
    assert.equal(reset.flags, TCP_RST | TCP_ACK);
    assert.equal(reset.acknowledgment, 6);
    assert.equal(net.connectionCount, 0);
  });

  it('takes data in order only: a gap is dropped and acknowledged again, an overlap gives only its new bytes', () => {
    const { net, stream, out, ours } = connected();
    const data = (sequence: number, text: string) => net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK | TCP_PSH, sequence, acknowledgment: ours, payload: new TextEncoder().encode(text) }));
    data(1000, 'hello ');
    assert.equal(asTcp(out.pop()!)!.acknowledgment, 1006);
    data(1010, 'late'); // a gap: 1006-1009 missing
    assert.equal(asTcp(out.pop()!)!.acknowledgment, 1006);
    data(1000, 'hello '); // a duplicate
    assert.equal(asTcp(out.pop()!)!.acknowledgment, 1006);
    data(1003, 'lo world'); // overlaps by three
    assert.equal(asTcp(out.pop()!)!.acknowledgment, 1011);
    assert.equal(stream.text(), 'hello world');
  });

  it('sends host data within the guest\'s window and MSS, and waits on a zero window', () => {
    const { net, stream, out, ours } = connected();
    out.length = 0;
    stream.events.data(new Uint8Array(4000).fill(7));
    const sent = out.splice(0).map((f) => asTcp(f)!);
    assert.deepEqual(sent.map((s) => s.payload.length), [1460, 1460, 1080]);
    assert.deepEqual(sent.map((s) => s.sequence - ours), [0, 1460, 2920]);
    // The guest acknowledges everything with a zero window: the next data waits.
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1000, acknowledgment: ours + 4000, window: 0 }));
    stream.events.data(new Uint8Array(100));
    assert.equal(out.length, 0);
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1000, acknowledgment: ours + 4000, window: 50 }));
    assert.deepEqual(out.splice(0).map((f) => asTcp(f)!.payload.length), [50]);
  });

  it('pauses the host socket while the guest is behind, and resumes it as the guest catches up', () => {
    const { net, stream, ours } = connected();
    for (let i = 0; i < SEND_BUFFER_LIMIT / 4096; i++) stream.events.data(new Uint8Array(4096));
    assert.equal(stream.paused, true);
    const ack = (count: number) => net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1000, acknowledgment: ours + count, window: 65535 }));
    ack(65535);
    ack(131070);
    assert.equal(stream.paused, true, 'still above half');
    ack(140000);
    assert.equal(stream.paused, false);
  });

  it('offers only the window the host socket has room for', () => {
    const { net, stream, out, ours } = connected();
    stream.buffered = 65535 - 100;
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK | TCP_PSH, sequence: 1000, acknowledgment: ours, payload: new Uint8Array(300) }));
    assert.equal(stream.written[0].length, 100, 'takes only what fits');
    assert.equal(asTcp(out.pop()!)!.acknowledgment, 1100);
  });

  it('sends again what was not acknowledged after a timeout', () => {
    const { stream, out, ours, net, clock } = connected();
    out.length = 0;
    stream.events.data(Uint8Array.of(1, 2, 3));
    const first = asTcp(out.pop()!)!;
    clock.now += 500;
    net.tick();
    assert.equal(out.length, 0, 'not yet');
    clock.now += 600;
    net.tick();
    const again = asTcp(out.pop()!)!;
    assert.equal(again.sequence, first.sequence);
    assert.equal(again.sequence, ours);
    assert.deepEqual([...again.payload], [1, 2, 3]);
  });

  it('takes an acknowledgment of data sent before a retransmission went back (the guest had it all)', () => {
    const { net, stream, out, ours, clock } = connected();
    stream.events.data(new Uint8Array(3000));
    // The guest shuts its window without acknowledging; the timeout probes with one byte, `next` going back.
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1000, acknowledgment: ours, window: 0 }));
    out.length = 0;
    clock.now += 1500;
    net.tick();
    assert.deepEqual(out.splice(0).map((f) => asTcp(f)!.payload.length), [1]);
    // It had received all 3000 bytes: its acknowledgment of them counts, and nothing is sent again.
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1000, acknowledgment: ours + 3000, window: 65535 }));
    clock.now += 60_000;
    net.tick();
    assert.equal(out.length, 0);
    stream.events.data(Uint8Array.of(5));
    assert.equal(asTcp(out.pop()!)!.sequence, ours + 3000);
  });

  it('probes a window the guest keeps shut for as long as the guest answers, and gives up on one that does not', () => {
    const { net, stream, out, ours, clock } = connected();
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1000, acknowledgment: ours, window: 0 }));
    stream.events.data(new Uint8Array(100));
    for (let second = 0; second < 600; second++) {
      clock.now += 1000;
      net.tick();
      // Each probe is answered: the byte is not taken, the window still shut.
      if (out.length > 0) net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1000, acknowledgment: ours, window: 0 }));
      out.length = 0;
    }
    assert.equal(net.connectionCount, 1, 'still there after ten minutes');
    assert.equal(stream.destroyed, false);
    for (let second = 0; second < 120; second++) { clock.now += 1000; net.tick(); }
    assert.equal(net.connectionCount, 0, 'a guest that stopped answering is given up on');
    assert.equal(stream.destroyed, true);
  });

  it('closes both ways: the guest\'s FIN ends the host stream, the host\'s end sends our FIN', () => {
    const { net, stream, out, ours } = connected();
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK | TCP_FIN, sequence: 1000, acknowledgment: ours }));
    assert.equal(stream.ended, true);
    assert.equal(asTcp(out.pop()!)!.acknowledgment, 1001);
    stream.events.data(Uint8Array.of(9));
    stream.events.end();
    const fin = asTcp(out.pop()!)!;
    assert.equal(fin.flags & TCP_FIN, TCP_FIN);
    assert.equal(fin.sequence, ours + 1);
    assert.equal(net.connectionCount, 1);
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 1001, acknowledgment: ours + 2 }));
    assert.equal(net.connectionCount, 0);
    assert.equal(stream.destroyed, false, 'a clean close');
  });

  it('drops the host socket on the guest\'s reset, and resets the guest on a host error', () => {
    const a = connected();
    a.net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_RST, sequence: 1000 }));
    assert.equal(a.stream.destroyed, true);
    assert.equal(a.net.connectionCount, 0);
    const b = connected();
    b.stream.events.error();
    assert.equal(asTcp(b.out.pop()!)!.flags & TCP_RST, TCP_RST);
    assert.equal(b.net.connectionCount, 0);
  });

  it('resets a segment of no connection', () => {
    const { net, out } = setup();
    net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_ACK, sequence: 5, acknowledgment: 77 }));
    const reset = asTcp(out[0])!;
    assert.deepEqual([reset.flags, reset.sequence], [TCP_RST, 77]);
  });
});

describe('forwarded connections (hostfwd)', () => {
  it('open a guest connection from 10.0.2.2 and carry data both ways', () => {
    const { net, out } = setup();
    const host = new FakeHost();
    const stream = host.connectTcp('127.0.0.1', 0, undefined!);
    const events = net.openForwarded(80, stream)!;
    const syn = asTcp(out.pop()!)!;
    assert.equal(syn.flags, TCP_SYN);
    assert.equal(syn.destinationPort, 80);
    assert.equal(syn.source, HOST_ADDRESS);
    events.data(new TextEncoder().encode('GET / HTTP/1.0\r\n\r\n'));
    assert.equal(out.length, 0, 'data waits for the handshake');
    net.send(guestTcp(HOST_ADDRESS, { sourcePort: 80, destinationPort: syn.sourcePort, flags: TCP_SYN | TCP_ACK, sequence: 7000, acknowledgment: syn.sequence + 1 }));
    const [ack, request] = out.splice(0).map((f) => asTcp(f)!);
    assert.equal(ack.acknowledgment, 7001);
    assert.equal(new TextDecoder().decode(request.payload), 'GET / HTTP/1.0\r\n\r\n');
    net.send(guestTcp(HOST_ADDRESS, { sourcePort: 80, destinationPort: syn.sourcePort, flags: TCP_ACK | TCP_PSH, sequence: 7001, acknowledgment: request.sequence + request.payload.length, payload: new TextEncoder().encode('page') }));
    assert.equal((stream as unknown as { text(): string }).text(), 'page');
  });

  it('give up on a guest that never answers, and drop the host socket', () => {
    const { net, out, clock } = setup();
    const stream = new FakeHost().connectTcp('127.0.0.1', 0, undefined!);
    net.openForwarded(80, stream);
    for (let i = 0; i < 20; i++) { clock.now += 10_000; net.tick(); }
    assert.ok(out.filter((f) => asTcp(f)!.flags === TCP_SYN).length >= 5, 'the SYN was sent again');
    assert.equal((stream as unknown as { destroyed: boolean }).destroyed, true);
    assert.equal(net.connectionCount, 0);
  });
});

describe('hostile input', () => {
  it('drops frames with a bad checksum or bad lengths', () => {
    const { net, host } = setup();
    const syn = guestTcp(HOST_ADDRESS, { destinationPort: 80, flags: TCP_SYN });
    const badSum = syn.slice();
    badSum[14 + 20 + 15] ^= 0x40; // the window's low byte, the checksum left as it was
    net.send(badSum);
    const short = syn.slice(0, 30);
    net.send(short);
    const longIp = syn.slice();
    new DataView(longIp.buffer).setUint16(14 + 2, 2000); // total length beyond the frame
    net.send(longIp);
    assert.equal(host.streams.length, 0);
    assert.equal(net.statistics.dropped, 3);
  });

  it('holds at most MAX_TCP_CONNECTIONS under a SYN flood', () => {
    const { net, host } = setup();
    for (let port = 1; port <= MAX_TCP_CONNECTIONS + 50; port++) net.send(guestTcp(HOST_ADDRESS, { sourcePort: port, destinationPort: 80, flags: TCP_SYN }));
    assert.equal(net.connectionCount, MAX_TCP_CONNECTIONS);
    assert.equal(host.streams.length, MAX_TCP_CONNECTIONS);
  });

  it('never throws on random bytes, nor on valid frames with random payloads', () => {
    const { net } = setup(false);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => { net.send(bytes); }), { numRuns: 2000 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 63 }), fc.nat(), (payload, flags, sequence) => {
      net.send(guestTcp(HOST_ADDRESS, { destinationPort: 80, flags, sequence, acknowledgment: sequence ^ 0x5555, payload }));
      net.send(guestUdp(GUEST_ADDRESS, DNS_ADDRESS, { sourcePort: 9, destinationPort: 53, payload }));
      net.send(guestUdp(0, 0xffffffff, { sourcePort: 68, destinationPort: 67, payload }, BROADCAST_MAC));
    }), { numRuns: 2000 });
    assert.ok(net.connectionCount <= MAX_TCP_CONNECTIONS);
  });
});

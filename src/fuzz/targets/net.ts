// The user network as a hostile guest and a capricious host see it: random frames and segments from the guest,
// host sockets that connect, refuse, send, end and fail at random, and time passing. Invariants: nothing
// throws, every frame to the guest is well formed, connections and buffered bytes stay bounded.

import fc from 'fast-check';
import {
  ETHERTYPE_ARP, ETHERTYPE_IPV4, PROTOCOL_TCP, PROTOCOL_UDP, buildEthernet, buildIpv4, buildTcp, buildUdp, parseArp, parseEthernet,
  parseIpv4, parseTcp, parseUdp,
} from '../../net/packet.js';
import { SEND_BUFFER_LIMIT, type HostStream, type HostStreamEvents } from '../../net/tcp.js';
import { DNS_ADDRESS, GUEST_ADDRESS, HOST_ADDRESS, MAX_TCP_CONNECTIONS, ROUTER_MAC, UserNetwork } from '../../net/user-network.js';
import type { FuzzTarget } from '../harness.js';

const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const OUTSIDE = 0xc0000201; // 192.0.2.1
/** The most one host `data` event carries here. */
const MAX_CHUNK = 8192;
/** What one connection may hold from the host: the pause threshold and one read past it. */
const MAX_HELD = SEND_BUFFER_LIMIT + MAX_CHUNK;

type Action =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'tcp'; to: number; sourcePort: number; port: number; flags: number; sequence: number; acknowledgment: number; window: number; length: number; corrupt: boolean }
  | { kind: 'udp'; to: number; port: number; payload: Uint8Array }
  | { kind: 'host'; stream: number; event: 'connected' | 'data' | 'end' | 'error' | 'drained'; length: number }
  | { kind: 'forward'; port: number }
  | { kind: 'time'; ms: number }
  /** A well-behaved guest's answer to the last segment it got: its ACK (or SYN-ACK), maybe with data or a FIN. */
  | { kind: 'reply'; flags: number; length: number; window: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 120 }) }),
  { weight: 4, arbitrary: fc.record({
    kind: fc.constant('tcp' as const), to: fc.constantFrom(HOST_ADDRESS, DNS_ADDRESS, OUTSIDE), sourcePort: fc.constantFrom(40000, 40001, 80),
    port: fc.constantFrom(80, 22, 49152, 49153), flags: fc.integer({ min: 0, max: 63 }), sequence: fc.constantFrom(0, 1, 1000, 1001, 0xffffffff, 0x7fffffff),
    acknowledgment: fc.nat(), window: fc.constantFrom(0, 1, 1460, 65535), length: fc.constantFrom(0, 1, 100, 1460, 3000), corrupt: fc.boolean(),
  }) },
  fc.record({ kind: fc.constant('udp' as const), to: fc.constantFrom(HOST_ADDRESS, DNS_ADDRESS, OUTSIDE, 0xffffffff), port: fc.constantFrom(53, 67, 7), payload: fc.uint8Array({ maxLength: 300 }) }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('host' as const), stream: fc.nat({ max: 7 }), event: fc.constantFrom('connected' as const, 'data' as const, 'end' as const, 'error' as const, 'drained' as const), length: fc.integer({ min: 1, max: MAX_CHUNK }) }) },
  fc.record({ kind: fc.constant('forward' as const), port: fc.constantFrom(80, 22) }),
  fc.record({ kind: fc.constant('time' as const), ms: fc.constantFrom(100, 1000, 10_000) }),
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('reply' as const), flags: fc.constantFrom(0, 0x01, 0x04, 0x08), length: fc.constantFrom(0, 10, 1460), window: fc.constantFrom(0, 512, 65535) }) },
);

class Stream implements HostStream {
  buffered = 0;
  paused = false;
  closed = false;
  constructor(readonly events: HostStreamEvents) {}
  write(bytes: Uint8Array): void { this.buffered = Math.min(this.buffered + bytes.length, 1 << 20); }
  end(): void {}
  destroy(): void { this.closed = true; }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
}

export const netTargets: FuzzTarget<Action[]>[] = [{
  name: 'user-network',
  surface: 'a hostile guest\'s frames and a capricious host under the user-mode network stack',
  cases: fc.array(action, { maxLength: 40 }),
  open() {
    let now = 0;
    const streams: Stream[] = [];
    const network = new UserNetwork({
      host: {
        connectTcp: (_host, _port, events) => { const s = new Stream(events); streams.push(s); return s; },
        sendUdp: () => {},
      },
      guestMac: GUEST_MAC, now: () => now, names: new Map([['host', HOST_ADDRESS]]), restrict: false,
    });
    const problems: string[] = [];
    /** The last TCP segment the guest got, with its addresses. */
    let last: (ReturnType<typeof parseTcp> & { from: number }) | undefined;
    network.attach((frame) => {
      const ethernet = parseEthernet(frame);
      if (ethernet === undefined) { problems.push('a frame shorter than Ethernet\'s header'); return; }
      if (ethernet.type === ETHERTYPE_ARP) { if (parseArp(ethernet.payload) === undefined) problems.push('a malformed ARP reply'); return; }
      const ip = ethernet.type === ETHERTYPE_IPV4 ? parseIpv4(ethernet.payload) : undefined;
      if (ip === undefined) { problems.push('a frame to the guest that is not valid IPv4'); return; }
      if (ip.protocol === PROTOCOL_TCP) {
        const segment = parseTcp(ip);
        if (segment === undefined) problems.push('a TCP segment with a bad checksum or offset');
        else last = { ...segment, from: ip.source };
      }
      if (ip.protocol === PROTOCOL_UDP && parseUdp(ip) === undefined) problems.push('a UDP datagram with a bad checksum or length');
    });
    return {
      run(actions) {
        for (const a of actions) {
          switch (a.kind) {
            case 'bytes': network.send(a.bytes); break;
            case 'tcp': {
              const segment = buildTcp(GUEST_ADDRESS, a.to, { sourcePort: a.sourcePort, destinationPort: a.port, sequence: a.sequence, acknowledgment: a.acknowledgment, flags: a.flags, window: a.window, payload: new Uint8Array(a.length) });
              if (a.corrupt && segment.length > 20) segment[segment.length - 1] ^= 0x55;
              network.send(buildEthernet(ROUTER_MAC, GUEST_MAC, ETHERTYPE_IPV4, buildIpv4(GUEST_ADDRESS, a.to, PROTOCOL_TCP, segment)));
              break;
            }
            case 'udp':
              network.send(buildEthernet(ROUTER_MAC, GUEST_MAC, ETHERTYPE_IPV4, buildIpv4(GUEST_ADDRESS, a.to, PROTOCOL_UDP, buildUdp(GUEST_ADDRESS, a.to, { sourcePort: 68, destinationPort: a.port, payload: a.payload }))));
              break;
            case 'host': {
              const stream = streams[a.stream % Math.max(1, streams.length)];
              if (stream === undefined || stream.closed) break;
              if (a.event === 'data') { if (!stream.paused) stream.events.data(new Uint8Array(a.length)); } // a paused socket reads nothing
              else if (a.event === 'drained') { stream.buffered = 0; stream.events.drained(); }
              else stream.events[a.event]();
              break;
            }
            case 'forward': {
              const stream = new Stream(undefined!);
              const events = network.openForwarded(a.port, stream);
              if (events !== undefined) streams.push(Object.assign(stream, { events }));
              break;
            }
            case 'time': now += a.ms; network.tick(); break;
            case 'reply': {
              if (last === undefined || (last.flags & 0x04) !== 0) break;
              const syn = (last.flags & 0x02) !== 0;
              const consumed = last.payload.length + (syn ? 1 : 0) + (last.flags & 0x01);
              const segment = buildTcp(GUEST_ADDRESS, last.from, {
                sourcePort: last.destinationPort, destinationPort: last.sourcePort, sequence: syn ? 5000 : last.acknowledgment,
                acknowledgment: (last.sequence + consumed) >>> 0, flags: 0x10 | (syn ? 0x02 : a.flags), window: a.window, payload: new Uint8Array(syn ? 0 : a.length),
              });
              network.send(buildEthernet(ROUTER_MAC, GUEST_MAC, ETHERTYPE_IPV4, buildIpv4(GUEST_ADDRESS, last.from, PROTOCOL_TCP, segment)));
              break;
            }
          }
          if (streams.length > 4 * MAX_TCP_CONNECTIONS) streams.splice(0, streams.length - MAX_TCP_CONNECTIONS);
        }
        if (problems.length > 0) throw new Error(problems[0]);
        if (network.connectionCount > MAX_TCP_CONNECTIONS) throw new Error(`${network.connectionCount} connections held`);
        if (network.largestBacklog > MAX_HELD) throw new Error(`a connection holds ${network.largestBacklog} bytes from the host`);
      },
      check() {
        if (problems.length > 0) throw new Error(problems[0]);
      },
    };
  },
}];

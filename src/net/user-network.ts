// The user-mode network (QEMU's "slirp" model): a NetBackend that is a router, DHCP and DNS server for one guest,
// and carries the guest's TCP and UDP to host sockets through the `UserNetworkHost` it is given. Pure: no Node.

import type { FrameInfo, NetBackend } from '../devices/virtio/net.js';
import { answerDhcp } from './dhcp.js';
import { answerDns } from './dns.js';
import {
  ARP_REPLY, ARP_REQUEST, BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, PROTOCOL_ICMP, PROTOCOL_TCP,
  PROTOCOL_UDP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, buildArp, buildEthernet, buildIcmp, buildIpv4, buildTcp, buildUdp, formatIpv4, parseArp,
  parseEthernet, parseIcmp, parseIpv4, parseIpv4Address, parseTcp, parseUdp, type Ipv4Packet, type TcpSegment,
} from './packet.js';
import { TcpConnection, type HostStream, type HostStreamEvents, type TcpConnectionOptions } from './tcp.js';

const address = (text: string): number => parseIpv4Address(text)!;
/** QEMU's slirp addresses: the network, the host (gateway), the DNS server, the guest. */
export const NETWORK = address('10.0.2.0');
export const NETMASK = address('255.255.255.0');
export const HOST_ADDRESS = address('10.0.2.2');
export const DNS_ADDRESS = address('10.0.2.3');
export const GUEST_ADDRESS = address('10.0.2.15');
/** The router's MAC: locally administered, as QEMU's slirp has it (52:55 then the address). */
export const ROUTER_MAC = Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02);
const LOOPBACK = '127.0.0.1';
const DHCP_SERVER_PORT = 67;
const DHCP_CLIENT_PORT = 68;
const DNS_PORT = 53;
const LEASE_SECONDS = 86400;
/** Bounds on what a guest can make the stack hold: connections, UDP flows. */
export const MAX_TCP_CONNECTIONS = 256;
export const MAX_UDP_FLOWS = 64;
/** Host ports the guest's connections come from on the guest side of a forwarded connection. */
const FIRST_FORWARD_PORT = 49152;

/** The host's sockets, as the stack uses them (src/host/user-net.ts in Node; fakes in tests). */
export interface UserNetworkHost {
  /** Connect to `host:port`; report through `events`; the stream is written only after `connected`. */
  connectTcp(host: string, port: number, events: HostStreamEvents): HostStream;
  /** Send a datagram from the guest's UDP port `guestPort` to `host:port`; replies come back through `UserNetwork.udpReply`. */
  sendUdp(guestPort: number, host: string, port: number, payload: Uint8Array): void;
}

export interface UserNetworkOptions {
  host: UserNetworkHost;
  /** The guest NIC's MAC (learned again from the guest's frames). */
  guestMac: Uint8Array;
  /** Host milliseconds, for TCP retransmission. */
  now: () => number;
  /**
   * Names the DNS server answers, lower case, without the final dot (the host's own names); every other
   * name is NXDOMAIN.
   */
  names: ReadonlyMap<string, number>;
  /**
   * Only the host (10.0.2.2, which is the host's 127.0.0.1) and the built-in servers are reachable: a guest
   * connection to any other address is reset, a datagram dropped. Without it they go out through the host's
   * sockets to that address, as QEMU's slirp does.
   */
  restrict: boolean;
  /** A line about something the guest did wrong, or the stack refused. */
  log?: (message: string) => void;
}

export interface UserNetworkStatistics {
  /** Frames from the guest, and those dropped as malformed, for an unknown protocol, or refused. */
  received: number;
  dropped: number;
  sent: number;
  tcpConnections: number;
  udpDatagrams: number;
}

export class UserNetwork implements NetBackend {
  private toGuest: (frame: Uint8Array, info?: FrameInfo) => void = () => {};
  private guestMac: Uint8Array;
  private readonly connections = new Map<string, TcpConnection>();
  /** Guest ports with a UDP flow open on the host, least recently used first. */
  private readonly udpFlows = new Map<number, number>();
  private nextForwardPort = FIRST_FORWARD_PORT;
  private sequenceSeed = 0x2545f491;
  private ipId = 0;
  readonly statistics: UserNetworkStatistics = { received: 0, dropped: 0, sent: 0, tcpConnections: 0, udpDatagrams: 0 };

  constructor(private readonly options: UserNetworkOptions) {
    this.guestMac = Uint8Array.from(options.guestMac);
  }

  attach(receive: (frame: Uint8Array, info?: FrameInfo) => void): void {
    this.toGuest = receive;
  }

  /** Live TCP connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** The most host bytes one connection holds for the guest (bounded by flow control). */
  get largestBacklog(): number {
    let most = 0;
    for (const connection of this.connections.values()) most = Math.max(most, connection.queued);
    return most;
  }

  /** A frame from the guest. Anything malformed, or not for us, is dropped and counted. */
  send(frame: Uint8Array): void {
    this.statistics.received++;
    if (!this.handle(frame)) this.statistics.dropped++;
  }

  private handle(frame: Uint8Array): boolean {
    const ethernet = parseEthernet(frame);
    if (ethernet === undefined || (ethernet.source[0] & 1) !== 0) return false;
    if (ethernet.type === ETHERTYPE_ARP) return this.arp(ethernet.payload);
    if (ethernet.type !== ETHERTYPE_IPV4) return false;
    const ip = parseIpv4(ethernet.payload);
    if (ip === undefined) return false;
    this.guestMac = Uint8Array.from(ethernet.source);
    switch (ip.protocol) {
      case PROTOCOL_UDP: return this.udp(ip);
      case PROTOCOL_TCP: return this.tcp(ip);
      case PROTOCOL_ICMP: return this.icmp(ip);
      default: return false;
    }
  }

  private arp(bytes: Uint8Array): boolean {
    const arp = parseArp(bytes);
    if (arp === undefined || arp.operation !== ARP_REQUEST) return false;
    if (arp.targetIp !== HOST_ADDRESS && arp.targetIp !== DNS_ADDRESS) return false;
    this.guestMac = Uint8Array.from(arp.senderMac);
    const reply = buildArp({ operation: ARP_REPLY, senderMac: ROUTER_MAC, senderIp: arp.targetIp, targetMac: arp.senderMac, targetIp: arp.senderIp });
    this.emit(buildEthernet(arp.senderMac, ROUTER_MAC, ETHERTYPE_ARP, reply));
    return true;
  }

  private icmp(ip: Ipv4Packet): boolean {
    const icmp = parseIcmp(ip);
    // Echo requests to the host and the DNS server are answered here; ICMP goes nowhere else.
    if (icmp === undefined || icmp.type !== ICMP_ECHO_REQUEST || (ip.destination !== HOST_ADDRESS && ip.destination !== DNS_ADDRESS)) return false;
    this.emitIp(ip.destination, ip.source, PROTOCOL_ICMP, buildIcmp(ICMP_ECHO_REPLY, 0, icmp.rest));
    return true;
  }

  private udp(ip: Ipv4Packet): boolean {
    const udp = parseUdp(ip);
    if (udp === undefined) return false;
    if (udp.destinationPort === DHCP_SERVER_PORT) {
      const reply = answerDhcp(udp.payload, { guest: GUEST_ADDRESS, netmask: NETMASK, router: HOST_ADDRESS, dns: DNS_ADDRESS, leaseTime: LEASE_SECONDS });
      if (reply === undefined) return false;
      const payload = buildUdp(HOST_ADDRESS, 0xffffffff, { sourcePort: DHCP_SERVER_PORT, destinationPort: DHCP_CLIENT_PORT, payload: reply });
      this.emit(buildEthernet(BROADCAST_MAC, ROUTER_MAC, ETHERTYPE_IPV4, buildIpv4(HOST_ADDRESS, 0xffffffff, PROTOCOL_UDP, payload, this.ipId++)));
      return true;
    }
    if (ip.source !== GUEST_ADDRESS) return false;
    if (ip.destination === DNS_ADDRESS) {
      if (udp.destinationPort !== DNS_PORT) return false;
      const reply = answerDns(udp.payload, this.options.names);
      if (reply === undefined) return false;
      this.emitIp(DNS_ADDRESS, GUEST_ADDRESS, PROTOCOL_UDP, buildUdp(DNS_ADDRESS, GUEST_ADDRESS, { sourcePort: DNS_PORT, destinationPort: udp.sourcePort, payload: reply }));
      return true;
    }
    const host = this.hostFor(ip.destination);
    if (host === undefined) return false;
    if (!this.udpFlows.has(udp.sourcePort) && this.udpFlows.size >= MAX_UDP_FLOWS) {
      this.options.log?.(`user network: more than ${MAX_UDP_FLOWS} UDP ports in use by the guest; datagram dropped`);
      return false;
    }
    this.udpFlows.delete(udp.sourcePort);
    this.udpFlows.set(udp.sourcePort, this.options.now());
    this.statistics.udpDatagrams++;
    this.options.host.sendUdp(udp.sourcePort, host, udp.destinationPort, udp.payload.slice());
    return true;
  }

  /** A datagram a host socket received for the guest's UDP port `guestPort` from `host:port`. */
  udpReply(guestPort: number, host: string, port: number, payload: Uint8Array): void {
    const source = host === LOOPBACK ? HOST_ADDRESS : parseIpv4Address(host);
    if (source === undefined || !this.udpFlows.has(guestPort) || payload.length > 65507) return;
    this.emitIp(source, GUEST_ADDRESS, PROTOCOL_UDP, buildUdp(source, GUEST_ADDRESS, { sourcePort: port, destinationPort: guestPort, payload }));
  }

  /** Forgets a guest UDP port whose host socket was closed (idle). */
  udpClosed(guestPort: number): void {
    this.udpFlows.delete(guestPort);
  }

  /** Where the host's sockets go for a guest destination: 10.0.2.2 is the host's loopback; others only unrestricted. */
  private hostFor(destination: number): string | undefined {
    if (destination === HOST_ADDRESS) return LOOPBACK;
    if (this.options.restrict || destination === DNS_ADDRESS || (destination & NETMASK) === NETWORK) return undefined;
    // Not multicast, broadcast, loopback or unspecified: those are no host's.
    const first = destination >>> 24;
    if (first === 0 || first === 127 || first >= 224) return undefined;
    return formatIpv4(destination);
  }

  private tcp(ip: Ipv4Packet): boolean {
    const segment = parseTcp(ip);
    if (segment === undefined || ip.source !== GUEST_ADDRESS) return false;
    const key = `${segment.sourcePort}:${ip.destination}:${segment.destinationPort}`;
    const existing = this.connections.get(key);
    if (existing !== undefined) {
      existing.segment(segment);
      return true;
    }
    if ((segment.flags & TCP_RST) !== 0) return true; // a reset for nothing: ignored (RFC 9293 §3.10.7.1)
    const host = this.hostFor(ip.destination);
    const isSyn = (segment.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (!isSyn || host === undefined || this.connections.size >= MAX_TCP_CONNECTIONS) {
      // Not a connection we have or may open: the guest hears a reset, as from a closed port.
      if (isSyn && host !== undefined) this.options.log?.(`user network: more than ${MAX_TCP_CONNECTIONS} TCP connections; refused`);
      this.resetFor(ip, segment);
      return true;
    }
    const connection = TcpConnection.accept(segment, this.connectionOptions(key, ip.destination, segment.destinationPort, segment.sourcePort));
    this.connections.set(key, connection);
    this.statistics.tcpConnections++;
    connection.stream = this.options.host.connectTcp(host, segment.destinationPort, connection);
    return true;
  }

  /** The reset RFC 9293 §3.10.7.1 sends for a segment of no connection. */
  private resetFor(ip: Ipv4Packet, segment: TcpSegment): void {
    const length = segment.payload.length + ((segment.flags & TCP_SYN) !== 0 ? 1 : 0) + ((segment.flags & TCP_FIN) !== 0 ? 1 : 0);
    const reply: TcpSegment = (segment.flags & TCP_ACK) !== 0
      ? { sourcePort: segment.destinationPort, destinationPort: segment.sourcePort, sequence: segment.acknowledgment, acknowledgment: 0, flags: TCP_RST, window: 0, payload: new Uint8Array(0) }
      : { sourcePort: segment.destinationPort, destinationPort: segment.sourcePort, sequence: 0, acknowledgment: (segment.sequence + length) >>> 0, flags: TCP_RST | TCP_ACK, window: 0, payload: new Uint8Array(0) };
    this.emitIp(ip.destination, ip.source, PROTOCOL_TCP, buildTcp(ip.destination, ip.source, reply));
  }

  /**
   * A host connection forwarded to the guest's TCP port `guestPort` (hostfwd): it comes from 10.0.2.2.
   * Returns where the host socket's events go, or undefined when the stack holds too many connections (the
   * caller then closes the socket).
   */
  openForwarded(guestPort: number, stream: HostStream): HostStreamEvents | undefined {
    if (this.connections.size >= MAX_TCP_CONNECTIONS) {
      this.options.log?.(`user network: more than ${MAX_TCP_CONNECTIONS} TCP connections; forwarded connection refused`);
      return undefined;
    }
    let key: string;
    let port: number;
    do {
      port = this.nextForwardPort;
      this.nextForwardPort = port === 0xffff ? FIRST_FORWARD_PORT : port + 1;
      key = `${guestPort}:${HOST_ADDRESS}:${port}`;
    } while (this.connections.has(key));
    const connection = TcpConnection.open(stream, this.connectionOptions(key, HOST_ADDRESS, port, guestPort));
    this.connections.set(key, connection);
    this.statistics.tcpConnections++;
    return connection;
  }

  private connectionOptions(key: string, remote: number, remotePort: number, guestPort: number): TcpConnectionOptions {
    // Initial sequence numbers from a simple generator (RFC 9293 §3.4.1 wants them hard to guess from
    // outside; here the only party is the guest, which sees every one anyway).
    this.sequenceSeed = (Math.imul(this.sequenceSeed, 1103515245) + 12345) >>> 0;
    return {
      now: this.options.now,
      initialSequence: this.sequenceSeed,
      send: (segment) => {
        const full = { ...segment, sourcePort: remotePort, destinationPort: guestPort };
        this.emitIp(remote, GUEST_ADDRESS, PROTOCOL_TCP, buildTcp(remote, GUEST_ADDRESS, full));
      },
      onClosed: () => { this.connections.delete(key); },
    };
  }

  /** Retransmissions and probes: call every few hundred host milliseconds. */
  tick(): void {
    for (const connection of [...this.connections.values()]) connection.tick();
  }

  /** Resets every connection (the machine stopped). */
  shutdown(): void {
    for (const connection of [...this.connections.values()]) connection.abort();
    this.connections.clear();
  }

  private emitIp(source: number, destination: number, protocol: number, payload: Uint8Array): void {
    this.emit(buildEthernet(this.guestMac, ROUTER_MAC, ETHERTYPE_IPV4, buildIpv4(source, destination, protocol, payload, this.ipId++)));
  }

  private emit(frame: Uint8Array): void {
    this.statistics.sent++;
    this.toGuest(frame);
  }
}

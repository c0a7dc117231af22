// Frames a guest would send, and a fake host, for the user network's tests.

import {
  ETHERTYPE_IPV4, PROTOCOL_TCP, PROTOCOL_UDP, buildEthernet, buildIpv4, buildTcp, buildUdp, parseEthernet, parseIpv4, parseTcp, parseUdp,
  type TcpSegment, type UdpDatagram,
} from './packet.js';
import type { HostStream, HostStreamEvents } from './tcp.js';
import { GUEST_ADDRESS, ROUTER_MAC, type UserNetworkHost } from './user-network.js';

export const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

export function guestTcp(destination: number, segment: Partial<TcpSegment> & { destinationPort: number }): Uint8Array {
  const full: TcpSegment = { sourcePort: 40000, sequence: 1000, acknowledgment: 0, flags: 0, window: 65535, payload: new Uint8Array(0), ...segment };
  return buildEthernet(ROUTER_MAC, GUEST_MAC, ETHERTYPE_IPV4, buildIpv4(GUEST_ADDRESS, destination, PROTOCOL_TCP, buildTcp(GUEST_ADDRESS, destination, full)));
}

export function guestUdp(source: number, destination: number, datagram: UdpDatagram, destinationMac = ROUTER_MAC): Uint8Array {
  return buildEthernet(destinationMac, GUEST_MAC, ETHERTYPE_IPV4, buildIpv4(source, destination, PROTOCOL_UDP, buildUdp(source, destination, datagram)));
}

/** A frame the stack sent the guest, as TCP (or undefined). */
export function asTcp(frame: Uint8Array): (TcpSegment & { source: number; destination: number }) | undefined {
  const ip = parseIpv4(parseEthernet(frame)!.payload);
  if (ip === undefined || ip.protocol !== PROTOCOL_TCP) return undefined;
  const segment = parseTcp(ip);
  return segment === undefined ? undefined : { ...segment, source: ip.source, destination: ip.destination };
}

export function asUdp(frame: Uint8Array): (UdpDatagram & { source: number; destination: number }) | undefined {
  const ip = parseIpv4(parseEthernet(frame)!.payload);
  if (ip === undefined || ip.protocol !== PROTOCOL_UDP) return undefined;
  const datagram = parseUdp(ip);
  return datagram === undefined ? undefined : { ...datagram, source: ip.source, destination: ip.destination };
}

/** A host stream that records what the stack did to it. */
export class FakeStream implements HostStream {
  written: Uint8Array[] = [];
  buffered = 0;
  ended = false;
  destroyed = false;
  paused = false;
  constructor(readonly host: string, readonly port: number, readonly events: HostStreamEvents) {}
  write(bytes: Uint8Array): void { this.written.push(bytes); }
  end(): void { this.ended = true; }
  destroy(): void { this.destroyed = true; }
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  text(): string {
    return this.written.map((bytes) => new TextDecoder().decode(bytes)).join('');
  }
}

export class FakeHost implements UserNetworkHost {
  streams: FakeStream[] = [];
  datagrams: { guestPort: number; host: string; port: number; payload: Uint8Array }[] = [];
  connectTcp(host: string, port: number, events: HostStreamEvents): HostStream {
    const stream = new FakeStream(host, port, events);
    this.streams.push(stream);
    return stream;
  }
  sendUdp(guestPort: number, host: string, port: number, payload: Uint8Array): void {
    this.datagrams.push({ guestPort, host, port, payload });
  }
}

// Ethernet, ARP, IPv4, ICMP, UDP and TCP headers: parsed with every length checked, and built (RFC 826, 791, 792, 768, 793).

export const ETHERNET_HEADER = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const PROTOCOL_ICMP = 1;
export const PROTOCOL_TCP = 6;
export const PROTOCOL_UDP = 17;
export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const IPV4_HEADER = 20;
const UDP_HEADER = 8;
const TCP_HEADER = 20;
const ARP_LENGTH = 28;
/** IPv4 flags and fragment offset: more-fragments and the offset mask (RFC 791 §3.1). */
const IP_MORE_FRAGMENTS = 0x2000;
const IP_FRAGMENT_OFFSET = 0x1fff;
const DEFAULT_TTL = 64;

/** TCP flags (RFC 793 §3.1). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
/** TCP options: end, no-operation, maximum segment size (RFC 793 §3.1). */
const TCP_OPTION_END = 0;
const TCP_OPTION_NOP = 1;
const TCP_OPTION_MSS = 2;

/** "a.b.c.d" for an address held as an unsigned 32-bit number. */
export function formatIpv4(address: number): string {
  return [address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff].join('.');
}

/** The address in "a.b.c.d", or undefined. */
export function parseIpv4Address(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((a, p) => a * 256 + Number(p), 0);
}

export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The ones' complement sum of `bytes` added to `sum` (RFC 1071), not yet folded. */
function sum16(bytes: Uint8Array, sum = 0): number {
  const n = bytes.length;
  for (let i = 0; i + 1 < n; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if ((n & 1) === 1) sum += bytes[n - 1] << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum of `bytes` (0 when `bytes` already hold a correct one). */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~fold(sum16(bytes, initial)) & 0xffff;
}

/** The sum of the TCP and UDP pseudo-header (RFC 793 §3.1). */
function pseudoHeader(source: number, destination: number, protocol: number, length: number): number {
  return (source >>> 16) + (source & 0xffff) + (destination >>> 16) + (destination & 0xffff) + protocol + length;
}

export interface EthernetFrame {
  destination: Uint8Array;
  source: Uint8Array;
  type: number;
  payload: Uint8Array;
}

export function parseEthernet(frame: Uint8Array): EthernetFrame | undefined {
  if (frame.length < ETHERNET_HEADER) return undefined;
  return {
    destination: frame.subarray(0, 6),
    source: frame.subarray(6, 12),
    type: (frame[12] << 8) | frame[13],
    payload: frame.subarray(ETHERNET_HEADER),
  };
}

export function buildEthernet(destination: Uint8Array, source: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(ETHERNET_HEADER + payload.length);
  frame.set(destination, 0);
  frame.set(source, 6);
  frame[12] = type >>> 8;
  frame[13] = type & 0xff;
  frame.set(payload, ETHERNET_HEADER);
  return frame;
}

/** An ARP packet for IPv4 over Ethernet (RFC 826). */
export interface Arp {
  operation: number;
  senderMac: Uint8Array;
  senderIp: number;
  targetMac: Uint8Array;
  targetIp: number;
}
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export function parseArp(bytes: Uint8Array): Arp | undefined {
  if (bytes.length < ARP_LENGTH) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  // Ethernet hardware (1), IPv4 protocol, address lengths 6 and 4.
  if (view.getUint16(0) !== 1 || view.getUint16(2) !== ETHERTYPE_IPV4 || bytes[4] !== 6 || bytes[5] !== 4) return undefined;
  return {
    operation: view.getUint16(6),
    senderMac: bytes.subarray(8, 14),
    senderIp: view.getUint32(14),
    targetMac: bytes.subarray(18, 24),
    targetIp: view.getUint32(24),
  };
}

export function buildArp(arp: Arp): Uint8Array {
  const bytes = new Uint8Array(ARP_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, 1);
  view.setUint16(2, ETHERTYPE_IPV4);
  bytes[4] = 6;
  bytes[5] = 4;
  view.setUint16(6, arp.operation);
  bytes.set(arp.senderMac, 8);
  view.setUint32(14, arp.senderIp);
  bytes.set(arp.targetMac, 18);
  view.setUint32(24, arp.targetIp);
  return bytes;
}

export interface Ipv4Packet {
  source: number;
  destination: number;
  protocol: number;
  payload: Uint8Array;
}

/**
 * An IPv4 packet whose header checksum and lengths hold; undefined otherwise. Fragments are refused: the
 * stack does not reassemble (a guest with an MTU of 1500 sends none for TCP, and none for small UDP).
 */
export function parseIpv4(bytes: Uint8Array): Ipv4Packet | undefined {
  if (bytes.length < IPV4_HEADER || bytes[0] >>> 4 !== 4) return undefined;
  const headerLength = (bytes[0] & 0x0f) * 4;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const total = view.getUint16(2);
  if (headerLength < IPV4_HEADER || total < headerLength || total > bytes.length) return undefined;
  if (internetChecksum(bytes.subarray(0, headerLength)) !== 0) return undefined;
  const fragment = view.getUint16(6);
  if ((fragment & IP_MORE_FRAGMENTS) !== 0 || (fragment & IP_FRAGMENT_OFFSET) !== 0) return undefined;
  return { source: view.getUint32(12), destination: view.getUint32(16), protocol: bytes[9], payload: bytes.subarray(headerLength, total) };
}

export function buildIpv4(source: number, destination: number, protocol: number, payload: Uint8Array, id = 0): Uint8Array {
  const bytes = new Uint8Array(IPV4_HEADER + payload.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = 0x45;
  view.setUint16(2, bytes.length);
  view.setUint16(4, id & 0xffff);
  bytes[8] = DEFAULT_TTL;
  bytes[9] = protocol;
  view.setUint32(12, source);
  view.setUint32(16, destination);
  view.setUint16(10, internetChecksum(bytes.subarray(0, IPV4_HEADER)));
  bytes.set(payload, IPV4_HEADER);
  return bytes;
}

export interface UdpDatagram {
  sourcePort: number;
  destinationPort: number;
  payload: Uint8Array;
}

/** A UDP datagram whose length and checksum (when present) hold. */
export function parseUdp(ip: Ipv4Packet): UdpDatagram | undefined {
  const bytes = ip.payload;
  if (bytes.length < UDP_HEADER) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const length = view.getUint16(4);
  if (length < UDP_HEADER || length > bytes.length) return undefined;
  const datagram = bytes.subarray(0, length);
  if (view.getUint16(6) !== 0 && internetChecksum(datagram, pseudoHeader(ip.source, ip.destination, PROTOCOL_UDP, length)) !== 0) return undefined;
  return { sourcePort: view.getUint16(0), destinationPort: view.getUint16(2), payload: datagram.subarray(UDP_HEADER) };
}

/** A UDP datagram with its checksum, as an IPv4 payload. */
export function buildUdp(source: number, destination: number, datagram: UdpDatagram): Uint8Array {
  const bytes = new Uint8Array(UDP_HEADER + datagram.payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, datagram.sourcePort);
  view.setUint16(2, datagram.destinationPort);
  view.setUint16(4, bytes.length);
  bytes.set(datagram.payload, UDP_HEADER);
  // A computed checksum of 0 is sent as all ones (RFC 768).
  view.setUint16(6, internetChecksum(bytes, pseudoHeader(source, destination, PROTOCOL_UDP, bytes.length)) || 0xffff);
  return bytes;
}

export interface TcpSegment {
  sourcePort: number;
  destinationPort: number;
  sequence: number;
  acknowledgment: number;
  flags: number;
  window: number;
  /** The maximum segment size option, when the segment carried one. */
  mss?: number;
  payload: Uint8Array;
}

/** A TCP segment whose data offset and checksum hold. */
export function parseTcp(ip: Ipv4Packet): TcpSegment | undefined {
  const bytes = ip.payload;
  if (bytes.length < TCP_HEADER) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const offset = (bytes[12] >>> 4) * 4;
  if (offset < TCP_HEADER || offset > bytes.length) return undefined;
  if (internetChecksum(bytes, pseudoHeader(ip.source, ip.destination, PROTOCOL_TCP, bytes.length)) !== 0) return undefined;
  const segment: TcpSegment = {
    sourcePort: view.getUint16(0),
    destinationPort: view.getUint16(2),
    sequence: view.getUint32(4),
    acknowledgment: view.getUint32(8),
    flags: bytes[13] & 0x3f,
    window: view.getUint16(14),
    payload: bytes.subarray(offset),
  };
  // Options: only MSS is read; every length is checked against the header's end.
  for (let i = TCP_HEADER; i < offset;) {
    const kind = bytes[i];
    if (kind === TCP_OPTION_END) break;
    if (kind === TCP_OPTION_NOP) { i++; continue; }
    const length = bytes[i + 1];
    if (i + 1 >= offset || length < 2 || i + length > offset) break;
    if (kind === TCP_OPTION_MSS && length === 4) segment.mss = view.getUint16(i + 2);
    i += length;
  }
  return segment;
}

/** A TCP segment with its checksum (and an MSS option when `segment.mss` is set), as an IPv4 payload. */
export function buildTcp(source: number, destination: number, segment: TcpSegment): Uint8Array {
  const options = segment.mss === undefined ? 0 : 4;
  const bytes = new Uint8Array(TCP_HEADER + options + segment.payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, segment.sourcePort);
  view.setUint16(2, segment.destinationPort);
  view.setUint32(4, segment.sequence >>> 0);
  view.setUint32(8, segment.acknowledgment >>> 0);
  bytes[12] = ((TCP_HEADER + options) / 4) << 4;
  bytes[13] = segment.flags;
  view.setUint16(14, segment.window);
  if (segment.mss !== undefined) {
    bytes[TCP_HEADER] = TCP_OPTION_MSS;
    bytes[TCP_HEADER + 1] = 4;
    view.setUint16(TCP_HEADER + 2, segment.mss);
  }
  bytes.set(segment.payload, TCP_HEADER + options);
  view.setUint16(16, internetChecksum(bytes, pseudoHeader(source, destination, PROTOCOL_TCP, bytes.length)));
  return bytes;
}

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

/** An ICMP message whose checksum holds: its type and the bytes after the type, code and checksum. */
export function parseIcmp(ip: Ipv4Packet): { type: number; code: number; rest: Uint8Array } | undefined {
  const bytes = ip.payload;
  if (bytes.length < 8 || internetChecksum(bytes) !== 0) return undefined;
  return { type: bytes[0], code: bytes[1], rest: bytes.subarray(4) };
}

export function buildIcmp(type: number, code: number, rest: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(4 + rest.length);
  bytes[0] = type;
  bytes[1] = code;
  bytes.set(rest, 4);
  new DataView(bytes.buffer).setUint16(2, internetChecksum(bytes));
  return bytes;
}

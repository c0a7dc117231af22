// The user network's DHCP server (RFC 2131, options RFC 2132): one guest, one address, answered from the request alone.

/** The addresses the server hands out (QEMU's slirp defaults). */
export interface DhcpLease {
  guest: number;
  netmask: number;
  router: number;
  dns: number;
  /** Seconds. */
  leaseTime: number;
}

/** BOOTP fields (RFC 2131 §2): op, htype, hlen, xid, flags, yiaddr, siaddr, chaddr; the magic cookie and options. */
const OP_REQUEST = 1;
const OP_REPLY = 2;
const HTYPE_ETHERNET = 1;
const XID = 4;
const FLAGS = 10;
const YIADDR = 16;
const SIADDR = 20;
const CHADDR = 28;
const COOKIE = 236;
const MAGIC_COOKIE = 0x63825363;
const OPTIONS = 240;
/** Options (RFC 2132): pad, end, subnet mask, router, DNS servers, requested address, lease time, message type, server id. */
const OPTION_PAD = 0;
const OPTION_END = 255;
const OPTION_NETMASK = 1;
const OPTION_ROUTER = 3;
const OPTION_DNS = 6;
const OPTION_REQUESTED_ADDRESS = 50;
const OPTION_LEASE_TIME = 51;
const OPTION_MESSAGE_TYPE = 53;
const OPTION_SERVER_ID = 54;
/** DHCP message types (RFC 2132 §9.6). */
const DISCOVER = 1;
const OFFER = 2;
const REQUEST = 3;
const ACK = 5;
const NAK = 6;
/** Replies are padded to BOOTP's minimal message (RFC 1542 §2.1), as some clients expect. */
const MIN_REPLY = 300;

/**
 * The reply to a client's DHCP message, or undefined for anything that is not a well-formed DISCOVER or
 * REQUEST from an Ethernet client (dropped, as a server ignores what it cannot parse). A REQUEST for an
 * address other than the lease's is refused (NAK), so a client that remembers another network starts over.
 */
export function answerDhcp(message: Uint8Array, lease: DhcpLease): Uint8Array | undefined {
  if (message.length < OPTIONS) return undefined;
  const view = new DataView(message.buffer, message.byteOffset, message.length);
  if (message[0] !== OP_REQUEST || message[1] !== HTYPE_ETHERNET || message[2] !== 6 || view.getUint32(COOKIE) !== MAGIC_COOKIE) return undefined;
  let type: number | undefined;
  let requested: number | undefined;
  for (let i = OPTIONS; i < message.length;) {
    const code = message[i];
    if (code === OPTION_END) break;
    if (code === OPTION_PAD) { i++; continue; }
    if (i + 1 >= message.length) return undefined;
    const length = message[i + 1];
    if (i + 2 + length > message.length) return undefined;
    if (code === OPTION_MESSAGE_TYPE && length === 1) type = message[i + 2];
    if (code === OPTION_REQUESTED_ADDRESS && length === 4) requested = view.getUint32(i + 2);
    i += 2 + length;
  }
  if (type !== DISCOVER && type !== REQUEST) return undefined;
  const replyType = type === DISCOVER ? OFFER : requested !== undefined && requested !== lease.guest ? NAK : ACK;

  const reply = new Uint8Array(MIN_REPLY);
  const out = new DataView(reply.buffer);
  reply[0] = OP_REPLY;
  reply[1] = HTYPE_ETHERNET;
  reply[2] = 6;
  reply.set(message.subarray(XID, XID + 4), XID);
  reply.set(message.subarray(FLAGS, FLAGS + 2), FLAGS);
  if (replyType !== NAK) {
    out.setUint32(YIADDR, lease.guest);
    out.setUint32(SIADDR, lease.router);
  }
  reply.set(message.subarray(CHADDR, CHADDR + 16), CHADDR);
  out.setUint32(COOKIE, MAGIC_COOKIE);
  let at = OPTIONS;
  const option = (code: number, bytes: number[]): void => {
    reply[at] = code;
    reply[at + 1] = bytes.length;
    reply.set(bytes, at + 2);
    at += 2 + bytes.length;
  };
  const address = (a: number): number[] => [a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff];
  option(OPTION_MESSAGE_TYPE, [replyType]);
  option(OPTION_SERVER_ID, address(lease.router));
  if (replyType !== NAK) {
    option(OPTION_LEASE_TIME, address(lease.leaseTime));
    option(OPTION_NETMASK, address(lease.netmask));
    option(OPTION_ROUTER, address(lease.router));
    option(OPTION_DNS, address(lease.dns));
  }
  reply[at] = OPTION_END;
  return reply;
}

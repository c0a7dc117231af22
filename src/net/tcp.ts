// One TCP connection between a guest socket and a host socket, the user network's side of it (RFC 793, 9293).
//
// The guest runs a full TCP; this side is a small one. It takes the guest's data only in order (an
// out-of-order or duplicate segment is dropped and acknowledged again: the guest retransmits), offers a
// window of what the host socket has room for, sends host data within the guest's window and MSS, and
// sends it again from the first unacknowledged byte when no acknowledgment came for a while (the virtio
// NIC drops frames when the guest's receive ring is full). No window scaling, no SACK, no timestamps: a
// window of at most 64 KiB, which the guest then also keeps to.

import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpSegment } from './packet.js';

/** The host socket behind a connection, as the stack drives it. */
export interface HostStream {
  write(bytes: Uint8Array): void;
  /** Bytes written and not yet taken by the host's socket. */
  readonly buffered: number;
  /** The guest will send no more (its FIN). */
  end(): void;
  /** The connection is gone (a reset either way): close at once. */
  destroy(): void;
  /** Stop and start reading the host socket: flow control against the guest's window. */
  pause(): void;
  resume(): void;
}

/** What the host socket reports, in order: connected once, then data, then end; or error at any time. */
export interface HostStreamEvents {
  connected(): void;
  data(bytes: Uint8Array): void;
  end(): void;
  error(): void;
  /** The host socket took what was buffered: the window offered to the guest opens again. */
  drained(): void;
}

/** How a connection sends a segment to the guest (addresses and ports are filled in by the stack). */
export type SegmentSender = (segment: Omit<TcpSegment, 'sourcePort' | 'destinationPort'>) => void;

/** The largest window without scaling (RFC 7323 is not negotiated). */
const MAX_WINDOW = 0xffff;
/** Host bytes waiting for the guest beyond which the host socket is paused; it resumes below half. */
export const SEND_BUFFER_LIMIT = 256 * 1024;
/** The MSS this side announces (Ethernet's 1500 less IPv4 and TCP headers), and the guest's when it announces none (RFC 9293 §3.7.1). */
export const OUR_MSS = 1460;
const DEFAULT_MSS = 536;
/** Retransmission: the first timeout, its cap, and how many in a row before the connection is given up (host milliseconds). */
const INITIAL_RTO_MS = 1000;
const MAX_RTO_MS = 8000;
const MAX_RETRIES = 8;

type State = 'connecting' | 'syn-sent' | 'syn-received' | 'established' | 'closed';

/** a < b in sequence space (RFC 9293 §3.4). */
function before(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

function add(a: number, b: number): number {
  return (a + b) >>> 0;
}

/** Pieces shorter than a quarter of this are copied into blocks of this size, so the buffer holds few chunks. */
const BLOCK = 16 * 1024;

/**
 * Bytes from the host, from the first unacknowledged one on. However small the host's pieces, it holds at most
 * one chunk per BLOCK / 4 bytes, so reading a segment and dropping acknowledged bytes stay cheap.
 */
export class SendBuffer {
  private chunks: Uint8Array[] = [];
  /** Chunks before this index are used up; bytes of the first live one before `offset` too. */
  private first = 0;
  private offset = 0;
  /** The block small pieces are being copied into: the last chunk is a view of its filled part. */
  private tail: Uint8Array | undefined;
  private tailUsed = 0;
  length = 0;

  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.length += bytes.length;
    if (bytes.length >= BLOCK / 4) {
      this.tail = undefined;
      this.chunks.push(bytes);
      return;
    }
    if (this.tail === undefined || this.tailUsed + bytes.length > BLOCK) {
      this.tail = new Uint8Array(BLOCK);
      this.tailUsed = 0;
      this.chunks.push(this.tail.subarray(0, 0));
    }
    this.tail.set(bytes, this.tailUsed);
    this.tailUsed += bytes.length;
    this.chunks[this.chunks.length - 1] = this.tail.subarray(0, this.tailUsed);
  }

  /** `length` bytes (or fewer, at the end) from `start`. */
  read(start: number, length: number): Uint8Array {
    const out = new Uint8Array(Math.max(0, Math.min(length, this.length - start)));
    let skip = start + this.offset;
    let filled = 0;
    for (let i = this.first; i < this.chunks.length && filled < out.length; i++) {
      const chunk = this.chunks[i];
      if (skip >= chunk.length) { skip -= chunk.length; continue; }
      const part = chunk.subarray(skip, skip + out.length - filled);
      out.set(part, filled);
      filled += part.length;
      skip = 0;
    }
    return out;
  }

  drop(count: number): void {
    this.length -= count;
    count += this.offset;
    while (this.first < this.chunks.length && count >= this.chunks[this.first].length) {
      count -= this.chunks[this.first++].length;
    }
    this.offset = count;
    if (this.first === this.chunks.length) {
      // All used up, the block being filled too (it is always the last chunk): the next small piece starts a new one.
      this.chunks = [];
      this.first = 0;
      this.tail = undefined;
    } else if (this.first > 64) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
  }
}

export interface TcpConnectionOptions {
  send: SegmentSender;
  /** Host milliseconds (for retransmission). */
  now: () => number;
  /** Our initial sequence number. */
  initialSequence: number;
  /** Called once when the connection is over (closed both ways, reset, or given up). */
  onClosed: () => void;
}

export class TcpConnection implements HostStreamEvents {
  private state: State;
  stream: HostStream | undefined;
  /** Ours: first unacknowledged, next to send. */
  private unacknowledged: number;
  private next: number;
  /** The guest's: next byte expected. */
  private expected = 0;
  private guestWindow = 0;
  private guestMss = DEFAULT_MSS;
  private readonly pending = new SendBuffer();
  private paused = false;
  private hostEnded = false;
  private finSent = false;
  /** The highest sequence number sent so far (RFC 9293's SND.MAX): `next` goes back on a retransmission, this does not. */
  private sentMax: number;
  private finAcknowledged = false;
  private guestFinished = false;
  /** The window last offered, to know when an opening is worth telling. */
  private offered = 0;
  /** Retransmission: when what is in flight was last sent, the current timeout, timeouts in a row. */
  private lastSent = 0;
  private rto = INITIAL_RTO_MS;
  private retries = 0;

  private constructor(private readonly options: TcpConnectionOptions, state: State) {
    this.state = state;
    this.unacknowledged = options.initialSequence >>> 0;
    this.next = this.unacknowledged;
    this.sentMax = this.next;
  }

  /** The guest's SYN: the host socket is being connected; the guest hears back once it is (or a reset). */
  static accept(syn: TcpSegment, options: TcpConnectionOptions): TcpConnection {
    const connection = new TcpConnection(options, 'connecting');
    connection.expected = add(syn.sequence, 1);
    connection.guestWindow = syn.window;
    connection.guestMss = syn.mss ?? DEFAULT_MSS;
    return connection;
  }

  /** A host connection to forward (hostfwd): the SYN goes to the guest now. */
  static open(stream: HostStream, options: TcpConnectionOptions): TcpConnection {
    const connection = new TcpConnection(options, 'syn-sent');
    connection.stream = stream;
    connection.sendSyn();
    return connection;
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Host bytes not yet acknowledged by the guest. */
  get queued(): number {
    return this.pending.length;
  }

  // --- The host socket's events.

  connected(): void {
    if (this.state !== 'connecting') return;
    this.state = 'syn-received';
    this.sendSyn();
  }

  data(bytes: Uint8Array): void {
    if (this.state === 'closed' || this.hostEnded) return;
    this.pending.push(bytes);
    if (!this.paused && this.pending.length >= SEND_BUFFER_LIMIT) {
      this.paused = true;
      this.stream?.pause();
    }
    this.transmit();
  }

  end(): void {
    if (this.state === 'closed') return;
    this.hostEnded = true;
    this.transmit();
  }

  error(): void {
    if (this.state === 'closed') return;
    // Refused while connecting: RST with the ACK of the guest's SYN (RFC 9293 §3.10.7.1); later, a plain reset.
    if (this.state === 'connecting') this.options.send({ sequence: 0, acknowledgment: this.expected, flags: TCP_RST | TCP_ACK, window: 0, payload: new Uint8Array(0) });
    else this.options.send({ sequence: this.next, acknowledgment: this.expected, flags: TCP_RST | TCP_ACK, window: 0, payload: new Uint8Array(0) });
    this.close(false);
  }

  drained(): void {
    if (this.state !== 'established') return;
    // Tell the guest its window opened if what we last offered was too small to send into.
    if (this.offered < this.guestMss && this.window() >= this.guestMss) this.acknowledge();
  }

  /** Ends the connection from the host's side at once (the stack shuts down): a reset to the guest. */
  abort(): void {
    this.error();
  }

  // --- The guest's segments.

  segment(segment: TcpSegment): void {
    if (this.state === 'closed') return;
    const { flags } = segment;
    if ((flags & TCP_RST) !== 0) {
      // A reset counts only inside the window (RFC 9293 §3.10.7.4), or, to our SYN, with its ACK.
      const valid = this.state === 'syn-sent'
        ? (flags & TCP_ACK) !== 0 && segment.acknowledgment === add(this.unacknowledged, 1)
        : !before(segment.sequence, this.expected) && before(segment.sequence, add(this.expected, Math.max(1, this.window())));
      if (valid) this.close(false);
      return;
    }
    if (this.state === 'connecting') return; // the guest's SYN again: it hears back once the host socket connects
    if (this.state === 'syn-sent') {
      if ((flags & TCP_SYN) !== 0 && (flags & TCP_ACK) !== 0 && segment.acknowledgment === add(this.unacknowledged, 1)) {
        this.expected = add(segment.sequence, 1);
        this.unacknowledged = this.next = segment.acknowledgment;
        this.guestWindow = segment.window;
        this.guestMss = segment.mss ?? DEFAULT_MSS;
        this.state = 'established';
        this.progress();
        this.acknowledge();
        this.transmit();
      } else if ((flags & TCP_ACK) !== 0) {
        this.options.send({ sequence: segment.acknowledgment, acknowledgment: 0, flags: TCP_RST, window: 0, payload: new Uint8Array(0) });
      }
      return;
    }
    if ((flags & TCP_SYN) !== 0) {
      // The guest's SYN again (our SYN-ACK was lost) or a SYN inside the connection: answer with where we are.
      if (this.state === 'syn-received') this.sendSyn();
      else this.acknowledge();
      return;
    }
    if ((flags & TCP_ACK) === 0) return;
    // An ACK of what we never sent, or a handshake's last ACK that does not match: the segment goes no further.
    if (!this.acknowledged(segment) || (this.state as State) !== 'established') return;
    this.receive(segment);
    this.transmit();
    if (this.finAcknowledged && this.guestFinished) this.close(true);
  }

  /** Takes the segment's acknowledgment and window; false when the acknowledgment is not acceptable. */
  private acknowledged(segment: TcpSegment): boolean {
    const ack = segment.acknowledgment;
    if (before(this.sentMax, ack)) {
      this.acknowledge(); // acknowledges what we never sent: tell the guest where we are (RFC 9293 §3.10.7.4)
      return false;
    }
    if (this.state === 'syn-received') {
      if (ack !== this.next) return false;
      this.unacknowledged = ack;
      this.state = 'established';
      this.progress();
    }
    this.guestWindow = segment.window;
    // The guest answers: it is alive, so a window it keeps shut is probed for as long as it says so (RFC 9293
    // §3.8.6.1), not given up on; only timeouts with no answer at all count toward a reset.
    this.retries = 0;
    if (before(this.unacknowledged, ack)) {
      const count = (ack - this.unacknowledged) >>> 0;
      // Our FIN takes the sequence number after the last byte of data.
      if (this.hostEnded && count === this.pending.length + 1) this.finAcknowledged = true;
      this.pending.drop(Math.min(count, this.pending.length));
      this.unacknowledged = ack;
      // After a go-back-N retransmission `next` may lag an acknowledgment of what was sent before it.
      if (before(this.next, ack)) {
        this.next = ack;
        this.finSent = this.finAcknowledged;
      }
      this.progress();
      if (this.paused && this.pending.length < SEND_BUFFER_LIMIT / 2) {
        this.paused = false;
        this.stream?.resume();
      }
    }
    return true;
  }

  private receive(segment: TcpSegment): void {
    let payload = segment.payload;
    let sequence = segment.sequence;
    const fin = (segment.flags & TCP_FIN) !== 0;
    if (payload.length === 0 && !fin) return;
    if (this.guestFinished) {
      this.acknowledge(); // retransmitted data or FIN after the guest's FIN: acknowledge again
      return;
    }
    // Keep only the new part of a segment that overlaps what we have; anything out of order is dropped.
    if (before(sequence, this.expected)) {
      const old = (this.expected - sequence) >>> 0;
      if (old > payload.length) {
        this.acknowledge(); // wholly old, its FIN (if any) too: a duplicate
        return;
      }
      payload = payload.subarray(old);
      sequence = this.expected;
    }
    if (sequence !== this.expected) {
      this.acknowledge();
      return;
    }
    const taken = payload.subarray(0, Math.min(payload.length, this.window()));
    if (taken.length > 0) {
      this.stream?.write(taken.slice());
      this.expected = add(this.expected, taken.length);
    }
    // The FIN follows the last byte: it counts once every byte before it was taken.
    if (fin && taken.length === payload.length) {
      this.expected = add(this.expected, 1);
      this.guestFinished = true;
      this.stream?.end();
    }
    this.acknowledge();
  }

  // --- Sending.

  /** The window we offer: what the host socket can still take. */
  private window(): number {
    return Math.max(0, Math.min(MAX_WINDOW, MAX_WINDOW - (this.stream?.buffered ?? 0)));
  }

  private acknowledge(): void {
    this.offered = this.window();
    this.options.send({ sequence: this.next, acknowledgment: this.expected, flags: TCP_ACK, window: this.offered, payload: new Uint8Array(0) });
  }

  private sendSyn(): void {
    const ours = this.state === 'syn-sent' ? TCP_SYN : TCP_SYN | TCP_ACK;
    this.offered = this.window();
    this.options.send({ sequence: this.unacknowledged, acknowledgment: this.state === 'syn-sent' ? 0 : this.expected, flags: ours, window: this.offered, mss: OUR_MSS, payload: new Uint8Array(0) });
    this.next = add(this.unacknowledged, 1);
    this.advanced();
    this.lastSent = this.options.now();
  }

  /** Sends what the guest's window allows of the host's data, then our FIN once all of it is out. */
  private transmit(probe = false): void {
    if (this.state !== 'established') return;
    const mss = Math.min(this.guestMss, OUR_MSS);
    let inFlight = (this.next - this.unacknowledged) >>> 0;
    if (this.finSent) inFlight--;
    while (inFlight < this.pending.length) {
      let room = this.guestWindow - inFlight;
      if (room <= 0) {
        if (!probe || inFlight > 0) break;
        room = 1; // a zero window is probed with one byte (RFC 9293 §3.8.6.1)
      }
      const bytes = this.pending.read(inFlight, Math.min(mss, room));
      if (inFlight === 0 || this.next === this.unacknowledged) this.lastSent = this.options.now();
      this.offered = this.window();
      this.options.send({ sequence: this.next, acknowledgment: this.expected, flags: TCP_ACK | TCP_PSH, window: this.offered, payload: bytes });
      this.next = add(this.next, bytes.length);
      this.advanced();
      inFlight += bytes.length;
      probe = false;
    }
    if (this.hostEnded && !this.finSent && inFlight === this.pending.length) {
      if (this.next === this.unacknowledged) this.lastSent = this.options.now();
      this.offered = this.window();
      this.options.send({ sequence: this.next, acknowledgment: this.expected, flags: TCP_ACK | TCP_FIN, window: this.offered, payload: new Uint8Array(0) });
      this.next = add(this.next, 1);
      this.advanced();
      this.finSent = true;
    }
  }

  private advanced(): void {
    if (before(this.sentMax, this.next)) this.sentMax = this.next;
  }

  private progress(): void {
    this.lastSent = this.options.now();
    this.rto = INITIAL_RTO_MS;
    this.retries = 0;
  }

  /**
   * Called now and then: what has waited a timeout for its acknowledgment is sent again from the first
   * unacknowledged byte (go-back-N), a zero window is probed; after MAX_RETRIES timeouts in a row the
   * connection is reset (the host socket too).
   */
  tick(): void {
    if (this.state === 'closed' || this.state === 'connecting') return;
    const waiting = this.next !== this.unacknowledged || (this.state === 'established' && this.pending.length > 0);
    if (!waiting || this.options.now() - this.lastSent < this.rto) return;
    if (++this.retries > MAX_RETRIES) {
      this.error();
      return;
    }
    this.rto = Math.min(this.rto * 2, MAX_RTO_MS);
    this.lastSent = this.options.now();
    if (this.state === 'syn-sent' || this.state === 'syn-received') {
      this.sendSyn();
      return;
    }
    this.next = this.unacknowledged;
    this.finSent = false;
    this.transmit(true);
  }

  private close(graceful: boolean): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (!graceful) this.stream?.destroy();
    this.options.onClosed();
  }
}

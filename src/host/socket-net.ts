// The socket netdev (docs/networking.md): one Ethernet segment shared by two processes over TCP, each frame
// preceded by its length as 4 bytes big-endian, as QEMU's `-netdev socket` frames a stream.

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { MAX_FRAME, type FrameInfo, type NetBackend } from '../devices/virtio/net.js';

const LENGTH_BYTES = 4;
/** The least an Ethernet frame can be: its header. */
const MIN_FRAME = 14;
/** Bytes waiting to go to a slow peer beyond which frames are dropped, as a full link drops them. */
const MAX_QUEUED = 1024 * 1024;
const CONNECT_TIMEOUT_MS = 10_000;

/** A peer we cannot reach or a port we cannot listen on, in one line. */
export class SocketNetError extends Error {}

/**
 * Splits a byte stream into frames by their 4-byte big-endian length. A length outside [14, MAX_FRAME] is
 * the peer's mistake: `frames` then returns undefined (the length in `bad`) and the stream must be dropped:
 * there is no way to find the next frame. Holds at most one frame's bytes, and copies each byte once
 * however the stream is cut (a peer sending a byte at a time costs linear time, not quadratic).
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  /** Chunks before this one are used up (an index, not shift(): a stream cut into single bytes stays linear). */
  private first = 0;
  private held = 0;
  /** The length of the frame being read, once its 4 bytes are in. */
  private length: number | undefined;
  bad = 0;

  /** The whole frames `chunk` completes, or undefined for a bad length. */
  frames(chunk: Uint8Array): Uint8Array[] | undefined {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.held += chunk.length;
    }
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.length === undefined) {
        if (this.held < LENGTH_BYTES) break;
        const length = new DataView(this.take(LENGTH_BYTES).buffer).getUint32(0);
        if (length < MIN_FRAME || length > MAX_FRAME) {
          this.bad = length;
          return undefined;
        }
        this.length = length;
      }
      if (this.held < this.length) break;
      out.push(this.take(this.length));
      this.length = undefined;
    }
    return out;
  }

  /** The next `count` bytes held (count ≤ held), in a new array. */
  private take(count: number): Uint8Array {
    const out = new Uint8Array(count);
    let filled = 0;
    while (filled < count) {
      const chunk = this.chunks[this.first];
      const part = Math.min(chunk.length, count - filled);
      out.set(chunk.subarray(0, part), filled);
      filled += part;
      if (part === chunk.length) this.first++;
      else this.chunks[this.first] = chunk.subarray(part);
    }
    if (this.first === this.chunks.length) {
      this.chunks = [];
      this.first = 0;
    } else if (this.first > 1024) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
    this.held -= count;
    return out;
  }
}

export function frameForStream(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(LENGTH_BYTES + frame.length);
  new DataView(out.buffer).setUint32(0, frame.length);
  out.set(frame, LENGTH_BYTES);
  return out;
}

export class SocketNet implements NetBackend {
  private receive: (frame: Uint8Array, info?: FrameInfo) => void = () => {};
  private peer: Socket | undefined;
  private server: Server | undefined;
  /** Frames dropped: no peer, the peer too slow. */
  dropped = 0;

  private constructor(private readonly log: (message: string) => void) {}

  /** Listens on host:port; the first peer to connect shares the segment (a later one waits until it leaves). */
  static async listen(host: string, port: number, log: (message: string) => void): Promise<SocketNet> {
    const net = new SocketNet(log);
    const server = createServer((socket) => {
      if (net.peer !== undefined) {
        log(`net socket: a second peer from ${socket.remoteAddress}:${socket.remotePort} refused; the segment has one`);
        socket.destroy();
        return;
      }
      net.join(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new SocketNetError(`--net socket cannot listen on ${host}:${port}: ${error.code ?? error.message}`)));
      server.listen(port, host, () => resolve());
    });
    server.on('error', (error) => log(`net socket: ${error.message}`));
    net.server = server;
    return net;
  }

  /** Connects to a listening peer; fails with one line if none answers. */
  static async connect(host: string, port: number, log: (message: string) => void): Promise<SocketNet> {
    const net = new SocketNet(log);
    const socket = createConnection({ host, port });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { socket.destroy(); reject(new SocketNetError(`--net socket cannot connect to ${host}:${port}: no answer`)); }, CONNECT_TIMEOUT_MS);
      socket.once('connect', () => { clearTimeout(timer); resolve(); });
      socket.once('error', (error: NodeJS.ErrnoException) => { clearTimeout(timer); reject(new SocketNetError(`--net socket cannot connect to ${host}:${port}: ${error.code ?? error.message}`)); });
    });
    net.join(socket);
    return net;
  }

  private join(socket: Socket): void {
    this.peer = socket;
    socket.setNoDelay(true);
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      const frames = reader.frames(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      if (frames === undefined) {
        this.log(`net socket: the peer sent a frame length of ${reader.bad} bytes (a frame has ${MIN_FRAME} to ${MAX_FRAME}); link dropped`);
        socket.destroy();
        return;
      }
      for (const frame of frames) this.receive(frame);
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => {
      if (this.peer === socket) this.peer = undefined;
    });
  }

  attach(receive: (frame: Uint8Array, info?: FrameInfo) => void): void {
    this.receive = receive;
  }

  /** A frame from our guest: to the peer, or dropped while there is none (a cable not plugged in). */
  send(frame: Uint8Array): void {
    const peer = this.peer;
    if (peer === undefined || peer.destroyed || peer.writableLength > MAX_QUEUED) {
      this.dropped++;
      return;
    }
    peer.write(frameForStream(frame));
  }

  /** Whether a peer is connected now. */
  get connected(): boolean {
    return this.peer !== undefined && !this.peer.destroyed;
  }

  async close(): Promise<void> {
    this.peer?.destroy();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

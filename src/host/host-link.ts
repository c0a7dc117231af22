// The connections between hosts of one VM (docs/giantvm.md, "The wire" and "Faults"): TCP with the wire's
// frames, the token's challenge and answer, heartbeats, and one line when a peer is lost or misbehaves.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { encodeFrame, FrameReader, MAC_BYTES, NONCE_BYTES, WIRE_VERSION, type WireMessage } from '../dsm/wire.js';

/** A connection sends a heartbeat when it sent nothing for this long. */
export const HEARTBEAT_MS = 250;
/** A peer heard from for this long is lost (the VM stops within 2 s of a host dying). */
export const LOST_AFTER_MS = 1000;
/** How long a handshake may take. */
const HANDSHAKE_MS = 5000;
export const TOKEN_ENV = 'MIRRORBALL_HOST_TOKEN';
const HOST_LABEL = 'mirrorball-host-v1';
const RUN_LABEL = 'mirrorball-run-v1';

/** A connection that could not be made or a peer that refused: one line for the user. */
export class HostLinkError extends Error {}

export interface HostAddress {
  host: string;
  port: number;
}

/** `ADDR:PORT` (or `PORT`, on 127.0.0.1); a bad one is a HostLinkError naming it. */
export function parseHostAddress(text: string): HostAddress {
  const m = /^(?:(\[[0-9a-fA-F:]+\]|[^:\s]+):)?(\d{1,5})$/.exec(text.trim());
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port > 65535) throw new HostLinkError(`'${text}' is not ADDR:PORT`);
  const host = m[1] === undefined ? '127.0.0.1' : m[1].replace(/^\[|\]$/g, '');
  return { host, port };
}

export function formatAddress(a: HostAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The shared token: the first line of `file`, else the environment's; a missing or empty one is an error. */
export function readToken(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  let token: string | undefined;
  if (file !== undefined) {
    try {
      token = readFileSync(file, 'utf8').split('\n')[0]!.trim();
    } catch (error) {
      throw new HostLinkError(`cannot read the token file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
    if (token === '') throw new HostLinkError(`the token file ${file} is empty`);
    return token;
  }
  token = env[TOKEN_ENV]?.trim();
  if (token === undefined || token === '') throw new HostLinkError(`a host needs a shared token: --token-file FILE or ${TOKEN_ENV}`);
  return token;
}

/** A fresh random token, for the hosts `run --hosts` starts. */
export function freshToken(): string {
  return randomBytes(32).toString('hex');
}

function mac(token: string, label: string, nonce: Uint8Array): Uint8Array {
  return createHmac('sha256', token).update(label).update(nonce).digest();
}

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === MAC_BYTES && b.length === MAC_BYTES && timingSafeEqual(a, b);
}

/**
 * One connection to another host, after the handshake. Messages go out with `send`; incoming ones go to
 * `onMessage`. The connection ends once, with one line to `onLost`: closed, an error, a bad frame,
 * silence for LOST_AFTER_MS, or `close()` (no line then).
 */
export class PeerLink {
  onMessage: (message: WireMessage) => void = () => {};
  onLost: (line: string) => void = () => {};
  private ended = false;
  private lastHeard = Date.now();
  private lastSent = Date.now();
  private lastBeat = Date.now();
  private readonly timer: NodeJS.Timeout;
  sentBytes = 0;

  constructor(readonly name: string, private readonly socket: Socket, private readonly reader: FrameReader, early: WireMessage[]) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    socket.on('close', () => this.lose('connection closed'));
    socket.on('error', (error: NodeJS.ErrnoException) => this.lose(error.code ?? error.message));
    this.timer = setInterval(() => this.beat(), HEARTBEAT_MS / 2);
    this.timer.unref();
    // Messages that came in the same chunk as the handshake's last one.
    queueMicrotask(() => { for (const m of early) this.deliver(m); });
  }

  send(message: WireMessage): void {
    if (this.ended) return;
    const frame = encodeFrame(message);
    this.sentBytes += frame.length;
    this.lastSent = Date.now();
    this.socket.write(frame);
  }

  /** Ends the connection without a line (the run is over). */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    this.socket.end();
    this.socket.destroySoon?.();
  }

  get open(): boolean {
    return !this.ended;
  }

  private data(chunk: Buffer): void {
    this.lastHeard = Date.now();
    const messages = this.reader.push(chunk);
    for (const m of messages) this.deliver(m);
    if (this.reader.error !== undefined) this.lose(`bad frame: ${this.reader.error}`);
  }

  private deliver(message: WireMessage): void {
    if (this.ended || message.kind === 'heartbeat') return;
    try {
      this.onMessage(message);
    } catch (error) {
      // A message this host cannot act on ends the connection, not the host.
      this.lose(error instanceof Error ? error.message : String(error));
    }
  }

  private beat(): void {
    if (this.ended) return;
    const now = Date.now();
    // A timer that fires late means this process itself was stalled (a long synchronous stretch, or no CPU
    // given): what the peer sent meanwhile waits unread in the socket, read after the timers. The silence is
    // judged at the next beat, once it has been read.
    const late = now - this.lastBeat > 2 * HEARTBEAT_MS;
    this.lastBeat = now;
    if (!late && now - this.lastHeard > LOST_AFTER_MS) { this.lose(`silent for ${now - this.lastHeard} ms`); return; }
    if (now - this.lastSent >= HEARTBEAT_MS) this.send({ kind: 'heartbeat', sent: Math.floor(performance.now() * 1000) });
  }

  private lose(why: string): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    this.socket.destroy();
    this.onLost(`${this.name} lost: ${why}`);
  }
}

/** Reads frames from a socket during the handshake: the next message, or a line saying what went wrong. */
function nextMessage(socket: Socket, reader: FrameReader, queue: WireMessage[], who: string): Promise<WireMessage> {
  if (queue.length > 0) return Promise.resolve(queue.shift()!);
  return new Promise((resolve, reject) => {
    const done = (): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      clearTimeout(timer);
    };
    const onData = (chunk: Buffer): void => {
      queue.push(...reader.push(chunk));
      if (queue.length > 0) { done(); resolve(queue.shift()!); return; }
      if (reader.error !== undefined) { done(); reject(new HostLinkError(`${who} ${reader.error}`)); }
    };
    const onClose = (): void => { done(); reject(new HostLinkError(`${who} closed the connection during the handshake`)); };
    const onError = (error: NodeJS.ErrnoException): void => { done(); reject(new HostLinkError(`${who}: ${error.code ?? error.message}`)); };
    const timer = setTimeout(() => { done(); reject(new HostLinkError(`${who} did not answer the handshake within ${HANDSHAKE_MS / 1000} s`)); }, HANDSHAKE_MS);
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}

/** Sends a refusal (laid out the same in every version) and closes. */
function refuse(socket: Socket, reason: string): void {
  socket.end(encodeFrame({ kind: 'refuse', reason }));
}

/** Connects to a listening host and proves the token; a refusal or another version is a HostLinkError line. */
export async function connectHost(address: HostAddress, token: string): Promise<PeerLink> {
  const who = `host ${formatAddress(address)}`;
  const socket = createConnection({ host: address.host, port: address.port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (error: NodeJS.ErrnoException) => reject(new HostLinkError(`cannot reach ${who}: ${error.code ?? error.message}`)));
  });
  const reader = new FrameReader();
  const queue: WireMessage[] = [];
  try {
    const challenge = await nextMessage(socket, reader, queue, who);
    if (challenge.kind === 'refuse') throw new HostLinkError(`${who} refused: ${challenge.reason}`);
    if (challenge.kind !== 'challenge') throw new HostLinkError(`${who} began with '${challenge.kind}', not a challenge`);
    const nonce = randomBytes(NONCE_BYTES);
    socket.write(encodeFrame({ kind: 'hello', mac: mac(token, HOST_LABEL, challenge.nonce), nonce }));
    const answer = await nextMessage(socket, reader, queue, who);
    if (answer.kind === 'refuse') throw new HostLinkError(`${who} refused: ${answer.reason}`);
    if (answer.kind !== 'welcome') throw new HostLinkError(`${who} answered '${answer.kind}', not welcome`);
    if (!sameMac(answer.mac, mac(token, RUN_LABEL, nonce))) throw new HostLinkError(`${who} does not hold the token`);
  } catch (error) {
    socket.destroy();
    if (error instanceof HostLinkError && reader.peerVersion !== undefined) throw new HostLinkError(`${who} speaks wire version ${reader.peerVersion}, this host speaks ${WIRE_VERSION}`);
    throw error;
  }
  return new PeerLink(who, socket, reader, queue);
}

/**
 * The listening side of the handshake on an accepted socket: the peer if it proved the token, else
 * undefined after one line to `log` (the listener goes on listening).
 */
export async function acceptPeer(socket: Socket, token: string, log: (line: string) => void): Promise<PeerLink | undefined> {
  const who = `peer ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  const reader = new FrameReader();
  const queue: WireMessage[] = [];
  const nonce = randomBytes(NONCE_BYTES);
  socket.write(encodeFrame({ kind: 'challenge', nonce }));
  try {
    const hello = await nextMessage(socket, reader, queue, who);
    if (hello.kind !== 'hello') throw new HostLinkError(`${who} answered '${hello.kind}', not hello`);
    if (!sameMac(hello.mac, mac(token, HOST_LABEL, nonce))) {
      refuse(socket, 'bad token');
      throw new HostLinkError(`${who} refused: bad token`);
    }
    socket.write(encodeFrame({ kind: 'welcome', mac: mac(token, RUN_LABEL, hello.nonce) }));
  } catch (error) {
    if (reader.peerVersion !== undefined) {
      refuse(socket, `this host speaks wire version ${WIRE_VERSION}, not ${reader.peerVersion}`);
      log(`${who} refused: it speaks wire version ${reader.peerVersion}, this host speaks ${WIRE_VERSION}`);
    } else {
      socket.destroy();
      log(error instanceof Error ? error.message : String(error));
    }
    return undefined;
  }
  return new PeerLink(who, socket, reader, queue);
}

/** Listens at `address`; each peer that passes the handshake goes to `onPeer`. Resolves once bound. */
export function listenHosts(address: HostAddress, token: string, onPeer: (peer: PeerLink) => void, log: (line: string) => void): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    void acceptPeer(socket, token, log).then((peer) => { if (peer !== undefined) onPeer(peer); });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new HostLinkError(`cannot listen on ${formatAddress(address)}: ${error.code ?? error.message}`)));
    server.listen(address.port, address.host, () => resolve(server));
  });
}

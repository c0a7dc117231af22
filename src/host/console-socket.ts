// A VM's console on a Unix socket (`mirrorball up`): raw bytes both ways, any number of clients attached.

import { lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { InputGate } from './input-gate.js';
import { listenPrivately } from './private-files.js';

/** A socket path we cannot listen on, in one line. */
export class SocketPathError extends Error {}

/** sun_path holds 108 bytes with the terminating NUL; Node silently truncates a longer path (Linux unix(7)). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Output kept for a client that attaches later, so it sees the last lines instead of a blank screen. */
const BACKLOG_BYTES = 2 * 1024;

/**
 * Output waiting in the host for one client at most. A client that stops reading is disconnected here,
 * instead of the host buffering the guest's output for it without end; attaching again gives it the backlog.
 */
export const MAX_CLIENT_PENDING = 4 * 1024 * 1024;

/** Refuses a path too long for a Unix socket: one line naming it. */
export function checkSocketPath(path: string, what: string): void {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new SocketPathError(`${what} '${path}' is ${bytes} bytes long; Unix sockets allow ${MAX_SOCKET_PATH_BYTES}: choose a shorter directory`);
  }
}

/** Whether something answers on the socket at `path`. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Makes `path` free for a new socket: a stale socket left by a process that died is removed; a socket
 * something still answers on, or a file that is not a socket, is a SocketPathError (the file is left alone).
 */
export async function clearStaleSocket(path: string, what: string): Promise<void> {
  checkSocketPath(path, what);
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new SocketPathError(`${what} '${path}': a file that is not a socket is in the way`);
  if (await socketAnswers(path)) throw new SocketPathError(`${what} '${path}' is in use by another process`);
  unlinkSync(path);
}

export interface ConsoleSocketOptions {
  /** Bytes a client typed, for the VM's UART. */
  onInput(bytes: Uint8Array): void;
  /**
   * Bytes typed and not yet taken by the guest (the device's queue). With it, the clients stop being read
   * while the queue is long (InputGate), so nothing typed is dropped however fast they send.
   */
  queued?(): number;
}

/**
 * One VM's console socket. Everything the guest prints goes to every attached client (a client attaching
 * later first gets the last few KiB, from a line start); what any client sends is typed into the VM.
 * No framing, no escapes: the escape keys (Ctrl-A d) are the client's business.
 */
export class ConsoleSocket {
  private readonly clients = new Set<Socket>();
  /** Recent output, oldest first; compacted to BACKLOG_BYTES when it grows past twice that. */
  private recent: Buffer[] = [];
  private recentBytes = 0;
  /** Whether older output was dropped (the backlog then starts at the first whole line). */
  private cut = false;
  private closed = false;
  private readonly gate: InputGate | undefined;

  private constructor(private readonly server: Server, readonly path: string, private readonly options: ConsoleSocketOptions) {
    const queued = options.queued;
    this.gate = queued === undefined ? undefined : new InputGate(
      queued,
      () => { for (const client of this.clients) client.pause(); },
      () => { for (const client of this.clients) client.resume(); },
    );
  }

  static async listen(path: string, options: ConsoleSocketOptions): Promise<ConsoleSocket> {
    await clearStaleSocket(path, 'console socket');
    const server = createServer();
    const console = new ConsoleSocket(server, path, options);
    server.on('connection', (socket) => console.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new SocketPathError(`console socket '${path}': ${error.code ?? error.message}`)));
      listenPrivately(server, path, () => resolve()); // 0600: only its user may attach
    });
    server.on('error', () => {}); // after listening, a failed accept must not take the monitor down
    return console;
  }

  /** Clients attached now. */
  get attached(): number {
    return this.clients.size;
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.clients.add(socket);
    const backlog = this.backlog();
    if (backlog.length > 0) socket.write(backlog);
    if (this.gate?.paused === true) socket.pause();
    socket.on('data', (chunk: Buffer) => {
      if (this.closed) return;
      this.options.onInput(new Uint8Array(chunk));
      this.gate?.afterInput();
    });
    const drop = (): void => { this.clients.delete(socket); };
    socket.on('close', drop);
    socket.on('error', drop);
  }

  /** The guest printed `bytes` (best in chunks: each is one write to each client). */
  write(bytes: Uint8Array): void {
    if (this.closed || bytes.length === 0) return;
    const chunk = Buffer.from(bytes);
    for (const client of this.clients) {
      if (client.destroyed) continue;
      if (client.writableLength > MAX_CLIENT_PENDING) {
        this.clients.delete(client);
        client.destroy();
        continue;
      }
      client.write(chunk);
    }
    this.recent.push(chunk);
    this.recentBytes += chunk.length;
    if (this.recentBytes > 2 * BACKLOG_BYTES) {
      const kept = Buffer.concat(this.recent).subarray(this.recentBytes - BACKLOG_BYTES);
      this.recent = [Buffer.from(kept)];
      this.recentBytes = kept.length;
      this.cut = true;
    }
  }

  /** The last BACKLOG_BYTES of output at most, starting at a line when it had to be cut. */
  private backlog(): Buffer {
    let kept = Buffer.concat(this.recent);
    if (this.cut || kept.length > BACKLOG_BYTES) {
      kept = kept.subarray(Math.max(0, kept.length - BACKLOG_BYTES));
      const newline = kept.indexOf(0x0a);
      if (newline >= 0) kept = kept.subarray(newline + 1);
    }
    return kept;
  }

  /** Ends every client's connection (after what was written to it) and removes the socket file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.gate?.stop();
    for (const client of this.clients) client.end(() => client.destroy());
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

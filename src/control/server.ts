// The control socket: a Unix-domain socket on which every client speaks the QMP-shaped protocol of qmp.ts.

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { lstatSync, unlinkSync } from 'node:fs';
import { listenPrivately } from '../host/private-files.js';
import { QmpConnection, type QmpCommands, type QmpGreeting } from './qmp.js';

export class ControlSocketError extends Error {}

/** Whether something answers on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Listens on `path`. A stale socket left by a process that died is replaced; a socket something still
 * answers on, or a file that is not a socket, is an error (one line, ControlSocketError).
 */
export class ControlServer {
  private readonly clients = new Set<QmpConnection>();
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server, readonly path: string) {}

  static async listen(path: string, commands: QmpCommands, greeting: QmpGreeting): Promise<ControlServer> {
    let stat;
    try {
      stat = lstatSync(path);
    } catch {
      stat = undefined;
    }
    if (stat !== undefined) {
      if (!stat.isSocket()) throw new ControlSocketError(`control socket '${path}': a file that is not a socket is in the way`);
      if (await answers(path)) throw new ControlSocketError(`control socket '${path}' is in use by another process`);
      unlinkSync(path);
    }
    const server = createServer();
    const control = new ControlServer(server, path);
    server.on('connection', (socket) => control.accept(socket, commands, greeting));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new ControlSocketError(`control socket '${path}': ${error.code ?? error.message}`)));
      listenPrivately(server, path, () => resolve()); // 0600: only its user may connect
    });
    server.on('error', () => {}); // after listening, a failed accept must not take the machine down
    return control;
  }

  private accept(socket: Socket, commands: QmpCommands, greeting: QmpGreeting): void {
    socket.setEncoding('utf8');
    this.sockets.add(socket);
    const write = (message: object): void => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
    };
    const connection = new QmpConnection(commands, write, () => socket.end(), greeting);
    this.clients.add(connection);
    socket.on('data', (text: string) => {
      try {
        connection.receive(text);
      } catch (error) {
        // A command's own bug: tell this client, keep the machine and the other clients.
        write({ error: { class: 'GenericError', desc: `internal error: ${(error as Error).message}` } });
      }
    });
    const drop = (): void => { this.clients.delete(connection); this.sockets.delete(socket); connection.dispose(); };
    socket.on('close', drop);
    socket.on('error', drop);
  }

  /** Sends an event to every negotiated client. */
  event(name: string, data?: object): void {
    for (const client of this.clients) client.event(name, data);
  }

  /** Stops listening, lets written replies go out, and removes the socket file. */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.end(() => socket.destroy());
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

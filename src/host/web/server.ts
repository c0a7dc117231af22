// The dashboard's web server (docs/dashboard.md): the page's static files over HTTP, and on the same port a
// WebSocket per client carrying the control protocol, one JSON object per message. It knows nothing of the
// protocol: each client gets a session from the caller (cli/up.ts: a QmpConnection that wants the token).
// What it checks itself is where a request comes from: the Host header must name this server (DNS
// rebinding: a page of evil.example whose name was made to resolve to 127.0.0.1 sends Host: evil.example),
// and a WebSocket's Origin must be this server's own page (any other site's script is refused).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';

/** One static file of the page. */
export interface WebFile {
  type: string;
  body: Uint8Array;
}

/** A client's side of the protocol, as the caller implements it. */
export interface WebSession {
  /** Text the client sent (one or more whole JSON objects). */
  receive(text: string): void;
  /** The client went away. */
  closed(): void;
}

export interface WebServerOptions {
  /** The address to listen on (127.0.0.1 unless the user gave one). */
  host: string;
  /** The port; 0 picks a free one. */
  port: number;
  /** The page's files by path ('/' is the page itself). */
  files: ReadonlyMap<string, WebFile>;
  /** A new client: `send` writes one object to it, `close` ends it. */
  session(send: (message: object) => void, close: () => void): WebSession;
}

export class WebServerError extends Error {}

/** The largest message a client may send: the control protocol's longest line and some. */
const MAX_MESSAGE_BYTES = 64 * 1024 + 1024;
/** A client that lets this much output pile up unread is dropped, so that a stalled tab cannot fill the host's memory. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/** Whether `name` (no port, brackets removed) is this machine's loopback. */
function loopback(name: string): boolean {
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** A Host header split into name and port (`[::1]:80` → `::1`, 80); undefined when it is not one. */
export function parseHost(header: string | undefined): { name: string; port: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(header);
  if (m === null) return undefined;
  return { name: m[1]!.replace(/^\[|\]$/g, '').toLowerCase(), port: Number(m[2]) };
}

/**
 * Whether a request's Host names the server listening on `address`:`port`. A server on a loopback address
 * answers to that address and to `localhost`; on one address, to it alone; on every address (0.0.0.0, ::),
 * to any IP address and `localhost`, never to a name that DNS could point here.
 */
export function hostAllowed(header: string | undefined, address: string, port: number): boolean {
  const host = parseHost(header);
  if (host === undefined || host.port !== port) return false;
  if (address === '0.0.0.0' || address === '::') return isIP(host.name) !== 0 || host.name === 'localhost';
  if (loopback(address) && (host.name === 'localhost' || host.name === address)) return true;
  return host.name === address.toLowerCase();
}

/** Whether a WebSocket's Origin is the page this server serves under the Host it was asked by. */
export function originAllowed(origin: string | undefined, host: string | undefined): boolean {
  return origin !== undefined && host !== undefined && origin.toLowerCase() === `http://${host.toLowerCase()}`;
}

export class WebServer {
  private readonly sockets = new Set<WebSocket>();

  private constructor(private readonly server: Server, private readonly wss: WebSocketServer, readonly address: string, readonly port: number) {}

  /** The page's address (without the token, which the caller adds as a fragment). */
  get url(): string {
    const name = this.address === '0.0.0.0' || this.address === '::' ? '127.0.0.1' : this.address;
    return `http://${name.includes(':') ? `[${name}]` : name}:${this.port}/`;
  }

  /** How many clients are connected. */
  get clients(): number {
    return this.sockets.size;
  }

  static async listen(options: WebServerOptions): Promise<WebServer> {
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new WebServerError(`--web ${options.host}:${options.port}: ${error.code ?? error.message}`)));
      server.listen(options.port, options.host, () => resolve());
    });
    server.on('error', () => {}); // after listening, a failed accept must not take the machine down
    const bound = server.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : options.port;
    const web = new WebServer(server, wss, options.host, port);
    server.on('request', (request, response) => web.serve(request, response, options.files));
    server.on('upgrade', (request, socket, head) => web.upgrade(request, socket, head, options));
    return web;
  }

  private serve(request: IncomingMessage, response: ServerResponse, files: ReadonlyMap<string, WebFile>): void {
    const refuse = (status: number, text: string): void => {
      response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      response.end(`${text}\n`);
    };
    if (!hostAllowed(request.headers.host, this.address, this.port)) return refuse(421, 'this server does not answer to that Host');
    if (request.method !== 'GET' && request.method !== 'HEAD') return refuse(405, 'only GET');
    const path = (request.url ?? '/').split(/[?#]/)[0]!;
    const file = files.get(path);
    if (file === undefined) return refuse(404, 'no such file');
    response.writeHead(200, {
      'Content-Type': file.type,
      'Content-Length': file.body.length,
      'Cache-Control': 'no-store',
      // Only its own scripts, styles and connections; never framed by another page; the URL (and its token) never sent on.
      'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
      'X-Content-Type-Options': 'nosniff',
    });
    response.end(request.method === 'HEAD' ? undefined : file.body);
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, options: WebServerOptions): void {
    const refuse = (status: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    socket.on('error', () => {});
    if (!hostAllowed(request.headers.host, this.address, this.port)) return refuse('421 Misdirected Request');
    if (!originAllowed(request.headers.origin, request.headers.host)) return refuse('403 Forbidden');
    if ((request.url ?? '/').split('?')[0] !== '/control') return refuse('404 Not Found');
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, options));
  }

  private accept(ws: WebSocket, options: WebServerOptions): void {
    this.sockets.add(ws);
    const send = (message: object): void => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        ws.close(1008, 'too slow: output not read');
        return;
      }
      ws.send(JSON.stringify(message));
    };
    const session = options.session(send, () => ws.close(1000));
    ws.on('message', (data, binary) => {
      if (binary) {
        send({ error: { class: 'GenericError', desc: 'send text messages, one JSON object each' } });
        return;
      }
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      try {
        session.receive(`${text}\n`);
      } catch (error) {
        // A command's own bug: tell this client, keep the machine and the other clients.
        send({ error: { class: 'GenericError', desc: `internal error: ${(error as Error).message}` } });
      }
    });
    let gone = false;
    const drop = (): void => {
      if (gone) return;
      gone = true;
      this.sockets.delete(ws);
      session.closed();
    };
    ws.on('close', drop);
    ws.on('error', drop);
  }

  /** Closes every client and stops listening. */
  async close(): Promise<void> {
    for (const ws of this.sockets) ws.close(1001, 'the monitor is going away');
    await new Promise<void>((resolve) => setTimeout(resolve, 50));
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

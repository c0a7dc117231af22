// The user network's host side (docs/networking.md): Node sockets under src/net's stack, and the hostfwd listeners.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import type { HostStream, HostStreamEvents } from '../net/tcp.js';
import { HOST_ADDRESS, UserNetwork, type UserNetworkHost } from '../net/user-network.js';
import { parseIpv4Address } from '../net/packet.js';

/** hostfwd=tcp:ADDRESS:HOSTPORT-:GUESTPORT: connections to ADDRESS:HOSTPORT on the host go to the guest's GUESTPORT. */
export interface HostForward {
  address: string;
  hostPort: number;
  guestPort: number;
}

export interface UserNetOptions {
  guestMac: Uint8Array;
  forwards: readonly HostForward[];
  restrict: boolean;
  log: (message: string) => void;
}

/** A forward we cannot set up (the port is taken, say), in one line. */
export class UserNetError extends Error {}

/** How often retransmissions are looked for (host milliseconds). */
const TICK_MS = 200;
/** A UDP flow's host socket closes after this long without a datagram either way. */
const UDP_IDLE_MS = 60_000;

/** The names the DNS server answers: the host's own name (and its first label) as 10.0.2.2; localhost as itself. */
export function hostNames(): Map<string, number> {
  const names = new Map<string, number>([['localhost', parseIpv4Address('127.0.0.1')!]]);
  const name = hostname().toLowerCase().replace(/\.$/, '');
  if (name !== '' && name !== 'localhost') {
    names.set(name, HOST_ADDRESS);
    names.set(name.split('.')[0], HOST_ADDRESS);
  }
  return names;
}

/** A Node socket as the stack's HostStream, its events going to `events` once set. */
function streamOf(socket: Socket): { stream: HostStream; wire: (events: HostStreamEvents) => void } {
  const stream: HostStream = {
    write: (bytes) => { if (!socket.destroyed) socket.write(bytes); },
    get buffered() { return socket.writableLength; },
    end: () => { if (!socket.destroyed) socket.end(); },
    destroy: () => { socket.destroy(); },
    pause: () => { socket.pause(); },
    resume: () => { socket.resume(); },
  };
  const wire = (events: HostStreamEvents): void => {
    socket.on('data', (chunk: Buffer) => events.data(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)));
    socket.on('end', () => events.end());
    socket.on('error', () => events.error());
    socket.on('drain', () => events.drained());
  };
  return { stream, wire };
}

export class UserNet implements UserNetworkHost {
  readonly network: UserNetwork;
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly udp = new Map<number, { socket: UdpSocket; last: number }>();
  private readonly timer: ReturnType<typeof setInterval>;

  private constructor(private readonly options: UserNetOptions) {
    this.network = new UserNetwork({ host: this, guestMac: options.guestMac, now: () => performance.now(), names: hostNames(), restrict: options.restrict, log: options.log });
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** The stack with its forwards listening; a forward that cannot listen is a UserNetError. */
  static async start(options: UserNetOptions): Promise<UserNet> {
    const net = new UserNet(options);
    try {
      for (const forward of options.forwards) await net.listen(forward);
    } catch (error) {
      await net.close();
      throw error;
    }
    return net;
  }

  private async listen(forward: HostForward): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      this.track(socket);
      const { stream, wire } = streamOf(socket);
      const events = this.network.openForwarded(forward.guestPort, stream);
      if (events === undefined) socket.destroy();
      else wire(events);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new UserNetError(`hostfwd cannot listen on ${forward.address}:${forward.hostPort}: ${error.code ?? error.message}`)));
      server.listen(forward.hostPort, forward.address, () => resolve());
    });
    server.on('error', (error) => this.options.log(`user network: hostfwd ${forward.address}:${forward.hostPort}: ${error.message}`));
    this.servers.push(server);
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  connectTcp(host: string, port: number, events: HostStreamEvents): HostStream {
    const socket = createConnection({ host, port, allowHalfOpen: true });
    this.track(socket);
    const { stream, wire } = streamOf(socket);
    socket.once('connect', () => events.connected());
    wire(events);
    return stream;
  }

  sendUdp(guestPort: number, host: string, port: number, payload: Uint8Array): void {
    let flow = this.udp.get(guestPort);
    if (flow === undefined) {
      const socket = createSocket('udp4');
      socket.on('message', (message, from) => {
        const f = this.udp.get(guestPort);
        if (f !== undefined) f.last = performance.now();
        this.network.udpReply(guestPort, from.address, from.port, new Uint8Array(message));
      });
      socket.on('error', (error) => this.options.log(`user network: UDP from guest port ${guestPort}: ${error.message}`));
      flow = { socket, last: performance.now() };
      this.udp.set(guestPort, flow);
    }
    flow.last = performance.now();
    flow.socket.send(payload, port, host);
  }

  private tick(): void {
    this.network.tick();
    const now = performance.now();
    for (const [port, flow] of this.udp) {
      if (now - flow.last < UDP_IDLE_MS) continue;
      flow.socket.close();
      this.udp.delete(port);
      this.network.udpClosed(port);
    }
  }

  /** Stops listening, resets every connection, closes every socket. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.network.shutdown();
    for (const socket of this.sockets) socket.destroy();
    for (const flow of this.udp.values()) flow.socket.close();
    this.udp.clear();
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

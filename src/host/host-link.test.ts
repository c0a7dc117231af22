// The hosts' connections: the token's handshake both ways, a bad token and another version refused with
// one line, garbage or a dropped connection after the handshake ending that connection with one line.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { encodeFrame, FrameReader, WIRE_VERSION, type WireMessage } from '../dsm/wire.js';
import { connectHost, HostLinkError, listenHosts, parseHostAddress, readToken, type PeerLink } from './host-link.js';

const portOf = (server: Server): number => (server.address() as AddressInfo).port;

async function listening(token: string): Promise<{ server: Server; peers: PeerLink[]; lines: string[]; nextPeer: () => Promise<PeerLink> }> {
  const peers: PeerLink[] = [];
  const lines: string[] = [];
  let waiter: ((p: PeerLink) => void) | undefined;
  const server = await listenHosts({ host: '127.0.0.1', port: 0 }, token, (p) => { peers.push(p); waiter?.(p); }, (l) => lines.push(l));
  const nextPeer = (): Promise<PeerLink> => new Promise((resolve) => { if (peers.length > 0) resolve(peers.shift()!); else waiter = (p) => { peers.shift(); resolve(p); }; });
  return { server, peers, lines, nextPeer };
}

test('host link: the same token connects both ways and messages flow', async () => {
  const l = await listening('secret');
  const got = l.nextPeer();
  const client = await connectHost({ host: '127.0.0.1', port: portOf(l.server) }, 'secret');
  const peer = await got;
  const heard = new Promise<WireMessage>((resolve) => { peer.onMessage = resolve; });
  client.send({ kind: 'ready', host: 1 });
  assert.deepEqual(await heard, { kind: 'ready', host: 1 });
  const back = new Promise<WireMessage>((resolve) => { client.onMessage = resolve; });
  peer.send({ kind: 'grant', page: 3, txn: 4 });
  assert.deepEqual(await back, { kind: 'grant', page: 3, txn: 4 });
  const lost = new Promise<string>((resolve) => { peer.onLost = resolve; });
  client.close();
  assert.match(await lost, /^peer 127\.0\.0\.1:\d+ lost: connection closed$/);
  l.server.close();
});

test('host link: a stall of this process longer than the silence allowed is not taken for a silent peer', async () => {
  const l = await listening('secret');
  const got = l.nextPeer();
  const client = await connectHost({ host: '127.0.0.1', port: portOf(l.server) }, 'secret');
  const peer = await got;
  const lines: string[] = [];
  peer.onLost = (line) => lines.push(line);
  client.onLost = (line) => lines.push(line);
  // Neither side runs its timers or reads its socket for 1.5 s (a long synchronous stretch, or no CPU).
  const until = Date.now() + 1500;
  while (Date.now() < until) { /* stalled */ }
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.deepEqual(lines, []);
  assert.ok(peer.open && client.open);
  client.close();
  l.server.close();
});

test('host link: a peer that goes silent is lost with one line', async () => {
  const l = await listening('secret');
  const got = l.nextPeer();
  const client = await connectHost({ host: '127.0.0.1', port: portOf(l.server) }, 'secret');
  const peer = await got;
  peer.onLost = () => {};
  // Reach under the link: the listener's side stops sending heartbeats, its socket stays open.
  clearInterval((peer as unknown as { timer: NodeJS.Timeout }).timer);
  const lost = await new Promise<string>((resolve) => { client.onLost = resolve; });
  assert.match(lost, /^host 127\.0\.0\.1:\d+ lost: silent for \d+ ms$/);
  peer.close();
  l.server.close();
});

test('host link: a bad token is refused with one line on both sides, and the listener goes on', async () => {
  const l = await listening('secret');
  const port = portOf(l.server);
  await assert.rejects(connectHost({ host: '127.0.0.1', port }, 'guess'), (e: Error) => e instanceof HostLinkError && e.message === `host 127.0.0.1:${port} refused: bad token`);
  assert.equal(l.lines.length, 1);
  assert.match(l.lines[0]!, /^peer 127\.0\.0\.1:\d+ refused: bad token$/);
  const got = l.nextPeer();
  const ok = await connectHost({ host: '127.0.0.1', port }, 'secret');
  await got;
  ok.close();
  l.server.close();
});

test('host link: a listener that speaks another version is one line, and so is a client', async () => {
  // A listener of version 9: its challenge's header says so.
  const fake = createServer((socket) => {
    const frame = encodeFrame({ kind: 'challenge', nonce: new Uint8Array(32) });
    frame[2] = 9;
    socket.write(frame);
    socket.on('error', () => {});
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  const port = portOf(fake);
  await assert.rejects(connectHost({ host: '127.0.0.1', port }, 'secret'), { message: `host 127.0.0.1:${port} speaks wire version 9, this host speaks ${WIRE_VERSION}` });
  fake.close();

  // A client of version 9 talking to this listener gets a refusal it can read.
  const l = await listening('secret');
  const socket = createConnection({ host: '127.0.0.1', port: portOf(l.server) });
  const reader = new FrameReader();
  const heard: WireMessage[] = [];
  socket.on('data', (chunk) => heard.push(...reader.push(chunk)));
  await once(socket, 'connect');
  const hello = encodeFrame({ kind: 'hello', mac: new Uint8Array(32), nonce: new Uint8Array(32) });
  hello[2] = 9;
  socket.write(hello);
  await once(socket, 'close');
  assert.deepEqual(heard.map((m) => m.kind), ['challenge', 'refuse']);
  assert.deepEqual(heard[1], { kind: 'refuse', reason: `this host speaks wire version ${WIRE_VERSION}, not 9` });
  assert.equal(l.lines.length, 1);
  assert.match(l.lines[0]!, new RegExp(`refused: it speaks wire version 9, this host speaks ${WIRE_VERSION}$`));
  l.server.close();
});

test('host link: garbage after the handshake ends that connection with one line', async () => {
  const l = await listening('secret');
  const got = l.nextPeer();
  const client = await connectHost({ host: '127.0.0.1', port: portOf(l.server) }, 'secret');
  const peer = await got;
  const lost = new Promise<string>((resolve) => { peer.onLost = resolve; });
  // Reach under the link: bytes that are no frame.
  (client as unknown as { socket: import('node:net').Socket }).socket.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  assert.match(await lost, /^peer 127\.0\.0\.1:\d+ lost: bad frame: not a mirrorball host \(bad magic\)$/);
  client.close();
  l.server.close();
});

test('host link: addresses and tokens', () => {
  assert.deepEqual(parseHostAddress('7000'), { host: '127.0.0.1', port: 7000 });
  assert.deepEqual(parseHostAddress('0.0.0.0:7000'), { host: '0.0.0.0', port: 7000 });
  assert.deepEqual(parseHostAddress('[::1]:7000'), { host: '::1', port: 7000 });
  assert.throws(() => parseHostAddress('host:99999'), /is not ADDR:PORT/);
  assert.throws(() => parseHostAddress('nothing'), /is not ADDR:PORT/);
  const dir = mkdtempSync(join(tmpdir(), 'mb-token-'));
  writeFileSync(join(dir, 't'), 'abc\nrest\n');
  writeFileSync(join(dir, 'e'), '\n');
  assert.equal(readToken(join(dir, 't'), {}), 'abc');
  assert.throws(() => readToken(join(dir, 'e'), {}), /is empty/);
  assert.throws(() => readToken(join(dir, 'missing'), {}), /cannot read the token file .*ENOENT/);
  assert.equal(readToken(undefined, { MIRRORBALL_HOST_TOKEN: 'xyz' }), 'xyz');
  assert.throws(() => readToken(undefined, {}), /needs a shared token: --token-file FILE or MIRRORBALL_HOST_TOKEN/);
});

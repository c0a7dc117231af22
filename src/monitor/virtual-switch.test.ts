// The VMs' switch: learning, flooding, copies, unplugging.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VirtualSwitch, vmMac } from './virtual-switch.js';

const mac = (last: number): number[] => [0x52, 0x54, 0, 0x4d, 0, last];
const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
const frame = (to: number[], from: number[], payload = 1): Uint8Array => Uint8Array.from([...to, ...from, 0x08, 0x00, payload]);

function plug(sw: VirtualSwitch, count: number): { ports: ReturnType<VirtualSwitch['port']>[]; got: Uint8Array[][] } {
  const got: Uint8Array[][] = [];
  const ports = Array.from({ length: count }, (_, i) => {
    const port = sw.port();
    got.push([]);
    port.attach((f) => got[i]!.push(f));
    return port;
  });
  return { ports, got };
}

test('unknown and broadcast destinations flood to every other port; learned ones go to one port only', () => {
  const sw = new VirtualSwitch();
  const { ports, got } = plug(sw, 3);
  ports[0]!.send(frame(BROADCAST, mac(1)));
  assert.deepEqual(got.map((g) => g.length), [0, 1, 1]);
  ports[1]!.send(frame(mac(1), mac(2)));
  // Port 0's MAC was learned from its broadcast: the reply goes to port 0 alone.
  assert.deepEqual(got.map((g) => g.length), [1, 1, 1]);
  ports[0]!.send(frame(mac(2), mac(1)));
  assert.deepEqual(got.map((g) => g.length), [1, 2, 1]);
  ports[0]!.send(frame(mac(9), mac(1)));
  assert.deepEqual(got.map((g) => g.length), [1, 3, 2]);
  assert.equal(sw.frames, 4);
  assert.equal(sw.flooded, 2);
  // Bytes copied: a frame once per port it went to (two floods to two ports each, two frames to one).
  assert.equal(sw.bytes, 6 * 15);
});

test('what travels with a frame (an offload header, the sender\'s pages) reaches the receiver unchanged', () => {
  const sw = new VirtualSwitch();
  const seen: unknown[] = [];
  const [a, b] = [sw.port(), sw.port()];
  b.attach((_, info) => seen.push(info));
  const info = { header: new Uint8Array(12).fill(1), pages: [0, 4096] };
  a.send(frame(BROADCAST, mac(1)), info);
  a.send(frame(BROADCAST, mac(1)));
  assert.deepEqual(seen, [info, undefined]);
});

test('a receiver gets its own copy: changing it changes nothing the sender or others hold', () => {
  const sw = new VirtualSwitch();
  const { ports, got } = plug(sw, 3);
  const sent = frame(BROADCAST, mac(1), 7);
  ports[0]!.send(sent);
  got[1]![0]![14] = 99;
  assert.equal(got[2]![0]![14], 7);
  assert.equal(sent[14], 7);
});

test('an unplugged port neither sends nor receives, and its learned address is forgotten', () => {
  const sw = new VirtualSwitch();
  const { ports, got } = plug(sw, 3);
  ports[2]!.send(frame(BROADCAST, mac(3)));
  sw.unplug(ports[2]!);
  ports[0]!.send(frame(mac(3), mac(1)));
  ports[2]!.send(frame(mac(1), mac(3)));
  // The frame to mac 3 floods (unknown again) to port 1 only; port 2's send went nowhere.
  assert.deepEqual(got.map((g) => g.length), [1, 2, 0]);
});

test('runts are dropped; VM MAC addresses are distinct and locally administered', () => {
  const sw = new VirtualSwitch();
  const { ports, got } = plug(sw, 2);
  ports[0]!.send(Uint8Array.of(1, 2, 3));
  assert.deepEqual(got.map((g) => g.length), [0, 0]);
  assert.equal(vmMac(0), '52:54:00:4d:00:00');
  assert.equal(vmMac(258), '52:54:00:4d:01:02');
  assert.equal(new Set([0, 1, 2, 255, 256].map(vmMac)).size, 5);
  assert.throws(() => vmMac(-1), /no MAC address/);
});

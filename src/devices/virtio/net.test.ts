// Tests of virtio-net: MAC in config space, transmit to the backend, receive by poll(), two linked machines.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MmioRegister as R } from './mock-driver.js';
import { LinkedNics, MAX_FRAME, NET_HEADER_SIZE, type NetBackend, VIRTIO_NET_F_MAC, VirtioNet, parseMac } from './net.js';
import { DEVICE_ID_NET, feature } from './spec.js';
import { virtioFixture } from './test-support.js';

function frame(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i + seed) & 0xff);
}

function machine(backend: NetBackend, mac: string) {
  const nic = new VirtioNet(backend, { mac });
  const fixture = virtioFixture(nic);
  const [rx, tx] = fixture.driver.start([16, 16]);
  return { ...fixture, nic, rx, tx };
}

function send(tx: ReturnType<typeof machine>['tx'], payload: Uint8Array): void {
  tx.add([{ data: new Uint8Array(NET_HEADER_SIZE) }, { data: payload }]);
  tx.kick();
}

describe('VirtioNet', () => {
  it('offers its MAC address in configuration space', () => {
    const nic = new VirtioNet(new LinkedNics().a, { mac: '52:54:00:12:34:56' });
    const { driver } = virtioFixture(nic);
    assert.equal(driver.read(R.deviceId), DEVICE_ID_NET);
    assert.ok(driver.deviceFeatures() & feature(VIRTIO_NET_F_MAC));
    const mac = Array.from({ length: 6 }, (_, i) => driver.transport.read(R.config + i, 1, 0));
    assert.deepEqual(mac, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    assert.throws(() => parseMac('52:54:00:12:34'));
  });

  it('carries frames between two linked machines, delivered at poll()', () => {
    const link = new LinkedNics();
    const a = machine(link.a, '52:54:00:00:00:01');
    const b = machine(link.b, '52:54:00:00:00:02');
    b.rx.add([{ writable: 1526 }]);
    const sent = frame(60, 1);
    send(a.tx, sent);
    assert.deepEqual(a.tx.takeUsed().map((u) => u.length), [0]);
    assert.deepEqual(b.rx.takeUsed(), [], 'not before poll');
    b.transport.poll();
    const [got] = b.rx.takeUsed();
    assert.equal(got.length, NET_HEADER_SIZE + 60);
    assert.deepEqual(got.written.subarray(NET_HEADER_SIZE), sent);
    assert.equal(new DataView(got.written.buffer).getUint16(10, true), 1, 'num_buffers');
    assert.deepEqual(got.written.subarray(0, 10), new Uint8Array(10));
    assert.equal(a.nic.statistics.transmitted, 1);
    assert.equal(b.nic.statistics.received, 1);
  });

  it('queues frames until receive buffers come, in order', () => {
    const link = new LinkedNics();
    const a = machine(link.a, '52:54:00:00:00:01');
    const b = machine(link.b, '52:54:00:00:00:02');
    for (let i = 0; i < 3; i++) send(a.tx, frame(64, i));
    b.transport.poll();
    b.rx.add([{ writable: 1526 }]);
    b.rx.add([{ writable: 1526 }]);
    b.rx.kick();
    b.rx.add([{ writable: 1526 }]);
    b.transport.poll();
    const got = b.rx.takeUsed().map((u) => u.written[NET_HEADER_SIZE]);
    assert.deepEqual(got, [0, 1, 2]);
  });

  it('drops runt and oversized frames from the guest, and frames too big for the receive buffer', () => {
    const link = new LinkedNics();
    const a = machine(link.a, '52:54:00:00:00:01');
    const b = machine(link.b, '52:54:00:00:00:02');
    send(a.tx, frame(4, 0));
    a.tx.add([{ data: new Uint8Array(NET_HEADER_SIZE + MAX_FRAME + 1) }]);
    a.tx.kick();
    assert.equal(a.tx.takeUsed().length, 2);
    assert.equal(a.nic.statistics.dropped, 2);
    send(a.tx, frame(1000, 0));
    b.rx.add([{ writable: 100 }]);
    b.transport.poll();
    assert.deepEqual(b.rx.takeUsed().map((u) => u.length), [0]);
    assert.equal(b.nic.statistics.dropped, 1);
  });

  it('loses frames while the driver is not running, like a link that is down', () => {
    const link = new LinkedNics();
    const a = machine(link.a, '52:54:00:00:00:01');
    const b = new VirtioNet(link.b, { mac: '52:54:00:00:00:02' });
    send(a.tx, frame(64, 0));
    assert.equal(b.statistics.dropped, 1);
  });
});

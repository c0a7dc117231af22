// Tests of virtio-net: MAC in config space, transmit to the backend, receive by poll(), two linked machines.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MmioRegister as R } from './mock-driver.js';
import {
  LinkedNics, MAX_FRAME, NET_HEADER_SIZE, type NetBackend, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VirtioNet, type VirtioNetOptions, parseMac,
} from './net.js';
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

describe('VirtioNet offloads and MTU (the subnet\'s options)', () => {
  const PAGE = 4096;
  const GUEST = [VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6];
  const OFFLOADS = [VIRTIO_NET_F_CSUM, ...GUEST, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6];

  function nicOn(backend: NetBackend, options: Omit<VirtioNetOptions, 'mac'>, accept?: (offered: bigint) => bigint) {
    const nic = new VirtioNet(backend, { mac: '52:54:00:00:00:09', ...options });
    const fixture = virtioFixture(nic);
    const [rx, tx] = fixture.driver.start([16, 16], accept);
    return { ...fixture, nic, rx, tx };
  }

  /** A header asking for checksum offload and TCPv4 segmentation at 1448 bytes (struct virtio_net_hdr, §5.1.6). */
  function gsoHeader(): Uint8Array {
    const h = new Uint8Array(NET_HEADER_SIZE);
    const v = new DataView(h.buffer);
    h[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    h[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
    v.setUint16(2, 54, true);
    v.setUint16(4, 1448, true);
    v.setUint16(6, 34, true);
    v.setUint16(8, 16, true);
    return h;
  }

  it('offers checksum and segmentation offload, and an MTU, only when asked', () => {
    const plain = new VirtioNet(new LinkedNics().a, { mac: '52:54:00:00:00:01' });
    assert.equal(plain.features, feature(VIRTIO_NET_F_MAC));
    const { driver } = virtioFixture(new VirtioNet(new LinkedNics().a, { mac: '52:54:00:00:00:01', offload: true, mtu: 65535 }));
    for (const bit of [...OFFLOADS, VIRTIO_NET_F_MTU]) assert.ok(driver.deviceFeatures() & feature(bit), `bit ${bit}`);
    assert.equal(driver.transport.read(R.config + 10, 2, 0), 65535, 'the MTU in configuration space');
    assert.throws(() => new VirtioNet(new LinkedNics().a, { mac: '52:54:00:00:00:01', mtu: 65536 }), /MTU/);
    assert.throws(() => new VirtioNet(new LinkedNics().a, { mac: '52:54:00:00:00:01', mtu: 60 }), /MTU/);
  });

  it('a frame whose header asks for an offload goes with its header to a receiver that took the offloads, and is dropped by one that did not', () => {
    const link = new LinkedNics();
    const a = nicOn(link.a, { offload: true });
    const b = nicOn(link.b, { offload: true });
    b.rx.add([{ writable: NET_HEADER_SIZE + 20_000 }]);
    const payload = frame(20_000, 3);
    a.tx.add([{ data: gsoHeader() }, { data: payload }]);
    a.tx.kick();
    b.transport.poll();
    const [got] = b.rx.takeUsed();
    const expected = gsoHeader();
    new DataView(expected.buffer).setUint16(10, 1, true);
    assert.deepEqual(got!.written.subarray(0, NET_HEADER_SIZE), expected, 'the sender\'s header, num_buffers 1');
    assert.deepEqual(got!.written.subarray(NET_HEADER_SIZE, NET_HEADER_SIZE + 20_000), payload);
    // A plain frame still comes with a header that asks for nothing.
    send(a.tx, frame(60, 1));
    b.rx.add([{ writable: 1526 }]);
    b.transport.poll();
    assert.deepEqual(b.rx.takeUsed()[0]!.written.subarray(0, 10), new Uint8Array(10));
    // A receiver whose driver refused the guest offloads drops a frame that needs one, and takes a plain one.
    const other = new LinkedNics();
    const c = nicOn(other.a, { offload: true });
    const d = nicOn(other.b, { offload: true }, (offered) => GUEST.reduce((f, bit) => f & ~feature(bit), offered));
    d.rx.add([{ writable: NET_HEADER_SIZE + 20_000 }]);
    c.tx.add([{ data: gsoHeader() }, { data: payload }]);
    c.tx.kick();
    d.transport.poll();
    assert.deepEqual(d.rx.takeUsed(), []);
    assert.equal(d.nic.statistics.dropped, 1);
    send(c.tx, frame(60, 1));
    d.transport.poll();
    assert.equal(d.rx.takeUsed().length, 1);
  });

  it('a frame with an offload header waiting for a buffer is saved and restored with its header', () => {
    const link = new LinkedNics();
    const a = nicOn(link.a, { offload: true });
    const b = nicOn(link.b, { offload: true });
    a.tx.add([{ data: gsoHeader() }, { data: frame(3000, 5) }]);
    a.tx.kick();
    send(a.tx, frame(60, 1));
    const state = b.nic.saveState();
    assert.equal(state.headers?.length, 2);
    const again = new VirtioNet(new LinkedNics().b, { mac: '52:54:00:00:00:02', offload: true });
    again.restoreState(state);
    assert.deepEqual(again.saveState(), state);
    assert.equal(a.nic.saveState().headers, undefined, 'a NIC with nothing of the kind waiting saves as it always did');
    assert.throws(() => again.restoreState({ ...state, headers: [new Uint8Array(3), null] }), /virtio-net header/);
  });

  it('records where a frame\'s whole, aligned pages lay in the sender\'s memory and where they land in the receiver\'s', () => {
    const link = new LinkedNics();
    const a = nicOn(link.a, {});
    const b = nicOn(link.b, {});
    // Two whole pages at an aligned address, after the header: frame offsets 0 and 4096.
    const payload = frame(2 * PAGE + 100, 7);
    a.tx.add([{ data: new Uint8Array(NET_HEADER_SIZE) }, { data: payload, align: PAGE }]);
    a.tx.kick();
    assert.equal(a.nic.shapes.sentWithPages, 1);
    assert.equal(a.nic.shapes.pagesSent, 2);
    assert.deepEqual(a.nic.shapes.sentBySize, [0, 1, 0]);
    // The receiver's header in a buffer of its own, then aligned pages: the sender's pages land on its pages.
    b.rx.add([{ writable: NET_HEADER_SIZE }, { writable: 3 * PAGE, align: PAGE }]);
    b.transport.poll();
    assert.deepEqual([b.nic.shapes.pagesReceived, b.nic.shapes.pagesAligned, [...b.nic.shapes.landing]], [2, 2, [[0, 2]]]);
    // The header at the start of a page (as Linux's big receive buffers have it): they land 12 bytes in.
    a.tx.add([{ data: new Uint8Array(NET_HEADER_SIZE) }, { data: payload, align: PAGE }]);
    a.tx.kick();
    b.rx.add([{ writable: 3 * PAGE, align: PAGE }]);
    b.transport.poll();
    assert.deepEqual([b.nic.shapes.pagesReceived, b.nic.shapes.pagesAligned, [...b.nic.shapes.landing]], [4, 2, [[0, 2], [NET_HEADER_SIZE, 2]]]);
  });
});

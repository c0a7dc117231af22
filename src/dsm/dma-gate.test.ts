// DMA across hosts (dma-gate.ts): virtio-blk behind the real transport, on a bus whose DMA is gated by
// pages a fake host holds or not. A request whose buffers are elsewhere waits with nothing done, asks for
// every missing page, and completes once they are in; a hostile chain is still the guest's error.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import { VirtioBlk, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from '../devices/virtio/blk.js';
import { MemoryBlockBackend } from '../devices/virtio/memory-block.js';
import { VirtioMmio } from '../devices/virtio/mmio.js';
import { GuestHeap, MockDriver, type MockQueue } from '../devices/virtio/mock-driver.js';
import { DESC_F_NEXT, DESC_F_WRITE, STATUS_DEVICE_NEEDS_RESET } from '../devices/virtio/spec.js';
import { DmaGate, type DmaPages } from './dma-gate.js';

const BASE = 0x8000_0000;
const SIZE = 0x40_0000;
const PAGE = 4096;

/** A host's view of its pages: held for writing unless `elsewhere` (none) or `shared` (read only); faults recorded. */
class FakePages implements DmaPages {
  readonly held = new Map<number, number>();
  readonly faults: [number, boolean][] = [];
  readonly out = new Set<number>();
  holds(page: number): number {
    return this.held.get(page) ?? 2;
  }
  fault(page: number, write: boolean): boolean {
    this.faults.push([page, write]);
    this.out.add(page);
    return false;
  }
  requested(page: number): boolean {
    return this.out.has(page);
  }
  arrive(page: number, holds = 2): void {
    this.held.set(page, holds);
    this.out.delete(page);
  }
}

function header(type: number, sector: number): Uint8Array {
  const bytes = new Uint8Array(16);
  new DataView(bytes.buffer).setUint32(0, type, true);
  new DataView(bytes.buffer).setUint32(8, sector, true);
  return bytes;
}

function setup() {
  const ram = new RamRegion(0, BASE, SIZE);
  // The device's bus is gated; the mock driver (the guest's harts) writes through a bus of its own over the same RAM.
  const bus = new Bus();
  bus.addRam(ram);
  const driverBus = new Bus();
  driverBus.addRam(ram);
  const pages = new FakePages();
  const gate = new DmaGate(BASE, SIZE, pages);
  bus.dmaGate = (address, length, write) => gate.check(address, length, write);
  const backend = new MemoryBlockBackend(1 << 20);
  const log: string[] = [];
  const irq: boolean[] = [];
  const transport = new VirtioMmio(new VirtioBlk(backend), bus.guestMemory(), (level) => irq.push(level), { log: (m) => log.push(m) });
  const heap = new GuestHeap(BASE, BASE + SIZE);
  const driver = new MockDriver(transport, driverBus.guestMemory(), heap);
  const [queue] = driver.start([16]) as [MockQueue];
  // Buffers from here on start on pages of their own, past the rings.
  heap.alloc(1, PAGE);
  return { bus, ram, pages, gate, backend, log, irq, transport, driver, queue, heap };
}

const pageOf = (address: number): number => Math.floor((address - BASE) / PAGE);

describe('DMA through the DSM (DmaGate)', () => {
  it('a write request whose data is on another host waits, asks for the page to read, and completes when it is in', () => {
    const s = setup();
    const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 13) & 0xff);
    const head = s.queue.add([{ data: header(VIRTIO_BLK_T_OUT, 8), align: PAGE }, { data, align: PAGE }, { writable: 1, align: PAGE }]);
    // Where the chain's buffers landed, from its descriptors (the mock lays them out in order).
    const dataAddress = s.ram.view.getUint32(s.queue.desc - BASE + 16 * (head + 1), true) + 0x1_0000_0000 * s.ram.view.getUint32(s.queue.desc - BASE + 16 * (head + 1) + 4, true);
    const statusAddress = dataAddress + PAGE;
    s.pages.held.set(pageOf(dataAddress), 0);
    s.pages.held.set(pageOf(statusAddress), 1); // Shared: the status byte needs an upgrade
    s.queue.kick();
    s.queue.kick(); // a second notify while waiting: one retry, not two
    assert.deepEqual(s.queue.takeUsed(), [], 'nothing completed');
    assert.equal(s.transport.status & STATUS_DEVICE_NEEDS_RESET, 0, s.log.join('\n'));
    assert.deepEqual(s.pages.faults, [[pageOf(dataAddress), false], [pageOf(statusAddress), true]], 'both missing pages asked for at once');
    assert.deepEqual(s.backend.data.subarray(8 * 512, 8 * 512 + 4), new Uint8Array(4), 'nothing written to the disk yet');
    assert.equal(s.gate.waiting, true);
    assert.equal(s.gate.service(), false, 'nothing in yet');
    s.pages.arrive(pageOf(dataAddress), 1);
    s.pages.arrive(pageOf(statusAddress), 2);
    assert.equal(s.gate.service(), true);
    assert.equal(s.gate.waiting, false);
    const [used] = s.queue.takeUsed();
    assert.equal(used?.written[0], VIRTIO_BLK_S_OK);
    assert.deepEqual(s.backend.data.subarray(8 * 512, 8 * 512 + 1024), data);
    assert.deepEqual(s.irq, [true], 'the driver is interrupted once the request is done');
    assert.equal(s.gate.counters.waits, 1);
    assert.equal(s.gate.counters.readPages, 1);
    assert.equal(s.gate.counters.writePages, 1);
  });

  it('a read request lands in guest memory only once the page is Modified here', () => {
    const s = setup();
    s.backend.data.fill(0xab, 0, 512);
    const head = s.queue.add([{ data: header(VIRTIO_BLK_T_IN, 0), align: PAGE }, { writable: 512, align: PAGE }, { writable: 1 }]);
    const at = s.queue.desc - BASE + 16 * (head + 1);
    const target = s.ram.view.getUint32(at, true) + 0x1_0000_0000 * s.ram.view.getUint32(at + 4, true);
    s.pages.held.set(pageOf(target), 1);
    s.queue.kick();
    assert.equal(s.ram.u8[target - BASE], 0, 'no byte landed in a page held only Shared');
    assert.deepEqual(s.pages.faults, [[pageOf(target), true]]);
    // The page came and went again before the main loop looked: the retry asks once more.
    s.pages.out.delete(pageOf(target));
    assert.equal(s.gate.service(), true);
    assert.deepEqual(s.pages.faults, [[pageOf(target), true], [pageOf(target), true]]);
    s.pages.arrive(pageOf(target));
    s.gate.service();
    const [used] = s.queue.takeUsed();
    assert.equal(used?.written[512], VIRTIO_BLK_S_OK);
    assert.equal(s.ram.u8[target - BASE], 0xab);
  });

  it('a descriptor table on another host is fetched first; a hostile chain found there is the guest\'s error, never a throw', () => {
    const s = setup();
    // A chain by hand in the ring's table (held elsewhere), whose buffer lies outside RAM.
    const header0 = s.heap.alloc(16, PAGE);
    new Uint8Array(s.ram.buffer, header0 - BASE, 16).set(header(VIRTIO_BLK_T_IN, 0));
    s.queue.writeDescriptor(s.queue.desc, 0, { address: header0, length: 16, flags: DESC_F_NEXT, next: 1 });
    s.queue.writeDescriptor(s.queue.desc, 1, { address: 0x1000, length: 512, flags: DESC_F_WRITE, next: 0 });
    s.queue.publish(0);
    s.pages.held.set(pageOf(s.queue.desc), 0);
    s.queue.kick();
    assert.equal(s.transport.status & STATUS_DEVICE_NEEDS_RESET, 0);
    assert.deepEqual(s.pages.faults, [[pageOf(s.queue.desc), false]]);
    s.pages.arrive(pageOf(s.queue.desc), 1);
    assert.doesNotThrow(() => s.gate.service());
    assert.notEqual(s.transport.status & STATUS_DEVICE_NEEDS_RESET, 0, 'the device needs a reset: the guest is told');
    assert.match(s.log.join('\n'), /outside RAM/);
  });

  it('a device reset while DMA waits forgets the work', () => {
    const s = setup();
    const head = s.queue.add([{ data: header(VIRTIO_BLK_T_IN, 0), align: PAGE }, { writable: 512, align: PAGE }, { writable: 1 }]);
    const at = s.queue.desc - BASE + 16 * (head + 1);
    const target = s.ram.view.getUint32(at, true);
    s.pages.held.set(pageOf(target), 0);
    s.queue.kick();
    s.driver.write(0x070, 0); // status 0: reset
    s.pages.arrive(pageOf(target));
    assert.doesNotThrow(() => s.gate.service());
    assert.equal(s.ram.u8[target - BASE], 0, 'a reset device wrote nothing');
    assert.equal(s.gate.waiting, false);
  });
});

// Tests of the virtio balloon with the mock driver: inflate and deflate PFNs, free page reports, the target.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MmioRegister as R } from './mock-driver.js';
import { VirtioMmio } from './mmio.js';
import { F_BALLOON_REPORTING, MAX_PFNS_PER_REQUEST, VirtioBalloon, type BalloonBackend, type PageRange } from './balloon.js';
import { DEVICE_ID_BALLOON, DESC_F_WRITE, INTERRUPT_CONFIG_CHANGE, feature } from './spec.js';
import { RAM_BASE, RAM_SIZE, virtioFixture } from './test-support.js';

class Recorder implements BalloonBackend {
  inflated: number[] = [];
  deflated: number[] = [];
  reported: PageRange[] = [];
  inflate(pages: readonly number[]): void {
    this.inflated.push(...pages);
  }
  deflate(pages: readonly number[]): void {
    this.deflated.push(...pages);
  }
  report(ranges: readonly PageRange[]): void {
    this.reported.push(...ranges);
  }
}

function pfnArray(pfns: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(4 * pfns.length);
  const view = new DataView(bytes.buffer);
  pfns.forEach((p, i) => view.setUint32(4 * i, p, true));
  return bytes;
}

function setup(accept?: (offered: bigint) => bigint) {
  const backend = new Recorder();
  const log: string[] = [];
  const device = new VirtioBalloon(backend, { log: (m) => log.push(m) });
  const fixture = virtioFixture(device);
  const queues = fixture.driver.start([16, 16, 32], accept);
  return { backend, device, fixture, queues, log };
}

const PFN0 = RAM_BASE / 4096;

describe('VirtioBalloon', () => {
  it('is device 5 and offers free page reporting', () => {
    const { fixture } = setup();
    assert.equal(fixture.driver.read(R.deviceId), DEVICE_ID_BALLOON);
    assert.ok((fixture.driver.deviceFeatures() & feature(F_BALLOON_REPORTING)) !== 0n);
  });

  it('gives inflated and deflated pages to the backend, and refuses PFNs outside RAM', () => {
    const { backend, device, queues: [inflate, deflate], log } = setup();
    inflate.add([{ data: pfnArray([PFN0 + 300, PFN0 + 301, 5, PFN0 + RAM_SIZE / 4096]) }]);
    inflate.kick();
    assert.deepEqual(backend.inflated, [RAM_BASE + 300 * 4096, RAM_BASE + 301 * 4096]);
    assert.equal(inflate.takeUsed().length, 1, 'the request came back');
    deflate.add([{ data: pfnArray([PFN0 + 301]) }]);
    deflate.kick();
    assert.deepEqual(backend.deflated, [RAM_BASE + 301 * 4096]);
    assert.deepEqual({ ...device.counts }, { inflated: 2, deflated: 1, reports: 0, reportedPages: 0, rejected: 1 });
    assert.match(log.join('\n'), /2 PFNs outside RAM/);
  });

  it('reads at most MAX_PFNS_PER_REQUEST PFNs of a huge request', () => {
    const { backend, queues: [inflate] } = setup();
    inflate.add([{ data: pfnArray(Array.from({ length: MAX_PFNS_PER_REQUEST + 10 }, () => PFN0 + 700)) }]);
    inflate.kick();
    assert.equal(backend.inflated.length, MAX_PFNS_PER_REQUEST);
  });

  it('reports the whole pages inside each free range, and nothing for a part of a page', () => {
    const { backend, device, fixture, queues: [, , reporting] } = setup();
    // Two ranges at made-up places: one aligned 16 KiB, one from the middle of a page over 2 pages.
    const head = reporting.add([{ writable: 4096 }]);
    const at = RAM_BASE + 0x20_0000;
    // Point the chain's descriptor at guest memory chosen here (the mock allocates its own buffers).
    reporting.writeDescriptor(reporting.desc, head, { address: at, length: 0x4000, flags: DESC_F_WRITE | 1, next: 1 });
    reporting.writeDescriptor(reporting.desc, 1, { address: at + 0x8800, length: 0x2000, flags: DESC_F_WRITE, next: 0 });
    reporting.kick();
    assert.deepEqual(backend.reported, [{ address: at, length: 0x4000 }, { address: at + 0x9000, length: 0x1000 }]);
    assert.equal(device.counts.reports, 1);
    assert.equal(device.counts.reportedPages, 5);
    assert.equal(reporting.takeUsed()[0]?.length, 0, 'nothing written back');
    assert.equal(fixture.transport.status & 64, 0, 'no DEVICE_NEEDS_RESET');
  });

  it('ignores the reporting queue of a driver that did not take the feature', () => {
    const { backend, queues: [, , reporting] } = setup((offered) => offered & ~feature(F_BALLOON_REPORTING));
    reporting.add([{ writable: 8192, align: 4096 }]);
    reporting.kick();
    assert.deepEqual(backend.reported, []);
  });

  it('asks the driver for a new size through num_pages, with a configuration interrupt, and reads actual', () => {
    const { device, fixture } = setup();
    fixture.driver.acknowledge();
    device.setTarget(1000);
    assert.equal(fixture.driver.read(R.config), 1000);
    assert.equal(fixture.driver.acknowledge() & INTERRUPT_CONFIG_CHANGE, INTERRUPT_CONFIG_CHANGE);
    fixture.driver.write(R.config + 4, 600);
    assert.equal(device.actual, 600);
    fixture.driver.write(R.config, 5);
    assert.equal(device.target, 1000, 'num_pages is the device\'s');
    assert.throws(() => device.setTarget(-1), RangeError);
  });

  it('comes back from a snapshot with its target, actual and counts', () => {
    const { device, fixture, queues: [inflate] } = setup();
    device.setTarget(77);
    fixture.driver.write(R.config + 4, 33);
    inflate.add([{ data: pfnArray([PFN0 + 400]) }]);
    inflate.kick();
    const saved = fixture.transport.saveState();
    const backend = new Recorder();
    const again = new VirtioBalloon(backend);
    const transport = new VirtioMmio(again, fixture.memory, () => {});
    transport.restoreState(saved);
    assert.deepEqual([again.target, again.actual, again.counts.inflated], [77, 33, 1]);
    Object.assign(fixture.driver, { transport });
    inflate.add([{ data: pfnArray([PFN0 + 401]) }]);
    inflate.kick();
    assert.deepEqual(backend.inflated, [RAM_BASE + 401 * 4096], 'the ring went on where it was');
    assert.throws(() => again.restoreState({ numPages: -1, actual: 0, counts: {} }));
  });
});

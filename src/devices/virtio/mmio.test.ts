// Tests of the virtio-mmio transport with a stand-in device: negotiation, queue setup, notify, interrupts, errors.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AccessSize } from '../../memory/device.js';
import type { VirtioContext, VirtioDevice } from './device.js';
import { MmioRegister as R } from './mock-driver.js';
import { gather, scatter } from './queue.js';
import {
  DESC_F_NEXT, DESC_F_WRITE, F_INDIRECT_DESC, F_VERSION_1, INTERRUPT_CONFIG_CHANGE, INTERRUPT_USED_BUFFER,
  STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER_OK, STATUS_FEATURES_OK, feature,
} from './spec.js';
import { RAM_BASE, RAM_SIZE, virtioFixture } from './test-support.js';

const F_DEMO = 3;

/** Copies each chain's readable bytes, reversed, into its writable part; config space is 0..7. */
class ReverseDevice implements VirtioDevice {
  readonly deviceId = 42;
  readonly features = feature(F_DEMO);
  readonly queueMaxSizes = [8];
  readonly configSize = 8;
  context: VirtioContext | undefined;
  resets = 0;
  fault: Error | undefined;

  readConfig(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = size - 1; i >= 0; i--) value = value * 256 + (offset + i < this.configSize ? offset + i : 0);
    return value;
  }
  writeConfig(): void {}
  activate(context: VirtioContext): void {
    this.context = context;
  }
  reset(): void {
    this.context = undefined;
    this.resets++;
  }
  notify(index: number): void {
    if (this.fault !== undefined) throw this.fault;
    const context = this.context!;
    const queue = context.queue(index)!;
    for (const chain of queue.drain()) {
      const data = gather(context.memory, chain.readable, 0, chain.readableLength).reverse();
      queue.push(chain.head, scatter(context.memory, chain.writable, 0, data));
    }
    context.usedBuffers(index);
  }
}

function setup() {
  const device = new ReverseDevice();
  return { device, ...virtioFixture(device) };
}

const bytes = (...values: number[]) => Uint8Array.from(values);

describe('VirtioMmio', () => {
  it('identifies itself as a version 2 virtio-mmio device', () => {
    const { driver } = setup();
    assert.equal(driver.read(R.magic), 0x74726976);
    assert.equal(driver.read(R.version), 2);
    assert.equal(driver.read(R.deviceId), 42);
    assert.equal(driver.deviceFeatures(), feature(F_DEMO) | feature(F_VERSION_1) | feature(F_INDIRECT_DESC));
  });

  it('runs a Linux-like start and serves a request with a used-buffer interrupt', () => {
    const { driver, irq, transport } = setup();
    const [queue] = driver.start([8]);
    assert.equal(transport.status & STATUS_DRIVER_OK, STATUS_DRIVER_OK);
    const head = queue.add([{ data: bytes(1, 2, 3) }, { writable: 2 }, { writable: 4 }]);
    queue.kick();
    assert.deepEqual(queue.takeUsed(), [{ head, length: 3, written: bytes(3, 2, 1) }]);
    assert.deepEqual(irq, [true]);
    assert.equal(driver.acknowledge(), INTERRUPT_USED_BUFFER);
    assert.deepEqual(irq, [true, false]);
  });

  it('follows indirect descriptors', () => {
    const { driver } = setup();
    const [queue] = driver.start([8]);
    queue.add([{ data: bytes(9, 8) }, { writable: 1 }, { writable: 1 }], true);
    queue.kick();
    assert.deepEqual(queue.takeUsed().map((u) => u.written), [bytes(8, 9)]);
  });

  it('refuses features it did not offer, and drivers without VERSION_1', () => {
    const { driver } = setup();
    assert.equal(driver.negotiate((offered) => offered | feature(40)), false);
    assert.equal(driver.negotiate((offered) => offered & ~feature(F_VERSION_1)), false);
    assert.equal(driver.negotiate((offered) => offered & ~feature(F_DEMO)), true);
  });

  it('ignores DRIVER_OK without FEATURES_OK and notifies before DRIVER_OK', () => {
    const { driver, transport, device } = setup();
    driver.write(R.status, 1 | 2 | STATUS_DRIVER_OK);
    assert.equal(transport.status & STATUS_DRIVER_OK, 0);
    assert.ok(driver.negotiate());
    const queue = driver.setupQueue(0, 8);
    queue.add([{ data: bytes(5) }, { writable: 1 }]);
    queue.kick();
    assert.equal(device.context, undefined);
    assert.deepEqual(queue.takeUsed(), []);
    driver.driverOk();
    assert.equal(queue.takeUsed().length, 1, 'buffers posted before DRIVER_OK are served at DRIVER_OK');
  });

  it('rejects bad queue layouts with DEVICE_NEEDS_RESET', () => {
    const cases: Array<[string, (d: ReturnType<typeof setup>['driver']) => void]> = [
      ['size not a power of two', (d) => d.write(R.queueNum, 6)],
      ['size above the maximum', (d) => d.write(R.queueNum, 16)],
      ['size zero', (d) => d.write(R.queueNum, 0)],
      ['misaligned table', (d) => d.writeAddress(R.queueDescLow, RAM_BASE + 8)],
      ['table outside RAM', (d) => d.writeAddress(R.queueDescLow, 0x1000)],
      ['used ring past the end of RAM', (d) => d.writeAddress(R.queueDeviceLow, RAM_BASE + RAM_SIZE - 16)],
      ['address above 4 GiB', (d) => d.write(R.queueDriverHigh, 1)],
    ];
    for (const [what, spoil] of cases) {
      const { driver, transport } = setup();
      assert.ok(driver.negotiate());
      driver.write(R.queueSel, 0);
      driver.writeAddress(R.queueDescLow, RAM_BASE);
      driver.writeAddress(R.queueDriverLow, RAM_BASE + 0x1000);
      driver.writeAddress(R.queueDeviceLow, RAM_BASE + 0x2000);
      driver.write(R.queueNum, 8);
      spoil(driver);
      driver.write(R.queueReady, 1);
      assert.equal(driver.read(R.queueReady), 0, what);
      assert.equal(transport.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET, what);
    }
  });

  it('turns a looping chain into DEVICE_NEEDS_RESET and a config-change interrupt, then recovers by reset', () => {
    const { driver, transport, device, log } = setup();
    const [queue] = driver.start([8]);
    queue.writeDescriptor(queue.desc, 0, { address: RAM_BASE, length: 4, flags: DESC_F_NEXT, next: 1 });
    queue.writeDescriptor(queue.desc, 1, { address: RAM_BASE, length: 4, flags: DESC_F_NEXT, next: 0 });
    queue.publish(0);
    queue.kick();
    assert.equal(transport.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
    assert.equal(transport.interruptStatus, INTERRUPT_CONFIG_CHANGE);
    assert.match(log.join('\n'), /loops/);
    queue.kick(); // ignored while broken
    driver.write(R.status, 0);
    assert.equal(transport.status, 0);
    assert.equal(transport.interruptStatus, 0);
    assert.equal(device.resets, 2, 'once at probe, once now');
    const [fresh] = driver.start([8]);
    fresh.add([{ data: bytes(7) }, { writable: 1 }]);
    fresh.kick();
    assert.deepEqual(fresh.takeUsed().map((u) => u.written), [bytes(7)]);
  });

  it('catches a device fault instead of throwing out of write()', () => {
    const { driver, transport, device, log } = setup();
    const [queue] = driver.start([8]);
    device.fault = new TypeError('boom');
    queue.add([{ writable: 1 }]);
    assert.doesNotThrow(() => queue.kick());
    assert.equal(transport.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
    assert.match(log.join('\n'), /device fault: boom/);
  });

  it('moves ConfigGeneration and interrupts when the device changes its configuration', () => {
    const { driver, device, transport } = setup();
    driver.start([8]);
    const before = driver.read(R.configGeneration);
    device.context!.configChanged();
    assert.equal(driver.read(R.configGeneration), before + 1);
    assert.equal(driver.acknowledge(), INTERRUPT_CONFIG_CHANGE);
    assert.equal(transport.interruptStatus, 0);
    driver.write(R.status, 0);
    device.context = undefined;
  });

  it('honours VIRTQ_AVAIL_F_NO_INTERRUPT', () => {
    const { driver, transport } = setup();
    const [queue] = driver.start([8]);
    queue.suppressInterrupts(true);
    queue.add([{ writable: 1 }]);
    queue.kick();
    assert.equal(queue.takeUsed().length, 1);
    assert.equal(transport.interruptStatus, 0);
  });

  it('reads configuration space with any width and control registers only as words', () => {
    const { transport, driver } = setup();
    assert.equal(transport.read(R.config + 1, 1, 0), 1);
    assert.equal(transport.read(R.config + 2, 2, 0), 0x0302);
    assert.equal(transport.read(R.config + 4, 4, 0), 0x07060504);
    assert.equal(transport.read(R.magic, 2, 0), 0);
    transport.write(R.status, 1, 1, 0);
    assert.equal(driver.status, 0);
  });

  it('keeps queue registers fixed once the queue is ready', () => {
    const { driver } = setup();
    const [queue] = driver.start([8]);
    driver.write(R.queueSel, 0);
    driver.write(R.queueNum, 2);
    driver.writeAddress(R.queueDescLow, 0);
    queue.add([{ data: bytes(1) }, { writable: 1 }]);
    queue.kick();
    assert.equal(queue.takeUsed().length, 1);
    driver.write(R.queueSel, 5);
    assert.equal(driver.read(R.queueNumMax), 0);
    driver.write(R.queueReady, 1);
    driver.write(R.queueNotify, 5);
  });

  it('puts device-writable lengths in the used ring, never more than the chain holds', () => {
    const { driver, memory } = setup();
    const [queue] = driver.start([8]);
    const target = RAM_BASE + 0x30000;
    queue.writeDescriptor(queue.desc, 3, { address: RAM_BASE + 0x20000, length: 4, flags: DESC_F_NEXT, next: 4 });
    queue.writeDescriptor(queue.desc, 4, { address: target, length: 2, flags: DESC_F_WRITE, next: 0 });
    memory.write(RAM_BASE + 0x20000, bytes(1, 2, 3, 4));
    queue.publish(3);
    queue.kick();
    assert.deepEqual(queue.takeUsed()[0]?.length, 2);
    assert.deepEqual(memory.read(target, 2), bytes(4, 3));
  });
});

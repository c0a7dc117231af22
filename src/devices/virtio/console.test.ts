// Tests of the virtio console: Linux-like start, output through transmitq, input delivered by poll().

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_OUTPUT_PER_CHAIN, VirtioConsole } from './console.js';
import { MmioRegister as R } from './mock-driver.js';
import { DEVICE_ID_CONSOLE } from './spec.js';
import { RAM_BASE, RAM_SIZE, virtioFixture } from './test-support.js';
import { DESC_F_NEXT } from './spec.js';

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

function setup() {
  const output: Uint8Array[] = [];
  const console = new VirtioConsole({ onOutput: (bytes) => output.push(bytes) });
  const fixture = virtioFixture(console);
  assert.equal(fixture.driver.read(R.deviceId), DEVICE_ID_CONSOLE);
  assert.equal(fixture.driver.deviceFeatures() & 0xffffffn, 0n, 'no device-type features (bits 0-23): one port');
  const [rx, tx] = fixture.driver.start([16, 16]);
  return { ...fixture, console, output, rx, tx };
}

describe('VirtioConsole', () => {
  it('passes transmitted bytes to the callback', () => {
    const { tx, output, irq } = setup();
    tx.add([{ data: text('hello ') }, { data: text('world\n') }]);
    tx.kick();
    assert.equal(decode(Buffer.concat(output)), 'hello world\n');
    assert.deepEqual(tx.takeUsed().map((u) => u.length), [0]);
    assert.deepEqual(irq, [true]);
  });

  it('delivers input only at poll() or when buffers arrive, splitting it over buffers in order', () => {
    const { console, transport, rx } = setup();
    console.input(text('abcdefgh'));
    assert.equal(console.queuedInput, 8);
    transport.poll();
    assert.equal(console.queuedInput, 8, 'no receive buffers yet');
    rx.add([{ writable: 3 }]);
    rx.add([{ writable: 3 }]);
    assert.deepEqual(rx.takeUsed(), [], 'nothing before poll or notify');
    transport.poll();
    assert.deepEqual(rx.takeUsed().map((u) => decode(u.written)), ['abc', 'def']);
    rx.add([{ writable: 16 }]);
    rx.kick();
    assert.deepEqual(rx.takeUsed().map((u) => decode(u.written)), ['gh']);
    assert.equal(console.queuedInput, 0);
    console.input(text('z'));
    rx.add([{ writable: 16 }]);
    transport.poll();
    assert.deepEqual(rx.takeUsed().map((u) => decode(u.written)), ['z']);
  });

  it('stops polling when the driver resets it', () => {
    const { console, driver, transport } = setup();
    driver.write(R.status, 0);
    console.input(text('x'));
    assert.doesNotThrow(() => transport.poll());
    assert.equal(console.queuedInput, 1);
  });

  it('copies out at most MAX_OUTPUT_PER_CHAIN of a chain: a ring of chains over all of RAM holds the host for a bounded time', () => {
    const { tx, output } = setup();
    // Every descriptor of the table covers the whole RAM (issue 28: found while writing the fuzz target).
    for (let i = 0; i < tx.size; i++) {
      tx.writeDescriptor(tx.desc, i, { address: RAM_BASE, length: RAM_SIZE, flags: i + 1 < tx.size ? DESC_F_NEXT : 0, next: i + 1 });
    }
    for (let i = 0; i < tx.size; i++) tx.publish(i);
    tx.kick();
    const bytes = output.reduce((n, b) => n + b.length, 0);
    assert.equal(tx.takeUsed().length, tx.size, 'every chain handed back');
    assert.ok(bytes <= tx.size * MAX_OUTPUT_PER_CHAIN, `${bytes} bytes copied out`);
    assert.equal(output[0]!.length, 64 * 1024);
  });
});

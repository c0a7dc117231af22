// A virtio transport saved mid-conversation and restored (a new transport and device over the same guest
// memory) carries on where it was: the same guest driver, its rings, and what waited for the guest.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StateError } from '../../memory/state.js';
import { VirtioConsole } from './console.js';
import { VirtioMmio } from './mmio.js';
import { LinkedNics, NET_HEADER_SIZE, VirtioNet } from './net.js';
import { virtioFixture } from './test-support.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A new transport for `device` over `fixture`'s memory with its saved state; the driver now talks to it. */
function restoreInto<T extends VirtioConsole | VirtioNet>(fixture: ReturnType<typeof virtioFixture>, device: T): VirtioMmio {
  const saved = fixture.transport.saveState();
  const restored = new VirtioMmio(device, fixture.memory, () => {});
  restored.restoreState(saved);
  // The guest's driver is the same: only the device side was saved and built again.
  Object.assign(fixture.driver, { transport: restored });
  return restored;
}

describe('a virtio transport across a snapshot', () => {
  it('console: the rings go on from where they were, and input not yet delivered arrives', () => {
    const output: Uint8Array[] = [];
    const before = new VirtioConsole({ onOutput: (bytes) => output.push(bytes) });
    const fixture = virtioFixture(before);
    const [rx, tx] = fixture.driver.start([16, 16]);
    tx.add([{ data: text('one ') }]);
    tx.kick();
    before.input(text('abcdef'));
    rx.add([{ writable: 4 }]);
    fixture.transport.poll();
    assert.deepEqual(rx.takeUsed().map((u) => decode(u.written)), ['abcd']);
    assert.deepEqual(tx.takeUsed().map((u) => u.length), [0]);

    const after = new VirtioConsole({ onOutput: (bytes) => output.push(bytes) });
    const restored = restoreInto(fixture, after);
    assert.equal(after.queuedInput, 2);
    tx.add([{ data: text('two') }]);
    tx.kick();
    rx.add([{ writable: 16 }]);
    restored.poll();
    assert.equal(decode(Buffer.concat(output)), 'one two');
    assert.deepEqual(tx.takeUsed().map((u) => u.length), [0], 'the used ring continued at its next slot');
    assert.deepEqual(rx.takeUsed().map((u) => decode(u.written)), ['ef']);
  });

  it('net: a frame waiting for a receive buffer is delivered after the restore', () => {
    const link = new LinkedNics();
    const before = new VirtioNet(link.a, { mac: '52:54:00:12:34:56' });
    const fixture = virtioFixture(before);
    const [rx] = fixture.driver.start([16, 16]);
    const frame = Uint8Array.from({ length: 60 }, (_, i) => i);
    link.b.send(frame);
    assert.equal(before.saveState().backlog.length, 1);

    const other = new LinkedNics();
    const after = new VirtioNet(other.a, { mac: '52:54:00:12:34:56' });
    const restored = restoreInto(fixture, after);
    rx.add([{ writable: 2048 }]);
    restored.poll();
    const used = rx.takeUsed();
    assert.equal(used.length, 1);
    assert.deepEqual(used[0]!.written.subarray(NET_HEADER_SIZE), frame);
    assert.equal(after.statistics.received, 1);
  });

  it('refuses the state of another device type', () => {
    const fixture = virtioFixture(new VirtioConsole());
    fixture.driver.start([16, 16]);
    const net = new VirtioMmio(new VirtioNet(new LinkedNics().a, { mac: '52:54:00:12:34:56' }), fixture.memory, () => {});
    assert.throws(() => net.restoreState(fixture.transport.saveState()), StateError);
  });
});

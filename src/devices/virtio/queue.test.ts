// Unit tests of the split virtqueue: chain walking rules, used ring, gather and scatter.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Bus } from '../../memory/bus.js';
import { RamRegion } from '../../memory/ram.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { RawDescriptor } from './mock-driver.js';
import { Virtqueue, VirtqueueError, checkLayout, gather, scatter } from './queue.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE } from './spec.js';

const BASE = 0x8000_0000;
const SIZE = 4;

function setup(indirect = true) {
  const bus = new Bus();
  bus.addRam(new RamRegion(0, BASE, 0x10000));
  const memory = bus.guestMemory();
  const layout = { size: SIZE, desc: BASE, avail: BASE + 0x100, used: BASE + 0x200 };
  assert.equal(checkLayout(memory, layout, 8), undefined);
  const queue = new Virtqueue(memory, layout, indirect);
  let idx = 0;
  const post = (head: number) => {
    memory.writeU16(layout.avail + 4 + 2 * (idx % SIZE), head);
    memory.writeU16(layout.avail + 2, ++idx);
  };
  const wd = (table: number, i: number, d: RawDescriptor) => writeDescriptor(memory, table, i, d);
  return { memory, queue, layout, post, writeDescriptor: wd };
}

function writeDescriptor(memory: GuestMemory, table: number, i: number, d: RawDescriptor): void {
  memory.writeU32(table + 16 * i, d.address % 2 ** 32);
  memory.writeU32(table + 16 * i + 4, Math.floor(d.address / 2 ** 32));
  memory.writeU32(table + 16 * i + 8, d.length);
  memory.writeU16(table + 16 * i + 12, d.flags);
  memory.writeU16(table + 16 * i + 14, d.next);
}

describe('Virtqueue', () => {
  it('splits a chain into readable and writable segments and returns it through the used ring', () => {
    const { queue, layout, memory, post, writeDescriptor: wd } = setup();
    wd(layout.desc, 2, { address: BASE + 0x1000, length: 16, flags: DESC_F_NEXT, next: 0 });
    wd(layout.desc, 0, { address: BASE + 0x2000, length: 0, flags: DESC_F_NEXT | DESC_F_WRITE, next: 3 });
    wd(layout.desc, 3, { address: BASE + 0x3000, length: 8, flags: DESC_F_WRITE, next: 0 });
    post(2);
    assert.equal(queue.available(), 1);
    const chain = queue.pop()!;
    assert.deepEqual(chain, {
      head: 2,
      readable: [{ address: BASE + 0x1000, length: 16 }],
      writable: [{ address: BASE + 0x2000, length: 0 }, { address: BASE + 0x3000, length: 8 }],
      readableLength: 16,
      writableLength: 8,
    });
    assert.equal(queue.pop(), undefined);
    queue.push(2, 5);
    assert.equal(memory.readU16(layout.used + 2), 1);
    assert.equal(memory.readU32(layout.used + 4), 2);
    assert.equal(memory.readU32(layout.used + 8), 5);
    assert.equal(queue.takeNotification(), true);
    assert.equal(queue.takeNotification(), false, 'nothing new since');
  });

  it('accepts a zero-length buffer anywhere, since it is never touched', () => {
    const { queue, layout, post, writeDescriptor: wd } = setup();
    wd(layout.desc, 0, { address: 2 ** 60, length: 0, flags: 0, next: 0 });
    post(0);
    assert.equal(queue.pop()?.readableLength, 0);
  });

  const bad: Array<[string, RawDescriptor[], RegExp]> = [
    ['a buffer past the end of RAM', [{ address: BASE + 0xfff0, length: 32, flags: 0, next: 0 }], /outside RAM/],
    ['an address that wraps 64 bits', [{ address: 2 ** 64 - 16, length: 32, flags: 0, next: 0 }], /outside RAM/],
    ['a next index outside the table', [{ address: BASE, length: 1, flags: DESC_F_NEXT, next: SIZE }], /outside a table/],
    ['a self loop', [{ address: BASE, length: 1, flags: DESC_F_NEXT, next: 0 }], /loops/],
    ['readable after writable', [
      { address: BASE, length: 1, flags: DESC_F_WRITE | DESC_F_NEXT, next: 1 },
      { address: BASE, length: 1, flags: 0, next: 0 },
    ], /readable descriptor after/],
    ['more than 4 GiB in total', [
      { address: BASE, length: 0xffff_0000, flags: DESC_F_NEXT, next: 1 },
      { address: BASE, length: 0x2_0000, flags: 0, next: 0 },
    ], /outside RAM|longer than 4 GiB/],
    ['an indirect table of a partial entry', [{ address: BASE + 0x1000, length: 24, flags: DESC_F_INDIRECT, next: 0 }], /indirect table of 24/],
    ['indirect together with NEXT', [{ address: BASE + 0x1000, length: 32, flags: DESC_F_INDIRECT | DESC_F_NEXT, next: 1 }], /with NEXT/],
  ];
  for (const [what, descriptors, message] of bad) {
    it(`rejects ${what}`, () => {
      const { queue, layout, post, writeDescriptor: wd } = setup();
      descriptors.forEach((d, i) => wd(layout.desc, i, d));
      post(0);
      assert.throws(() => queue.pop(), (e: unknown) => e instanceof VirtqueueError && message.test(e.message));
    });
  }

  it('rejects indirect descriptors unless negotiated, and nested ones', () => {
    const off = setup(false);
    off.writeDescriptor(off.layout.desc, 0, { address: BASE + 0x1000, length: 16, flags: DESC_F_INDIRECT, next: 0 });
    off.post(0);
    assert.throws(() => off.queue.pop(), /without VIRTIO_F_INDIRECT_DESC/);
    const on = setup(true);
    on.writeDescriptor(on.layout.desc, 0, { address: BASE + 0x1000, length: 16, flags: DESC_F_INDIRECT, next: 0 });
    on.writeDescriptor(BASE + 0x1000, 0, { address: BASE + 0x1000, length: 16, flags: DESC_F_INDIRECT, next: 0 });
    on.post(0);
    assert.throws(() => on.queue.pop(), /nested/);
  });

  it('rejects an available index that runs ahead of the ring', () => {
    const { queue, memory, layout } = setup();
    memory.writeU16(layout.avail + 2, SIZE + 1);
    assert.throws(() => queue.available(), VirtqueueError);
  });

  it('copies across segment boundaries with gather and scatter', () => {
    const { memory } = setup();
    const segments = [{ address: BASE + 0x1000, length: 3 }, { address: BASE + 0x2000, length: 0 }, { address: BASE + 0x3000, length: 4 }];
    assert.equal(scatter(memory, segments, 1, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)), 6);
    assert.deepEqual(gather(memory, segments, 0, 100), Uint8Array.of(0, 1, 2, 3, 4, 5, 6));
    assert.deepEqual(gather(memory, segments, 2, 3), Uint8Array.of(2, 3, 4));
    assert.deepEqual(gather(memory, segments, 9, 3), new Uint8Array(0));
  });
});

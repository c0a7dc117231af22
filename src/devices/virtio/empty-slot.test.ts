import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EmptyVirtioSlot } from './empty-slot.js';

test('an empty virtio-mmio slot shows the magic, version 2 and device ID 0, and ignores writes', () => {
  const slot = new EmptyVirtioSlot();
  assert.equal(slot.read(0x000, 4, 0), 0x74726976);
  assert.equal(slot.read(0x004, 4, 0), 2);
  assert.equal(slot.read(0x008, 4, 0), 0);
  slot.write(0x070, 4, 0xf, 0);
  assert.equal(slot.read(0x070, 4, 0), 0, 'status stays zero');
  assert.equal(slot.read(0x000, 1, 0), 0, 'control registers are 32-bit only');
});

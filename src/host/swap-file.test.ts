// The swap stores' one contract (monitor/swap-store.ts), run against each: the in-memory store and the swap file.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PAGE } from '../monitor/machine-memory.js';
import { MemorySwapStore, type SwapStore } from '../monitor/swap-store.js';
import { FileSwapStore } from './swap-file.js';

const dir = mkdtempSync(join(tmpdir(), 'mirrorball-swap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const page = (value: number): Uint8Array => new Uint8Array(PAGE).map((_, i) => (value + i) & 0xff);

const stores: [string, (slots: number) => SwapStore][] = [
  ['the in-memory store', (slots) => new MemorySwapStore(slots)],
  ['the swap file', (slots) => new FileSwapStore(join(dir, `swap-${slots}-${Math.random().toString(36).slice(2)}`), slots * PAGE)],
];

for (const [name, make] of stores) {
  describe(name, () => {
    it('hands out every slot once, gives back what each holds, and says when it is full', () => {
      const store = make(3);
      const slots = [store.allocate(), store.allocate(), store.allocate()];
      assert.deepEqual([...slots].sort(), [0, 1, 2]);
      assert.equal(store.allocate(), -1);
      assert.equal(store.used, 3);
      slots.forEach((slot, i) => store.write(slot, page(i * 7)));
      const into = new Uint8Array(PAGE);
      slots.forEach((slot, i) => {
        store.read(slot, into);
        assert.deepEqual(into, page(i * 7));
      });
      store.free(slots[1]!);
      assert.equal(store.used, 2);
      assert.equal(store.allocate(), slots[1]);
      store.close();
    });

    it('refuses a slot that is not in use and a page of the wrong size', () => {
      const store = make(2);
      assert.throws(() => store.write(0, page(1)), /swap slot 0 is not in use/);
      const slot = store.allocate();
      assert.throws(() => store.write(slot, new Uint8Array(100)), /holds 4096 bytes/);
      store.free(slot);
      assert.throws(() => store.free(slot), /not in use/);
      assert.throws(() => store.read(5, new Uint8Array(PAGE)), /not in use/);
      store.close();
    });
  });
}

describe('the swap file', () => {
  it('is made 0600 at its full size, and refuses a size that is not whole pages', () => {
    const path = join(dir, 'mode');
    const store = new FileSwapStore(path, 4 * PAGE);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(path).size, 4 * PAGE);
    store.close();
    assert.throws(() => new FileSwapStore(join(dir, 'odd'), 5000), /whole number of 4 KiB pages/);
  });
});

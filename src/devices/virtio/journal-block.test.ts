// Tests of the journaling block backend and of what a power cut leaves of its journal.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk } from './blk.js';
import { imageAfterPowerCut, JournalBlockBackend, type JournalEntry, survivingWrites } from './journal-block.js';
import { MemoryBlockBackend } from './memory-block.js';
import type { MockQueue } from './mock-driver.js';
import { virtioFixture } from './test-support.js';

const SECTOR = 512;

function request(queue: MockQueue, type: number, sector: number, data?: Uint8Array, read = 0): number {
  const header = new Uint8Array(16);
  new DataView(header.buffer).setUint32(0, type, true);
  new DataView(header.buffer).setUint32(8, sector, true);
  queue.add([{ data: header }, ...(data === undefined ? [] : [{ data }]), ...(read > 0 ? [{ writable: read }] : []), { writable: 1 }]);
  queue.kick();
  const [used] = queue.takeUsed();
  return used!.written[used!.length - 1]!;
}

const write = (offset: number, byte: number): JournalEntry => ({ kind: 'write', offset, data: Uint8Array.of(byte) });
const flush: JournalEntry = { kind: 'flush' };

describe('JournalBlockBackend', () => {
  it('records what the device completed, in order, and not what it refused or read', () => {
    const journal = new JournalBlockBackend(new MemoryBlockBackend(8 * SECTOR));
    const [queue] = virtioFixture(new VirtioBlk(journal)).driver.start([16]);
    const data = new Uint8Array(SECTOR).fill(7);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 1, data), VIRTIO_BLK_S_OK);
    assert.equal(request(queue, VIRTIO_BLK_T_FLUSH, 0), VIRTIO_BLK_S_OK);
    assert.equal(request(queue, VIRTIO_BLK_T_IN, 1, undefined, SECTOR), VIRTIO_BLK_S_OK);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 8, data), VIRTIO_BLK_S_IOERR, 'past the end');
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 2, data), VIRTIO_BLK_S_OK);
    assert.deepEqual(journal.entries, [{ kind: 'write', offset: SECTOR, data }, { kind: 'flush' }, { kind: 'write', offset: 2 * SECTOR, data }]);
    data.fill(9);
    assert.equal((journal.entries[0] as { data: Uint8Array }).data[0], 7, 'the journal keeps its own copy');
  });

  it('records no request the inner backend failed (the guest saw IOERR)', () => {
    const inner = new MemoryBlockBackend(8 * SECTOR);
    inner.flush = () => { throw new Error('EIO'); };
    inner.write = () => { throw new Error('EIO'); };
    const journal = new JournalBlockBackend(inner);
    const [queue] = virtioFixture(new VirtioBlk(journal)).driver.start([16]);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 0, new Uint8Array(SECTOR)), VIRTIO_BLK_S_IOERR);
    assert.equal(request(queue, VIRTIO_BLK_T_FLUSH, 0), VIRTIO_BLK_S_IOERR);
    assert.deepEqual(journal.entries, []);
  });
});

describe('survivingWrites', () => {
  const entries = [write(0, 1), write(1, 2), flush, write(2, 3), write(0, 4), flush, write(3, 5), write(4, 6), write(5, 7)];

  it('keeps every write before the last completed flush, in order, and some of the later ones', () => {
    const kept = (cut: number, seed: number) => survivingWrites(entries, { cut, seed }).writes.map((w) => w.data[0]);
    assert.deepEqual(kept(0, 0), []);
    for (let seed = 0; seed < 50; seed++) {
      assert.deepEqual(kept(3, seed), [1, 2], 'the flush completed: both writes stay');
      assert.deepEqual(kept(6, seed), [1, 2, 3, 4]);
      const later = kept(9, seed);
      assert.deepEqual(later.slice(0, 4), [1, 2, 3, 4]);
      assert.deepEqual(later.slice(4), later.slice(4).filter((b) => b === 5 || b === 6 || b === 7).sort());
      // The flush at 5 had not completed at a cut of 5: writes 3 and 4 may or may not be there.
      assert.deepEqual(kept(5, seed).slice(0, 2), [1, 2]);
    }
    assert.deepEqual(kept(9, 3), kept(9, 3), 'the seed decides');
    const seen = new Set<string>();
    for (let seed = 0; seed < 200; seed++) seen.add(kept(9, seed).slice(4).join(','));
    assert.equal(seen.size, 8, 'every subset of the three unflushed writes happens');
  });

  it('refuses a cut outside the journal', () => {
    assert.throws(() => survivingWrites(entries, { cut: 10, seed: 0 }), /cut 10 outside a journal of 9 entries/);
    assert.throws(() => survivingWrites(entries, { cut: -1, seed: 0 }), RangeError);
  });

  it('writes the survivors over a copy of the image, later over earlier', () => {
    const base = new Uint8Array(8);
    const image = imageAfterPowerCut(base, entries, { cut: 6, seed: 0 });
    assert.deepEqual([...image], [4, 2, 3, 0, 0, 0, 0, 0]);
    assert.deepEqual([...base], [0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

// Tests of the copy-on-write block backend: reads and writes as a plain disk's, the base never written.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLUSTER_SIZE, CowBlockBackend, MemoryClusterStore } from './cow-block.js';
import { MemoryBlockBackend } from './memory-block.js';

const SECTOR = 512;

function patterned(size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
  return data;
}

type Op = { kind: 'write'; sector: number; sectors: number; byte: number } | { kind: 'read'; sector: number; sectors: number } | { kind: 'flush' };

/** Sector-aligned requests anywhere on a disk of `sectors` sectors, as virtio-blk passes them on. */
function ops(sectors: number): fc.Arbitrary<Op[]> {
  const span = fc.integer({ min: 0, max: sectors - 1 }).chain((sector) => fc.record({ sector: fc.constant(sector), sectors: fc.integer({ min: 1, max: Math.min(20, sectors - sector) }) }));
  return fc.array(fc.oneof(
    fc.tuple(span, fc.integer({ min: 0, max: 255 })).map(([s, byte]): Op => ({ kind: 'write', ...s, byte })),
    span.map((s): Op => ({ kind: 'read', ...s })),
    fc.constant<Op>({ kind: 'flush' }),
  ), { maxLength: 60 });
}

describe('CowBlockBackend', () => {
  it('reads back what was written, as a plain disk would, and never changes the base', () => {
    // 37 sectors: the last cluster is shorter than the others.
    const sectors = 37;
    fc.assert(fc.property(ops(sectors), (list) => {
      const original = patterned(sectors * SECTOR);
      const base = new MemoryBlockBackend(original.slice(), true); // read-only: a write would throw
      const disk = new CowBlockBackend(base, new MemoryClusterStore());
      const model = original.slice();
      for (const op of list) {
        if (op.kind === 'flush') disk.flush();
        else if (op.kind === 'write') {
          const data = new Uint8Array(op.sectors * SECTOR).fill(op.byte);
          disk.write(op.sector * SECTOR, data);
          model.set(data, op.sector * SECTOR);
        } else {
          const into = new Uint8Array(op.sectors * SECTOR);
          disk.read(op.sector * SECTOR, into);
          assert.deepEqual(into, model.subarray(op.sector * SECTOR, (op.sector + op.sectors) * SECTOR));
        }
      }
      const whole = new Uint8Array(sectors * SECTOR);
      disk.read(0, whole);
      assert.deepEqual(whole, model);
      assert.deepEqual(base.data, original, 'the base is unchanged');
      assert.equal(base.flushes, 0, 'the base is never flushed');
    }));
  });

  it('keeps each disk\'s writes to itself when several share one base', () => {
    const base = new MemoryBlockBackend(patterned(4 * CLUSTER_SIZE), true);
    const a = new CowBlockBackend(base, new MemoryClusterStore());
    const b = new CowBlockBackend(base, new MemoryClusterStore());
    a.write(CLUSTER_SIZE + SECTOR, new Uint8Array(SECTOR).fill(0xaa));
    const seen = new Uint8Array(SECTOR);
    b.read(CLUSTER_SIZE + SECTOR, seen);
    assert.deepEqual(seen, patterned(4 * CLUSTER_SIZE).subarray(CLUSTER_SIZE + SECTOR, CLUSTER_SIZE + 2 * SECTOR));
    a.read(CLUSTER_SIZE + SECTOR, seen);
    assert.deepEqual(seen, new Uint8Array(SECTOR).fill(0xaa));
  });

  it('copies a cluster once, whole, on its first partial write', () => {
    const store = new MemoryClusterStore();
    const disk = new CowBlockBackend(new MemoryBlockBackend(patterned(4 * CLUSTER_SIZE), true), store);
    disk.write(2 * CLUSTER_SIZE + 3 * SECTOR, new Uint8Array(SECTOR).fill(1));
    disk.write(2 * CLUSTER_SIZE + 5 * SECTOR, new Uint8Array(2 * SECTOR).fill(2));
    assert.equal(disk.storedClusters, 1);
    const cluster = new Uint8Array(CLUSTER_SIZE);
    store.read(2, cluster);
    const expected = patterned(4 * CLUSTER_SIZE).slice(2 * CLUSTER_SIZE, 3 * CLUSTER_SIZE);
    expected.fill(1, 3 * SECTOR, 4 * SECTOR).fill(2, 5 * SECTOR, 7 * SECTOR);
    assert.deepEqual(cluster, expected);
    disk.write(0, new Uint8Array(2 * CLUSTER_SIZE)); // two whole clusters
    assert.equal(disk.storedClusters, 3);
  });

  it('refuses requests outside the disk, as the plain backends do', () => {
    const disk = new CowBlockBackend(new MemoryBlockBackend(2 * CLUSTER_SIZE, true), new MemoryClusterStore());
    assert.throws(() => disk.write(2 * CLUSTER_SIZE - SECTOR, new Uint8Array(2 * SECTOR)), RangeError);
    assert.throws(() => disk.read(-SECTOR, new Uint8Array(SECTOR)), RangeError);
    assert.equal(disk.storedClusters, 0);
  });
});

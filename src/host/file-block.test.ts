// Tests of the file block backend: durability across reopening and a killed process, read-only images.

import { after, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk,
} from '../devices/virtio/blk.js';
import type { MockQueue } from '../devices/virtio/mock-driver.js';
import { feature } from '../devices/virtio/spec.js';
import { virtioFixture } from '../devices/virtio/test-support.js';
import { FileBlockBackend } from './file-block.js';

const directory = mkdtempSync(join(tmpdir(), 'mirrorball-file-block-'));
after(() => rmSync(directory, { recursive: true, force: true }));

const SECTOR = 512;
let images = 0;
function image(bytes: Uint8Array): string {
  const path = join(directory, `disk${images++}.img`);
  writeFileSync(path, bytes);
  return path;
}

const pattern = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 13 + seed) & 0xff);

function request(queue: MockQueue, type: number, sector: number, data: Uint8Array | number): { status: number; data: Uint8Array } {
  const header = new Uint8Array(16);
  new DataView(header.buffer).setUint32(0, type, true);
  new DataView(header.buffer).setUint32(8, sector, true);
  queue.add(typeof data === 'number'
    ? [{ data: header }, { writable: data }, { writable: 1 }]
    : [{ data: header }, { data }, { writable: 1 }]);
  queue.kick();
  const [used] = queue.takeUsed();
  return { status: used.written[used.length - 1], data: used.written.subarray(0, used.length - 1) };
}

describe('FileBlockBackend', () => {
  it('reads and writes the image at byte offsets, and refuses ranges past its end', () => {
    const disk = FileBlockBackend.open(image(pattern(8 * SECTOR, 1)));
    assert.equal(disk.size, 8 * SECTOR);
    const into = new Uint8Array(10);
    disk.read(100, into);
    assert.deepEqual(into, pattern(8 * SECTOR, 1).subarray(100, 110));
    disk.write(SECTOR, Uint8Array.of(9, 9));
    disk.read(SECTOR, into);
    assert.deepEqual(into.subarray(0, 2), Uint8Array.of(9, 9));
    assert.throws(() => disk.read(8 * SECTOR - 4, into), RangeError);
    assert.throws(() => disk.write(-1, into), RangeError);
    disk.close();
    assert.throws(() => disk.read(0, into), /closed/);
  });

  it('keeps flushed writes when the image is opened again', () => {
    const path = image(new Uint8Array(16 * SECTOR));
    const blk = new VirtioBlk(FileBlockBackend.open(path));
    const [queue] = virtioFixture(blk).driver.start([16]);
    const data = pattern(4 * SECTOR, 5);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 3, data).status, VIRTIO_BLK_S_OK);
    assert.equal(request(queue, VIRTIO_BLK_T_FLUSH, 0, 0).status, VIRTIO_BLK_S_OK);
    const again = FileBlockBackend.open(path, { readOnly: true });
    const into = new Uint8Array(data.length);
    again.read(3 * SECTOR, into);
    assert.deepEqual(into, data);
    again.close();
  });

  it('answers a write once the bytes are in the file, and a flush once fsync of the file has returned', () => {
    // fsync is watched through node:fs itself (the backend's named import follows it once synced).
    const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');
    const path = image(new Uint8Array(8 * SECTOR));
    const blk = new VirtioBlk(FileBlockBackend.open(path));
    const [queue] = virtioFixture(blk).driver.start([16]);
    const seen: string[] = [];
    let failing = false;
    const fsync = mock.method(fs, 'fsyncSync', (fd: number) => {
      // What the guest could know while the host syncs: no completion may be in the used ring yet.
      seen.push(`fsync of ${readlinkSync(`/proc/self/fd/${fd}`)} with ${queue.takeUsed().length} requests answered`);
      if (failing) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    syncBuiltinESMExports();
    try {
      const data = pattern(2 * SECTOR, 3);
      assert.equal(request(queue, VIRTIO_BLK_T_OUT, 2, data).status, VIRTIO_BLK_S_OK);
      assert.deepEqual(new Uint8Array(readFileSync(path)).subarray(2 * SECTOR, 4 * SECTOR), data, 'in the file before any flush');
      assert.deepEqual(seen, []);
      assert.equal(request(queue, VIRTIO_BLK_T_FLUSH, 0, 0).status, VIRTIO_BLK_S_OK);
      assert.deepEqual(seen, [`fsync of ${path} with 0 requests answered`]);
      failing = true;
      assert.equal(request(queue, VIRTIO_BLK_T_FLUSH, 0, 0).status, VIRTIO_BLK_S_IOERR, 'a failed fsync is the guest\'s IOERR');
      assert.equal(fsync.mock.callCount(), 2);
    } finally {
      fsync.mock.restore();
      syncBuiltinESMExports();
    }
  });

  it('keeps flushed writes when the process is killed right after the flush', () => {
    const path = image(new Uint8Array(4 * SECTOR));
    const module = fileURLToPath(new URL('./file-block.ts', import.meta.url));
    const script = `
      const { FileBlockBackend } = await import(${JSON.stringify(module)});
      const disk = FileBlockBackend.open(${JSON.stringify(path)});
      disk.write(${SECTOR}, new Uint8Array(${SECTOR}).fill(0xab));
      disk.flush();
      process.kill(process.pid, 'SIGKILL');`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const bytes = readFileSync(path);
    assert.deepEqual(bytes.subarray(SECTOR, 2 * SECTOR), Buffer.alloc(SECTOR, 0xab));
    assert.deepEqual(bytes.subarray(0, SECTOR), Buffer.alloc(SECTOR));
  });

  it('serves a read-only image: F_RO offered, guest writes fail with IOERR, the file is untouched', () => {
    const contents = pattern(8 * SECTOR, 7);
    const path = image(contents);
    const backend = FileBlockBackend.open(path, { readOnly: true });
    assert.throws(() => backend.write(0, new Uint8Array(1)), /read-only/);
    const blk = new VirtioBlk(backend);
    const { driver } = virtioFixture(blk);
    assert.ok(driver.deviceFeatures() & feature(VIRTIO_BLK_F_RO));
    const [queue] = driver.start([16]);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 0, new Uint8Array(SECTOR)).status, VIRTIO_BLK_S_IOERR);
    const read = request(queue, VIRTIO_BLK_T_IN, 1, SECTOR);
    assert.equal(read.status, VIRTIO_BLK_S_OK);
    assert.deepEqual(read.data, contents.subarray(SECTOR, 2 * SECTOR));
    assert.deepEqual(new Uint8Array(readFileSync(path)), contents);
    backend.close();
  });
});

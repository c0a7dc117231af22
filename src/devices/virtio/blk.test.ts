// Tests of virtio-blk through the transport and a mock driver: the requests Linux's virtio_blk sends.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  type BlockBackend, type BlockPageHook, BLOCK_PAGE as PAGE_BYTES, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk,
} from './blk.js';
import { MemoryBlockBackend } from './memory-block.js';
import { type MockBuffer, type MockQueue, MmioRegister as R } from './mock-driver.js';
import { DEVICE_ID_BLOCK, STATUS_DEVICE_NEEDS_RESET, feature } from './spec.js';
import { virtioFixture } from './test-support.js';

const MiB = 1024 * 1024;

function header(type: number, sector: number): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, type, true);
  view.setUint32(8, sector % 2 ** 32, true);
  view.setUint32(12, Math.floor(sector / 2 ** 32), true);
  return bytes;
}

/** Sends one request as Linux lays it out (header, data, status) and returns the status and data read. */
function request(queue: MockQueue, type: number, sector: number, data: { write?: Uint8Array; read?: number }, indirect = false) {
  const buffers: MockBuffer[] = [{ data: header(type, sector) }];
  if (data.write !== undefined) buffers.push({ data: data.write });
  if (data.read !== undefined) buffers.push({ writable: data.read });
  buffers.push({ writable: 1 });
  queue.add(buffers, indirect);
  queue.kick();
  const [used] = queue.takeUsed();
  assert.ok(used !== undefined, 'request completed');
  return { status: used.written[used.length - 1], data: used.written.subarray(0, used.length - 1), length: used.length };
}

function setup(backend: BlockBackend = new MemoryBlockBackend(MiB)) {
  const blk = new VirtioBlk(backend, { id: 'disk-0' });
  const fixture = virtioFixture(blk);
  const [queue] = fixture.driver.start([64]);
  return { ...fixture, queue, backend };
}

const pattern = (length: number, seed: number) => Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff);

describe('VirtioBlk', () => {
  it('presents capacity, seg_max, blk_size and FLUSH like QEMU', () => {
    const { driver } = setup(new MemoryBlockBackend(MiB + 100));
    assert.equal(driver.read(R.deviceId), DEVICE_ID_BLOCK);
    const features = driver.deviceFeatures();
    assert.ok(features & feature(VIRTIO_BLK_F_FLUSH));
    assert.equal(features & feature(VIRTIO_BLK_F_RO), 0n);
    assert.equal(driver.read(R.config), (MiB / 512) | 0);
    assert.equal(driver.read(R.config + 4), 0);
    assert.equal(driver.read(R.config + 12), 254);
    assert.equal(driver.read(R.config + 20), 512);
  });

  it('writes sectors and reads them back, through direct and indirect chains', () => {
    const { queue } = setup();
    const data = pattern(4096, 3);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 10, { write: data }).status, VIRTIO_BLK_S_OK);
    const direct = request(queue, VIRTIO_BLK_T_IN, 10, { read: 4096 });
    assert.equal(direct.status, VIRTIO_BLK_S_OK);
    assert.equal(direct.length, 4097);
    assert.deepEqual(direct.data, data);
    const indirect = request(queue, VIRTIO_BLK_T_IN, 11, { read: 512 }, true);
    assert.deepEqual(indirect.data, data.subarray(512, 1024));
  });

  it('moves requests larger than its copy chunk', () => {
    const { queue, backend } = setup();
    const data = pattern(200 * 1024, 9);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 1, { write: data }).status, VIRTIO_BLK_S_OK);
    assert.deepEqual((backend as MemoryBlockBackend).data.subarray(512, 512 + data.length), data);
    assert.deepEqual(request(queue, VIRTIO_BLK_T_IN, 1, { read: data.length }).data, data);
  });

  it('flushes the backend and answers GET_ID', () => {
    const { queue, backend } = setup();
    assert.equal(request(queue, VIRTIO_BLK_T_FLUSH, 0, {}).status, VIRTIO_BLK_S_OK);
    assert.equal((backend as MemoryBlockBackend).flushes, 1);
    const id = request(queue, VIRTIO_BLK_T_GET_ID, 0, { read: 20 });
    assert.equal(id.status, VIRTIO_BLK_S_OK);
    assert.equal(new TextDecoder().decode(id.data).replace(/\0+$/, ''), 'disk-0');
  });

  it('reports IOERR for sectors past the end and partial sectors', () => {
    const { queue } = setup();
    const last = MiB / 512 - 1;
    assert.equal(request(queue, VIRTIO_BLK_T_IN, last, { read: 512 }).status, VIRTIO_BLK_S_OK);
    assert.equal(request(queue, VIRTIO_BLK_T_IN, last, { read: 1024 }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 2 ** 53, { write: new Uint8Array(512) }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 0, { write: new Uint8Array(100) }).status, VIRTIO_BLK_S_IOERR);
  });

  it('reports UNSUPP for unknown requests and IOERR for a short header', () => {
    const { queue } = setup();
    assert.equal(request(queue, 99, 0, {}).status, VIRTIO_BLK_S_UNSUPP);
    queue.add([{ data: new Uint8Array(8) }, { writable: 1 }]);
    queue.kick();
    assert.equal(queue.takeUsed()[0]?.written[0], VIRTIO_BLK_S_IOERR);
  });

  it('offers F_RO for a read-only disk and refuses writes with IOERR', () => {
    const backend = new MemoryBlockBackend(pattern(MiB, 1), true);
    const { queue, driver } = setup(backend);
    assert.ok(driver.deviceFeatures() & feature(VIRTIO_BLK_F_RO));
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 0, { write: new Uint8Array(512) }).status, VIRTIO_BLK_S_IOERR);
    assert.deepEqual(backend.data.subarray(0, 512), pattern(MiB, 1).subarray(0, 512));
  });

  it('turns a host I/O error into IOERR and keeps working', () => {
    const failing: BlockBackend = {
      size: MiB, readOnly: false,
      read() { throw new Error('EIO'); },
      write() {},
      flush() { throw new Error('EIO'); },
    };
    const { queue, transport, log } = setup(failing);
    assert.equal(request(queue, VIRTIO_BLK_T_IN, 0, { read: 512 }).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(queue, VIRTIO_BLK_T_FLUSH, 0, {}).status, VIRTIO_BLK_S_IOERR);
    assert.equal(request(queue, VIRTIO_BLK_T_OUT, 0, { write: new Uint8Array(512) }).status, VIRTIO_BLK_S_OK);
    assert.equal(transport.status & STATUS_DEVICE_NEEDS_RESET, 0);
    assert.deepEqual(log, []);
  });

  it('needs reset for a request with no status byte', () => {
    const { queue, transport } = setup();
    queue.add([{ data: header(VIRTIO_BLK_T_FLUSH, 0) }]);
    queue.kick();
    assert.equal(transport.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  });

  it('contains a read that lands on its own rings', () => {
    // A disk of 0x01 bytes read over the available ring makes avail.idx jump to 257 mid-request.
    const { queue, memory, transport } = setup(new MemoryBlockBackend(new Uint8Array(MiB).fill(1)));
    const head = queue.add([{ data: header(VIRTIO_BLK_T_IN, 0) }, { writable: 512 }, { writable: 1 }]);
    const data = queue.desc + 16 * (head + 1);
    memory.writeU32(data, queue.avail);
    assert.doesNotThrow(() => queue.kick());
    assert.equal(transport.status & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  });

  it('offers whole, aligned base blocks to its page hook: a mapped block is not copied, a copied one is offered after the copy', () => {
    const disk = new MemoryBlockBackend(MiB);
    disk.write(0, pattern(8 * PAGE_BYTES, 3));
    // Blocks 0–7 are the base's, except block 2 (as if a copy-on-write overlay held it).
    const backend: BlockBackend = Object.assign(disk, { baseBlock: (index: number) => index !== 2 });
    const calls: string[] = [];
    const hook: BlockPageHook = {
      map: (block, address) => { calls.push(`map ${block} ${address % PAGE_BYTES}`); return block === 1; },
      copied: (block, address) => { calls.push(`copied ${block} ${address % PAGE_BYTES}`); },
    };
    const blk = new VirtioBlk(backend, { pages: hook });
    const fixture = virtioFixture(blk);
    const [queue] = fixture.driver.start([64]);
    const read = (sector: number, length: number, align: number, split = false) => {
      const data = split ? [{ writable: length / 2, align }, { writable: length / 2 }] : [{ writable: length, align }];
      queue.add([{ data: header(VIRTIO_BLK_T_IN, sector) }, ...data, { writable: 1 }]);
      queue.kick();
      const [used] = queue.takeUsed();
      return used!;
    };
    // Blocks 0–3 into four aligned pages: 0 and 3 copied then offered, 1 mapped (its bytes never written), 2 not the base's.
    const four = read(0, 4 * PAGE_BYTES, PAGE_BYTES);
    assert.equal(four.written[four.length - 1], VIRTIO_BLK_S_OK);
    assert.deepEqual(calls, ['map 0 0', 'map 1 0', 'map 3 0', 'copied 0 0', 'copied 3 0']);
    assert.deepEqual(four.written.subarray(0, PAGE_BYTES), pattern(8 * PAGE_BYTES, 3).subarray(0, PAGE_BYTES));
    assert.ok(four.written.subarray(PAGE_BYTES, 2 * PAGE_BYTES).every((b) => b === 0), 'the mapped block was copied');
    assert.deepEqual(four.written.subarray(2 * PAGE_BYTES, 4 * PAGE_BYTES), pattern(8 * PAGE_BYTES, 3).subarray(2 * PAGE_BYTES, 4 * PAGE_BYTES));
    assert.deepEqual({ ...blk.metrics }, { requests: 1, blocks: 4, wholeAligned: 4, base: 3, mapped: 1 });
    // Not offered: a read that does not start on a block (sector 1), and one into two buffers of half a page.
    calls.length = 0;
    read(1, PAGE_BYTES, PAGE_BYTES);
    read(8, PAGE_BYTES, PAGE_BYTES, true);
    assert.deepEqual(calls, []);
    assert.equal(blk.metrics.wholeAligned, 4);
    assert.equal(blk.metrics.blocks, 4 + 2 + 1);
  });
});

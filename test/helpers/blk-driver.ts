// A virtio-blk driver for tests, from the host: requests whose data buffer is exactly one guest range, as
// Linux's bio for a page is, with the ring's indices read from guest memory, so a driver goes on in a restored
// machine where the saved one was (the mock driver keeps them in the test's memory instead).

import assert from 'node:assert/strict';
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN } from '../../src/devices/virtio/blk.js';
import type { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import { GuestHeap, MmioRegister, MockDriver } from '../../src/devices/virtio/mock-driver.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';

const QUEUE_SIZE = 16;
const DESC_F_NEXT = 1;
const DESC_F_WRITE = 2;

/** Where a started driver put its queue and its request's header and status. */
export interface BlkQueue {
  desc: number;
  avail: number;
  /** 16 bytes of header, then the status byte. */
  header: number;
}

/** Starts the device behind `transport` with one queue and a header page in [heap, heap + 64 KiB). */
export function startBlk(transport: VirtioMmio, memory: GuestMemory, heap: number): BlkQueue {
  const driver = new MockDriver(transport, memory, new GuestHeap(heap, heap + 0x10000));
  const [queue] = driver.start([QUEUE_SIZE]);
  return { desc: queue!.desc, avail: queue!.avail, header: heap + 0xf000 };
}

/** One request of `type` at `sector` whose data is [address, address + length); asserts it succeeded. */
export function blkRequest(transport: VirtioMmio, memory: GuestMemory, q: BlkQueue, type: number, sector: number, address: number, length: number): void {
  const header = new Uint8Array(16);
  const view = new DataView(header.buffer);
  view.setUint32(0, type, true);
  view.setUint32(8, sector, true);
  memory.write(q.header, header);
  const chain = [
    { address: q.header, length: 16, flags: DESC_F_NEXT },
    { address, length, flags: DESC_F_NEXT | (type === VIRTIO_BLK_T_IN ? DESC_F_WRITE : 0) },
    { address: q.header + 16, length: 1, flags: DESC_F_WRITE },
  ];
  chain.forEach((d, i) => {
    const at = q.desc + 16 * i;
    memory.writeU32(at, d.address % 2 ** 32);
    memory.writeU32(at + 4, Math.floor(d.address / 2 ** 32));
    memory.writeU32(at + 8, d.length);
    memory.writeU16(at + 12, d.flags);
    memory.writeU16(at + 14, i + 1);
  });
  const index = memory.readU16(q.avail + 2);
  memory.writeU16(q.avail + 4 + 2 * (index % QUEUE_SIZE), 0);
  memory.writeU16(q.avail + 2, (index + 1) & 0xffff);
  transport.write(MmioRegister.queueNotify, 4, 0, 0);
  assert.equal(memory.read(q.header + 16, 1)[0], VIRTIO_BLK_S_OK, 'the request succeeded');
}

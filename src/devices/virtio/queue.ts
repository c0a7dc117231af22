// The split virtqueue (virtio 1.1 §2.6), device side: the one boundary where guest-written rings are validated.

import { DmaPending, type GuestMemory } from '../../memory/guest-memory.js';
import type { StateReader } from '../../memory/state.js';
import { AVAIL_F_NO_INTERRUPT, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, MAX_QUEUE_SIZE } from './spec.js';

// Ring layout (§2.6.5 descriptor table, §2.6.6 available ring, §2.6.8 used ring).
const DESC_SIZE = 16;
const DESC_LEN = 8;
const DESC_FLAGS = 12;
const DESC_NEXT = 14;
const RING_HEADER = 4;
const RING_IDX = 2;
const AVAIL_ENTRY = 2;
const USED_ENTRY = 8;
/** used_event / avail_event, present whether or not VIRTIO_F_EVENT_IDX is negotiated. */
const RING_TRAILER = 2;
const DESC_ALIGN = 16;
const AVAIL_ALIGN = 2;
const USED_ALIGN = 4;
const INDEX_MASK = 0xffff;
/** Largest indirect table we accept, as QEMU does (VIRTQUEUE_MAX_SIZE); it bounds the work per chain. */
export const MAX_INDIRECT_DESCRIPTORS = 1024;
const MAX_U32 = 0xffffffff;

/** A malformed ring or chain: the transport sets DEVICE_NEEDS_RESET (§2.1.2). */
export class VirtqueueError extends Error {}

/** Where the driver put one queue (QueueNum and the three addresses of virtio-mmio). */
export interface QueueLayout {
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
}

/** One guest buffer, already checked to lie in RAM. */
export interface Segment {
  readonly address: number;
  readonly length: number;
}

/** A descriptor chain split into its device-readable and device-writable parts (§2.6.4.2). */
export interface DescriptorChain {
  readonly head: number;
  readonly readable: readonly Segment[];
  readonly writable: readonly Segment[];
  /** Total bytes of each part; each fits in 32 bits. */
  readonly readableLength: number;
  readonly writableLength: number;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Why `layout` cannot be used, or undefined when it can (§2.6: sizes, §2.6 table of alignments). */
export function checkLayout(memory: GuestMemory, layout: QueueLayout, maxSize: number): string | undefined {
  const { size, desc, avail, used } = layout;
  if (!isPowerOfTwo(size) || size > maxSize || size > MAX_QUEUE_SIZE) return `queue size ${size} is not a power of two up to ${maxSize}`;
  if (desc % DESC_ALIGN !== 0 || avail % AVAIL_ALIGN !== 0 || used % USED_ALIGN !== 0) return 'misaligned ring';
  if (!memory.isRam(desc, DESC_SIZE * size)) return 'descriptor table outside RAM';
  if (!memory.isRam(avail, RING_HEADER + AVAIL_ENTRY * size + RING_TRAILER)) return 'available ring outside RAM';
  if (!memory.isRam(used, RING_HEADER + USED_ENTRY * size + RING_TRAILER)) return 'used ring outside RAM';
  return undefined;
}

export interface VirtqueueState {
  lastAvail: number;
  nextUsed: number;
  pushedSinceSignal: boolean;
}

export class Virtqueue {
  readonly size: number;
  private lastAvail = 0;
  private nextUsed = 0;
  private pushedSinceSignal = false;

  /** `layout` must have passed checkLayout; `indirect` says whether VIRTIO_F_INDIRECT_DESC was negotiated. */
  constructor(private readonly memory: GuestMemory, readonly layout: QueueLayout, private readonly indirect: boolean) {
    this.size = layout.size;
  }

  /** The device's place in the rings (snapshots; the rings themselves are guest memory). */
  saveState(): VirtqueueState {
    return { lastAvail: this.lastAvail, nextUsed: this.nextUsed, pushedSinceSignal: this.pushedSinceSignal };
  }

  /** Reads what `saveState` wrote from `r`, checked, and applies it. */
  restoreState(r: StateReader): void {
    const lastAvail = r.number('lastAvail', 0, INDEX_MASK);
    const nextUsed = r.number('nextUsed', 0, INDEX_MASK);
    const pushedSinceSignal = r.boolean('pushedSinceSignal');
    this.lastAvail = lastAvail;
    this.nextUsed = nextUsed;
    this.pushedSinceSignal = pushedSinceSignal;
  }

  /** Chains the driver has made available and the device has not taken. */
  available(): number {
    const ahead = (this.memory.readU16(this.layout.avail + RING_IDX) - this.lastAvail) & INDEX_MASK;
    if (ahead > this.size) throw new VirtqueueError(`available index ran ${ahead} entries ahead of a ring of ${this.size}`);
    return ahead;
  }

  /** The next available chain, or undefined. Throws VirtqueueError for a malformed chain, DmaError for bad rings. */
  pop(): DescriptorChain | undefined {
    if (this.available() === 0) return undefined;
    const slot = this.layout.avail + RING_HEADER + AVAIL_ENTRY * (this.lastAvail % this.size);
    const head = this.memory.readU16(slot);
    // A malformed chain takes its place in the ring all the same (the device then needs a reset anyway).
    let chain: DescriptorChain;
    try {
      chain = this.walk(head);
    } catch (error) {
      if (!(error instanceof DmaPending)) this.lastAvail = (this.lastAvail + 1) & INDEX_MASK;
      throw error;
    }
    this.prepare(chain);
    this.lastAvail = (this.lastAvail + 1) & INDEX_MASK;
    return chain;
  }

  /**
   * Across hosts, everything the device will touch for `chain` is made ready before the chain leaves the
   * ring: its buffers, its used entry, the used index and the avail flags `takeNotification` reads. A page
   * not here throws DmaPending (every missing page asked for) with nothing taken, so the work is done again
   * whole once the pages are in (docs/giantvm.md, "DMA").
   */
  private prepare(chain: DescriptorChain): void {
    const prepare = this.memory.prepare;
    if (prepare === undefined) return;
    let pending: DmaPending | undefined;
    const need = (address: number, length: number, write: boolean): void => {
      try {
        prepare.call(this.memory, address, length, write);
      } catch (error) {
        if (!(error instanceof DmaPending)) throw error;
        pending ??= error;
      }
    };
    for (const s of chain.readable) if (s.length > 0) need(s.address, s.length, false);
    for (const s of chain.writable) if (s.length > 0) need(s.address, s.length, true);
    need(this.layout.used + RING_HEADER + USED_ENTRY * (this.nextUsed % this.size), USED_ENTRY, true);
    need(this.layout.used, RING_HEADER, true);
    need(this.layout.avail, RING_HEADER, false);
    if (pending !== undefined) throw pending;
  }

  /**
   * Up to one ring's worth of chains. The bound matters: a request whose data lands on the available ring
   * could otherwise keep the ring looking full forever.
   */
  *drain(): Generator<DescriptorChain, void, undefined> {
    for (let budget = this.size; budget > 0; budget--) {
      const chain = this.pop();
      if (chain === undefined) return;
      yield chain;
    }
  }

  /** Returns chain `head` to the driver with `written` bytes written to its writable part (§2.6.8). */
  push(head: number, written: number): void {
    const entry = this.layout.used + RING_HEADER + USED_ENTRY * (this.nextUsed % this.size);
    this.memory.writeU32(entry, head);
    this.memory.writeU32(entry + 4, written);
    this.nextUsed = (this.nextUsed + 1) & INDEX_MASK;
    this.memory.writeU16(this.layout.used + RING_IDX, this.nextUsed);
    this.pushedSinceSignal = true;
  }

  /**
   * Whether the driver should be notified now: something was pushed since the last call, and the driver
   * did not ask for silence (§2.6.7.2, without VIRTIO_F_EVENT_IDX).
   */
  takeNotification(): boolean {
    if (!this.pushedSinceSignal) return false;
    this.pushedSinceSignal = false;
    return (this.memory.readU16(this.layout.avail) & AVAIL_F_NO_INTERRUPT) === 0;
  }

  /** Follows a chain from `head`, checking every rule of §2.6.5 that protects the device. */
  private walk(head: number): DescriptorChain {
    const readable: Segment[] = [];
    const writable: Segment[] = [];
    let readableLength = 0;
    let writableLength = 0;
    let table = this.layout.desc;
    let tableSize = this.size;
    let index = head;
    let remaining = this.size; // a chain longer than its table must loop (§2.6.5.3.1 forbids it anyway)
    let inIndirect = false;
    for (;;) {
      if (index >= tableSize) throw new VirtqueueError(`descriptor index ${index} outside a table of ${tableSize}`);
      if (remaining-- === 0) throw new VirtqueueError('descriptor chain loops or is longer than its table');
      const at = table + DESC_SIZE * index;
      const address = this.memory.readU64(at);
      const length = this.memory.readU32(at + DESC_LEN);
      const flags = this.memory.readU16(at + DESC_FLAGS);
      if ((flags & DESC_F_INDIRECT) !== 0) {
        // §2.6.5.3.1: only with the feature, never nested, never together with NEXT, a whole number of entries.
        if (!this.indirect) throw new VirtqueueError('indirect descriptor without VIRTIO_F_INDIRECT_DESC');
        if (inIndirect) throw new VirtqueueError('nested indirect descriptor');
        if ((flags & DESC_F_NEXT) !== 0) throw new VirtqueueError('indirect descriptor with NEXT');
        if (length === 0 || length % DESC_SIZE !== 0) throw new VirtqueueError(`indirect table of ${length} bytes`);
        if (length / DESC_SIZE > MAX_INDIRECT_DESCRIPTORS) throw new VirtqueueError(`indirect table of ${length / DESC_SIZE} entries`);
        if (!this.memory.isRam(address, length)) throw new VirtqueueError('indirect table outside RAM');
        table = address;
        tableSize = length / DESC_SIZE;
        remaining = tableSize;
        index = 0;
        inIndirect = true;
        continue;
      }
      if (length > 0 && !this.memory.isRam(address, length)) {
        throw new VirtqueueError(`buffer of ${length} bytes at 0x${address.toString(16)} outside RAM`);
      }
      if ((flags & DESC_F_WRITE) !== 0) {
        writableLength += length;
        if (writableLength > MAX_U32) throw new VirtqueueError('writable part longer than 4 GiB');
        writable.push({ address, length });
      } else {
        // §2.6.4.2: device-readable descriptors come before device-writable ones.
        if (writable.length > 0) throw new VirtqueueError('device-readable descriptor after a device-writable one');
        readableLength += length;
        if (readableLength > MAX_U32) throw new VirtqueueError('readable part longer than 4 GiB');
        readable.push({ address, length });
      }
      if ((flags & DESC_F_NEXT) === 0) break;
      index = this.memory.readU16(at + DESC_NEXT);
    }
    return { head, readable, writable, readableLength, writableLength };
  }
}

/** `length` bytes starting `offset` bytes into the concatenation of `segments` (fewer if they end first). */
export function gather(memory: GuestMemory, segments: readonly Segment[], offset: number, length: number): Uint8Array {
  const total = segments.reduce((sum, s) => sum + s.length, 0);
  const out = new Uint8Array(Math.max(0, Math.min(length, total - offset)));
  let skip = offset;
  let filled = 0;
  for (const segment of segments) {
    if (filled === out.length) break;
    if (skip >= segment.length) {
      skip -= segment.length;
      continue;
    }
    const take = Math.min(segment.length - skip, out.length - filled);
    out.set(memory.read(segment.address + skip, take), filled);
    filled += take;
    skip = 0;
  }
  return out;
}

/** Copies `data` to `offset` bytes into the concatenation of `segments`; returns the bytes that fitted. */
export function scatter(memory: GuestMemory, segments: readonly Segment[], offset: number, data: Uint8Array): number {
  let skip = offset;
  let written = 0;
  for (const segment of segments) {
    if (written === data.length) break;
    if (skip >= segment.length) {
      skip -= segment.length;
      continue;
    }
    const take = Math.min(segment.length - skip, data.length - written);
    memory.write(segment.address + skip, data.subarray(written, written + take));
    written += take;
    skip = 0;
  }
  return written;
}

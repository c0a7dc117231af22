// A block backend that records every write and flush (dm-log-writes' log), and what a power cut leaves of them.

import type { BlockBackend } from './blk.js';
import { SeededEntropy } from './rng.js';

/** One completed request, in the order the device finished them. */
export type JournalEntry =
  | { kind: 'write'; offset: number; data: Uint8Array }
  | { kind: 'flush' };

/**
 * Passes every request to `inner` and, once it has returned, appends it to `entries`: a write with a copy
 * of its bytes, a flush. A request the inner backend refused (it threw: the guest sees IOERR) is not
 * recorded, since the guest was never told it happened. Reads are not recorded.
 */
export class JournalBlockBackend implements BlockBackend {
  readonly entries: JournalEntry[] = [];

  constructor(private readonly inner: BlockBackend) {}

  get size(): number {
    return this.inner.size;
  }

  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  read(offset: number, into: Uint8Array): void {
    this.inner.read(offset, into);
  }

  write(offset: number, data: Uint8Array): void {
    this.inner.write(offset, data);
    this.entries.push({ kind: 'write', offset, data: data.slice() });
  }

  flush(): void {
    this.inner.flush();
    this.entries.push({ kind: 'flush' });
  }
}

/** Where the power went: after the first `cut` entries of a journal, and which of the unflushed writes landed. */
export interface PowerCut {
  /** Entries completed before the cut (0 … entries.length). */
  cut: number;
  /** Seeds the choice of the unflushed writes that reached the medium anyway. */
  seed: number;
}

/**
 * The writes a disk with a volatile write cache may have kept when the power went after `cut.cut` entries,
 * in the order to apply them: every write before the last completed flush (a flush makes every write that
 * completed before it durable, virtio 1.1 §5.2.6.2), then each later write with probability 1/2, chosen by
 * the seed (CrashMonkey's and dm-log-writes' model). Writes are whole: a write is not torn inside itself.
 */
export function survivingWrites(entries: readonly JournalEntry[], cut: PowerCut): { durable: number; writes: { offset: number; data: Uint8Array }[] } {
  if (!Number.isInteger(cut.cut) || cut.cut < 0 || cut.cut > entries.length) {
    throw new RangeError(`cut ${cut.cut} outside a journal of ${entries.length} entries`);
  }
  let lastFlush = -1;
  for (let i = cut.cut - 1; i >= 0; i--) {
    if (entries[i]!.kind === 'flush') {
      lastFlush = i;
      break;
    }
  }
  const random = new SeededEntropy(cut.seed);
  const writes: { offset: number; data: Uint8Array }[] = [];
  for (let i = 0; i < cut.cut; i++) {
    const entry = entries[i]!;
    if (entry.kind !== 'write') continue;
    if (i < lastFlush || (random.next() & 1) === 1) writes.push(entry);
  }
  return { durable: lastFlush + 1, writes };
}

/** `base` (not changed) with what survives the power cut written over a copy of it. */
export function imageAfterPowerCut(base: Uint8Array, entries: readonly JournalEntry[], cut: PowerCut): Uint8Array {
  const image = base.slice();
  for (const write of survivingWrites(entries, cut).writes) image.set(write.data, write.offset);
  return image;
}

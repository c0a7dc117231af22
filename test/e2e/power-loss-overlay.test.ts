// End to end: a power cut never loses a write the guest was told is durable, on a copy-on-write disk whose
// overlay is a file (overlay=FILE). As test/e2e/power-loss.test.ts, but what is journaled and cut is the
// overlay file's own writes and syncs, as the host's page cache would lose them: after each cut the overlay
// is opened again (its header, bitmap and clusters as they survived) over the base, and the disk it shows
// must hold every acknowledged record with e2fsck clean.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { CowBlockBackend } from '../../src/devices/virtio/cow-block.js';
import { imageAfterPowerCut, type JournalEntry } from '../../src/devices/virtio/journal-block.js';
import { MemoryBlockBackend } from '../../src/devices/virtio/memory-block.js';
import { SeededEntropy } from '../../src/devices/virtio/rng.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { encodeHeader, FileClusterStore, overlayLength, type OverlayIo } from '../../src/host/overlay-file.js';
import { checkImage, e2fsprogsMissing, makeExt4Image, runDurable } from '../helpers/power-cut.js';

const LONG = process.env.MIRRORBALL_LONG === '1';
const RECORDS = LONG ? 80 : 16;
const CUTS = LONG ? 200 : 30;
const DISK_MIB = 16;

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : e2fsprogsMissing() ?? false;

/**
 * The overlay file in memory, its every write and sync journaled in order as the power-loss test journals a
 * disk's (a sync, fdatasync or fsync, is a flush: it makes every write before it durable).
 */
class JournaledFile implements OverlayIo {
  readonly entries: JournalEntry[] = [];

  constructor(readonly bytes: Uint8Array) {}

  get length(): number {
    return this.bytes.length;
  }

  read(position: number, into: Uint8Array): number {
    const n = Math.max(0, Math.min(into.length, this.bytes.length - position));
    into.set(this.bytes.subarray(position, position + n));
    return n;
  }

  write(position: number, data: Uint8Array): void {
    this.bytes.set(data, position);
    this.entries.push({ kind: 'write', offset: position, data: data.slice() });
  }

  syncData(): void {
    this.entries.push({ kind: 'flush' });
  }

  sync(): void {
    this.entries.push({ kind: 'flush' });
  }

  close(): void {}
}

interface GuestRun {
  base: Uint8Array;
  identity: { size: number; sha256: Uint8Array };
  /** The overlay file as made, before the guest ran. */
  empty: Uint8Array;
  entries: readonly JournalEntry[];
  ackedAt: number[];
  order: number[];
  seconds: number;
}

let work: string;
let run: GuestRun;

before(async () => {
  if (skip !== false) return;
  work = mkdtempSync(join(tmpdir(), 'mb-power-loss-overlay-'));
  const base = makeExt4Image(join(work, 'base.img'), DISK_MIB);
  const identity = { size: base.length, sha256: createHash('sha256').update(base).digest() };
  const empty = new Uint8Array(overlayLength(base.length));
  empty.set(encodeHeader(identity));
  const file = new JournaledFile(empty.slice());
  // The base read-only: a write to it would throw, and the guest would see an I/O error.
  const disk = new CowBlockBackend(new MemoryBlockBackend(base.slice(), true), new FileClusterStore(file, identity, 'overlay'));
  const durable = await runDurable(guest!, disk, RECORDS, () => file.entries.length);
  run = { base, identity, empty, entries: file.entries, ...durable };
});

after(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** The disk the overlay shows over the base after the power went with `entries`' first `cut` done. */
function diskAfterCut(entries: readonly JournalEntry[], cut: number, seed: number): Uint8Array {
  const overlay = imageAfterPowerCut(run.empty, entries, { cut, seed });
  const disk = new CowBlockBackend(new MemoryBlockBackend(run.base.slice(), true), new FileClusterStore(new JournaledFile(overlay), run.identity, 'overlay'));
  const bytes = new Uint8Array(disk.size);
  disk.read(0, bytes);
  return bytes;
}

describe('power loss never loses an acknowledged write on an overlay file', { skip }, () => {
  it('the guest acknowledged every record, in order, and the overlay file saw syncs', () => {
    assert.deepEqual(run.order, Array.from({ length: RECORDS }, (_, i) => i + 1));
    assert.ok(run.entries.filter((e) => e.kind === 'flush').length >= RECORDS);
  });

  it(`at ${CUTS} cut points of the overlay file every acknowledged record is there and e2fsck -fn is clean`, (t) => {
    const started = performance.now();
    const random = new SeededEntropy(29);
    const syncs = run.entries.flatMap((e, i) => (e.kind === 'flush' ? [i] : []));
    const cuts = [run.entries.length];
    // Half just before a sync completes, half anywhere.
    while (cuts.length < CUTS) cuts.push(cuts.length % 2 === 1 ? syncs[random.next() % syncs.length]! : random.next() % (run.entries.length + 1));
    const failures: string[] = [];
    let records = 0;
    for (const [i, cut] of cuts.entries()) {
      let acked = 0;
      while (acked < run.ackedAt.length && run.ackedAt[acked]! <= cut) acked++;
      records += acked;
      const result = checkImage(diskAfterCut(run.entries, cut, i), acked, work);
      if (result.problems.length > 0) failures.push(`cut ${cut} of ${run.entries.length} (seed ${i}, ${acked} acknowledged): ${result.problems.join('; ')}`);
    }
    const writes = run.entries.filter((e) => e.kind === 'write').length;
    t.diagnostic(`guest run ${run.seconds.toFixed(1)} s: ${RECORDS} records, the overlay file saw ${writes} writes and ${run.entries.length - writes} syncs`);
    t.diagnostic(`${CUTS} cut points, ${records} acknowledged records checked, replays ${((performance.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(failures, []);
  });

  it('the check catches an overlay file whose syncs do nothing', () => {
    const unsynced = run.entries.filter((e) => e.kind === 'write');
    const result = checkImage(diskAfterCut(unsynced, unsynced.length, 1), RECORDS, work);
    assert.notDeepEqual(result.problems, []);
  });
});

// End to end: a power cut never loses a write the guest was told is durable. The guest writes numbered
// records to an ext4 disk and says each number once fsync returned; the disk's backend journals every
// write and flush; then, offline, each cut point is replayed onto a copy of the image as a power cut would
// leave it (CrashMonkey's and dm-log-writes' method), and every acknowledged record must be there with
// e2fsck clean. `npm test` cuts a few tens of times; MIRRORBALL_LONG=1 cuts 200 times.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { JournalBlockBackend, type JournalEntry } from '../../src/devices/virtio/journal-block.js';
import { MemoryBlockBackend } from '../../src/devices/virtio/memory-block.js';
import { SeededEntropy } from '../../src/devices/virtio/rng.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { checkPowerCut, durableRecord, e2fsprogsMissing, makeExt4Image, runDurable } from '../helpers/power-cut.js';

const LONG = process.env.MIRRORBALL_LONG === '1';
const RECORDS = LONG ? 80 : 16;
const CUTS = LONG ? 200 : 30;
const DISK_MIB = 16;

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : e2fsprogsMissing() ?? false;

/** One guest run: the image before it, the backend's journal, and where in the journal each record was acknowledged. */
interface GuestRun {
  base: Uint8Array;
  entries: readonly JournalEntry[];
  /** ackedAt[n - 1]: journal entries completed when the console showed "DURABLE n". */
  ackedAt: number[];
  /** Record numbers in the order the console acknowledged them. */
  order: number[];
  seconds: number;
}

let work: string;
let guestRun: GuestRun;

before(async () => {
  if (skip !== false) return;
  work = mkdtempSync(join(tmpdir(), 'mb-power-loss-'));
  const base = makeExt4Image(join(work, 'base.img'), DISK_MIB);
  const journal = new JournalBlockBackend(new MemoryBlockBackend(base.slice()));
  const run = await runDurable(guest!, journal, RECORDS, () => journal.entries.length);
  guestRun = { base, entries: journal.entries, ...run };
});

after(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** Records acknowledged before the first `cut` journal entries completed. */
function ackedBefore(run: GuestRun, cut: number): number {
  let acked = 0;
  while (acked < run.ackedAt.length && run.ackedAt[acked]! <= cut) acked++;
  return acked;
}

/**
 * `count` cut points, seeded: half just before a flush completes (when the most writes wait unflushed),
 * half anywhere in the journal; the first is the whole journal.
 */
function cutPoints(entries: readonly JournalEntry[], count: number, seed: number): number[] {
  const random = new SeededEntropy(seed);
  const flushes = entries.flatMap((e, i) => (e.kind === 'flush' ? [i] : []));
  const cuts = [entries.length];
  while (cuts.length < count) {
    cuts.push(cuts.length % 2 === 1 && flushes.length > 0 ? flushes[random.next() % flushes.length]! : random.next() % (entries.length + 1));
  }
  return cuts;
}

describe('power loss never loses an acknowledged write', { skip }, () => {
  it('the guest acknowledged every record, in order, over a disk that saw flushes', () => {
    assert.deepEqual(guestRun.order, Array.from({ length: RECORDS }, (_, i) => i + 1));
    const flushes = guestRun.entries.filter((e) => e.kind === 'flush').length;
    // Each record takes five fsyncs; ext4 commits its journal with a flush before and after the commit block.
    assert.ok(flushes >= RECORDS, `${flushes} flushes for ${RECORDS} records: the guest does not flush`);
  });

  it(`at ${CUTS} cut points every acknowledged record is there and e2fsck -fn is clean`, (t) => {
    const started = performance.now();
    let records = 0;
    const failures: string[] = [];
    for (const [i, cut] of cutPoints(guestRun.entries, CUTS, 28).entries()) {
      const acked = ackedBefore(guestRun, cut);
      const result = checkPowerCut(guestRun.base, guestRun.entries, { cut, seed: i }, acked, work);
      records += acked;
      if (result.problems.length > 0) failures.push(`cut ${cut} of ${guestRun.entries.length} (seed ${i}, ${acked} acknowledged): ${result.problems.join('; ')}`);
    }
    const writes = guestRun.entries.filter((e) => e.kind === 'write').length;
    t.diagnostic(`guest run ${guestRun.seconds.toFixed(1)} s: ${RECORDS} records, ${writes} writes and ${guestRun.entries.length - writes} flushes journaled`);
    t.diagnostic(`${CUTS} cut points, ${records} acknowledged records checked, replays ${((performance.now() - started) / 1000).toFixed(1)} s`);
    assert.deepEqual(failures, []);
  });

  it('the check catches a disk that drops flushed writes', () => {
    // The same journal without its flushes is a disk that ignores them: at the end of the run half the
    // writes, all acknowledged, are lost, which the check must see.
    const ignoringFlushes = guestRun.entries.filter((e) => e.kind === 'write');
    const result = checkPowerCut(guestRun.base, ignoringFlushes, { cut: ignoringFlushes.length, seed: 1 }, RECORDS, work);
    assert.notDeepEqual(result.problems, []);
    // And a cut that keeps everything has every record.
    const whole = checkPowerCut(guestRun.base, guestRun.entries, { cut: guestRun.entries.length, seed: 1 }, RECORDS, work);
    assert.deepEqual(whole.problems, []);
    assert.equal(durableRecord(1).length, 16 + 20 + 37 + 1);
  });
});

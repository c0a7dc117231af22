// Tests of the overlay file: what it keeps across a reopen, every damaged or mismatched file refused in one line, and power cuts.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CLUSTER_SIZE, CowBlockBackend } from '../devices/virtio/cow-block.js';
import { MemoryBlockBackend } from '../devices/virtio/memory-block.js';
import { SeededEntropy } from '../devices/virtio/rng.js';
import { DriveError, openDrive } from './drives.js';
import { encodeHeader, FileClusterStore, OVERLAY_MAGIC, overlayLength, type OverlayIo } from './overlay-file.js';

const dir = mkdtempSync(join(tmpdir(), 'mirrorball-overlay-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECTOR = 512;
const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

function patterned(size: number, salt = 0): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 13 + salt + (i >> 12)) & 0xff;
  return data;
}

let serial = 0;
function files(size = 64 * CLUSTER_SIZE): { base: string; overlay: string; original: Uint8Array } {
  const n = serial++;
  const base = join(dir, `base${n}.img`);
  const original = patterned(size, n);
  writeFileSync(base, original);
  return { base, overlay: join(dir, `overlay${n}.mbov`), original };
}

describe('the overlay file', () => {
  it('keeps what was written across a close and a reopen, and the base is never written', () => {
    const { base, overlay, original } = files();
    const before = sha256(readFileSync(base));
    const drive = openDrive({ file: base, readOnly: false, snapshot: true, overlay }, 'test');
    drive.write(3 * SECTOR, new Uint8Array(SECTOR).fill(0x11)); // part of cluster 0
    drive.write(5 * CLUSTER_SIZE, new Uint8Array(2 * CLUSTER_SIZE).fill(0x22)); // clusters 5 and 6 whole
    drive.flush();
    drive.close();
    assert.equal(statSync(overlay).size, overlayLength(original.length));
    assert.equal(statSync(overlay).mode & 0o777, 0o600, 'the overlay holds the guest\'s data: its user\'s only');
    const again = openDrive({ file: base, readOnly: false, snapshot: true, overlay }, 'test');
    const seen = new Uint8Array(original.length);
    again.read(0, seen);
    again.close();
    const expected = original.slice();
    expected.fill(0x11, 3 * SECTOR, 4 * SECTOR).fill(0x22, 5 * CLUSTER_SIZE, 7 * CLUSTER_SIZE);
    assert.deepEqual(seen, expected);
    assert.equal(sha256(readFileSync(base)), before, 'the base image is unchanged');
  });

  it('refuses an overlay made for another base, naming both', () => {
    const a = files();
    const b = files();
    openDrive({ file: a.base, readOnly: false, snapshot: true, overlay: a.overlay }, 'test').close();
    assert.throws(() => openDrive({ file: b.base, readOnly: false, snapshot: true, overlay: a.overlay }, 'test'),
      (e: Error) => e instanceof DriveError && /was made for another base image/.test(e.message) && !e.message.includes('\n'));
    // The same base with one byte changed is another base too.
    const changed = readFileSync(a.base);
    changed[100] ^= 1;
    writeFileSync(a.base, changed);
    assert.throws(() => openDrive({ file: a.base, readOnly: false, snapshot: true, overlay: a.overlay }, 'test'), /was made for another base image/);
  });

  it('refuses a damaged or foreign file with one line each', () => {
    const { base, overlay } = files();
    openDrive({ file: base, readOnly: false, snapshot: true, overlay }, 'test').close();
    const good = readFileSync(overlay);
    const cases: [string, (bytes: Buffer) => Buffer, RegExp][] = [
      ['not an overlay', () => Buffer.from('#!/bin/sh\necho hello\n'), /is not a Mirrorball overlay/],
      ['a short header', (b) => b.subarray(0, 100), /damaged: shorter than its 4096-byte header/],
      ['a flipped header byte', (b) => { b[40] ^= 1; return b; }, /damaged: its header checksum does not match/],
      ['a later version', (b) => { b.writeUInt32LE(2, 8); return b; }, /has format version 2; this Mirrorball reads version 1/],
      ['a truncated file', (b) => b.subarray(0, b.length - CLUSTER_SIZE), /damaged: it is \d+ bytes long, not the \d+ its header says/],
      ['a bit past the last cluster', (b) => { b[4096 + 8] = 1; return b; }, /damaged: its bitmap marks cluster 64, past the disk's last \(63\)/],
    ];
    for (const [what, damage, message] of cases) {
      writeFileSync(overlay, damage(Buffer.from(good)));
      assert.throws(() => openDrive({ file: base, readOnly: false, snapshot: true, overlay }, 'test'),
        (e: Error) => e instanceof DriveError && message.test(e.message) && !e.message.includes('\n'), what);
    }
    // A refused overlay released its disks: the good one opens again.
    writeFileSync(overlay, good);
    openDrive({ file: base, readOnly: false, snapshot: true, overlay }, 'test').close();
  });

  it('starts with its magic and format version, as docs/disks.md describes', () => {
    const header = encodeHeader({ size: 10 * CLUSTER_SIZE, sha256: new Uint8Array(32).fill(7) });
    assert.equal(Buffer.from(header.subarray(0, 8)).toString(), OVERLAY_MAGIC);
    assert.equal(Buffer.from(header).readUInt32LE(8), 1);
    assert.equal(Buffer.from(header).readBigUInt64LE(24), BigInt(10 * CLUSTER_SIZE));
  });
});

/**
 * A file in memory with a volatile cache, as the host's page cache is: each write is kept in order until a
 * sync makes all of them durable. A power cut keeps the durable bytes and each later write with
 * probability 1/2, whole (CrashMonkey's model, as the power-loss test's).
 */
class CachedFile implements OverlayIo {
  readonly durable: Uint8Array;
  readonly volatile: { position: number; data: Uint8Array }[] = [];
  /** Every write and sync in order: the moments at which the power may go. */
  events = 0;

  constructor(bytes: Uint8Array) {
    this.durable = bytes.slice();
  }

  get length(): number {
    return this.durable.length;
  }

  read(position: number, into: Uint8Array): number {
    const image = this.current();
    const n = Math.max(0, Math.min(into.length, image.length - position));
    into.set(image.subarray(position, position + n));
    return n;
  }

  write(position: number, data: Uint8Array): void {
    this.volatile.push({ position, data: data.slice() });
    this.events++;
  }

  syncData(): void {
    this.sync();
  }

  sync(): void {
    for (const w of this.volatile.splice(0)) this.durable.set(w.data, w.position);
    this.events++;
  }

  close(): void {}

  current(): Uint8Array {
    const image = this.durable.slice();
    for (const w of this.volatile) image.set(w.data, w.position);
    return image;
  }

  afterPowerCut(seed: number): Uint8Array {
    const image = this.durable.slice();
    const random = new SeededEntropy(seed);
    for (const w of this.volatile) if ((random.next() & 1) === 1) image.set(w.data, w.position);
    return image;
  }
}

describe('the overlay file after a power cut', () => {
  const clusters = 12;
  const size = clusters * CLUSTER_SIZE;
  const base = patterned(size, 99);
  const identity = { size, sha256: createHash('sha256').update(base).digest() };
  const empty = (): Uint8Array => {
    const bytes = new Uint8Array(overlayLength(size));
    bytes.set(encodeHeader(identity));
    return bytes;
  };
  type Op = { kind: 'write'; sector: number; sectors: number; byte: number } | { kind: 'flush' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('write' as const), sector: fc.integer({ min: 0, max: size / SECTOR - 1 }), sectors: fc.integer({ min: 1, max: 20 }), byte: fc.integer({ min: 1, max: 255 }) }),
    fc.constant<Op>({ kind: 'flush' }),
  );

  it('loses nothing a flush covered, and every cluster holds one of the contents the guest gave it since', () => {
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 30 }), fc.nat(), fc.nat(), (ops, cutChoice, seed) => {
      // Run every request once to count the file's events, then again up to the cut.
      const total = (() => {
        const file = new CachedFile(empty());
        const disk = new CowBlockBackend(new MemoryBlockBackend(base.slice(), true), new FileClusterStore(file, identity, 'o'));
        for (const o of ops) apply(disk, o);
        return file.events;
      })();
      const cut = cutChoice % (total + 1);
      const file = new CachedFile(empty());
      const disk = new CowBlockBackend(new MemoryBlockBackend(base.slice(), true), new FileClusterStore(file, identity, 'o'));
      // The disk's contents after each request; the allowed contents of a cluster are those from the last
      // flush that completed before the cut to the request the cut fell in.
      const states: Uint8Array[] = [base.slice()];
      let lastFlush = 0;
      for (const o of ops) {
        if (file.events >= cut) break;
        apply(disk, o);
        const whole = new Uint8Array(size);
        disk.read(0, whole);
        states.push(whole);
        if (o.kind === 'flush' && file.events <= cut) lastFlush = states.length - 1;
        if (file.events > cut) break;
      }
      // Requests whose file events run past the cut were cut short; the power went at `cut` events.
      const image = powerCutAt(ops, cut, seed);
      const reopened = new CowBlockBackend(new MemoryBlockBackend(base.slice(), true), new FileClusterStore(new CachedFile(image), identity, 'o'));
      const after = new Uint8Array(size);
      reopened.read(0, after);
      for (let c = 0; c < clusters; c++) {
        const range = [c * CLUSTER_SIZE, (c + 1) * CLUSTER_SIZE] as const;
        const got = sha256(after.subarray(...range));
        const allowed = states.slice(lastFlush).map((s) => sha256(s.subarray(...range)));
        assert.ok(allowed.includes(got), `cluster ${c} holds contents the guest never gave it after the last flush (cut ${cut} of ${total})`);
      }
    }), { numRuns: 300 });

    function apply(disk: CowBlockBackend, o: Op): void {
      if (o.kind === 'flush') disk.flush();
      else {
        const sectors = Math.min(o.sectors, size / SECTOR - o.sector);
        disk.write(o.sector * SECTOR, new Uint8Array(sectors * SECTOR).fill(o.byte));
      }
    }

    /** The overlay's bytes when the power went after `cut` file events. */
    function powerCutAt(list: Op[], cut: number, seed: number): Uint8Array {
      const file = new CutFile(empty(), cut);
      const disk = new CowBlockBackend(new MemoryBlockBackend(base.slice(), true), new FileClusterStore(file, identity, 'o'));
      try {
        for (const o of list) apply(disk, o);
      } catch (error) {
        if (!(error instanceof PowerCut)) throw error;
      }
      return file.afterPowerCut(seed);
    }
  });
});

class PowerCut extends Error {}

/** A CachedFile whose power goes after `cut` events: the next write or sync never happens. */
class CutFile extends CachedFile {
  constructor(bytes: Uint8Array, private readonly cut: number) {
    super(bytes);
  }

  override write(position: number, data: Uint8Array): void {
    if (this.events >= this.cut) throw new PowerCut();
    super.write(position, data);
  }

  override sync(): void {
    if (this.events >= this.cut) throw new PowerCut();
    super.sync();
  }
}

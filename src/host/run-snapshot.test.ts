// `run`'s snapshot file with a copy-on-write disk: a snapshot=on disk's changed clusters go into the file and a
// restore's disk starts with them; an overlay file is referenced, and a restore refuses it once it changed.

import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RAM_BASE } from '../board/address-map.js';
import { machineDisks } from '../board/disk-pages.js';
import { BLOCK_PAGE, VIRTIO_BLK_T_OUT } from '../devices/virtio/blk.js';
import { blkRequest, startBlk } from '../../test/helpers/blk-driver.js';
import { buildMachine, type MachineSpec } from './machine-spec.js';
import { loadRunSnapshot, saveRunSnapshot } from './run-snapshot.js';
import { SnapshotFileError } from './snapshot-file.js';
import type { DriveSpec } from './drives.js';

const MiB = 2 ** 20;
const directory = mkdtempSync(join(tmpdir(), 'mirrorball-run-snapshot-'));
after(() => rmSync(directory, { recursive: true, force: true }));
const base = join(directory, 'base.img');
writeFileSync(base, Uint8Array.from({ length: 32 * BLOCK_PAGE }, (_, i) => (i % 253) + 1));

const io = { console: () => {}, log: () => {}, hostMilliseconds: () => 0, translate: false };
const spec = (drive: DriveSpec): MachineSpec => ({
  config: { harts: 1, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }] }, time: 'instructions', builtinSbi: true, timing: null, drives: [drive], rngSeed: null,
});

/** Every block of the machine's one disk. */
function diskBytes(built: ReturnType<typeof buildMachine>): Buffer {
  const device = machineDisks(built.machine)[0]!;
  const out = Buffer.alloc(device.blocks * BLOCK_PAGE);
  for (let k = 0; k < device.blocks; k++) device.readBlock(k, out.subarray(k * BLOCK_PAGE, (k + 1) * BLOCK_PAGE));
  return out;
}

/** Writes a page of 0x77 to block `block`, as the guest's driver would. */
function write(built: ReturnType<typeof buildMachine>, block: number): void {
  const transport = built.machine.virtioTransports().find((t) => t !== undefined)!;
  const memory = built.machine.bus.guestMemory();
  memory.write(RAM_BASE + 4 * MiB, new Uint8Array(BLOCK_PAGE).fill(0x77));
  blkRequest(transport, memory, startBlk(transport, memory, RAM_BASE + MiB), VIRTIO_BLK_T_OUT, block * 8, RAM_BASE + 4 * MiB, BLOCK_PAGE);
}

describe('run snapshots of copy-on-write disks', () => {
  it('snapshot=on: the changed clusters are in the file, and the restored disk starts with them', () => {
    const s = spec({ file: base, readOnly: false, snapshot: true });
    const built = buildMachine(s, io);
    write(built, 5);
    const file = join(directory, 'cow.snap');
    saveRunSnapshot(file, built, s, {});
    const expected = diskBytes(built);
    for (const d of built.disks) d.close();
    const loaded = loadRunSnapshot(file);
    assert.equal(loaded.spec.drives[0]!.snapshot, true);
    const again = buildMachine(loaded.spec, io);
    loaded.restoreInto(again);
    assert.ok(diskBytes(again).equals(expected), 'the disk as saved, block 5 the guest\'s');
    assert.equal(diskBytes(again)[5 * BLOCK_PAGE], 0x77);
    for (const d of again.disks) d.close();
  });

  it('overlay=FILE: referenced by path and hash, refused in one line once written since', () => {
    const overlay = join(directory, 'disk.overlay');
    const s = spec({ file: base, readOnly: false, overlay });
    const built = buildMachine(s, io);
    write(built, 7);
    const file = join(directory, 'overlay.snap');
    saveRunSnapshot(file, built, s, {});
    for (const d of built.disks) d.close();
    const loaded = loadRunSnapshot(file);
    const again = buildMachine(loaded.spec, io);
    loaded.restoreInto(again);
    assert.equal(diskBytes(again)[7 * BLOCK_PAGE], 0x77);
    write(again, 8); // the restored machine writes on
    for (const d of again.disks) d.close();
    assert.throws(() => loadRunSnapshot(file), (e: Error) => e instanceof SnapshotFileError
      && /^snapshot '.*overlay\.snap' cannot be restored: overlay '.*disk\.overlay' changed since the snapshot was taken \(its SHA-256 differs\)/.test(e.message) && !e.message.includes('\n'));
    // And the base changed under a snapshot=on disk's snapshot.
    appendFileSync(base, new Uint8Array(BLOCK_PAGE));
    assert.throws(() => loadRunSnapshot(join(directory, 'cow.snap')), /disk image '.*base\.img' changed since the snapshot was taken/);
  });
});

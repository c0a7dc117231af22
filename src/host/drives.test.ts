// Tests of opening drives: copy-on-write disks over one base, and a writable disk open in one VM at a time.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockFileOf } from './disk-lock.js';
import { DriveError, openDrive, type DriveSpec } from './drives.js';

const dir = mkdtempSync(join(tmpdir(), 'mirrorball-drives-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = 1 << 20;
let serial = 0;
function image(): string {
  const path = join(dir, `disk${serial++}.img`);
  writeFileSync(path, Buffer.alloc(SIZE, serial));
  return path;
}
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const oneLine = (pattern: RegExp) => (e: Error) => e instanceof DriveError && pattern.test(e.message) && !e.message.includes('\n');

describe('copy-on-write drives', () => {
  it('give each VM its own writes over one base that is never written', () => {
    const base = image();
    const before = sha256(base);
    const a = openDrive({ file: base, readOnly: false, snapshot: true }, 'vm a');
    const b = openDrive({ file: base, readOnly: false, snapshot: true }, 'vm b');
    a.write(4096, Buffer.alloc(4096, 0xa));
    b.write(4096, Buffer.alloc(512, 0xb));
    const seen = Buffer.alloc(4096);
    a.read(4096, seen);
    assert.deepEqual(seen, Buffer.alloc(4096, 0xa));
    b.read(4096, seen);
    assert.deepEqual(seen, Buffer.concat([Buffer.alloc(512, 0xb), Buffer.alloc(3584, 1)]));
    a.flush();
    a.close();
    b.close();
    assert.equal(sha256(base), before);
    const again = openDrive({ file: base, readOnly: false, snapshot: true }, 'vm c');
    again.read(4096, seen);
    assert.deepEqual(seen, Buffer.alloc(4096, 1), 'snapshot=on changes vanish when the disk is closed');
    again.close();
  });
});

describe('a writable disk open in one VM at a time', () => {
  const refused: [string, DriveSpec, (f: string) => DriveSpec, RegExp][] = [
    ['a writable disk twice', { file: '', readOnly: false }, (f) => ({ file: f, readOnly: false }), /already open writable by vm a: a writable disk may be open in one VM at a time/],
    ['a writable disk, then read-only', { file: '', readOnly: false }, (f) => ({ file: f, readOnly: true }), /already open writable by vm a/],
    ['a copy-on-write base, then writable', { file: '', readOnly: false, snapshot: true }, (f) => ({ file: f, readOnly: false }), /already open read-only \(or as a copy-on-write base\) by vm a/],
    ['an overlay twice', { file: '', readOnly: false, snapshot: true, overlay: 'o' }, (f) => ({ file: `${f}.other`, readOnly: false, snapshot: true, overlay: 'o' }), /\.ovl' is already open writable by vm a/],
  ];
  for (const [what, first, second, message] of refused) {
    it(`refuses ${what}`, () => {
      const file = image();
      const overlay = join(dir, `${serial}.ovl`);
      writeFileSync(`${file}.other`, readFileSync(file));
      const fix = (d: DriveSpec): DriveSpec => ({ ...d, file: d.file === '' ? file : d.file, ...(d.overlay === undefined ? {} : { overlay }) });
      const held = openDrive(fix(first), 'vm a');
      assert.throws(() => openDrive(fix(second(file)), 'vm b'), oneLine(message));
      held.close();
      openDrive(fix(second(file)), 'vm b').close(); // free once the first VM closed it
    });
  }

  it('shares read-only disks and copy-on-write bases', () => {
    const file = image();
    const disks = [
      openDrive({ file, readOnly: true }, 'vm a'),
      openDrive({ file, readOnly: false, snapshot: true }, 'vm b'),
      openDrive({ file, readOnly: true }, 'vm c'),
    ];
    for (const d of disks) d.close();
  });

  it('keeps a lock file beside a writable disk while it is open, and honours another live process\'s', async () => {
    const file = image();
    const disk = openDrive({ file, readOnly: false }, 'vm a');
    assert.equal(readFileSync(lockFileOf(file), 'utf8'), `${process.pid}\n`);
    disk.close();
    assert.equal(existsSync(lockFileOf(file)), false, 'released on close');

    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      writeFileSync(lockFileOf(file), `${other.pid}\n`);
      assert.throws(() => openDrive({ file, readOnly: false }, 'vm a'), oneLine(new RegExp(`open writable in another Mirrorball process \\(pid ${other.pid}`)));
      assert.throws(() => openDrive({ file, readOnly: false, snapshot: true }, 'vm a'), oneLine(/another Mirrorball process/), 'nor as a base while another process writes it');
    } finally {
      other.kill();
      await new Promise((resolve) => other.once('exit', resolve));
    }
    // Its process is gone: the lock is stale and taken over.
    const taken = openDrive({ file, readOnly: false }, 'vm a');
    assert.equal(readFileSync(lockFileOf(file), 'utf8'), `${process.pid}\n`);
    taken.close();
  });
});

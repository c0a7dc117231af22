// Tests of the cpio newc writer: against GNU cpio (listing and extraction) and round trips through the reader.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { decodeCpio, encodeCpio, NEWC_HEADER_SIZE, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG } from './cpio.js';
import { FsTree } from './fs-tree.js';

const EPOCH = 1672531200;
const hasCpio = spawnSync('cpio', ['--version']).status === 0;

function sampleTree(): FsTree {
  return new FsTree(EPOCH)
    .file('init', '#!/bin/sh\necho hello\n', 0o755)
    .file('etc/hostname', 'mirrorball\n')
    .file('empty', '')
    .file('bin/odd-size', new Uint8Array([1, 2, 3, 4, 5]))
    .symlink('bin/sh', 'busybox')
    .dir('tmp', 0o1777)
    .device('dev/console', 'char', 5, 1);
}

describe('encodeCpio', () => {
  it('aligns every header and data start to 4 bytes and ends with the trailer', () => {
    const archive = encodeCpio(sampleTree().entries());
    assert.equal(archive.length % 4, 0);
    const text = new TextDecoder().decode(archive);
    assert.ok(text.startsWith('070701'));
    assert.ok(text.includes('TRAILER!!!\0'));
    const members = decodeCpio(archive);
    assert.deepEqual(members.map((m) => m.name), ['bin', 'bin/odd-size', 'bin/sh', 'dev', 'dev/console', 'empty', 'etc', 'etc/hostname', 'init', 'tmp']);
    const byName = new Map(members.map((m) => [m.name, m]));
    assert.equal(byName.get('init')!.mode, S_IFREG | 0o755);
    assert.equal(byName.get('tmp')!.mode, S_IFDIR | 0o1777);
    assert.equal(byName.get('bin/sh')!.mode, S_IFLNK | 0o777);
    assert.equal(new TextDecoder().decode(byName.get('bin/sh')!.data), 'busybox');
    assert.equal(byName.get('dev/console')!.mode, S_IFCHR | 0o600);
    assert.deepEqual([byName.get('dev/console')!.rdevmajor, byName.get('dev/console')!.rdevminor], [5, 1]);
    assert.ok(members.every((m) => m.uid === 0 && m.gid === 0 && m.mtime === EPOCH));
  });

  it('gives the same bytes whatever order the entries were added in', () => {
    const a = new FsTree(EPOCH).file('b/x', 'x').file('a', 'a').symlink('c', 'a');
    const b = new FsTree(EPOCH).symlink('c', 'a').file('a', 'a').file('b/x', 'x');
    assert.deepEqual(encodeCpio(a.entries()), encodeCpio(b.entries()));
  });

  it('round-trips any tree of files through the reader', () => {
    const name = fc.stringMatching(/^[a-z0-9_.-]{1,12}$/).filter((s) => s !== '.' && s !== '..');
    const file = fc.record({ path: fc.array(name, { minLength: 1, maxLength: 3 }), data: fc.uint8Array({ maxLength: 70 }), mode: fc.integer({ min: 0, max: 0o7777 }) });
    fc.assert(
      fc.property(fc.array(file, { maxLength: 12 }), (files) => {
        const tree = new FsTree(EPOCH);
        const expected = new Map<string, Uint8Array>();
        for (const f of files) {
          const path = f.path.join('/');
          try {
            tree.file(path, f.data, f.mode);
            expected.set(path, f.data);
            for (const p of expected.keys()) if (!tree.has(p) || tree.get(p)!.kind !== 'file') expected.delete(p);
          } catch {
            // A path that crosses an existing file is refused by the tree; nothing to check for it.
          }
        }
        const members = decodeCpio(encodeCpio(tree.entries()));
        assert.deepEqual(members.map((m) => m.name), tree.entries().map((e) => e.path));
        for (const m of members) {
          const data = expected.get(m.name);
          if (data !== undefined) assert.deepEqual(m.data, data);
          assert.equal(m.mode & 0o7777, tree.get(m.name)!.mode);
        }
      }),
    );
  });

  it('refuses values that do not fit a header field', () => {
    const tree = new FsTree(2 ** 33).file('f', 'x');
    assert.throws(() => encodeCpio(tree.entries()), /out of range/);
  });

  it('writes headers of exactly 110 bytes of upper-case hexadecimal', () => {
    const archive = encodeCpio(new FsTree(EPOCH).file('f', 'x').entries());
    const header = new TextDecoder().decode(archive.subarray(0, NEWC_HEADER_SIZE));
    assert.match(header, /^070701[0-9A-F]{104}$/);
  });
});

describe('encodeCpio against GNU cpio', { skip: hasCpio ? false : 'cpio is not installed' }, () => {
  it('lists the same members as `cpio -t`', () => {
    const tree = sampleTree();
    const listing = execFileSync('cpio', ['-t', '--quiet'], { input: encodeCpio(tree.entries()) }).toString();
    assert.deepEqual(listing.trim().split('\n'), tree.entries().map((e) => e.path));
  });

  it('extracts, with `cpio -i`, the same bytes, modes and link targets', () => {
    const tree = new FsTree(EPOCH)
      .file('init', '#!/bin/sh\n', 0o755)
      .file('data/blob', new Uint8Array(Array.from({ length: 1001 }, (_, i) => (i * 7) & 0xff)))
      .file('data/empty', '')
      .symlink('link', 'data/blob');
    const dir = mkdtempSync(join(tmpdir(), 'mb-cpio-'));
    try {
      execFileSync('cpio', ['-i', '-d', '--quiet', '--no-absolute-filenames'], { cwd: dir, input: encodeCpio(tree.entries()) });
      assert.equal(readFileSync(join(dir, 'init'), 'utf8'), '#!/bin/sh\n');
      assert.equal(lstatSync(join(dir, 'init')).mode & 0o777, 0o755);
      assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'data/blob'))), tree.get('data/blob')!.data);
      assert.equal(readFileSync(join(dir, 'data/empty')).length, 0);
      assert.equal(readlinkSync(join(dir, 'link')), 'data/blob');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

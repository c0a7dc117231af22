// Tests of the guest images: the trees, the initramfs, and that two ext4 builds of one tree are byte-identical.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { decodeCpio } from './cpio.js';
import { FsTree } from './fs-tree.js';
import { debugfsFixups, diskTree, initramfsImage, initramfsTree, INITRAMFS_MARKER, SOURCES_DIR, writeExt4, type GuestContents } from './images.js';
import { StepRunner } from './steps.js';

const EPOCH = 1672531200;
const hasTool = (tool: string) => {
  try {
    execFileSync(tool, ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const work = mkdtempSync(join(tmpdir(), 'mb-images-'));
after(() => rmSync(work, { recursive: true, force: true }));

const contents: GuestContents = {
  busybox: new Uint8Array([0x7f, 0x45, 0x4c, 0x46]),
  busyboxLinks: ['/bin/sh', '/sbin/switch_root', '/usr/bin/awk'],
  mbwork: new Uint8Array([1, 2, 3]),
  sqlite3: new Uint8Array([4, 5]),
  rootfs: [
    { path: 'init', executable: true, data: Buffer.from('#!/bin/sh\n') },
    { path: 'etc/hostname', executable: false, data: Buffer.from('mirrorball\n') },
  ],
  reference: 'cpubench -n 2\t0123456789abcdef\n',
  release: 'test\n',
  sources: [{ path: 'pmake.c', executable: false, data: Buffer.from('int pmake_main(void);\n') }],
};

describe('guest images', () => {
  it('the initramfs holds busybox links, init, workloads, a console and the marker; the disk does not', () => {
    const members = decodeCpio(initramfsImage(initramfsTree(contents, EPOCH)));
    const byName = new Map(members.map((m) => [m.name, m]));
    assert.equal(new TextDecoder().decode(byName.get('bin/sh')!.data), '/bin/busybox');
    assert.equal(byName.get('init')!.mode & 0o777, 0o755);
    assert.equal(byName.get('dev/console')!.rdevmajor, 5);
    assert.equal(new TextDecoder().decode(byName.get('usr/bin/cpubench')!.data), 'mbwork');
    assert.ok(byName.has(INITRAMFS_MARKER));
    assert.ok(members.every((m) => m.uid === 0 && m.gid === 0 && m.mtime === EPOCH));
    const disk = diskTree(contents, EPOCH);
    assert.ok(!disk.has(INITRAMFS_MARKER) && disk.has('usr/bin/sqlite3'));
    assert.ok(disk.has(`${SOURCES_DIR}/pmake.c`) && !byName.has(`${SOURCES_DIR}/pmake.c`), 'pmake\'s sources are on the disk only');
  });

  it('debugfs fixups cover owner and every time of each path', () => {
    const script = debugfsFixups(['/', 'a/b'], EPOCH);
    assert.match(script, /^sif \/a\/b crtime @1672531200$/m);
    assert.match(script, /^sif \/ uid 0$/m);
    assert.throws(() => debugfsFixups(['a b'], EPOCH));
  });

  it('two ext4 images of one tree are byte-identical, and hold the files', { skip: !hasTool('mke2fs') || !hasTool('debugfs') ? 'no mke2fs/debugfs' : false }, async () => {
    const runner = new StepRunner(join(work, 'logs'), { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream);
    const tree = new FsTree(EPOCH).file('etc/motd', 'hello\n').symlink('bin/sh', '/bin/busybox').file('usr/bin/big', new Uint8Array(70000).fill(7), 0o755);
    const options = { sizeMiB: 8, uuid: '6d697272-6f72-4261-8c6c-677565737400', hashSeed: '6d697272-6f72-4261-8c6c-686173680000', label: 'test', epoch: EPOCH };
    await runner.step('ext4-a', (log) => writeExt4(log, tree, join(work, 'a.ext4'), join(work, 'stage-a'), options));
    // A second later, from another staging directory: nothing of the clock or the path may leak in.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await runner.step('ext4-b', (log) => writeExt4(log, tree, join(work, 'b.ext4'), join(work, 'stage-b'), options));
    const a = readFileSync(join(work, 'a.ext4'));
    assert.ok(a.equals(readFileSync(join(work, 'b.ext4'))), 'the two images differ');
    const motd = execFileSync('debugfs', ['-R', 'cat /etc/motd', join(work, 'a.ext4')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.equal(motd, 'hello\n');
    assert.match(blockSizeOf(join(work, 'a.ext4')), /^1024$/, 'mke2fs\'s own choice for a small disk');
  });

  it('gives the root disk the block size asked for: 4 KiB, one guest page a block', { skip: !hasTool('mke2fs') || !hasTool('debugfs') ? 'no mke2fs/debugfs' : false }, async () => {
    const runner = new StepRunner(join(work, 'logs'), { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream);
    const options = { sizeMiB: 8, blockSize: 4096, uuid: '6d697272-6f72-4261-8c6c-677565737400', hashSeed: '6d697272-6f72-4261-8c6c-686173680000', label: 'test', epoch: EPOCH };
    await runner.step('ext4-4k', (log) => writeExt4(log, diskTree(contents, EPOCH), join(work, 'c.ext4'), join(work, 'stage-c'), options));
    assert.equal(blockSizeOf(join(work, 'c.ext4')), '4096');
    const source = execFileSync('debugfs', ['-R', `cat /${SOURCES_DIR}/pmake.c`, join(work, 'c.ext4')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.equal(source, 'int pmake_main(void);\n');
  });
});

/** The block size in an ext4 image's superblock, as debugfs's stats print it. */
function blockSizeOf(image: string): string {
  const stats = execFileSync('debugfs', ['-R', 'stats', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return /^Block size:\s+(\d+)$/m.exec(stats)?.[1] ?? '(none)';
}

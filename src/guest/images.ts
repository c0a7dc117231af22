// The guest's file trees, the initramfs (our cpio writer) and the ext4 disk (mke2fs -d), both byte-reproducible.

import { chmodSync, lutimesSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeCpio } from './cpio.js';
import { EXEC_MODE, FsTree } from './fs-tree.js';
import type { RecipeFile } from './recipe.js';
import type { StepLog } from './steps.js';

/** Present only on the initramfs: tells /init that it may switch to a root disk (guest/rootfs/init). */
export const INITRAMFS_MARKER = 'etc/mirrorball-initramfs';
const STICKY_WORLD = 0o1777;
const PRIVATE_DIR = 0o700;
/** Character devices the kernel needs before devtmpfs is mounted (Documentation/admin-guide/devices.txt). */
const CONSOLE = { major: 5, minor: 1 };
const NULL_DEVICE = { major: 1, minor: 3 };

export interface GuestContents {
  busybox: Uint8Array;
  /** Absolute applet paths from busybox.links. */
  busyboxLinks: readonly string[];
  mbwork: Uint8Array;
  sqlite3: Uint8Array;
  /** guest/rootfs/** of the recipe, relative to guest/rootfs. */
  rootfs: readonly RecipeFile[];
  /** Text of the workloads' reference checksums. */
  reference: string;
  /** Written to /etc/mirrorball-release. */
  release: string;
  /** guest/workloads/** of the recipe (pmake's sources among them), relative to guest/workloads: on the disk only. */
  sources?: readonly RecipeFile[];
}

/** Where the disk holds the workloads' sources. */
export const SOURCES_DIR = 'usr/src/mirrorball/workloads';

/** The names under which /usr/bin/mbwork runs each workload (mbctl is linked beside them, not a workload). */
export const WORKLOAD_NAMES = ['cpubench', 'membench', 'pmake', 'raytrace', 'dbbench', 'engineering', 'wshare'];

/**
 * The root file system shared by both images: busybox and its applet links, the project's init, agent and
 * /etc, the workloads. The initramfs adds device nodes and its marker; the disk adds sqlite3's shell.
 */
export function baseTree(c: GuestContents, epoch: number): FsTree {
  const tree = new FsTree(epoch);
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'run', 'mnt', 'etc']) tree.dir(dir);
  tree.dir('tmp', STICKY_WORLD).dir('root', PRIVATE_DIR);
  tree.file('bin/busybox', c.busybox, EXEC_MODE);
  for (const link of c.busyboxLinks) {
    const path = link.replace(/^\/+/, '');
    if (path !== 'bin/busybox') tree.symlink(path, '/bin/busybox');
  }
  for (const file of c.rootfs) tree.file(file.path, file.data, file.executable ? EXEC_MODE : undefined);
  tree.symlink('sbin/init', '/init');
  tree.file('usr/bin/mbwork', c.mbwork, EXEC_MODE);
  for (const name of WORKLOAD_NAMES) tree.symlink(`usr/bin/${name}`, 'mbwork');
  tree.symlink('usr/bin/mbctl', 'mbwork'); // the machine's control tool rides in the same binary
  tree.file('usr/share/mirrorball/reference.txt', c.reference);
  tree.file('etc/mirrorball-release', c.release);
  return tree;
}

export function initramfsTree(c: GuestContents, epoch: number): FsTree {
  const tree = baseTree(c, epoch);
  tree.file(INITRAMFS_MARKER, 'This is the Mirrorball initramfs; /init may switch_root to a disk from here.\n');
  tree.device('dev/console', 'char', CONSOLE.major, CONSOLE.minor, 0o600);
  tree.device('dev/null', 'char', NULL_DEVICE.major, NULL_DEVICE.minor, 0o666);
  tree.dir('newroot');
  return tree;
}

/** The root disk: the initramfs's tree without its devices and marker, plus sqlite3's shell and the workloads' sources. */
export function diskTree(c: GuestContents, epoch: number): FsTree {
  const tree = baseTree(c, epoch).file('usr/bin/sqlite3', c.sqlite3, EXEC_MODE);
  for (const file of c.sources ?? []) tree.file(`${SOURCES_DIR}/${file.path}`, file.data, file.executable ? EXEC_MODE : undefined);
  return tree;
}

export function initramfsImage(tree: FsTree): Uint8Array {
  return encodeCpio(tree.entries());
}

export interface Ext4Options {
  sizeMiB: number;
  /** ext4's block size in bytes (mke2fs -b); mke2fs's own choice when absent (1 KiB below 512 MiB). */
  blockSize?: number;
  uuid: string;
  hashSeed: string;
  label: string;
  epoch: number;
}

/**
 * Writes `tree` to `image` as ext4 with `mke2fs -d` from a staging directory, then sets every inode's
 * owner and times with debugfs: mke2fs copies owners and ctimes from the staging files (which are the
 * builder's and now) and stamps creation times with the clock, so this is what makes two builds identical.
 * Device nodes are left out (devtmpfs provides them; creating them would need root).
 */
export async function writeExt4(log: StepLog, tree: FsTree, image: string, staging: string, o: Ext4Options): Promise<void> {
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const entries = tree.entries().filter((e) => e.kind === 'dir' || e.kind === 'file' || e.kind === 'symlink');
  for (const e of entries) {
    const path = join(staging, e.path);
    if (e.kind === 'dir') mkdirSync(path, { recursive: true });
    else if (e.kind === 'file') writeFileSync(path, e.data ?? new Uint8Array(0));
    else symlinkSync(e.target!, path);
  }
  // Children before parents, so that setting a child's time does not change its directory's afterwards.
  for (const e of [...entries].reverse()) {
    const path = join(staging, e.path);
    if (e.kind === 'symlink') lutimesSync(path, e.mtime, e.mtime);
    else {
      chmodSync(path, e.mode);
      utimesSync(path, e.mtime, e.mtime);
    }
  }
  chmodSync(staging, 0o755);
  rmSync(image, { force: true });
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(o.epoch), SOURCE_DATE_EPOCH: String(o.epoch), LC_ALL: 'C', TZ: 'UTC' };
  await log.run(
    'mke2fs',
    ['-q', '-F', '-t', 'ext4', ...(o.blockSize === undefined ? [] : ['-b', String(o.blockSize)]), '-d', staging, '-U', o.uuid, '-L', o.label,
      '-E', `hash_seed=${o.hashSeed},root_owner=0:0`, image, `${o.sizeMiB}M`],
    { env },
  );
  const script = debugfsFixups(['/', 'lost+found', ...entries.map((e) => e.path)], o.epoch);
  const scriptPath = `${image}.debugfs`;
  writeFileSync(scriptPath, script);
  await log.run('debugfs', ['-w', '-f', scriptPath, image], { env });
  rmSync(scriptPath, { force: true });
  rmSync(staging, { recursive: true, force: true });
}

/** Inode fields debugfs sets on every file: owner, the four times and their nanosecond parts. */
const TIME_FIELDS = ['atime', 'mtime', 'ctime', 'crtime'];

export function debugfsFixups(paths: readonly string[], epoch: number): string {
  const lines: string[] = [];
  for (const raw of paths) {
    const path = raw === '/' ? '/' : `/${raw}`;
    // debugfs splits its arguments at spaces; the images hold no such names (the tree would be rejected here).
    if (/\s|"/.test(path)) throw new Error(`cannot fix up ${JSON.stringify(path)} with debugfs`);
    lines.push(`sif ${path} uid 0`, `sif ${path} gid 0`);
    for (const field of TIME_FIELDS) lines.push(`sif ${path} ${field} @${epoch}`, `sif ${path} ${field}_extra 0`);
  }
  return `${lines.join('\n')}\n`;
}

// Test helper: an ext4 disk image for the power-loss test, and what a power cut left on it, checked offline
// with e2fsprogs (the journal replayed as a mount would, e2fsck -fn, the files read back with debugfs).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { VirtioBlk, type BlockBackend } from '../../src/devices/virtio/blk.js';
import { imageAfterPowerCut, type JournalEntry, type PowerCut } from '../../src/devices/virtio/journal-block.js';
import type { GuestArtifacts } from '../../src/guest/artifacts.js';
import { GuestSession } from '../../src/guest/session.js';

/** The e2fsprogs commands the check needs, or why they are missing. */
export function e2fsprogsMissing(): string | undefined {
  for (const tool of ['mkfs.ext4', 'e2fsck', 'debugfs']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8', env: withSbin() });
    if (found.status !== 0) return `${tool} not found (install e2fsprogs)`;
  }
  return undefined;
}

/** e2fsprogs lives in /sbin, which a user's PATH may lack. */
function withSbin(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = withSbin()): { status: number | null; output: string } {
  const r = spawnSync(command, args, { encoding: 'utf8', env });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * A fresh ext4 image of `sizeMiB` at `path`, made by mkfs.ext4 with 4 KiB blocks, inode tables and
 * journal written now (no lazy init left for the guest), and a fixed UUID, hash seed and clock, so that
 * every run starts from the same bytes.
 */
export function makeExt4Image(path: string, sizeMiB: number): Uint8Array {
  rmSync(path, { force: true });
  const env = { ...withSbin(), E2FSPROGS_FAKE_TIME: '1672531200' };
  const made = run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-U', '6d697272-6f72-4261-8c6c-706f77657200',
    '-E', 'lazy_itable_init=0,lazy_journal_init=0,hash_seed=6d697272-6f72-4261-8c6c-706f77657201', path, `${sizeMiB}M`], env);
  if (made.status !== 0) throw new Error(`mkfs.ext4 failed: ${made.output}`);
  return new Uint8Array(readFileSync(path));
}

/** Record `n` exactly as `durable` writes it (guest/rootfs/usr/bin/durable). */
export function durableRecord(n: number): string {
  const letters = 20 + ((37 * n) % 1200);
  let text = `record ${String(n).padStart(8, '0')} `;
  for (let i = 0; i < letters; i++) text += String.fromCharCode(97 + ((n + 7 * i) % 26));
  return `${text}\n`;
}

export interface CutResult {
  /** Records acknowledged before the cut: 1 … acked must all be there. */
  acked: number;
  /** What is wrong, one line each; empty when the cut lost nothing acknowledged and e2fsck is clean. */
  problems: string[];
}

/**
 * Applies what the power cut left onto a copy of `base` in `work`, then does what the next boot would:
 * replays ext4's journal (`e2fsck -E journal_only`, as mounting does), and checks the file system with
 * `e2fsck -fn` (exit 0 wanted) and the records `durable` wrote in `/` with debugfs:
 * - `/log` starts with records 1 … acked, whole and in order;
 * - `/records/N` holds record N for every N ≤ acked;
 * - `/latest` holds one whole record, numbered acked or later.
 * `acked` is how many records were acknowledged before the cut.
 */
export function checkPowerCut(base: Uint8Array, entries: readonly JournalEntry[], cut: PowerCut, acked: number, work: string): CutResult {
  return checkImage(imageAfterPowerCut(base, entries, cut), acked, work);
}

/** The same checks of the disk as a power cut left it (`after`, the disk's bytes). */
export function checkImage(after: Uint8Array, acked: number, work: string): CutResult {
  const image = join(work, 'cut.img');
  const dump = join(work, 'files');
  const result: CutResult = { acked, problems: [] };
  writeFileSync(image, after);
  const replay = run('e2fsck', ['-E', 'journal_only', '-p', image]);
  if (replay.status !== 0) result.problems.push(`replaying the ext4 journal failed (e2fsck exit ${replay.status}): ${oneLine(replay.output)}`);
  const check = run('e2fsck', ['-fn', image]);
  if (check.status !== 0) result.problems.push(`e2fsck -fn exit ${check.status}: ${oneLine(check.output)}`);

  rmSync(dump, { recursive: true, force: true });
  mkdirSync(dump);
  const commands = ['dump /log log', 'dump /latest latest', ...Array.from({ length: acked }, (_, i) => `dump /records/${i + 1} ${i + 1}`)];
  writeFileSync(join(work, 'dump.cmd'), `${commands.join('\n')}\n`);
  const dumped = spawnSync('debugfs', ['-f', join(work, 'dump.cmd'), image], { cwd: dump, encoding: 'utf8', env: withSbin() });
  if (dumped.status !== 0) result.problems.push(`debugfs exit ${dumped.status}: ${oneLine(dumped.stderr)}`);
  const read = (name: string): string | undefined => (existsSync(join(dump, name)) ? readFileSync(join(dump, name), 'latin1') : undefined);

  if (acked > 0) {
    const log = read('log') ?? '';
    let offset = 0;
    for (let n = 1; n <= acked; n++) {
      const want = durableRecord(n);
      if (log.slice(offset, offset + want.length) !== want) {
        result.problems.push(`/log: record ${n} of ${acked} acknowledged is missing or damaged at byte ${offset} (the log has ${log.length} bytes)`);
        break;
      }
      offset += want.length;
    }
    for (let n = 1; n <= acked; n++) {
      if (read(String(n)) !== durableRecord(n)) result.problems.push(`/records/${n}: ${read(String(n)) === undefined ? 'missing' : 'damaged'} though acknowledged`);
    }
    const latest = read('latest');
    const number = latest === undefined ? NaN : Number(/^record (\d{8}) /.exec(latest)?.[1]);
    if (latest === undefined) result.problems.push('/latest: missing though a record was acknowledged');
    else if (!(number >= acked) || latest !== durableRecord(number)) {
      result.problems.push(`/latest: ${JSON.stringify(latest.slice(0, 24))}… is not a whole record numbered ${acked} or later`);
    }
  }
  rmSync(dump, { recursive: true, force: true });
  return result;
}

function oneLine(text: string): string {
  return text.trim().split('\n').filter((l) => l.trim() !== '').slice(-6).join(' | ');
}

/** What the guest's `durable` printed: `DURABLE k` once record k was fsynced. */
const ACK = /DURABLE (\d+)/;
/**
 * 2023-01-01, the guest build's epoch. The machine has no RTC: without a date, ext4 stamps a deleted inode's
 * dtime with a time below the inode count, which e2fsck takes for a link of the old orphan list and reports
 * as corrupted.
 */
const GUEST_EPOCH = 1672531200;

/** A guest run of `durable` over an ext4 disk: where each acknowledgement fell in the disk's writes, in order. */
export interface DurableRun {
  /** Per acknowledged record, in the order acknowledged: how many disk writes there were when it showed. */
  ackedAt: number[];
  order: number[];
  seconds: number;
}

/**
 * Boots the built guest with `disk` as /dev/vda, mounts it and runs `durable -n records` on it. `written()` says
 * how many writes the disk has seen (its journal's length). The console shows an acknowledgement after the
 * guest's fsync returned, so the position noted is at or after the true one: a cut is never held to a record
 * not yet acknowledged when it came.
 */
export async function runDurable(guest: Pick<GuestArtifacts, 'kernel' | 'initramfs'>, disk: BlockBackend, records: number, written: () => number): Promise<DurableRun> {
  const ackedAt: number[] = [];
  const order: number[] = [];
  const started = performance.now();
  const session = await GuestSession.boot({
    kernel: readFileSync(guest.kernel),
    initrd: readFileSync(guest.initramfs),
    config: { harts: 1, nodes: [{ memoryBytes: 256 * 2 ** 20, harts: [0] }] },
    configure: (machine) => machine.attachVirtio(new VirtioBlk(disk, { id: 'power-loss' })),
    onConsoleLine: (line) => {
      const match = ACK.exec(line);
      if (match === null) return;
      order.push(Number(match[1]));
      ackedAt.push(written());
    },
  });
  try {
    const r = await session.exec(`date -s @${GUEST_EPOCH} >/dev/null && mount -t ext4 /dev/vda /mnt && durable -n ${records} -a /dev/console /mnt`);
    if (r.status !== 0) throw new Error(`durable failed (status ${r.status}): ${r.output}`);
  } finally {
    await session.kill();
  }
  return { ackedAt, order, seconds: (performance.now() - started) / 1000 };
}

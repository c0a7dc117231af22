// Booted guests kept as snapshot files, so that what boots the same guest on the same machine boots it once:
// the experiments (once per machine configuration) and the end-to-end tests (test/helpers/booted.ts).

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SNAPSHOT_VERSION } from '../board/snapshot.js';
import { FILE_VERSION } from '../host/snapshot-file.js';
import { MONITOR_SNAPSHOT_VERSION } from '../monitor/monitor-snapshot.js';
import { defaultCacheDir } from './artifacts.js';

/** The layers whose code decides what a boot computes: a change to any of them boots again. */
const HARDWARE_AND_MONITOR = ['isa', 'memory', 'cpu', 'devices', 'timing', 'board', 'monitor'];
/** Snapshots of other code versions older than this are removed when a new one is written. */
const STALE_MS = 24 * 3600_000;

let codeHash: string | undefined;

/** A hash of the emulator's and monitor's code as this process runs it (sources under tsx, compiled under dist/). */
function emulatorCodeHash(): string {
  if (codeHash !== undefined) return codeHash;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(ts|js)$/.test(name) && !/\.test\.(ts|js)$/.test(name)) hash.update(relative(root, path)).update('\0').update(readFileSync(path)).update('\0');
    }
  };
  for (const layer of HARDWARE_AND_MONITOR) walk(join(root, layer));
  codeHash = hash.digest('hex').slice(0, 16);
  return codeHash;
}

/** The SHA-256 of bytes (a kernel, an initrd), for a cache key. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The snapshot of a guest booted as `key` says (JSON: the guest's content hashes and everything that decides
 * the boot), from the cache if it is there, else made by `boot` and kept. The cache directory is the guest
 * build's (`$MIRRORBALL_CACHE`, …/snapshots); `MIRRORBALL_BOOT_CACHE=0` boots every time. Keys also hold the
 * snapshot formats' versions and a hash of the emulator's and monitor's code, so a snapshot is never restored
 * into code that would have booted otherwise.
 */
export async function cachedBoot(key: object, boot: () => Promise<Uint8Array>): Promise<{ bytes: Uint8Array; cached: boolean }> {
  if (process.env.MIRRORBALL_BOOT_CACHE === '0') return { bytes: await boot(), cached: false };
  const code = emulatorCodeHash();
  const versions = { file: FILE_VERSION, machine: SNAPSHOT_VERSION, monitor: MONITOR_SNAPSHOT_VERSION };
  const name = createHash('sha256').update(JSON.stringify({ key, versions })).digest('hex').slice(0, 24);
  const dir = join(defaultCacheDir(), 'snapshots');
  const path = join(dir, `${code}-${name}.snap`);
  try {
    return { bytes: readFileSync(path), cached: true };
  } catch {
    // Not there: boot.
  }
  const bytes = await boot();
  try {
    mkdirSync(dir, { recursive: true });
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, bytes, { mode: 0o600 });
    renameSync(temporary, path);
    prune(dir, code);
  } catch {
    // A cache that cannot be written only costs a boot next time.
  }
  return { bytes, cached: false };
}

/** Removes snapshots of other code versions that are older than a day (other worktrees may still use newer ones). */
function prune(dir: string, code: string): void {
  const now = Date.now();
  for (const name of readdirSync(dir)) {
    if (name.startsWith(`${code}-`)) continue;
    const path = join(dir, name);
    try {
      if (now - statSync(path).mtimeMs > STALE_MS) rmSync(path, { force: true });
    } catch {
      // Gone already.
    }
  }
}

/** What `cachedSession` needs of a session: GuestSession and MonitorSession both have it. */
export interface SnapshotSource {
  /** The whole machine as bytes, at the next moment the guest (every VM) idles with no command running. */
  snapshot(): Promise<Uint8Array>;
  kill(): Promise<void>;
}

/**
 * `cachedBoot` for a session: the snapshot of the session `make` returns (a boot, or a restore of an earlier
 * step) after `then` has run in it (turning ASLR off, a warm-up run), kept under `key`; the session is
 * ended either way.
 */
export function cachedSession<S extends SnapshotSource>(key: object, make: () => Promise<S>, then: (session: S) => Promise<void> = async () => {}): Promise<{ bytes: Uint8Array; cached: boolean }> {
  return cachedBoot(key, async () => {
    const session = await make();
    try {
      await then(session);
      return await session.snapshot();
    } finally {
      await session.kill();
    }
  });
}

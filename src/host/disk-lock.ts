// Who may open a disk image: many readers, or one writer (within this process, and across processes by a lock file).

import { closeSync, existsSync, linkSync, openSync, readFileSync, realpathSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { PRIVATE_FILE_MODE } from './private-files.js';

/** A disk image that is already in use in a way that excludes this use, in one line. */
export class DiskInUseError extends Error {}

/**
 * `shared`: the image is only read (readonly=on, or the base of a copy-on-write disk); `exclusive`: it is
 * written (a writable drive, an overlay file).
 */
export type LockMode = 'shared' | 'exclusive';

/** Releases what `acquire` took; calling it again does nothing. */
export type Release = () => void;

interface Holders {
  mode: LockMode;
  /** Who holds it (a VM's name, or "a machine"), for the error message. */
  owners: string[];
  /** The lock file an exclusive holder created, removed on release. */
  lockFile?: string;
}

/** This process's users of each image, by real path. */
const held = new Map<string, Holders>();

/** The lock file of an image: beside it, `NAME.lock`, holding the pid of the process that writes it. */
export function lockFileOf(path: string): string {
  return join(dirname(path), `${basename(path)}.lock`);
}

/** The real path of `path`, or of its directory when the file does not exist yet (an overlay to create). */
function realPath(path: string): string {
  const absolute = resolve(path);
  if (existsSync(absolute)) return realpathSync(absolute);
  try {
    return join(realpathSync(dirname(absolute)), basename(absolute));
  } catch {
    return absolute;
  }
}

/**
 * Takes `path` for `owner` in `mode`, or throws DiskInUseError. In this process: any number of shared users,
 * or one exclusive one. Across processes: an exclusive user creates `NAME.lock` (O_EXCL) with its pid; a
 * lock whose process is gone is taken over. A shared user only checks that no live process holds that lock:
 * it creates nothing beside images it only reads, so a writer that comes after readers in another process
 * is not stopped (docs/disks.md). Where the lock file cannot be created (a read-only directory), the
 * exclusive user goes on with this process's check alone.
 */
export function acquire(path: string, mode: LockMode, owner: string): Release {
  const key = realPath(path);
  const holders = held.get(key);
  if (holders !== undefined && (mode === 'exclusive' || holders.mode === 'exclusive')) {
    const how = holders.mode === 'exclusive' ? 'open writable' : 'open read-only (or as a copy-on-write base)';
    throw new DiskInUseError(`disk image '${path}' is already ${how} by ${holders.owners.join(', ')}: a writable disk may be open in one VM at a time (share it with snapshot=on, or readonly=on)`);
  }
  const lockFile = lockFileOf(key);
  const other = liveHolder(lockFile);
  if (other !== undefined) throw new DiskInUseError(`disk image '${path}' is open writable in another Mirrorball process (pid ${other}; its lock is '${lockFile}')`);
  let created: string | undefined;
  if (mode === 'exclusive') created = createLock(lockFile, path);
  if (holders === undefined) held.set(key, { mode, owners: [owner], lockFile: created });
  else holders.owners.push(owner);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const h = held.get(key);
    if (h === undefined) return;
    h.owners.splice(h.owners.indexOf(owner), 1);
    if (h.owners.length > 0) return;
    held.delete(key);
    if (h.lockFile !== undefined) {
      try {
        unlinkSync(h.lockFile);
      } catch {
        // Already gone: nothing to release.
      }
    }
  };
}

/** The pid in `lockFile` when that process is alive and is not this one; a stale lock is removed. */
function liveHolder(lockFile: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(lockFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EACCES') return -1; // another user's lock: held, by a pid we may not read
    throw error;
  }
  const pid = Number.parseInt(text, 10);
  if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) return pid;
  // Stale (its process is gone, or it is this process's own from a run that did not release it): remove it.
  try {
    unlinkSync(lockFile);
  } catch {
    // Someone else removed it first.
  }
  return undefined;
}

/**
 * Creates `lockFile` holding this pid, atomically: written under a temporary name and linked into place
 * (link fails when the lock exists), so a reader never sees a lock without its pid.
 */
function createLock(lockFile: string, path: string): string | undefined {
  const temporary = `${lockFile}.${process.pid}`;
  try {
    const fd = openSync(temporary, 'w', PRIVATE_FILE_MODE);
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EROFS') return undefined;
    throw error;
  }
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(temporary, lockFile);
        return lockFile;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const other = liveHolder(lockFile);
        if (other !== undefined) throw new DiskInUseError(`disk image '${path}' is open writable in another Mirrorball process (pid ${other}; its lock is '${lockFile}')`);
      }
    }
    throw new DiskInUseError(`disk image '${path}': cannot take its lock '${lockFile}' (another process keeps making it)`);
  } finally {
    unlinkSync(temporary);
  }
}

/** Whether process `pid` exists (EPERM: it does, but belongs to someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

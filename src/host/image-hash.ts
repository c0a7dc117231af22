// The size and SHA-256 of a disk image, read once from start to end.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

/** Reads the whole file at `path` (read-only) and hashes it. */
export function hashImage(path: string): { size: number; sha256: Buffer } {
  const fd = openSync(path, 'r');
  try {
    return hashOpenImage(fd);
  } finally {
    closeSync(fd);
  }
}

/** The same through a descriptor open for reading. */
export function hashOpenImage(fd: number): { size: number; sha256: Buffer } {
  const size = fstatSync(fd).size;
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(4 << 20);
  for (let done = 0; done < size;) {
    const n = readSync(fd, buffer, 0, buffer.length, done);
    if (n === 0) break;
    hash.update(buffer.subarray(0, n));
    done += n;
  }
  return { size, sha256: hash.digest() };
}

/** Identities already hashed in this process, by device, inode, size and modification time. */
const identities = new Map<string, string>();

/**
 * The identity of a base image as the monitor's disk cache keys it: its SHA-256 in hex, so that VMs whose
 * disks have equal bases share cached blocks whatever the images' paths. Hashed once per file and version
 * (device, inode, size, modification time) in this process: several VMs over one base hash it once.
 */
export function baseIdentity(path: string): string {
  const s = statSync(path, { bigint: true });
  const key = `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
  let id = identities.get(key);
  if (id === undefined) {
    id = hashImage(path).sha256.toString('hex');
    identities.set(key, id);
  }
  return id;
}

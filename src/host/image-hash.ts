// The size and SHA-256 of a disk image, read once from start to end.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

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

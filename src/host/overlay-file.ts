// The overlay file of a persistent copy-on-write disk (`overlay=FILE`): a header, a bitmap of written clusters, the clusters.

import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, linkSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CLUSTER_SIZE, type ClusterStore } from '../devices/virtio/cow-block.js';
import { PRIVATE_FILE_MODE } from './private-files.js';

/*
 * Format version 1, every number little-endian (docs/disks.md, "The overlay file"):
 *
 *   offset  bytes  field
 *        0      8  magic "MBOVRLAY"
 *        8      4  format version (1)
 *       12      4  header size (4096)
 *       16      4  cluster size (4096)
 *       20      4  zero
 *       24      8  disk size in bytes: the base image's size
 *       32     32  SHA-256 of the base image when the overlay was made
 *       64      8  the first 8 bytes of the SHA-256 of bytes 0–63: the header's checksum
 *       72   4024  zero
 *     4096      B  bitmap: bit (i mod 8) of byte i / 8 set when cluster i is in the file; B = ceil(clusters / 8)
 *                  rounded up to a multiple of 4096
 *   4096+B   size  cluster i at 4096 + B + i × 4096 (the file is sparse: an unwritten cluster takes no space)
 *
 * The file's length is always 4096 + B + disk size. A cluster's bit is written only after its data has
 * reached the medium (fdatasync between the two), so whatever a power cut leaves, a set bit never points at
 * data that is not there.
 */
export const OVERLAY_MAGIC = 'MBOVRLAY';
export const OVERLAY_VERSION = 1;
const HEADER_SIZE = 4096;
const CHECKSUMMED = 64;
const CHECKSUM_BYTES = 8;
const FIELD = { version: 8, headerSize: 12, clusterSize: 16, zero: 20, diskSize: 24, baseHash: 32, checksum: 64 } as const;
const HASH_BYTES = 32;

/** Why an overlay cannot be used, in one line. */
export class OverlayError extends Error {}

/** The file operations the overlay needs: positioned reads and writes, and the two kinds of sync. */
export interface OverlayIo {
  readonly length: number;
  /** Reads `into.length` bytes at `position`; returns how many there were. */
  read(position: number, into: Uint8Array): number;
  write(position: number, data: Uint8Array): void;
  /** Makes the data written so far durable (fdatasync): what orders a cluster's data before its bit. */
  syncData(): void;
  /** Makes everything durable (fsync): a flush. */
  sync(): void;
  close(): void;
}

/** A file descriptor as OverlayIo. */
export function fileIo(fd: number): OverlayIo {
  return {
    get length() { return fstatSync(fd).size; },
    read: (position, into) => {
      let done = 0;
      while (done < into.length) {
        const n = readSync(fd, into, done, into.length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    write: (position, data) => {
      for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done, position + done);
    },
    syncData: () => fdatasyncSync(fd),
    sync: () => fsyncSync(fd),
    close: () => closeSync(fd),
  };
}

/** What an overlay is made for: the base image's size and SHA-256. */
export interface BaseIdentity {
  size: number;
  sha256: Uint8Array;
}

function bitmapBytes(diskSize: number): number {
  const clusters = Math.ceil(diskSize / CLUSTER_SIZE);
  return Math.ceil(Math.ceil(clusters / 8) / HEADER_SIZE) * HEADER_SIZE;
}

/** The length of an overlay file for a disk of `diskSize` bytes. */
export function overlayLength(diskSize: number): number {
  return HEADER_SIZE + bitmapBytes(diskSize) + diskSize;
}

export function encodeHeader(base: BaseIdentity): Uint8Array {
  const header = new Uint8Array(HEADER_SIZE);
  const view = new DataView(header.buffer);
  header.set(new TextEncoder().encode(OVERLAY_MAGIC));
  view.setUint32(FIELD.version, OVERLAY_VERSION, true);
  view.setUint32(FIELD.headerSize, HEADER_SIZE, true);
  view.setUint32(FIELD.clusterSize, CLUSTER_SIZE, true);
  view.setBigUint64(FIELD.diskSize, BigInt(base.size), true);
  header.set(base.sha256, FIELD.baseHash);
  header.set(headerChecksum(header), FIELD.checksum);
  return header;
}

function headerChecksum(header: Uint8Array): Uint8Array {
  return createHash('sha256').update(header.subarray(0, CHECKSUMMED)).digest().subarray(0, CHECKSUM_BYTES);
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/**
 * The clusters of an overlay file, checked against `base` when opened: every way the file can be damaged or
 * made for another image is an OverlayError naming `name`.
 */
export class FileClusterStore implements ClusterStore {
  private readonly bitmap: Uint8Array;
  private readonly dataStart: number;
  private stored = 0;
  private closed = false;

  constructor(private readonly io: OverlayIo, base: BaseIdentity, name: string) {
    const damaged = (why: string) => new OverlayError(`overlay '${name}' is damaged: ${why}`);
    const header = new Uint8Array(HEADER_SIZE);
    const got = io.read(0, header);
    if (got < 8 || new TextDecoder().decode(header.subarray(0, 8)) !== OVERLAY_MAGIC) throw new OverlayError(`'${name}' is not a Mirrorball overlay (it does not start with ${OVERLAY_MAGIC})`);
    if (got < HEADER_SIZE) throw damaged(`shorter than its ${HEADER_SIZE}-byte header`);
    const view = new DataView(header.buffer);
    const version = view.getUint32(FIELD.version, true);
    if (version !== OVERLAY_VERSION) throw new OverlayError(`overlay '${name}' has format version ${version}; this Mirrorball reads version ${OVERLAY_VERSION}`);
    if (hex(header.subarray(FIELD.checksum, FIELD.checksum + CHECKSUM_BYTES)) !== hex(headerChecksum(header))) throw damaged('its header checksum does not match');
    if (view.getUint32(FIELD.headerSize, true) !== HEADER_SIZE || view.getUint32(FIELD.clusterSize, true) !== CLUSTER_SIZE || view.getUint32(FIELD.zero, true) !== 0) {
      throw damaged(`its header names sizes version ${OVERLAY_VERSION} does not have`);
    }
    const size = Number(view.getBigUint64(FIELD.diskSize, true));
    const baseHash = header.subarray(FIELD.baseHash, FIELD.baseHash + HASH_BYTES);
    if (size !== base.size || hex(baseHash) !== hex(base.sha256)) {
      throw new OverlayError(`overlay '${name}' was made for another base image (${size} bytes, SHA-256 ${hex(baseHash).slice(0, 16)}…), not this one (${base.size} bytes, SHA-256 ${hex(base.sha256).slice(0, 16)}…)`);
    }
    const length = io.length;
    if (length !== overlayLength(size)) throw damaged(`it is ${length} bytes long, not the ${overlayLength(size)} its header says`);
    this.bitmap = new Uint8Array(bitmapBytes(size));
    io.read(HEADER_SIZE, this.bitmap);
    this.dataStart = HEADER_SIZE + this.bitmap.length;
    const clusters = Math.ceil(size / CLUSTER_SIZE);
    for (let i = 0; i < this.bitmap.length; i++) {
      for (let bits = this.bitmap[i]!; bits !== 0; bits &= bits - 1) this.stored++;
    }
    for (let index = clusters; index < this.bitmap.length * 8; index++) {
      if (this.has(index)) throw damaged(`its bitmap marks cluster ${index}, past the disk's last (${clusters - 1})`);
    }
  }

  get count(): number {
    return this.stored;
  }

  has(index: number): boolean {
    return (this.bitmap[index >> 3]! & (1 << (index & 7))) !== 0;
  }

  read(index: number, into: Uint8Array): void {
    this.check();
    const got = this.io.read(this.dataStart + index * CLUSTER_SIZE, into);
    if (got !== into.length) throw new Error(`overlay ended inside cluster ${index}`);
  }

  /**
   * Each cluster's data first; then, if any cluster is new, fdatasync, and only then its bit. A bit on the
   * medium thus always has its data there (docs/disks.md).
   */
  write(clusters: readonly { index: number; data: Uint8Array }[]): void {
    this.check();
    const fresh: number[] = [];
    for (const c of clusters) {
      this.io.write(this.dataStart + c.index * CLUSTER_SIZE, c.data);
      if (!this.has(c.index) && !fresh.includes(c.index)) fresh.push(c.index);
    }
    if (fresh.length === 0) return;
    this.io.syncData();
    for (const index of fresh) this.bitmap[index >> 3]! |= 1 << (index & 7);
    const first = Math.min(...fresh) >> 3;
    const last = Math.max(...fresh) >> 3;
    try {
      this.io.write(HEADER_SIZE + first, this.bitmap.subarray(first, last + 1));
    } catch (error) {
      // Not answered as written: the clusters are not the overlay's (their data may be; the base shows).
      for (const index of fresh) this.bitmap[index >> 3]! &= ~(1 << (index & 7));
      throw error;
    }
    this.stored += fresh.length;
  }

  flush(): void {
    this.check();
    this.io.sync();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.io.close();
  }

  private check(): void {
    if (this.closed) throw new Error('overlay is closed');
  }
}

/**
 * Makes a new, empty overlay file at `path` for `base`, atomically: written and fsynced under a temporary
 * name, then linked into place (which fails if `path` appeared meanwhile), so `path` is never a partial
 * overlay. The file is its user's only (0600): it holds the guest's data.
 */
export function createOverlayFile(path: string, base: BaseIdentity): void {
  const temporary = join(dirname(path), `.${basename(path)}.new-${process.pid}`);
  const fd = openSync(temporary, 'w', PRIVATE_FILE_MODE);
  try {
    const io = fileIo(fd);
    io.write(0, encodeHeader(base));
    ftruncateSync(fd, overlayLength(base.size));
    io.sync();
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(temporary, path);
  } finally {
    unlinkSync(temporary);
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

// A raw disk image file as a virtio-blk BlockBackend, through synchronous node:fs calls.

import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import type { BlockBackend } from '../devices/virtio/blk.js';

export interface FileBlockOptions {
  /** Open the image read-only: the guest sees VIRTIO_BLK_F_RO and its writes fail with IOERR. */
  readOnly?: boolean;
}

/**
 * Every write goes straight to the file with writeSync (no buffering in this process), and `flush()` is
 * fsync, so what the guest was told is flushed survives the process being killed and the host crashing.
 * The image size is fixed when it is opened.
 */
export class FileBlockBackend implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  private fd: number | undefined;

  private constructor(fd: number, readOnly: boolean) {
    this.fd = fd;
    this.readOnly = readOnly;
    this.size = fstatSync(fd).size;
  }

  static open(path: string, options: FileBlockOptions = {}): FileBlockBackend {
    const readOnly = options.readOnly ?? false;
    return new FileBlockBackend(openSync(path, readOnly ? 'r' : 'r+'), readOnly);
  }

  read(offset: number, into: Uint8Array): void {
    const fd = this.check(offset, into.length);
    for (let done = 0; done < into.length;) {
      const n = readSync(fd, into, done, into.length - done, offset + done);
      if (n === 0) throw new Error(`disk image shorter than ${offset + into.length} bytes`);
      done += n;
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (this.readOnly) throw new Error('disk image is read-only');
    const fd = this.check(offset, data.length);
    for (let done = 0; done < data.length;) done += writeSync(fd, data, done, data.length - done, offset + done);
  }

  flush(): void {
    if (this.fd === undefined) throw new Error('disk image is closed');
    if (!this.readOnly) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private check(offset: number, length: number): number {
    if (this.fd === undefined) throw new Error('disk image is closed');
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.size) {
      throw new RangeError(`${length} bytes at ${offset} outside an image of ${this.size}`);
    }
    return this.fd;
  }
}

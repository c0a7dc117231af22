// The monitor's swap file (monitor/swap-store.ts): 4 KiB slots at offset slot × 4 KiB of a file made 0600.

import { closeSync, ftruncateSync, readSync, writeSync } from 'node:fs';
import { PAGE } from '../monitor/machine-memory.js';
import { SlotStore } from '../monitor/swap-store.js';
import { openPrivateFile } from './private-files.js';

/**
 * A swap file of `bytes` (a whole number of pages) at `path`, created (or truncated) 0600: what a page held
 * is the guest's data, no one else's to read. The file is made sparse at its full size, so that a full disk
 * shows at a write, which throws (the pager stops the VM that needed the page, as a full file does).
 */
export class FileSwapStore extends SlotStore {
  readonly name: string;
  private fd: number | undefined;

  constructor(readonly path: string, bytes: number) {
    super(checkedPages(bytes));
    this.name = `swap file ${path}`;
    this.fd = openPrivateFile(path, 'w+', true);
    ftruncateSync(this.fd, bytes);
  }

  write(slot: number, page: Uint8Array): void {
    this.checkWrite(slot, page);
    let done = 0;
    while (done < PAGE) done += writeSync(this.open(), page, done, PAGE - done, slot * PAGE + done);
  }

  read(slot: number, into: Uint8Array): void {
    this.check(slot);
    let done = 0;
    while (done < PAGE) {
      const n = readSync(this.open(), into, done, PAGE - done, slot * PAGE + done);
      if (n === 0) throw new Error(`${this.name} ends before slot ${slot}`);
      done += n;
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private open(): number {
    if (this.fd === undefined) throw new Error(`${this.name} is closed`);
    return this.fd;
  }
}

/** The slots of a swap file of `bytes`; throws RangeError unless it is a whole number of pages. */
function checkedPages(bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % PAGE !== 0) throw new RangeError(`a swap file's size is a whole number of 4 KiB pages, not ${bytes} bytes`);
  return bytes / PAGE;
}

// DMA across hosts (docs/giantvm.md, "DMA"): the devices live on host 0 and reach guest memory through
// host 0's copy of it. Before a device reads a page, host 0 must hold it at least Shared; before it
// writes one, Modified (the other hosts' copies invalidated). The gate is asked by the bus before every
// DMA access (`Bus.dmaGate`); a page not held as needed is asked of the DSM as host 0's own fault, and
// the access throws DmaPending with nothing touched. The device's work (a queue's notify, a poll) is
// then done again, whole, once the pages are in: `service` calls it back from host 0's main loop, which
// is also the only place pages leave host 0, so a page found held stays held until the work is over.

import { DmaPending } from '../memory/guest-memory.js';

/** Page states as the coherent RAM holds them (board/coherent-ram.ts HOLDS_*). */
const HOLDS_READ = 1;
const HOLDS_WRITE = 2;
const PAGE = 4096;

/** What the gate needs of a host: the state of its copy of a page, and its own faults. */
export interface DmaPages {
  /** HOLDS_NONE (0), HOLDS_READ (1) or HOLDS_WRITE (2). */
  holds(page: number): number;
  /** Asks the DSM for `page` (to write, if `write`) as this host's own fault: true if it is already here. */
  fault(page: number, write: boolean): boolean;
  /** Whether this host's request for `page` is still out. */
  requested(page: number): boolean;
}

/** The gate's counters (in the DSM statistics as `dma`). */
export interface DmaCounters {
  /** Pages DMA asked the DSM for, to read and to write (an upgrade of a Shared page counts as a write). */
  readPages: number;
  writePages: number;
  /** Times a device's work waited for pages (and was done again). */
  waits: number;
  /** Bytes the gate let through, read and written. */
  bytesRead: number;
  bytesWritten: number;
}

export class DmaGate {
  readonly counters: DmaCounters = { readPages: 0, writePages: 0, waits: 0, bytesRead: 0, bytesWritten: 0 };
  /** Pages asked for and not yet seen held as asked: page → needs a write. */
  private readonly asked = new Map<number, boolean>();
  private callbacks: (() => void)[] = [];

  constructor(private readonly ramBase: number, private readonly ramSize: number, private readonly pages: DmaPages) {}

  /** Whether device work waits for pages (a VM whose harts all idle is then not idle). */
  get waiting(): boolean {
    return this.callbacks.length > 0;
  }

  /** `Bus.dmaGate`: returns when every page of the range is held as the access needs, else asks for the missing ones and throws DmaPending. */
  check(address: number, length: number, write: boolean): void {
    const start = address - this.ramBase;
    const end = start + Math.max(length, 1);
    if (start < 0 || end > this.ramSize) return; // not this RAM: the bus has refused it already
    const need = write ? HOLDS_WRITE : HOLDS_READ;
    let missing = -1;
    for (let page = Math.floor(start / PAGE); page * PAGE < end; page++) {
      if (this.pages.holds(page) >= need) continue;
      const askedWrite = this.asked.get(page);
      if (askedWrite === undefined || (write && !askedWrite)) {
        if (this.pages.fault(page, write)) continue;
        if (write) this.counters.writePages++;
        else this.counters.readPages++;
        this.asked.set(page, write);
      }
      if (missing < 0) missing = page;
    }
    if (missing >= 0) throw new DmaPending(this.ramBase + missing * PAGE, (retry) => this.wait(retry));
    if (write) this.counters.bytesWritten += length;
    else this.counters.bytesRead += length;
  }

  /**
   * From host 0's main loop, after the DSM ran: once a page asked for is in as asked, the work that waited is
   * done again (the work waits again, counted once more, if another page is still missing). Returns whether
   * any ran (its device may have raised an interrupt).
   */
  service(): boolean {
    if (this.callbacks.length === 0) return false;
    let arrived = false;
    for (const [page, write] of this.asked) {
      // In, or no longer asked for: a write asked while a read was out (the DSM takes one request per page),
      // or a page that came and was taken away again before this look. The retry asks again if it must.
      if (this.pages.holds(page) >= (write ? HOLDS_WRITE : HOLDS_READ) || !this.pages.requested(page)) {
        this.asked.delete(page);
        arrived = true;
      }
    }
    if (!arrived) return false;
    const callbacks = this.callbacks;
    this.callbacks = [];
    for (const callback of callbacks) callback();
    return true;
  }

  private wait(retry: () => void): void {
    this.counters.waits++;
    this.callbacks.push(retry);
  }
}

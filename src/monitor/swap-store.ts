// Where the monitor's pager writes pages it evicts (pager.ts): numbered 4 KiB slots, behind one small interface,
// with an in-memory store here (tests) and the swap file in src/host/swap-file.ts.

import { PAGE } from './machine-memory.js';

/**
 * A swap device of `slots` slots of one page each. `allocate` gives a free slot (or -1 when every slot is
 * taken: the store is full), `free` gives one back; `write` and `read` move one page. Synchronous: the
 * monitor's time is simulated (costs.ts SwapCosts), the host's is not what is measured.
 */
export interface SwapStore {
  readonly slots: number;
  /** Slots taken now. */
  readonly used: number;
  /** What the store is, for a message ("swap file /path", "memory"). */
  readonly name: string;
  allocate(): number;
  free(slot: number): void;
  write(slot: number, page: Uint8Array): void;
  read(slot: number, into: Uint8Array): void;
  /** Lets go of what the store holds on the host (a file's descriptor). */
  close(): void;
}

/**
 * What every store shares: its free-slot list (slots never used are handed out in order, freed ones again last
 * freed first) and the checks of a slot and a page. Taking or freeing a slot that is not in that state throws
 * (a pager bug, not bad input). A store adds where the pages go.
 */
export abstract class SlotStore implements SwapStore {
  abstract readonly name: string;
  private next = 0;
  private readonly freed: number[] = [];
  private readonly taken: Uint8Array;
  used = 0;

  constructor(readonly slots: number) {
    if (!Number.isInteger(slots) || slots < 0) throw new RangeError(`a swap store has a whole number of slots, not ${slots}`);
    this.taken = new Uint8Array(slots);
  }

  allocate(): number {
    const slot = this.freed.length > 0 ? this.freed.pop()! : this.next < this.slots ? this.next++ : -1;
    if (slot < 0) return -1;
    this.taken[slot] = 1;
    this.used++;
    return slot;
  }

  free(slot: number): void {
    this.check(slot);
    this.taken[slot] = 0;
    this.freed.push(slot);
    this.used--;
  }

  abstract write(slot: number, page: Uint8Array): void;
  abstract read(slot: number, into: Uint8Array): void;
  abstract close(): void;

  /** Throws unless `slot` is taken. */
  protected check(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots || this.taken[slot] !== 1) throw new Error(`swap slot ${slot} is not in use`);
  }

  /** Throws unless `slot` is taken and `page` is one page. */
  protected checkWrite(slot: number, page: Uint8Array): void {
    this.check(slot);
    if (page.length !== PAGE) throw new RangeError(`a swap slot holds ${PAGE} bytes, not ${page.length}`);
  }
}

/** A store in the host's memory: for tests, and for machines that want paging's accounting without a file. */
export class MemorySwapStore extends SlotStore {
  readonly name = 'memory';
  private readonly pages = new Map<number, Uint8Array>();

  override free(slot: number): void {
    super.free(slot);
    this.pages.delete(slot);
  }

  write(slot: number, page: Uint8Array): void {
    this.checkWrite(slot, page);
    this.pages.set(slot, page.slice());
  }

  read(slot: number, into: Uint8Array): void {
    this.check(slot);
    const page = this.pages.get(slot);
    if (page === undefined) throw new Error(`swap slot ${slot} was never written`);
    into.set(page);
  }

  close(): void {
    this.pages.clear();
  }
}

// RAM whose pages this host may or may not hold (docs/giantvm.md, "Where the DSM sits"): the paged RAM of
// a host of a VM spanning several, seen from a hart's thread. Each page's permission is a word in shared
// memory that the host's main thread (its part of the DSM) sets. A hart whose access the permission does
// not allow posts a fault in its mailbox and its thread sleeps until the main thread installs the page;
// the main thread asks a hart's thread to drop its TLB entries before it gives a page away. Plain
// JavaScript (SharedArrayBuffer, Atomics).

import { ACCESS_WRITE, PERM_NONE, PERM_RWX, PERM_RX, type Access, type PagedRam } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';

const PAGE = 4096;

/** A page's word: what this host holds (the DSM's MSI state). */
export const HOLDS_NONE = 0;
export const HOLDS_READ = 1;
export const HOLDS_WRITE = 2;

/**
 * A hart's fault mailbox is one Int32 word: 0, or 1 + page × 2 + (1 if a write). One word, so that the
 * main thread takes a fault whole (Atomics.exchange); a fault the hart overwrote was already satisfied.
 */
const FAULT_WORDS = 1;

/** Int32 words of a hart thread's shootdown block. */
const SHOOT_REQUESTED = 0;
const SHOOT_DONE = 1;
/** Bumped (with a notify) when the thread should look again: a page installed, a shootdown asked. */
const SHOOT_WAKE = 2;
/** 1 while the thread may run guest code (between its own checks), 0 while it sleeps between rounds. */
const SHOOT_RUNNING = 3;
/** For a hung run's diagnosis: what the thread does (WHERE_*), and the page it waits for. */
const SHOOT_WHERE = 4;
const SHOOT_PAGE = 5;
const SHOOT_POSTS = 6;
const SHOOT_WORDS = 8;
const WHERE_RUNNING = 0;
const WHERE_FAULT = 1;
const WHERE_BETWEEN = 2;

/** The shared memory of one host's coherent RAM, structured-clonable to its hart threads. */
export interface CoherentMemory {
  /** Guest-physical base and size of RAM (multiples of 4 KiB). */
  base: number;
  size: number;
  /** This host's copy of guest memory. */
  bytes: SharedArrayBuffer;
  /** One Int32 word per page: HOLDS_*. */
  states: SharedArrayBuffer;
  /** One word per hart. */
  faults: SharedArrayBuffer;
  /** SHOOT_WORDS per hart thread (one thread per hart). */
  shootdowns: SharedArrayBuffer;
}

export function coherentMemory(base: number, size: number, harts: number, bytes?: SharedArrayBuffer): CoherentMemory {
  if (size % PAGE !== 0 || base % PAGE !== 0) throw new RangeError('coherent RAM is whole pages');
  return {
    base, size,
    bytes: bytes ?? new SharedArrayBuffer(size),
    states: new SharedArrayBuffer((size / PAGE) * 4),
    faults: new SharedArrayBuffer(harts * FAULT_WORDS * 4),
    shootdowns: new SharedArrayBuffer(harts * SHOOT_WORDS * 4),
  };
}

/** What a hart's thread flushes when asked: the hart's TLBs (and its translator's fetch page). */
export interface Flushable {
  flushFirstLevel(): void;
}

/**
 * The hart thread's side: a PagedRam over this host's copy, for one hart. `page` never answers no for a
 * page of RAM: it waits, with the thread, until the host holds the page as the access needs.
 */
export class CoherentRam implements PagedRam {
  readonly base: number;
  readonly size: number;
  readonly region: RamRegion;
  readonly regions: RamRegion[];
  readonly domain = {};
  pageOffset = 0;
  pageAllows = PERM_NONE;
  /** Faults this hart waited for, and how many times its thread flushed on request. */
  faultCount = 0;
  flushes = 0;
  private readonly states: Int32Array;
  private readonly faults: Int32Array;
  private readonly shoot: Int32Array;
  private readonly at: number;
  private readonly doorbell: Int32Array;
  private flushTargets: readonly Flushable[] = [];

  constructor(memory: CoherentMemory, readonly hart: number, doorbell: SharedArrayBuffer) {
    this.base = memory.base;
    this.size = memory.size;
    this.region = new RamRegion(0, memory.base, memory.size, memory.bytes);
    this.regions = [this.region];
    this.states = new Int32Array(memory.states);
    this.faults = new Int32Array(memory.faults);
    this.shoot = new Int32Array(memory.shootdowns);
    this.at = hart * SHOOT_WORDS;
    this.doorbell = new Int32Array(doorbell);
  }

  /**
   * The thread's wake word, which everything that wants it bumps (a page installed, a shootdown asked, a
   * round started, a signal from another hart): read it, look at what there is to do, then `sleep` on it.
   */
  wakeValue(): number {
    return Atomics.load(this.shoot, this.at + SHOOT_WAKE);
  }

  /** Sleeps until the wake word moves from `value` (or `ms` pass). */
  sleep(value: number, ms = Infinity): void {
    Atomics.wait(this.shoot, this.at + SHOOT_WAKE, value, ms);
  }

  /** The harts whose TLBs a shootdown empties (this thread's). */
  flushing(targets: readonly Flushable[]): void {
    this.flushTargets = targets;
  }

  page(index: number, access: Access): RamRegion {
    const need = access === ACCESS_WRITE ? HOLDS_WRITE : HOLDS_READ;
    let held = Atomics.load(this.states, index);
    if (held < need) held = this.fault(index, need);
    this.pageOffset = index * PAGE;
    this.pageAllows = held === HOLDS_WRITE ? PERM_RWX : PERM_RX;
    return this.region;
  }

  /** The thread may run guest code from here on: it first drops what it was asked to. */
  enter(): void {
    Atomics.store(this.shoot, this.at + SHOOT_WHERE, WHERE_RUNNING);
    Atomics.store(this.shoot, this.at + SHOOT_RUNNING, 1);
    this.serveShootdowns();
  }

  /** The thread stops running guest code until `enter` (a round is over). */
  leave(): void {
    this.serveShootdowns();
    Atomics.store(this.shoot, this.at + SHOOT_RUNNING, 0);
    Atomics.store(this.shoot, this.at + SHOOT_WHERE, WHERE_BETWEEN);
  }

  /** Drops every TLB entry if the host asked since the last time; cheap when it did not. */
  serveShootdowns(): void {
    const requested = Atomics.load(this.shoot, this.at + SHOOT_REQUESTED);
    if (requested === Atomics.load(this.shoot, this.at + SHOOT_DONE)) return;
    for (const h of this.flushTargets) h.flushFirstLevel();
    this.flushes++;
    Atomics.store(this.shoot, this.at + SHOOT_DONE, requested);
    // The host's main thread may be holding replies until this hart let go.
    Atomics.add(this.doorbell, 0, 1);
    Atomics.notify(this.doorbell, 0);
  }

  private fault(index: number, need: number): number {
    this.faultCount++;
    const word = 1 + index * 2 + (need === HOLDS_WRITE ? 1 : 0);
    Atomics.store(this.shoot, this.at + SHOOT_PAGE, index);
    Atomics.store(this.shoot, this.at + SHOOT_WHERE, WHERE_FAULT);
    for (;;) {
      // The wake word is read before the fault is posted: the host wakes the thread after it took the
      // fault (the page was there, or came), and a page that came and went again before this thread
      // looked must find it awake to post again. Read after the post, that wake could be missed.
      const wake = Atomics.load(this.shoot, this.at + SHOOT_WAKE);
      // Posted again at each wake: a read that came in answers a write fault only in part.
      Atomics.store(this.faults, this.hart * FAULT_WORDS, word);
      Atomics.add(this.shoot, this.at + SHOOT_POSTS, 1);
      Atomics.add(this.doorbell, 0, 1);
      Atomics.notify(this.doorbell, 0);
      // Pages taken away meanwhile are dropped while the hart waits: the host waits for that.
      this.serveShootdowns();
      const held = Atomics.load(this.states, index);
      if (held >= need) {
        Atomics.store(this.shoot, this.at + SHOOT_WHERE, WHERE_RUNNING);
        return held;
      }
      Atomics.wait(this.shoot, this.at + SHOOT_WAKE, wake);
    }
  }
}

/** The hart threads' wake words, from any thread of the host. */
export class ThreadWakes {
  private readonly shoot: Int32Array;

  constructor(memory: CoherentMemory) {
    this.shoot = new Int32Array(memory.shootdowns);
  }

  /** Hart `hart`'s thread looks at its signals, its round and its page again. */
  wake(hart: number): void {
    Atomics.add(this.shoot, hart * SHOOT_WORDS + SHOOT_WAKE, 1);
    Atomics.notify(this.shoot, hart * SHOOT_WORDS + SHOOT_WAKE);
  }
}

/** The host main thread's side: permissions, the harts' faults and shootdowns. */
export class CoherentPages {
  readonly bytes: Uint8Array;
  private readonly states: Int32Array;
  private readonly faults: Int32Array;
  private readonly shoot: Int32Array;

  constructor(readonly memory: CoherentMemory, private readonly harts: readonly number[]) {
    this.bytes = new Uint8Array(memory.bytes);
    this.states = new Int32Array(memory.states);
    this.faults = new Int32Array(memory.faults);
    this.shoot = new Int32Array(memory.shootdowns);
  }

  get pages(): number {
    return this.memory.size / PAGE;
  }

  holds(page: number): number {
    return Atomics.load(this.states, page);
  }

  /** Raises a page's permission and wakes the threads waiting for it. */
  raise(page: number, holds: number): void {
    Atomics.store(this.states, page, holds);
    this.wakeAll();
  }

  /**
   * Lowers a page's permission and asks every hart thread to drop its TLB entries. `shotDown` says when
   * they all have (or sleep between rounds and will before they run again).
   */
  lower(page: number, holds: number): void {
    Atomics.store(this.states, page, holds);
    for (const h of this.harts) Atomics.add(this.shoot, h * SHOOT_WORDS + SHOOT_REQUESTED, 1);
    this.wakeAll();
  }

  /** Every shootdown asked so far is done. */
  shotDown(): boolean {
    for (const h of this.harts) {
      const at = h * SHOOT_WORDS;
      // Asked first, then read RUNNING: a thread that was not running reads the request when it enters.
      if (Atomics.load(this.shoot, at + SHOOT_DONE) === Atomics.load(this.shoot, at + SHOOT_REQUESTED)) continue;
      if (Atomics.load(this.shoot, at + SHOOT_RUNNING) === 0) continue;
      return false;
    }
    return true;
  }


  /** The faults the harts posted since the last call: [hart, page, write]. */
  takeFaults(): { hart: number; page: number; write: boolean }[] {
    const found: { hart: number; page: number; write: boolean }[] = [];
    for (const h of this.harts) {
      const word = Atomics.exchange(this.faults, h * FAULT_WORDS, 0);
      if (word === 0) continue;
      found.push({ hart: h, page: Math.floor((word - 1) / 2), write: ((word - 1) & 1) === 1 });
    }
    return found;
  }

  /** The shootdown words and posted faults, for a hung run's diagnosis. */
  describe(): string {
    return this.harts.map((h) => {
      const at = h * SHOOT_WORDS;
      const where = ['running', 'fault', 'between-rounds'][this.shoot[at + SHOOT_WHERE]!];
      const page = this.shoot[at + SHOOT_PAGE]!;
      return `hart${h}:req${this.shoot[at + SHOOT_REQUESTED]}/done${this.shoot[at + SHOOT_DONE]}/run${this.shoot[at + SHOOT_RUNNING]}/fault${this.faults[h]}/` +
        `${where}/last-page${page}:holds${this.states[page]}/posts${this.shoot[at + SHOOT_POSTS]}/wake${this.shoot[at + SHOOT_WAKE]}`;
    }).join(' ');
  }

  /** The page each hart last faulted on. */
  lastPages(): number[] {
    return this.harts.map((h) => this.shoot[h * SHOOT_WORDS + SHOOT_PAGE]!);
  }

  /** Every waiting thread looks again (its page may be there). */
  wakeAll(): void {
    for (const h of this.harts) {
      Atomics.add(this.shoot, h * SHOOT_WORDS + SHOOT_WAKE, 1);
      Atomics.notify(this.shoot, h * SHOOT_WORDS + SHOOT_WAKE);
    }
  }
}

// Monitor-level paging (Cellular Disco §4.5; docs/monitor.md "Paging"): when the machine's memory runs short,
// VMs' pages go to a swap store by second-chance FIFO over machine pages, and come back at the guest-page fault.

import { ACCESS_PERM, PERM_NONE, type Access } from '../memory/bus.js';
import { FREE, OutOfMachineMemory, PAGE, PAGE_CACHE, type MachineMemory, type PageUser } from './machine-memory.js';
import type { Pmap } from './pmap.js';
import type { ShareSource, SharingLedger } from './sharing-ledger.js';
import type { SwapCosts } from './costs.js';
import type { SwapStore } from './swap-store.js';

/** Free pages the pager keeps by default: what devices' DMA and a fault may take between its safe points (1 MiB). */
export const DEFAULT_RESERVE_PAGES = 256;
/** Pages evicted past the reserve at once, so that writes go to the device in batches (one latency each). */
export const DEFAULT_BATCH_PAGES = 32;

/** What the pager is made with (MonitorOptions.swap). */
export interface SwapOptions {
  store: SwapStore;
  costs?: SwapCosts;
  /** Free pages kept for what is allocated between the pager's safe points (DEFAULT_RESERVE_PAGES). */
  reservePages?: number;
  /** Pages evicted past the reserve at once (DEFAULT_BATCH_PAGES). */
  batchPages?: number;
}

/** What the pager did for one fault (or one safe point): the caller charges it (costs.ts SwapCosts). */
export interface PagerWork {
  /** Pages written to the store, pages dropped as zero, pages the hand passed, pages read back. */
  written: number;
  zeroDropped: number;
  handSteps: number;
  read: number;
}

/** Per VM: its pages in the store, and what the pager moved for it since it started. */
export interface VmSwapAccount {
  /** Guest pages whose contents are in a swap slot now (no machine page). */
  swapped: number;
  pagesOut: number;
  pagesIn: number;
  zeroDropped: number;
}

/** What the pager needs of the monitor. */
export interface PagerHost {
  memory: MachineMemory;
  ledger: SharingLedger;
  /** The pmap of running VM `vm`, or undefined. */
  pmapOf(vm: number): Pmap | undefined;
  /** The page cache lets go of machine page `mpn` if it holds it (PageCache.forget). */
  forgetCached(mpn: number): void;
  /** Memory's cheaper reclaim first: the page cache's own pages, replicas, pages only reserved (MachineMemory.reclaim). */
  reclaim(): number;
}

/** A vCPU waiting for the swap device. */
interface Sleeper {
  hart: { readonly suspended: boolean; resume(): void };
  now: () => number;
  due: number;
  alive: () => boolean;
}

/** A FIFO entry's page and the allocation it stands for (a page freed and given out again is a new arrival). */
interface Arrival {
  mpn: number;
  stamp: number;
}

/**
 * The pager. Every machine page given to a VM joins a FIFO (`arrived`). When free memory falls below the
 * reserve at a safe point (`makeRoom`: a vCPU's guest-page fault before it is resolved, and each round's end),
 * the hand takes the oldest page: if some user touched it since the hand last passed (the monitor's
 * permission on it is not none: see "referenced" below) it gets a second chance, its permission taken away
 * and back to the FIFO's tail; else it goes. A page of all zeros is dropped (its users' entries simply go, and
 * the next touch is a fresh zero page); any other is written once to a slot, and every user's pmap entry
 * notes that slot, whoever shares it (copy-on-write between VMs, content merges, the page cache). Held pages
 * wait. Reading back (`readBack`) happens at the first user's fault, into one page mapped to every user that
 * still waited for the slot (copy-on-write when several, as before), the others with no permission so that
 * their first touch costs only a soft fault.
 *
 * Referenced: the monitor cannot read the guest's A bits in hardware it does not walk (its pmap is what it
 * holds), so, as VMS and BSD did on the VAX, it takes the permission away to learn of the next use: a soft
 * guest-page fault that gives it back (`Pmap.resolveFault`'s `protection`) and so marks the page used.
 */
export class Pager {
  readonly store: SwapStore;
  readonly costs: SwapCosts;
  readonly reservePages: number;
  readonly batchPages: number;
  /** The FIFO of machine pages given to VMs, oldest at `head`. */
  private queue: Arrival[] = [];
  private head = 0;
  /** Per machine page: the stamp of its latest arrival. */
  private readonly stamps: Float64Array;
  private clock = 0;
  /** Per slot: the guest pages that wait for it (the first, and any sharers). */
  private readonly slotUsers = new Map<number, PageUser[]>();
  /** Per slot of a shared page: where its sharing came from (the ledger's source, kept for the page read back). */
  private readonly slotSource = new Map<number, ShareSource>();
  /** Per VM: guest page → slot. */
  private readonly swappedPages = new Map<number, Map<number, number>>();
  /** Machine pages whose permission the hand took for a second chance: a fault on them is a soft fault. */
  private readonly watched = new Set<number>();
  private readonly accounts = new Map<number, VmSwapAccount>();
  /** The machine's totals since the pager started. */
  readonly totals = { pagesOut: 0, pagesIn: 0, zeroDropped: 0, secondChances: 0, softFaults: 0, handSteps: 0, storeFull: 0 };
  private readonly buffer = new Uint8Array(PAGE);
  private sleepers: Sleeper[] = [];

  constructor(private readonly host: PagerHost, options: SwapOptions, costs: SwapCosts) {
    this.store = options.store;
    this.costs = costs;
    this.reservePages = options.reservePages ?? DEFAULT_RESERVE_PAGES;
    this.batchPages = options.batchPages ?? DEFAULT_BATCH_PAGES;
    if (!Number.isInteger(this.reservePages) || this.reservePages < 1) throw new RangeError(`the pager's reserve is a whole number of pages ≥ 1, not ${this.reservePages}`);
    if (!Number.isInteger(this.batchPages) || this.batchPages < 0) throw new RangeError(`the pager's batch is a whole number of pages, not ${this.batchPages}`);
    this.stamps = new Float64Array(host.memory.totalPages);
    host.memory.onVmPage = (mpn) => this.arrived(mpn);
  }

  /**
   * The round's end (a safe point): vCPUs whose wait is over run again, and below half the reserve (devices'
   * DMA took it) room is made for the next round's. A full store is left for the next fault that needs a
   * page to find, and be stopped with the reason.
   */
  afterRound(): void {
    this.wake();
    try {
      this.makeRoom(undefined, Math.ceil(this.reservePages / 2));
    } catch (error) {
      if (!(error instanceof OutOfMachineMemory)) throw error;
    }
  }

  /** Machine page `mpn` was given to a VM (MachineMemory.onVmPage): it joins the FIFO's tail. */
  arrived(mpn: number): void {
    const stamp = ++this.clock;
    this.stamps[mpn] = stamp;
    this.watched.delete(mpn);
    this.queue.push({ mpn, stamp });
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head).filter((a) => this.stamps[a.mpn] === a.stamp);
      this.head = 0;
    }
  }

  /**
   * The FIFO starts again from the memmap: every page a VM or the page cache holds, in machine page order (a
   * whole machine restored from a snapshot, whose pages came back without arriving one by one).
   */
  adopt(): void {
    const memory = this.host.memory;
    this.queue = [];
    this.head = 0;
    this.watched.clear();
    for (let mpn = 0; mpn < memory.totalPages; mpn++) {
      const owner = memory.owner[mpn]!;
      if (memory.users[mpn]! > 0 && (owner >= 0 || owner === PAGE_CACHE)) this.arrived(mpn);
    }
  }

  /** VM `vm`'s pmap, as the pager must know it: a page with no machine page dropped or mapped otherwise forgets its slot. */
  attach(pmap: Pmap): void {
    pmap.onDiscard = (gppn) => this.discard(pmap.vm, gppn);
  }

  /** The slot holding guest page `gppn` of VM `vm`, or -1. */
  slotOf(vm: number, gppn: number): number {
    return this.swappedPages.get(vm)?.get(gppn) ?? -1;
  }

  /** Guest pages in the store, of VM `vm` or of every VM. */
  swapped(vm?: number): number {
    if (vm !== undefined) return this.swappedPages.get(vm)?.size ?? 0;
    let n = 0;
    for (const pages of this.swappedPages.values()) n += pages.size;
    return n;
  }

  /** What the pager did for VM `vm` (zeros for one it never touched). */
  account(vm: number): VmSwapAccount {
    const a = this.accounts.get(vm);
    return { swapped: this.swapped(vm), pagesOut: a?.pagesOut ?? 0, pagesIn: a?.pagesIn ?? 0, zeroDropped: a?.zeroDropped ?? 0 };
  }

  /** True (and forgotten) when a fault on machine page `mpn` is the soft fault of a second chance. */
  takeSoftFault(mpn: number): boolean {
    if (mpn === FREE || !this.watched.delete(mpn)) return false;
    this.totals.softFaults++;
    return true;
  }

  /**
   * A safe point (no page operation under way: a vCPU's fault before it is resolved, or the round's end): while
   * fewer than the reserve of pages are free, memory's cheaper reclaim first, then pages evicted, to the reserve
   * and a batch more. `keep`: a guest page not to evict (the one faulting). `below`: the free pages under which it
   * starts (the reserve by default; the round's end waits for half). Throws OutOfMachineMemory when the store is
   * full and a page must be written.
   */
  makeRoom(keep?: PageUser, below = this.reservePages): PagerWork {
    const work: PagerWork = { written: 0, zeroDropped: 0, handSteps: 0, read: 0 };
    if (this.free() >= below) return work;
    const target = this.reservePages + this.batchPages;
    while (this.free() < target) {
      if (this.host.reclaim() > 0) continue;
      if (!this.evictOne(work, keep)) break;
    }
    this.totals.handSteps += work.handSteps;
    return work;
  }

  /** Free pages on the machine's nodes. */
  private free(): number {
    const memory = this.host.memory;
    let n = 0;
    for (const node of memory.layout.nodes) n += memory.pagesFree(node.id);
    return n;
  }

  /** Takes FIFO pages until one goes (true) or none can (false: every page is held, or the FIFO is empty). */
  private evictOne(work: PagerWork, keep: PageUser | undefined): boolean {
    const memory = this.host.memory;
    // Each page at most twice around: once for its second chance, once to go.
    let budget = 2 * (this.queue.length - this.head) + 1;
    while (budget-- > 0 && this.head < this.queue.length) {
      const { mpn, stamp } = this.queue[this.head++]!;
      if (this.stamps[mpn] !== stamp || memory.users[mpn] === 0) continue;
      work.handSteps++;
      const users = memory.usersOf(mpn);
      const vmUsers = users.filter((u) => u.vm >= 0);
      // A page some other holder keeps (not a VM's, not the page cache's) is not the pager's; one the page cache
      // alone holds stays in the FIFO, for a VM may map it again (memory's reclaim trims it meanwhile).
      if (users.some((u) => u.vm < 0 && u.vm !== PAGE_CACHE)) continue;
      if (vmUsers.length === 0) {
        this.requeue(mpn, stamp);
        continue;
      }
      const pmaps = vmUsers.map((u) => this.host.pmapOf(u.vm));
      const busy = pmaps.some((p, i) => p === undefined || p.held(vmUsers[i]!.gppn) || p.lookup(vmUsers[i]!.gppn) !== mpn)
        || (keep !== undefined && vmUsers.some((u) => u.vm === keep.vm && u.gppn === keep.gppn));
      if (busy) {
        this.requeue(mpn, stamp);
        continue;
      }
      if (vmUsers.some((u, i) => pmaps[i]!.permission(u.gppn) !== PERM_NONE)) {
        // Used since the hand last came: a second chance, and no permission, so the next use says so.
        vmUsers.forEach((u, i) => pmaps[i]!.protect(u.gppn, PERM_NONE));
        this.watched.add(mpn);
        this.totals.secondChances++;
        this.requeue(mpn, stamp);
        continue;
      }
      this.evict(mpn, vmUsers, pmaps as Pmap[], work);
      return true;
    }
    return false;
  }

  private requeue(mpn: number, stamp: number): void {
    this.queue.push({ mpn, stamp });
  }

  /** Page `mpn` goes: dropped if zero, else written once to a new slot that every user's entry notes. */
  private evict(mpn: number, users: PageUser[], pmaps: Pmap[], work: PagerWork): void {
    const memory = this.host.memory;
    const region = memory.regionOf(mpn);
    const offset = memory.offsetOf(mpn);
    const bytes = region.u8.subarray(offset, offset + PAGE);
    let slot = -1;
    if (!isZero(region.i32, offset / 4)) {
      slot = this.store.allocate();
      if (slot < 0) {
        this.totals.storeFull++;
        throw new OutOfMachineMemory(`${OUT_OF_SWAP}: ${this.store.name} has all its ${this.store.slots} pages in use`);
      }
      this.store.write(slot, bytes);
      const source = users.length > 1 ? this.host.ledger.sourceOf(mpn) : 'other';
      if (source !== 'other') this.slotSource.set(slot, source);
      this.slotUsers.set(slot, users.map((u) => ({ ...u })));
    }
    this.host.forgetCached(mpn);
    this.watched.delete(mpn);
    users.forEach((u, i) => {
      pmaps[i]!.unmap(u.gppn);
      const account = this.accountOf(u.vm);
      if (slot < 0) {
        account.zeroDropped++;
        return;
      }
      let pages = this.swappedPages.get(u.vm);
      if (pages === undefined) this.swappedPages.set(u.vm, pages = new Map());
      pages.set(u.gppn, slot);
      account.pagesOut++;
    });
    if (slot < 0) {
      work.zeroDropped++;
      this.totals.zeroDropped++;
    } else {
      work.written++;
      this.totals.pagesOut++;
    }
  }

  private accountOf(vm: number): VmSwapAccount {
    let a = this.accounts.get(vm);
    if (a === undefined) this.accounts.set(vm, a = { swapped: 0, pagesOut: 0, pagesIn: 0, zeroDropped: 0 });
    return a;
  }

  /**
   * Guest page `gppn` of `pmap`'s VM is in the store: it comes back into a fresh machine page (a fill), and
   * every other guest page waiting for the same slot maps that page too, copy-on-write, with no permission
   * until its own first touch. The slot is then free. Returns whether `access` is now allowed (a write to a
   * shared page still needs its copy: `Pmap.resolveFault`). Throws OutOfMachineMemory with no page for it.
   */
  readBack(pmap: Pmap, gppn: number, access: Access): boolean {
    const slot = this.slotOf(pmap.vm, gppn);
    if (slot < 0) throw new Error(`guest page ${gppn} of VM ${pmap.vm} is not in the store`);
    this.store.read(slot, this.buffer);
    pmap.resolveFault(gppn, access);
    const mpn = pmap.lookup(gppn);
    const memory = this.host.memory;
    memory.regionOf(mpn).u8.set(this.buffer, memory.offsetOf(mpn));
    const others = (this.slotUsers.get(slot) ?? []).filter((u) => (u.vm !== pmap.vm || u.gppn !== gppn) && this.slotOf(u.vm, u.gppn) === slot);
    this.release(pmap.vm, gppn);
    this.accountOf(pmap.vm).pagesIn++;
    this.totals.pagesIn++;
    if (others.length > 0) {
      const source = this.slotSource.get(slot);
      if (source !== undefined && source !== 'other') this.host.ledger.note(mpn, source);
      pmap.shareOut(gppn);
      for (const u of others) {
        const theirs = this.host.pmapOf(u.vm);
        this.release(u.vm, u.gppn);
        if (theirs === undefined) continue;
        theirs.mapShared(u.gppn, mpn);
        theirs.protect(u.gppn, PERM_NONE);
      }
    }
    return (pmap.permission(gppn) & ACCESS_PERM[access]) !== 0;
  }

  /** Guest page `gppn` of VM `vm` no longer waits for its slot; the slot goes when no one does. */
  private release(vm: number, gppn: number): void {
    const pages = this.swappedPages.get(vm);
    const slot = pages?.get(gppn);
    if (slot === undefined) return;
    pages!.delete(gppn);
    const users = this.slotUsers.get(slot);
    if (users !== undefined) {
      const i = users.findIndex((u) => u.vm === vm && u.gppn === gppn);
      if (i >= 0) users.splice(i, 1);
      if (users.length > 0) return;
    }
    this.slotUsers.delete(slot);
    this.slotSource.delete(slot);
    this.store.free(slot);
  }

  /** The guest dropped page `gppn` (or it was mapped otherwise): what the store kept of it is stale. */
  private discard(vm: number, gppn: number): void {
    this.release(vm, gppn);
  }

  /** VM `vm` ended: its slots go (those shared with others stay theirs). */
  forgetVm(vm: number): void {
    const pages = this.swappedPages.get(vm);
    if (pages !== undefined) for (const gppn of [...pages.keys()]) this.release(vm, gppn);
    this.swappedPages.delete(vm);
  }

  /**
   * vCPU `hart` waits for the swap device until its VM's clock (`now`) reaches `due`; `alive` is false once its VM
   * ended. The monitor wakes it at the first round's end past that (`wake`).
   */
  sleep(hart: Sleeper['hart'], now: () => number, due: number, alive: () => boolean): void {
    this.sleepers.push({ hart, now, due, alive });
  }

  /** vCPUs waiting for the swap device: while there are, the monitor is not idle (time must flow for them). */
  get sleeping(): number {
    return this.sleepers.length;
  }

  /** The round's end: every vCPU whose wait is over runs again. */
  wake(): void {
    if (this.sleepers.length === 0) return;
    this.sleepers = this.sleepers.filter((s) => {
      if (!s.alive()) return false;
      if (s.now() < s.due) return true;
      if (s.hart.suspended) s.hart.resume();
      return false;
    });
  }

  /** The FIFO as it is, oldest first (tests): each machine page once, the pages that still stand for their arrival. */
  fifo(): number[] {
    return this.queue.slice(this.head).filter((a) => this.stamps[a.mpn] === a.stamp && this.host.memory.users[a.mpn] !== 0).map((a) => a.mpn);
  }
}

/** How the reason of a VM stopped for a full swap store begins. */
export const OUT_OF_SWAP = 'swap full';

/** True when the 1024 words from `at` are all zero. */
function isZero(words: Int32Array, at: number): boolean {
  for (let k = 0; k < PAGE / 4; k++) if (words[at + k] !== 0) return false;
  return true;
}

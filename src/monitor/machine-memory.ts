// The machine's memory as the monitor hands it out: pages per NUMA node, and the memmap that says who uses each.

import { LARGE_PAGE_BYTES } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import type { MachineLayout } from '../board/address-map.js';
import { DeadCellError } from './revocable.js';
import { CodeDomains } from './code-domains.js';
import { emptyPool, freedBlocks, freeRuns, poolFromMemmap, savePools, restorePools, type Counted, type MachineMemoryState, type NodePool, type PageLoans } from './node-pool.js';

export const PAGE = 4096;
/** Pages in a large block: 2 MiB of machine memory, aligned, that a pmap can map as one large page. */
export const BLOCK_PAGES = LARGE_PAGE_BYTES / PAGE;
/** The memmap's owner of a free machine page. */
export const FREE = -1;
/** The memmap's owner of a page of the monitor's own data (monitor-data.ts): its tables, vCPU state, TLBs. */
export const MONITOR = -2;
/** The memmap's owner of a read-only copy of a VM's page on another node (Disco's replication, numa-policy.ts). */
export const REPLICA = -3;

/** The memmap's user id of the monitor's page cache (page-cache.ts): it holds the pages it caches as one more user. */
export const PAGE_CACHE = -4;

/** The machine has no page left on any node, even after the pmaps gave back what they only reserved. */
export class OutOfMachineMemory extends Error {}

/** The most users a machine page can have (the memmap counts them in 16 bits): sharing must start another copy there. */
export const MAX_PAGE_USERS = 0xffff;

/** What the memmap needs of a VM's pmap: to shoot a machine page down in the VM's vCPUs, and to follow a page that moved. */
export interface PageSpace {
  shootDown(machineAddress: number, bytes?: number): void;
  /** Guest page `gppn` now lives in machine page `mpn` (`movePage` moved it with its other users). */
  moved(gppn: number, mpn: number): void;
}

export type { MachineMemoryState } from './node-pool.js';
export type { NodePool, PageLoans } from './node-pool.js';

/** One mapping of a machine page: a VM and its guest-physical page number. */
export interface PageUser {
  vm: number;
  gppn: number;
}

/**
 * Machine memory: one RAM region per node at the machine's physical addresses, a page allocator per node
 * and the memmap (machine page → every VM and guest-physical page that maps it). A machine page number
 * (mpn) counts pages from the start of the first node's RAM. A page may have several users (pages shared
 * between VMs, or between guest pages of one VM); it goes back to its node when the last one lets go.
 */
export class MachineMemory {
  readonly regions: RamRegion[];
  /** The registries of translated code (code-domains.ts): the machine's, and each cell's with several. */
  readonly code = new CodeDomains();
  /** The machine's registry: every VM's with one cell, the spanning VMs' with several. */
  readonly domain = this.code.machine;
  /** memmap: per machine page, its first user's VM id (FREE if none) and guest-physical page number there. */
  readonly owner: Int32Array;
  readonly guestPage: Int32Array;
  /** memmap: per machine page, how many (VM, guest page) map it; users past the first are in `moreUsers`. */
  readonly users: Uint16Array;
  private readonly moreUsers = new Map<number, PageUser[]>();
  /** Per VM id: its pmap, as the memmap sees it. */
  private readonly spaces = new Map<number, PageSpace>();
  /**
   * Asked when no node an allocation may use has a free page (`nodes`: those it may use; none given: any):
   * gives back replicas, then pages only reserved (blocks not fully touched), on those nodes, and returns how
   * many. The monitor sets it; memory under pressure breaks large pages before it gives up.
   */
  reclaim: ((nodes?: ReadonlySet<number>) => number) | undefined = undefined;
  /** Told of every machine page given to a VM's guest page (the pager's FIFO, pager.ts), once the memmap names it. */
  onVmPage: ((mpn: number) => void) | undefined = undefined;
  /** Told of every page `movePage` moved, after the move (the sharing ledger keeps its notes by machine page). */
  onPageMoved: ((from: number, to: number) => void) | undefined = undefined;
  /**
   * With several cells (docs/cells.md): asked before VM `vm` is given memory on `node` (a page, a block, a
   * replica, or the monitor's data for it). True at once for a node of the VM's own cell; for another cell's
   * node, true when that cell lent it, answering a message (cell-recovery.ts), false when it did not answer.
   * Undefined: every node is anyone's (one cell).
   */
  lends: ((vm: number, node: number) => boolean) | undefined = undefined;
  /**
   * Memory borrowing between cells (memory-borrowing.ts, docs/cells.md "Borrowing"): asked by the allocations of
   * a confined VM, which may take pages of the chunks its cell borrowed once its own nodes are full. Undefined: off.
   */
  loans: PageLoans | undefined = undefined;
  /** Per node: its first mpn and how many pages it has. */
  private readonly firstPage: number[];
  private readonly nodePages: number[];
  /**
   * Per node: its page allocator (`NodePool`), the state of the cell that holds the node. With several cells
   * the monitor makes each through its cell's revocable objects (`placePools`), so a failed cell's pools
   * throw on any access; `gone` says which nodes' pools are not to be touched again.
   */
  private readonly pools: NodePool[];
  /** Nodes whose cell failed, with that cell: their pools and their part of the memmap went with it. */
  private readonly gone = new Map<number, number>();
  /** Per node: every node, nearest first (by the machine's distances, then id): where its pages come from. */
  private readonly nearest: number[][];
  /** Per machine page: its node. */
  private readonly pageNode: Uint8Array;

  /** Nodes the monitor has given up (failed, or cut off from node 0): nothing is allocated there again. */
  private readonly lostNodes = new Set<number>();
  /** Pages the monitor retired (poisoned): never handed out again. */
  private readonly retired = new Set<number>();
  /** Per VM id: the only nodes its pages (and the monitor's data for it) may come from, for a VM confined to a cell. */
  private readonly confinedTo = new Map<number, readonly number[]>();
  private readonly allNodes: readonly number[];

  /** `regions`: the machine's RAM, one region per node (the hardware's); made here when not given. */
  constructor(readonly layout: MachineLayout, regions?: readonly RamRegion[]) {
    this.regions = regions === undefined ? layout.nodes.map((n) => new RamRegion(n.id, n.base, n.size)) : [...regions];
    const base = layout.nodes[0]!.base;
    this.firstPage = layout.nodes.map((n) => (n.base - base) / PAGE);
    this.nodePages = layout.nodes.map((n) => n.size / PAGE);
    this.pools = layout.nodes.map(() => emptyPool());
    const pages = (layout.ramEnd - base) / PAGE;
    this.pageNode = new Uint8Array(pages);
    layout.nodes.forEach((n, i) => this.pageNode.fill(i, this.firstPage[i], this.firstPage[i]! + this.nodePages[i]!));
    this.nearest = layout.nodes.map((_, from) =>
      layout.nodes.map((_, n) => n).sort((a, b) => layout.distances[from]![a]! - layout.distances[from]![b]! || a - b));
    this.owner = new Int32Array(pages).fill(FREE);
    this.guestPage = new Int32Array(pages).fill(FREE);
    this.users = new Uint16Array(pages);
    this.allNodes = layout.nodes.map((n) => n.id);
  }

  /**
   * VM `vm`'s pages come from `nodes` only (its cell's, docs/cells.md), fallbacks included, and so do the
   * monitor's pages for it (`allocateMonitor` given the VM); undefined: from any node.
   */
  confine(vm: number, nodes: readonly number[] | undefined): void {
    if (nodes === undefined) this.confinedTo.delete(vm);
    else this.confinedTo.set(vm, [...nodes]);
  }

  /** The nodes VM `vm`'s pages may come from. */
  nodesFor(vm: number): readonly number[] {
    return this.confinedTo.get(vm) ?? this.allNodes;
  }

  /** True when VM `vm`'s pages may lie on `node`. */
  allows(vm: number, node: number): boolean {
    const nodes = this.confinedTo.get(vm);
    return nodes === undefined || nodes.includes(node);
  }

  /** The allocator and memmap as plain data (snapshots, monitor-snapshot.ts); RAM contents are saved apart. */
  saveState(): MachineMemoryState {
    const more: number[] = [];
    for (const [mpn, users] of this.moreUsers) for (const u of users) more.push(mpn, u.vm, u.gppn);
    return {
      owner: this.owner.slice(), guestPage: this.guestPage.slice(), users: this.users.slice(), moreUsers: Int32Array.from(more),
      ...savePools(this.pools),
    };
  }

  /** Puts back what `saveState` returned; the caller has checked it against the pmaps that use the pages. */
  restoreState(s: MachineMemoryState): void {
    this.owner.set(s.owner);
    this.guestPage.set(s.guestPage);
    this.users.set(s.users);
    this.moreUsers.clear();
    for (let i = 0; i < s.moreUsers.length; i += 3) {
      const mpn = s.moreUsers[i]!;
      const list = this.moreUsers.get(mpn) ?? [];
      list.push({ vm: s.moreUsers[i + 1]!, gppn: s.moreUsers[i + 2]! });
      this.moreUsers.set(mpn, list);
    }
    restorePools(this.pools, s);
  }

  /**
   * Each node's pool becomes what `make` makes of it (with several cells, the monitor makes each through its
   * cell's revocable objects: monitor.ts). Call once, before anything is allocated.
   */
  placePools(make: (node: number, pool: NodePool) => NodePool): void {
    this.makePool = make;
    this.pools.forEach((pool, node) => { this.pools[node] = make(node, pool); });
  }

  private makePool: (node: number, pool: NodePool) => NodePool = (_, pool) => pool;

  /** A count summed over the nodes whose pools are still held (a failed cell's went with it). */
  private sum(count: (pool: NodePool) => number): number {
    let n = 0;
    this.pools.forEach((pool, node) => { if (!this.gone.has(node)) n += count(pool); });
    return n;
  }

  /** Node `node`'s first machine page and its number of pages. */
  nodeSpan(node: number): { first: number; pages: number } {
    return { first: this.firstPage[node]!, pages: this.nodePages[node]! };
  }

  /** VM `vm`'s pages are `space` (its pmap registers itself). */
  addSpace(vm: number, space: PageSpace): void {
    this.spaces.set(vm, space);
  }

  removeSpace(vm: number): void {
    this.spaces.delete(vm);
  }

  /** Shoots down page `mpn` in every VM that maps it (a change to the page itself, not to one mapping). */
  shootDownEverywhere(mpn: number): void {
    const address = this.addressOf(mpn);
    for (const vm of new Set(this.usersOf(mpn).map((u) => u.vm))) this.spaces.get(vm)?.shootDown(address);
  }

  /**
   * Moves machine page `mpn`, with its contents and every user, to a fresh page on `node` (or the nearest
   * node with one): every VM that maps it shoots it down first, so no vCPU writes the old copy after it was
   * read, then follows it to the new page. Returns the new page. Throws OutOfMachineMemory, changing nothing.
   */
  movePage(mpn: number, node: number): number {
    const users = this.usersOf(mpn);
    if (users.length === 0) throw new Error(`machine page ${mpn} is free: there is nothing to move`);
    const first = users[0]!;
    const to = this.allocate(node, first.vm, first.gppn);
    this.shootDownEverywhere(mpn);
    this.copyPage(mpn, to);
    for (const u of users.slice(1)) this.addUser(to, u.vm, u.gppn);
    for (const u of users) {
      this.spaces.get(u.vm)?.moved(u.gppn, to);
      this.removeUser(mpn, u.vm, u.gppn);
    }
    this.onPageMoved?.(mpn, to);
    return to;
  }

  /** True when page `mpn` lies on a node whose cell failed (`letGoPools`): its memmap entry went with the cell. */
  pageGone(mpn: number): boolean {
    return this.gone.size > 0 && this.gone.has(this.pageNode[mpn]!);
  }

  /** Throws DeadCellError when page `mpn`'s memmap entry went with its failed cell. */
  private reachable(mpn: number): void {
    if (this.pageGone(mpn)) throw new DeadCellError(this.gone.get(this.pageNode[mpn]!)!);
  }

  /** Every (VM, guest page) that maps machine page `mpn`, first user first. */
  usersOf(mpn: number): PageUser[] {
    this.reachable(mpn);
    if (this.users[mpn] === 0) return [];
    return [{ vm: this.owner[mpn]!, gppn: this.guestPage[mpn]! }, ...(this.moreUsers.get(mpn) ?? [])];
  }

  /** Adds a user to page `mpn`, which must be in use (sharing: another VM's page, or another page of one VM). */
  addUser(mpn: number, vm: number, gppn: number): void {
    this.reachable(mpn);
    if (this.users[mpn] === 0) throw new Error(`machine page ${mpn} is free: there is nothing to share`);
    if (this.users[mpn] === MAX_PAGE_USERS) throw new Error(`machine page ${mpn} has too many users`);
    const more = this.moreUsers.get(mpn) ?? [];
    more.push({ vm, gppn });
    this.moreUsers.set(mpn, more);
    this.users[mpn]!++;
  }

  /**
   * VM `vm`'s guest page `gppn` stops mapping machine page `mpn`; the page goes back to its node when that
   * was its last user (true then). Throws if that pair does not map it: a free with no mapping left is a bug.
   */
  removeUser(mpn: number, vm: number, gppn: number): boolean {
    // A page of a failed cell: its entry is gone; the code translated from it is stale all the same.
    if (this.pageGone(mpn)) {
      this.code.replaced(this.addressOf(mpn));
      return true;
    }
    if (this.users[mpn] === 0) throw new Error(`machine page ${mpn} is already free`);
    const more = this.moreUsers.get(mpn);
    if (this.owner[mpn] === vm && this.guestPage[mpn] === gppn) {
      const next = more?.shift();
      this.owner[mpn] = next?.vm ?? FREE;
      this.guestPage[mpn] = next?.gppn ?? FREE;
    } else {
      const i = more?.findIndex((u) => u.vm === vm && u.gppn === gppn) ?? -1;
      if (i < 0) throw new Error(`machine page ${mpn} is not mapped by page ${gppn} of VM ${vm}`);
      more!.splice(i, 1);
    }
    if (more !== undefined && more.length === 0) this.moreUsers.delete(mpn);
    if (--this.users[mpn]! > 0) return false;
    const node = this.nodeOf(mpn);
    this.pools[node]!.used--;
    this.giveBack(node, mpn);
    this.code.replaced(this.addressOf(mpn));
    return true;
  }

  /** Machine pages with more than one user. */
  get pagesShared(): number {
    return this.moreUsers.size;
  }

  get totalPages(): number {
    return this.owner.length;
  }

  /** Pages in use on `node`, or on all nodes. */
  pagesInUse(node?: number): number {
    return node === undefined ? this.sum((p) => p.used) : this.gone.has(node) ? 0 : this.pools[node]!.used;
  }

  /** Pages reserved in blocks and not allocated yet, on `node` or on all nodes. */
  pagesReserved(node?: number): number {
    return node === undefined ? this.sum((p) => p.reserved) : this.gone.has(node) ? 0 : this.pools[node]!.reserved;
  }

  pagesFree(node: number): number {
    if (this.lostNodes.has(node)) return 0;
    return -this.pools[node]!.retiredIdle + this.nodePages[node]! - this.pools[node]!.used - this.pools[node]!.reserved - this.pools[node]!.monitorUsed - this.pools[node]!.replicaUsed - this.pools[node]!.loaned;
  }

  /** Replicas of VMs' pages on `node`, or on all nodes. */
  replicaPages(node?: number): number {
    return node === undefined ? this.sum((p) => p.replicaUsed) : this.gone.has(node) ? 0 : this.pools[node]!.replicaUsed;
  }

  /**
   * A page on `node` exactly (or FREE if it has none free) for a read-only copy of guest page `gppn`; the
   * memmap marks it REPLICA. A replica is worth nothing on another node, so there is no fallback.
   */
  allocateReplica(node: number, gppn: number, forVm?: number): number {
    if (this.pagesFree(node) === 0 || !this.lent(forVm, node)) return FREE;
    const mpn = this.claim(this.takeFrom(node), REPLICA, gppn);
    this.pools[node]!.replicaUsed++;
    return mpn;
  }

  /**
   * An aligned block of BLOCK_PAGES pages on `node` exactly (`reserveBlock`: never-used memory, else a wholly
   * freed block), or FREE if it has none, for read-only copies of guest pages `firstGppn` … `firstGppn` + 511
   * (a whole 2 MiB group replicated, `Pmap.replicateGroup`): each page is a replica in the memmap, counted as
   * `allocateReplica`'s are, and goes back with `freeReplica`.
   */
  allocateReplicaBlock(node: number, firstGppn: number, forVm?: number): number {
    const block = this.reserveBlock(node, forVm);
    if (block === FREE) return FREE;
    for (let k = 0; k < BLOCK_PAGES; k++) this.claim(block + k, REPLICA, firstGppn + k);
    this.pools[node]!.reserved -= BLOCK_PAGES;
    this.pools[node]!.replicaUsed += BLOCK_PAGES;
    return block;
  }

  /** Gives back a replica `allocateReplica` handed out; code translated from it is stale. */
  freeReplica(mpn: number): void {
    this.unclaim(mpn, REPLICA, 'replicaUsed', 'a replica');
    this.code.replaced(this.addressOf(mpn));
  }

  /** Pages of the monitor's own data on `node`, or on all nodes. */
  monitorPages(node?: number): number {
    return node === undefined ? this.sum((p) => p.monitorUsed) : this.gone.has(node) ? 0 : this.pools[node]!.monitorUsed;
  }

  /**
   * A zeroed page for the monitor's own data (`index` is its place there, for the memmap), from `node` or the
   * nearest node that has one; for VM `forVm`'s data, among the nodes it is confined to. Throws OutOfMachineMemory.
   */
  allocateMonitor(node: number, index: number, forVm?: number): number {
    return this.allocateTo(node, MONITOR, index, 'monitorUsed', forVm === undefined ? undefined : this.confinedTo.get(forVm), forVm);
  }

  /** Gives back a page `allocateMonitor` handed out. */
  freeMonitor(mpn: number): void {
    this.unclaim(mpn, MONITOR, 'monitorUsed', 'the monitor\'s');
  }

  /** Page `mpn`, which `owner` holds and `counted` counts per node, goes back to its node's free pages. */
  private unclaim(mpn: number, owner: number, counted: Counted, what: string): void {
    if (this.pageGone(mpn)) return;
    if (this.owner[mpn] !== owner) throw new Error(`machine page ${mpn} is not ${what}`);
    const node = this.nodeOf(mpn);
    this.owner[mpn] = FREE;
    this.guestPage[mpn] = FREE;
    this.users[mpn] = 0;
    this.pools[node]![counted]--;
    this.giveBack(node, mpn);
  }

  /** Page `mpn` of `node` is free: back on the node's free list, unless it was retired or its node is lost. */
  private giveBack(node: number, mpn: number): void {
    if (this.gone.has(node)) return;
    const kept = !this.retired.has(mpn) && !this.lostNodes.has(node);
    // A page of a borrowed chunk goes back into the chunk (reserved for its borrower again).
    if (this.loans?.freed(mpn, kept) === true) this.pools[node]!.loaned++;
    if (this.retired.has(mpn)) this.pools[node]!.retiredIdle++;
    else if (!this.lostNodes.has(node)) this.pools[node]!.freed.push(mpn);
  }

  /**
   * Node `node`'s cell lends `pages` of its free pages to a borrowing cell (memory-borrowing.ts): they stay on
   * its free lists, but its free count drops by them until they are handed out (then counted in use here) or
   * given back (`endLoan`). False, changing nothing, when the node has fewer free.
   */
  lendPages(node: number, pages: number): boolean {
    if (this.lostNodes.has(node) || this.pagesFree(node) < pages) return false;
    this.pools[node]!.loaned += pages;
    return true;
  }

  /** `pages` lent on `node` and not handed out come back to its free count (a chunk given back, or its borrower failed). */
  endLoan(node: number, pages: number): void {
    if (this.gone.has(node)) return;
    this.pools[node]!.loaned -= pages;
  }

  /** Pages of `node` (or of every node) lent to other cells and not handed out yet. */
  pagesLent(node?: number): number {
    return node === undefined ? this.sum((p) => p.loaned) : this.gone.has(node) ? 0 : this.pools[node]!.loaned;
  }

  /**
   * The monitor gives node `node` up (it failed, or a partition cut it off from node 0): no page is handed
   * out there again, and its free pages are counted lost. Pages still in use there go as their users end.
   */
  retireNode(node: number): void {
    this.lostNodes.add(node);
    if (!this.gone.has(node)) this.pools[node]!.freed.length = 0;
  }

  /**
   * Cell `cell`, which held the allocators of `nodes` and their part of the memmap, failed: both went with it
   * and are never touched again (with several cells the pools throw on any access, and so does asking the
   * memmap about a page there: `usersOf`, `addUser`), and the nodes are given up (`retireNode`). A VM or the
   * monitor letting go of a page there later touches nothing; a node's counts read 0, its pages all lost.
   */
  letGoPools(nodes: readonly number[], cell: number): void {
    for (const node of nodes) {
      this.gone.set(node, cell);
      this.lostNodes.add(node);
    }
  }

  /**
   * Node `node`, given up, is taken back (its hardware was repaired, with new memory): its allocator is made
   * again from the memmap (its part of the memmap first, when that went with its cell: every page free but
   * `memmapPages`, the memmap's own tables there), as a new pool (through `placePools`' maker: its cell's new generation) when its
   * cell's went. Its pages no one holds are free again, and zeroed (a node given up with its cell but not
   * replaced keeps what was written), the retired ones among them too; the monitor's own tables there (the
   * memmap's part) stay its. Refused with an Error
   * while a VM's page, a replica or a reserved block is still there (what depended on the node must have
   * ended first).
   */
  reviveNode(node: number, memmapPages: readonly number[]): void {
    if (!this.lostNodes.has(node)) throw new Error(`node ${node} was not given up`);
    const first = this.firstPage[node]!;
    const end = first + this.nodePages[node]!;
    if (this.gone.has(node)) {
      // Its part of the memmap went with its cell: made again, every page free but the memmap's own tables.
      const keep = new Set(memmapPages);
      for (let mpn = first; mpn < end; mpn++) {
        if (keep.has(mpn)) continue;
        this.owner[mpn] = FREE;
        this.guestPage[mpn] = FREE;
        this.users[mpn] = 0;
        this.moreUsers.delete(mpn);
      }
    }
    const { pool, held } = poolFromMemmap(this.owner, first, end);
    const reserved = this.gone.has(node) ? 0 : this.pools[node]!.reserved;
    if (held + reserved > 0) throw new Error(`node ${node} cannot be taken back: ${held + reserved} of its pages are still held`);
    // A node given up with its cell but not replaced keeps what its VMs wrote: every free page is zeroed, so
    // the pages past the new high-water mark are as never used (zero), and poison there is rewritten too.
    for (const [mpn, pages] of freeRuns(this.owner, first, end)) this.regions[node]!.zeroWhole(this.offsetOf(mpn), pages * PAGE);
    for (let mpn = first; mpn < end; mpn++) this.retired.delete(mpn);
    this.pools[node] = this.gone.has(node) ? this.makePool(node, pool) : Object.assign(this.pools[node]!, pool);
    this.gone.delete(node);
    this.lostNodes.delete(node);
  }

  /** True once `retireNode(node)`. */
  nodeLost(node: number): boolean {
    return this.lostNodes.has(node);
  }

  /**
   * Machine page `mpn` is poisoned: it is never handed out again (held now, it stays with its users until they
   * let go). The monitor learns of poison from an access, so the page is in use or on a free list, never fresh.
   */
  retirePage(mpn: number): void {
    if (this.retired.has(mpn)) return;
    this.retired.add(mpn);
    const node = this.nodeOf(mpn);
    if (this.gone.has(node)) return;
    const freed = this.pools[node]!.freed;
    const at = freed.indexOf(mpn);
    if (at >= 0) {
      freed.splice(at, 1);
      this.pools[node]!.retiredIdle++;
    }
  }

  /** Pages lost on `node` (or on all nodes): the free pages of a lost node, and retired pages no one holds. */
  pagesLost(node?: number): number {
    if (node === undefined) return this.layout.nodes.reduce((sum, n) => sum + this.pagesLost(n.id), 0);
    if (this.gone.has(node)) return this.nodePages[node]!;
    if (this.lostNodes.has(node)) return this.nodePages[node]! - this.pools[node]!.used - this.pools[node]!.reserved - this.pools[node]!.monitorUsed - this.pools[node]!.replicaUsed - this.pools[node]!.loaned;
    return this.pools[node]!.retiredIdle;
  }

  /**
   * Reserves an aligned block of BLOCK_PAGES free pages on `node` and returns its first mpn, or FREE if the
   * node has no such block. Never-used memory first (the node's pages past its last one handed out); then a
   * block whose pages were all freed since (by ended VMs, moved pages, moved blocks), or freed up to where the
   * never-used memory begins: the lowest such block. Its pages are allocated one by one later
   * (`allocateReserved`, zero) or given back (`unreserve`); until then no one else gets them.
   */
  reserveBlock(node: number, forVm?: number): number {
    if (this.lostNodes.has(node) || !this.lent(forVm, node)) return FREE;
    // Pages lent to another cell stay free but are not the node's to reserve.
    if (this.pools[node]!.loaned > 0 && this.pagesFree(node) < BLOCK_PAGES) return FREE;
    const first = this.firstPage[node]! + this.pools[node]!.fresh;
    const gap = (BLOCK_PAGES - ((this.addressOf(first) / PAGE) % BLOCK_PAGES)) % BLOCK_PAGES;
    const block = first + gap;
    if (block + BLOCK_PAGES > this.firstPage[node]! + this.nodePages[node]!) return this.reserveFreedBlock(node);
    // The pages skipped to reach the alignment stay free for anyone.
    for (let mpn = first; mpn < block; mpn++) this.pools[node]!.freed.push(mpn);
    this.pools[node]!.fresh = block + BLOCK_PAGES - this.firstPage[node]!;
    this.pools[node]!.reserved += BLOCK_PAGES;
    const region = this.regionOf(block);
    if (region.faults !== null) region.zeroWhole(this.offsetOf(block), BLOCK_PAGES * PAGE);
    return block;
  }

  /**
   * `reserveBlock` from freed pages: the lowest aligned block of `node` wholly free, or FREE. Its freed pages
   * leave the free list, in order, and are zeroed (they held data). Nothing is moved to make one (no
   * compaction): a node whose free pages are all scattered has none.
   */
  private reserveFreedBlock(node: number): number {
    const found = this.freedBlocks(node)[0];
    if (found === undefined) return FREE;
    const first = this.firstPage[node]!;
    const fresh = first + this.pools[node]!.fresh;
    this.pools[node]!.freed = this.pools[node]!.freed.filter((mpn) => mpn < found || mpn >= found + BLOCK_PAGES);
    if (found + BLOCK_PAGES > fresh) this.pools[node]!.fresh = found + BLOCK_PAGES - first;
    const offset = this.offsetOf(found);
    const region = this.regionOf(found);
    // Pages that held data are zeroed; with a fault on the region, the whole block, never-used pages too, so
    // that a line poisoned while free is rewritten (cleared) before anyone is given it.
    region.zeroWhole(offset, (region.faults === null ? Math.min(BLOCK_PAGES, fresh - found) : BLOCK_PAGES) * PAGE);
    this.pools[node]!.reserved += BLOCK_PAGES;
    return found;
  }

  /**
   * The aligned blocks of `node`, lowest first, whose pages were all freed, or freed up to where the node's
   * never-used pages begin (freed pages all lie below those: a block wholly never used is not among them).
   */
  private freedBlocks(node: number): number[] {
    return freedBlocks(this.pools[node]!, this.firstPage[node]!, this.nodePages[node]!, this.addressOf(0) / PAGE);
  }

  /** Aligned blocks of `node` wholly free (freed or never used): how many large pages it could still give. */
  freeBlocks(node: number): number {
    if (this.lostNodes.has(node)) return 0;
    const end = this.firstPage[node]! + this.nodePages[node]!;
    const fresh = this.firstPage[node]! + this.pools[node]!.fresh;
    const alignedFresh = fresh + (BLOCK_PAGES - ((this.addressOf(fresh) / PAGE) % BLOCK_PAGES)) % BLOCK_PAGES;
    return this.freedBlocks(node).length + Math.max(0, Math.floor((end - alignedFresh) / BLOCK_PAGES));
  }

  /** Allocates reserved page `mpn` to guest page `gppn` of VM `vm` (it is zero: reserved pages are never used). */
  allocateReserved(mpn: number, vm: number, gppn: number): void {
    this.reachable(mpn);
    if (this.users[mpn] !== 0) throw new Error(`machine page ${mpn} is in use already`);
    const node = this.nodeOf(mpn);
    this.owner[mpn] = vm;
    this.guestPage[mpn] = gppn;
    this.users[mpn] = 1;
    this.pools[node]!.used++;
    this.pools[node]!.reserved--;
    this.onVmPage?.(mpn);
  }

  /** Gives back reserved page `mpn`, never allocated, to its node's free pages. */
  unreserve(mpn: number): void {
    if (this.pageGone(mpn)) return;
    if (this.users[mpn] !== 0) throw new Error(`machine page ${mpn} is in use, not reserved`);
    const node = this.nodeOf(mpn);
    this.pools[node]!.reserved--;
    this.giveBack(node, mpn);
  }

  /**
   * A zeroed page for guest page `gppn` of VM `vm`, from `node` if it has one, else from the nearest node
   * (by the machine's distances) that has, among the nodes the VM is confined to (`confine`). Records it in
   * the memmap. Throws OutOfMachineMemory.
   */
  allocate(node: number, vm: number, gppn: number): number {
    return this.allocateTo(node, vm, gppn, 'used');
  }

  /**
   * `allocate` for `owner` (a VM or MONITOR), counted in `counted` per node; from the nodes `within` only, when
   * given (else a VM's confinement), and those lent to `forVm` (the VM itself, or whose data the monitor's is).
   */
  private allocateTo(node: number, owner: number, gppn: number, counted: Counted, within = this.confinedTo.get(owner), forVm = owner >= 0 ? owner : undefined): number {
    const loans = within !== undefined && forVm !== undefined ? this.loans : undefined;
    // A cell low on memory borrows before it runs out (its VM's allocation is where it finds out).
    loans?.allocating(forVm!, within!);
    for (let attempt = 0; attempt < 2; attempt++) {
      for (const n of this.nearest[node]!) {
        if (this.pagesFree(n) === 0 || (within !== undefined && !within.includes(n)) || !this.lent(forVm, n)) continue;
        const mpn = this.claim(this.takeFrom(n), owner, gppn);
        this.pools[n]![counted]++;
        return mpn;
      }
      // Every node it may use is full: replicas and pages only reserved for large pages there give way (a
      // confined VM's short cell takes nothing from another's), then try once more.
      if (attempt === 0 && (this.reclaim?.(within === undefined ? undefined : new Set(within)) ?? 0) === 0) break;
    }
    // Its cell's nodes are full even so: a page of a chunk its cell borrowed, on the lender's node.
    const lent = loans?.chunkNode(forVm!, within!, node);
    if (lent !== undefined && this.pagesFree(lent) + this.pools[lent]!.loaned > 0) {
      const mpn = this.claim(this.takeFrom(lent), owner, gppn);
      this.pools[lent]!.loaned--;
      this.pools[lent]![counted]++;
      loans!.took(forVm!, lent, mpn);
      return mpn;
    }
    throw new OutOfMachineMemory(`no machine memory left for page ${gppn} of ${owner === MONITOR ? 'the monitor' : `VM ${owner}`}`);
  }

  /** Whether `forVm` (undefined: no VM's) may be given memory on `node` now (`lends`). */
  private lent(forVm: number | undefined, node: number): boolean {
    return forVm === undefined || this.lends === undefined || this.lends(forVm, node);
  }

  /** The memmap gives page `mpn` its one user: `owner` (a VM, MONITOR or REPLICA) and guest page `gppn`. */
  private claim(mpn: number, owner: number, gppn: number): number {
    this.owner[mpn] = owner;
    this.guestPage[mpn] = gppn;
    this.users[mpn] = 1;
    if (owner >= 0) this.onVmPage?.(mpn);
    return mpn;
  }

  private takeFrom(node: number): number {
    const freed = this.pools[node]!.freed;
    if (freed.length > 0) {
      const mpn = freed.pop()!;
      // Fresh pages are zero already; a freed one held another VM's data.
      const region = this.regionOf(mpn);
      const offset = this.offsetOf(mpn);
      region.zeroWhole(offset, PAGE);
      return mpn;
    }
    const mpn = this.firstPage[node]! + this.pools[node]!.fresh++;
    // A never-used page is zero already; with a fault on its region it is rewritten too (poison of a free page).
    const region = this.regionOf(mpn);
    if (region.faults !== null) region.zeroWhole(this.offsetOf(mpn), PAGE);
    return mpn;
  }

  /** True when machine pages `a` and `b` hold the same bytes. */
  samePage(a: number, b: number): boolean {
    const x = this.regionOf(a).i32;
    const y = this.regionOf(b).i32;
    const xo = this.offsetOf(a) / 4;
    const yo = this.offsetOf(b) / 4;
    for (let k = 0; k < PAGE / 4; k++) if (x[xo + k] !== y[yo + k]) return false;
    return true;
  }

  /** Copies machine page `from` over machine page `to`. */
  copyPage(from: number, to: number): void {
    const offset = this.offsetOf(from);
    this.regionOf(to).u8.set(this.regionOf(from).u8.subarray(offset, offset + PAGE), this.offsetOf(to));
  }

  nodeOf(mpn: number): number {
    return this.pageNode[mpn]!;
  }

  regionOf(mpn: number): RamRegion {
    return this.regions[this.nodeOf(mpn)]!;
  }

  /** The byte offset of page `mpn` in its region. */
  offsetOf(mpn: number): number {
    return (mpn - this.firstPage[this.nodeOf(mpn)]!) * PAGE;
  }

  /** The machine physical address of page `mpn`. */
  addressOf(mpn: number): number {
    return this.layout.nodes[0]!.base + mpn * PAGE;
  }
}

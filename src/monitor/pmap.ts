// A VM's pmap: guest-physical page → machine page and what the guest may do with it (Disco §4.2.2, RISC-V H's G stage).

import {
  ACCESS_PERM, ACCESS_WRITE, PERM_NONE, PERM_RWX, PERM_RX, type Access, type PagedRam,
} from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';
import { BLOCK_PAGES, FREE, PAGE, type MachineMemory, type PageSpace } from './machine-memory.js';

/** A group of guest pages that can no longer be one machine block (some page came from elsewhere). */
const SCATTERED = -2;

/** Per-page flags beside the permission. */
const COPY_ON_WRITE = 1;
const HELD = 2;
/** A write collapsed the page's replicas (the NUMA policy reads and clears it: `takeWrittenReplica`). */
const WRITTEN_REPLICA = 4;
/** On a group's first page: a write collapsed the group's whole-block copies (`takeWrittenGroup`). */
const WRITTEN_GROUP = 8;

/**
 * How the monitor answered a guest-page fault: the page got its first machine page (`fill`), a private
 * copy of a shared one (`copy-on-write`), its permission back (`protection`), or the vCPU must wait until
 * the monitor gives the page back (`wait`: it is being moved, or lives elsewhere).
 */
export type FaultResolution = 'fill' | 'copy-on-write' | 'collapse' | 'protection' | 'wait';

/** Where a pmap takes a guest page's machine page from (PmapOptions.placement). */
export type Placement = 'home' | 'round-robin';

export interface PmapOptions {
  /** The VM's id in the memmap. */
  vm: number;
  /** Guest-physical address of the first page and the size in bytes. */
  base: number;
  size: number;
  /** The node pages come from while it has free ones (the node the VM's vCPUs prefer). */
  homeNode: number;
  /**
   * `home` (default): every page from the home node, in 2 MiB blocks. `round-robin`: guest page p from node
   * p mod the machine's nodes, page by page (no large pages), as a NUMA-oblivious allocator spreads memory:
   * the baseline Disco's NUMA policy starts from.
   */
  placement?: Placement;
  /**
   * Called with the machine address of a page whose mapping changes (or of `bytes` from it: a whole block that
   * moves): every TLB entry of it must go.
   */
  shootDown: (machineAddress: number, bytes?: number) => void;
}

/**
 * A pmap as plain data (snapshots, monitor-snapshot.ts): per guest page its machine page, the monitor's
 * permission and flags; per 2 MiB group its block (a first mpn, FREE before the first touch, or -2: scattered);
 * each replicated guest page's copies. What follows from these (pages in use, pages placed in each block,
 * pages restricted) is counted again on restore.
 */
export interface PmapState {
  machine: Int32Array;
  perm: Uint8Array;
  flags: Uint8Array;
  blocks: Int32Array;
  /**
   * Each replicated guest page and its copy on every node (FREE where none): gppn, node 0's, node 1's, … in turn.
   * A group replicated whole (`replicateGroup`) is here page by page: each of its 512 pages, copy k of page k
   * in the node's copy block. Only such a group's pages have copies while their group is a block (a 4 KiB
   * replica scatters its group), which is how `restoreState` tells the two apart.
   */
  replicas: Int32Array;
  readerNode: number;
  replicasMade: number;
  collapses: number;
  /** Large groups (a block with all its pages placed) that stopped being one, since the VM started. */
  groupsBroken: number;
  homeNode: number;
}

/** The `flags` bits a saved pmap may hold. */
export const PMAP_FLAGS = COPY_ON_WRITE | HELD | WRITTEN_REPLICA | WRITTEN_GROUP;
/** A saved group's block that is no block any more. */
export const PMAP_SCATTERED = SCATTERED;

/**
 * The pmap is the bus's paged RAM: the hart's walker reads guest page tables through it and the TLB caches
 * the machine page it yields, so the TLB maps virtual → machine. Nothing outside [base, base + size) is the
 * VM's: the bus has no other RAM, so a guest can reach no machine page but its own and those shared with it.
 *
 * Each entry carries the monitor's permission (none, R, RX, RWX), independent of the guest's PTEs. `page`
 * only answers: an access the entry does not allow, or to a page with no machine page yet, is denied and
 * becomes a guest-page fault exit, which the monitor resolves here (`resolveFault`) before the vCPU tries
 * again. A page shared with other users (`share`) is read-only and copy-on-write.
 *
 * Large pages: the first touch of a group of 512 guest pages (2 MiB, aligned) reserves an aligned block of
 * 512 never-used machine pages on the home node, and each page of the group goes to its own place in it
 * when first touched. Once all are there and all allow everything, the group is one block (`largeBlock`)
 * and a guest leaf of 2 MiB over it takes one TLB entry, as on the bare machine. Pages not yet touched stay
 * reserved for the group until memory runs short (`giveBackReserved`). Moving, sharing or dropping a page of
 * a group scatters it; so does a group that found no block free. A whole group can move into another free
 * aligned block (`moveGroup`: the NUMA policy moves a group hot from another node, or makes a scattered group
 * whose pages are all on one node one block again, large-pages.ts).
 *
 * A large group that several nodes read can be replicated whole (`replicateGroup`): an aligned copy block on
 * each of those nodes, its pages read-only, and `largeBlock` gives each node's vCPUs their node's copy, one
 * large TLB entry each. The first write to any of its pages collapses every copy (`collapseGroup`).
 */
export class Pmap implements PagedRam, PageSpace {
  readonly base: number;
  readonly size: number;
  readonly regions: readonly RamRegion[];
  readonly domain: object;
  pageOffset = 0;
  pageAllows = PERM_NONE;
  /** Per guest page: its machine page number, or FREE before the guest first touches it. */
  private readonly machine: Int32Array;
  /** Per guest page: the monitor's permission (PERM_ bits), and COPY_ON_WRITE / HELD. */
  private readonly perm: Uint8Array;
  private readonly flags: Uint8Array;
  /** Per group of BLOCK_PAGES guest pages: its reserved block's first mpn, FREE before its first touch, or SCATTERED. */
  private readonly blocks: Int32Array;
  /** Per group: how many of its pages sit in its block, and how many of those allow less than everything. */
  private readonly placed: Uint16Array;
  private readonly restricted: Uint16Array;
  private inUse = 0;
  private released = false;
  /** Per replicated guest page: its read-only copies by node (FREE where there is none). */
  private readonly replicas = new Map<number, Int32Array>();
  /** Per group replicated whole: the first page of its read-only copy block by node (FREE where there is none). */
  private readonly groupCopies = new Map<number, Int32Array>();
  /**
   * The node of the physical CPU the VM's vCPU now running is on (the monitor sets it before each run): a read
   * of a replicated page gets that node's copy. -1: the master copy.
   */
  readerNode = -1;
  /** Replicas made and replicated pages collapsed (by a write), since the VM started. */
  replicasMade = 0;
  collapses = 0;
  /** Groups that were one full block (every page placed) and were scattered, since the VM started (`scatter`). */
  groupsBroken = 0;
  homeNode: number;
  /**
   * Told when a guest page with no machine page is dropped (`unmap`) or comes to map a page some other way
   * than a fault (`mapShared`): what the monitor's pager kept of it (a swap slot, pager.ts) is stale.
   */
  onDiscard: ((gppn: number) => void) | undefined = undefined;

  constructor(private readonly memory: MachineMemory, private readonly options: PmapOptions) {
    if (options.size <= 0 || options.size % PAGE !== 0 || options.base % PAGE !== 0) throw new Error('a pmap covers whole pages');
    this.base = options.base;
    this.size = options.size;
    this.regions = memory.regions;
    this.domain = memory.code.of(options.vm);
    this.homeNode = options.homeNode;
    this.machine = new Int32Array(options.size / PAGE).fill(FREE);
    this.perm = new Uint8Array(this.machine.length);
    this.flags = new Uint8Array(this.machine.length);
    const groups = Math.ceil(this.machine.length / BLOCK_PAGES);
    this.blocks = new Int32Array(groups).fill(FREE);
    // A last group shorter than a block is never one; spread page by page, no group is.
    if (this.machine.length % BLOCK_PAGES !== 0) this.blocks[groups - 1] = SCATTERED;
    if (options.placement === 'round-robin') this.blocks.fill(SCATTERED);
    this.placed = new Uint16Array(groups);
    this.restricted = new Uint16Array(groups);
    memory.addSpace(options.vm, this);
  }

  get vm(): number {
    return this.options.vm;
  }

  /**
   * The machine address of group `group`'s block if all its pages are in it and allow everything, else -1. A
   * group replicated whole (its pages all read-only) is one block too: the copy on `readerNode`'s node, else the
   * master; a large TLB entry then allows what its pages do, no writes.
   */
  largeBlock(group: number): number {
    const block = this.blocks[group];
    if (block === undefined || block < 0 || this.placed[group] !== BLOCK_PAGES) return -1;
    if (this.restricted[group] === 0) return this.memory.addressOf(block);
    const copies = this.groupCopies.size === 0 ? undefined : this.groupCopies.get(group);
    if (copies === undefined) return -1;
    const copy = this.readerNode < 0 ? FREE : copies[this.readerNode] ?? FREE;
    return this.memory.addressOf(copy === FREE ? block : copy);
  }

  /** The first machine page of group `group`'s block, or -1 if it has none (not touched yet, or scattered). */
  blockOf(group: number): number {
    const block = this.blocks[group] ?? FREE;
    return block >= 0 ? block : -1;
  }

  /** Groups that are one large page now (`largeBlock`): what a guest leaf of 2 MiB can map with one TLB entry. */
  get largeGroups(): number {
    let n = 0;
    for (let group = 0; group < this.blocks.length; group++) if (this.largeBlock(group) >= 0) n++;
    return n;
  }

  /** Groups of 512 guest pages (the last one may be shorter, and is never a block). */
  get groups(): number {
    return this.blocks.length;
  }

  /**
   * Group `group`'s mapped guest pages if it can move as one block: it is placed in a block (some pages may
   * not be touched yet), or scattered with all 512 pages mapped; every mapped page private to this VM, not
   * copy-on-write, held or replicated. Else undefined.
   */
  wholeGroup(group: number): number[] | undefined {
    const block = this.blocks[group];
    if (block === undefined || block === FREE || (group + 1) * BLOCK_PAGES > this.machine.length) return undefined;
    const pages: number[] = [];
    for (let gppn = group * BLOCK_PAGES; gppn < (group + 1) * BLOCK_PAGES; gppn++) {
      const mpn = this.machine[gppn]!;
      if (mpn === FREE) {
        if (block < 0) return undefined;
        continue;
      }
      if ((this.flags[gppn]! & ~WRITTEN_GROUP) !== 0 || this.memory.users[mpn] !== 1 || this.replicas.has(gppn)) return undefined;
      pages.push(gppn);
    }
    return this.groupCopies.has(group) ? undefined : pages;
  }

  /** True when group `group` is scattered (no block) with all its pages mapped, on one node: it could be one again. */
  scatteredOnOneNode(group: number): boolean {
    if (this.blocks[group] !== SCATTERED || (group + 1) * BLOCK_PAGES > this.machine.length) return false;
    const first = this.machine[group * BLOCK_PAGES]!;
    if (first === FREE) return false;
    const node = this.memory.nodeOf(first);
    for (let gppn = group * BLOCK_PAGES + 1; gppn < (group + 1) * BLOCK_PAGES; gppn++) {
      const mpn = this.machine[gppn]!;
      if (mpn === FREE || this.memory.nodeOf(mpn) !== node) return false;
    }
    return true;
  }

  /**
   * Moves group `group` (`wholeGroup`) into a free aligned block on `node` (`MachineMemory.reserveBlock`): a
   * block moving to another node, or a scattered group made one block again. Every mapping of its pages is shot
   * down first (the old block's at once), then each page is copied to its place in the new block; pages not
   * touched yet stay reserved there. The group is then one large page once every page is placed and allows
   * everything. Returns each moved page's old and new machine page (the caller charges the copies and moves
   * the miss counts), or undefined, changing nothing, if the group cannot move or `node` has no free block.
   */
  moveGroup(group: number, node: number): { gppn: number; from: number; to: number }[] | undefined {
    const pages = this.wholeGroup(group);
    if (pages === undefined || !this.memory.allows(this.options.vm, node)) return undefined;
    const to = this.memory.reserveBlock(node, this.options.vm);
    if (to === FREE) return undefined;
    const old = this.blocks[group]!;
    if (old >= 0) this.options.shootDown(this.memory.addressOf(old), BLOCK_PAGES * PAGE);
    else for (const gppn of pages) this.options.shootDown(this.memory.addressOf(this.machine[gppn]!));
    const moved = pages.map((gppn) => {
      const from = this.machine[gppn]!;
      const mpn = to + (gppn % BLOCK_PAGES);
      this.memory.allocateReserved(mpn, this.options.vm, gppn);
      this.memory.copyPage(from, mpn);
      this.machine[gppn] = mpn;
      this.memory.removeUser(from, this.options.vm, gppn);
      return { gppn, from, to: mpn };
    });
    if (old >= 0) {
      for (let k = 0; k < BLOCK_PAGES; k++) if (this.machine[group * BLOCK_PAGES + k] === FREE) this.memory.unreserve(old + k);
    }
    this.blocks[group] = to;
    this.placed[group] = pages.length;
    return moved;
  }

  get pages(): number {
    return this.machine.length;
  }

  /** Guest pages that have a machine page. */
  get pagesInUse(): number {
    return this.inUse;
  }

  /** Guest pages whose machine page has other users too (this VM's other pages, or other VMs). */
  get pagesShared(): number {
    let n = 0;
    for (let gppn = 0; gppn < this.machine.length; gppn++) {
      const mpn = this.machine[gppn]!;
      if (mpn !== FREE && this.memory.users[mpn]! > 1) n++;
    }
    return n;
  }

  /** Pages reserved in this pmap's blocks and not touched yet (they are not in use, and no one else gets them). */
  get pagesReserved(): number {
    let n = 0;
    for (let group = 0; group < this.blocks.length; group++) if (this.blocks[group]! >= 0) n += BLOCK_PAGES - this.placed[group]!;
    return n;
  }

  /** The machine page of guest page `gppn`, or FREE if it has none yet. */
  lookup(gppn: number): number {
    return this.machine[gppn] ?? FREE;
  }

  /** The monitor's permission on guest page `gppn` (PERM_ bits). */
  permission(gppn: number): number {
    return this.perm[gppn] ?? PERM_NONE;
  }

  /** Throws unless `gppn` is one of this pmap's guest pages. */
  private check(gppn: number): void {
    if (!Number.isInteger(gppn) || gppn < 0 || gppn >= this.machine.length) {
      throw new RangeError(`guest page ${gppn} is outside the VM's ${this.machine.length} pages`);
    }
  }

  page(index: number, access: Access): RamRegion | undefined {
    if (this.released) throw new Error('the VM has ended: its memory is gone');
    this.check(index);
    const mpn = this.machine[index]!;
    const allows = this.perm[index]!;
    this.pageAllows = allows;
    if (mpn === FREE || (allows & ACCESS_PERM[access]) === 0) return undefined;
    // A replicated page is read-only: any access that gets here reads, and reads the copy on its node.
    let at = mpn;
    if (this.readerNode >= 0 && (this.replicas.size !== 0 || this.groupCopies.size !== 0)) at = this.copyFor(index, this.readerNode) ?? mpn;
    this.pageOffset = this.memory.offsetOf(at);
    return this.memory.regionOf(at);
  }

  /** The copy of guest page `gppn` on `node` (its own replica, or its place in its group's copy block), if any. */
  private copyFor(gppn: number, node: number): number | undefined {
    const copy = this.replicas.get(gppn)?.[node] ?? FREE;
    if (copy !== FREE) return copy;
    const block = this.groupCopies.get(Math.floor(gppn / BLOCK_PAGES))?.[node] ?? FREE;
    return block === FREE ? undefined : block + (gppn % BLOCK_PAGES);
  }

  /**
   * A guest-page fault on `gppn` for an access of kind `needs`: makes it allowed, or says the vCPU must
   * wait. Throws OutOfMachineMemory when a page is needed and the machine has none.
   */
  resolveFault(gppn: number, needs: Access): FaultResolution {
    this.check(gppn);
    const flags = this.flags[gppn]!;
    if ((flags & HELD) !== 0) return 'wait';
    if (this.machine[gppn] === FREE) {
      this.fill(gppn);
      return 'fill';
    }
    if ((flags & COPY_ON_WRITE) !== 0 && needs === ACCESS_WRITE) {
      this.breakCopy(gppn);
      return 'copy-on-write';
    }
    const group = Math.floor(gppn / BLOCK_PAGES);
    if (needs === ACCESS_WRITE && this.groupCopies.has(group)) {
      this.collapseGroup(group);
      this.flags[group * BLOCK_PAGES]! |= WRITTEN_GROUP;
      return 'collapse';
    }
    if (needs === ACCESS_WRITE && this.replicas.has(gppn)) {
      this.collapse(gppn);
      this.flags[gppn]! |= WRITTEN_REPLICA;
      // A page the monitor had taken more from (to watch it) gets everything back, as at any first use: `collapse`
      // alone gives back only what replication took, and the write would fault again and again.
      if (this.perm[gppn] !== PERM_RWX) this.setPermission(gppn, PERM_RWX);
      return 'collapse';
    }
    // Taken away by the monitor (to watch the page) and given back at the guest's first use.
    this.setPermission(gppn, (flags & COPY_ON_WRITE) !== 0 || this.replicas.has(gppn) || this.groupCopies.has(group) ? PERM_RX : PERM_RWX);
    return 'protection';
  }

  private fill(gppn: number): number {
    const group = Math.floor(gppn / BLOCK_PAGES);
    if (this.blocks[group] === FREE) {
      const reserved = this.memory.reserveBlock(this.homeNode, this.options.vm);
      this.blocks[group] = reserved === FREE ? SCATTERED : reserved;
    }
    const block = this.blocks[group]!;
    let mpn: number;
    if (block >= 0) {
      mpn = block + (gppn % BLOCK_PAGES);
      this.memory.allocateReserved(mpn, this.options.vm, gppn);
      this.placed[group]!++;
    } else {
      const nodes = this.memory.nodesFor(this.options.vm);
      const node = this.options.placement === 'round-robin' ? nodes[gppn % nodes.length]! : this.homeNode;
      mpn = this.memory.allocate(node, this.options.vm, gppn);
    }
    this.machine[gppn] = mpn;
    this.perm[gppn] = PERM_RWX;
    this.inUse++;
    return mpn;
  }

  /** Sets the permission of mapped page `gppn`; taking any away shoots the page down first. */
  private setPermission(gppn: number, allows: number): void {
    const before = this.perm[gppn]!;
    if ((before & ~allows) !== 0) this.options.shootDown(this.memory.addressOf(this.machine[gppn]!));
    const group = Math.floor(gppn / BLOCK_PAGES);
    if (before === PERM_RWX && allows !== PERM_RWX) this.restricted[group]!++;
    if (before !== PERM_RWX && allows === PERM_RWX) this.restricted[group]!--;
    this.perm[gppn] = allows;
  }

  /**
   * The monitor takes some or all of the guest's access to mapped page `gppn` (to watch it: `allows` of
   * PERM_NONE, PERM_R or PERM_RX); the guest's next access that needs more faults and gets it back.
   */
  protect(gppn: number, allows: number): void {
    this.check(gppn);
    if (this.machine[gppn] === FREE) throw new Error(`guest page ${gppn} has no machine page to protect`);
    // A group replicated whole keeps every page read-only and nothing else: watching a page ends it.
    this.collapseGroup(Math.floor(gppn / BLOCK_PAGES));
    this.setPermission(gppn, allows & this.perm[gppn]!);
  }

  /**
   * Takes every access to mapped page `gppn` away until `unhold`: a vCPU that touches it waits (its exit is
   * answered WAIT), while the others run. What a page on its way between nodes or hosts needs.
   */
  hold(gppn: number): void {
    this.protect(gppn, PERM_NONE);
    this.flags[gppn]! |= HELD;
  }

  /** Gives a held page back: the guest's next access faults once more and gets its permission back. */
  unhold(gppn: number): void {
    this.check(gppn);
    this.flags[gppn]! &= ~HELD;
  }

  /** True while page `gppn` is held. */
  held(gppn: number): boolean {
    return ((this.flags[gppn] ?? 0) & HELD) !== 0;
  }

  /**
   * Page `gppn` of this pmap and page `sourceGppn` of `source` (another VM's, or this one's) hold the same
   * bytes: both come to map `source`'s machine page, read-only, and a write to either gets a private copy
   * (copy-on-write). This page's own machine page goes back. Throws if the contents differ or a page is
   * missing or held: sharing must never change what a guest sees.
   */
  shareFrom(gppn: number, source: Pmap, sourceGppn: number): void {
    this.check(gppn);
    source.check(sourceGppn);
    this.collapse(gppn);
    source.collapse(sourceGppn);
    const mine = this.machine[gppn]!;
    const theirs = source.machine[sourceGppn]!;
    if (mine === FREE || theirs === FREE) throw new Error('only pages with machine pages can be shared');
    if (this.held(gppn) || source.held(sourceGppn)) throw new Error('a held page cannot be shared');
    if (mine === theirs) return;
    if (!this.memory.samePage(mine, theirs)) throw new Error(`guest page ${gppn} and the source page differ: sharing them would change what the guest sees`);
    source.makeCopyOnWrite(sourceGppn);
    this.options.shootDown(this.memory.addressOf(mine));
    this.scatter(Math.floor(gppn / BLOCK_PAGES));
    this.memory.addUser(theirs, this.options.vm, gppn);
    this.machine[gppn] = theirs;
    this.memory.removeUser(mine, this.options.vm, gppn);
    this.setPermission(gppn, PERM_RX);
    this.flags[gppn]! |= COPY_ON_WRITE;
  }

  /**
   * Another holder (the monitor's page cache) is to share mapped page `gppn`'s machine page: the page becomes
   * read-only and copy-on-write here, as `shareFrom` makes its source, and its machine page is returned for
   * the caller to add itself as a user. FREE (nothing done) for a page with no machine page, held, or replicated.
   */
  shareOut(gppn: number): number {
    this.check(gppn);
    const mpn = this.machine[gppn]!;
    if (mpn === FREE || this.held(gppn) || this.replicas.has(gppn) || this.groupCopies.has(Math.floor(gppn / BLOCK_PAGES))) return FREE;
    this.makeCopyOnWrite(gppn);
    return mpn;
  }

  /**
   * Guest page `gppn` comes to map machine page `mpn`, which another holder keeps (the monitor's page cache)
   * and whose contents are what the guest is to see there: read-only and copy-on-write, as `shareFrom` maps a
   * page. What `gppn` mapped before goes (its TLB entries shot down); a page with no machine page yet gets
   * one without a fill. False (nothing done) for a held page.
   */
  mapShared(gppn: number, mpn: number): boolean {
    this.check(gppn);
    if (this.held(gppn)) return false;
    this.collapse(gppn);
    const mine = this.machine[gppn]!;
    if (mine === mpn) return true;
    this.scatter(Math.floor(gppn / BLOCK_PAGES));
    this.memory.addUser(mpn, this.options.vm, gppn);
    if (mine === FREE) {
      this.onDiscard?.(gppn);
      this.machine[gppn] = mpn;
      this.perm[gppn] = PERM_RX;
      this.restricted[Math.floor(gppn / BLOCK_PAGES)]!++;
      this.inUse++;
    } else {
      this.options.shootDown(this.memory.addressOf(mine));
      this.machine[gppn] = mpn;
      this.memory.removeUser(mine, this.options.vm, gppn);
      this.setPermission(gppn, PERM_RX);
    }
    this.flags[gppn]! |= COPY_ON_WRITE;
    return true;
  }

  /** Page `gppn` becomes read-only and copy-on-write, and stops being part of a large page. */
  private makeCopyOnWrite(gppn: number): void {
    this.collapse(gppn);
    this.scatter(Math.floor(gppn / BLOCK_PAGES));
    this.setPermission(gppn, this.perm[gppn]! & PERM_RX);
    this.flags[gppn]! |= COPY_ON_WRITE;
  }

  /** A write to copy-on-write page `gppn`: a private copy if others still map the page, else the page itself. */
  private breakCopy(gppn: number): void {
    const old = this.machine[gppn]!;
    if (this.memory.users[old]! > 1) {
      const mpn = this.memory.allocate(this.homeNode, this.options.vm, gppn);
      this.memory.copyPage(old, mpn);
      this.options.shootDown(this.memory.addressOf(old));
      this.machine[gppn] = mpn;
      this.memory.removeUser(old, this.options.vm, gppn);
    }
    this.flags[gppn]! &= ~COPY_ON_WRITE;
    this.setPermission(gppn, PERM_RWX);
  }

  shootDown(machineAddress: number): void {
    this.options.shootDown(machineAddress);
  }

  /** The memmap moved this page's machine page (with its other users, if shared): the page follows it. */
  moved(gppn: number, mpn: number): void {
    this.collapseGroup(Math.floor(gppn / BLOCK_PAGES));
    this.scatter(Math.floor(gppn / BLOCK_PAGES));
    this.machine[gppn] = mpn;
  }

  /**
   * Moves guest page `gppn` to a fresh page on `node` with its contents (page migration): the old page's
   * TLB entries are shot down first, so no vCPU can write the old copy after it was read. A shared page
   * moves with all its users, in every VM.
   */
  migrate(gppn: number, node: number): number {
    this.check(gppn);
    const old = this.machine[gppn]!;
    if (old === FREE) throw new Error(`guest page ${gppn} has no machine page to migrate`);
    this.collapse(gppn);
    return this.memory.movePage(old, node);
  }

  /** How many guest pages have replicas now (a group replicated whole counts its 512). */
  get replicatedPages(): number {
    return this.replicas.size + this.groupCopies.size * BLOCK_PAGES;
  }

  /** The replicas of guest page `gppn` by node (FREE where none; its own, or its group's), or undefined if it has none. */
  replicasOf(gppn: number): readonly number[] | undefined {
    const r = this.replicas.get(gppn);
    if (r !== undefined) return [...r];
    const g = this.groupCopies.get(Math.floor(gppn / BLOCK_PAGES));
    return g === undefined ? undefined : [...g].map((block) => (block === FREE ? FREE : block + (gppn % BLOCK_PAGES)));
  }

  /**
   * Read-only copies of mapped guest page `gppn` on each of `nodes` that has none yet and is not the page's
   * own node (Disco's replication of read-shared pages): the page becomes read-only everywhere (its mappings
   * shot down, its 2 MiB group scattered), and each vCPU's next read gets the copy on its CPU's node
   * (`readerNode`). A write collapses them (`resolveFault`). Nodes without a free page get none, and a page
   * that is held or shared (copy-on-write) none at all. Returns the new copies' machine pages. Throws for a
   * page with no machine page.
   */
  replicate(gppn: number, nodes: readonly number[]): number[] {
    this.check(gppn);
    const master = this.machine[gppn]!;
    if (master === FREE) throw new Error(`guest page ${gppn} has no machine page to replicate`);
    if (this.held(gppn) || (this.flags[gppn]! & COPY_ON_WRITE) !== 0 || this.memory.users[master]! > 1) return [];
    // Its group has copies already, whole.
    if (this.groupCopies.has(Math.floor(gppn / BLOCK_PAGES))) return [];
    const home = this.memory.nodeOf(master);
    const copies = this.replicas.get(gppn) ?? new Int32Array(this.memory.layout.nodes.length).fill(FREE);
    const made: number[] = [];
    for (const node of nodes) {
      // A VM confined to a cell has no copy outside it (docs/cells.md).
      if (node === home || copies[node] !== FREE || !this.memory.allows(this.options.vm, node)) continue;
      const mpn = this.memory.allocateReplica(node, gppn, this.options.vm);
      if (mpn === FREE) continue;
      if (made.length === 0) {
        // Read-only first: no vCPU may write the master once a copy of it was taken.
        this.scatter(Math.floor(gppn / BLOCK_PAGES));
        this.setPermission(gppn, this.perm[gppn]! & PERM_RX);
        this.options.shootDown(this.memory.addressOf(master));
      }
      this.memory.copyPage(master, mpn);
      copies[node] = mpn;
      made.push(mpn);
    }
    if (made.length > 0) {
      this.replicas.set(gppn, copies);
      this.replicasMade += made.length;
    }
    return made;
  }

  /**
   * Drops guest page `gppn`'s replicas (a write to it, or it is about to move or be shared): every mapping of
   * a copy is shot down and the copies go back; the master keeps the contents. Returns how many went.
   */
  collapse(gppn: number): number {
    let n = this.groupCopies.size === 0 ? 0 : this.collapseGroup(Math.floor(gppn / BLOCK_PAGES));
    const copies = this.replicas.get(gppn);
    if (copies === undefined) return n;
    this.replicas.delete(gppn);
    for (const mpn of copies) {
      if (mpn === FREE) continue;
      this.options.shootDown(this.memory.addressOf(mpn));
      this.memory.freeReplica(mpn);
      n++;
    }
    this.collapses++;
    if ((this.flags[gppn]! & COPY_ON_WRITE) === 0 && this.perm[gppn] === PERM_RX) this.setPermission(gppn, PERM_RWX);
    return n;
  }

  /** Whether a write collapsed guest page `gppn`'s replicas since the last call (which forgets it). */
  takeWrittenReplica(gppn: number): boolean {
    const written = ((this.flags[gppn] ?? 0) & WRITTEN_REPLICA) !== 0;
    if (written) this.flags[gppn]! &= ~WRITTEN_REPLICA;
    return written;
  }

  /**
   * Memory runs short: every replica goes back first, whole groups' too (the masters keep the contents); with
   * `nodes`, only the pages and groups that have a copy on one of them. Returns how many pages went back.
   */
  dropReplicas(nodes?: ReadonlySet<number>): number {
    const on = (mpn: number): boolean => mpn !== FREE && (nodes === undefined || nodes.has(this.memory.nodeOf(mpn)));
    let n = 0;
    for (const [group, copies] of [...this.groupCopies]) if (copies.some(on)) n += this.collapseGroup(group);
    for (const [gppn, copies] of [...this.replicas]) if (copies.some(on)) n += this.collapse(gppn);
    return n;
  }

  /** Groups replicated whole now. */
  get replicatedGroups(): number {
    return this.groupCopies.size;
  }

  /** Group `group`'s copy blocks by node (first machine page; FREE where none), or undefined if it has none. */
  groupCopiesOf(group: number): readonly number[] | undefined {
    const copies = this.groupCopies.get(group);
    return copies === undefined ? undefined : [...copies];
  }

  /**
   * Whether group `group` can be replicated whole: it is one large page now (`largeBlock`: every page in its
   * block, allowing everything) and every page is private to this VM, not copy-on-write, held or replicated.
   */
  canReplicateGroup(group: number): boolean {
    const block = this.blocks[group];
    if (block === undefined || block < 0 || this.placed[group] !== BLOCK_PAGES || this.restricted[group] !== 0 || this.groupCopies.has(group)) return false;
    for (let gppn = group * BLOCK_PAGES; gppn < (group + 1) * BLOCK_PAGES; gppn++) {
      if ((this.flags[gppn]! & (COPY_ON_WRITE | HELD)) !== 0 || this.memory.users[this.machine[gppn]!] !== 1 || this.replicas.has(gppn)) return false;
    }
    return true;
  }

  /**
   * Read-only copies of group `group` as a whole (Disco's replication, 2 MiB at a time: the kernel's text that
   * Linux maps with 2 MiB pages): an aligned copy block (`MachineMemory.allocateReplicaBlock`) on each of `nodes`
   * that is not the block's own and has none yet. The first copy makes every page of the group read-only
   * (the master block's mappings shot down at once), and each vCPU's next access maps its node's copy, one
   * large TLB entry for the whole group (`largeBlock`, `page`). The first write to any page of it collapses every
   * copy (`collapseGroup`). A group that cannot be (`canReplicateGroup`) gets none, and so does a node with no
   * free aligned block. Returns the new copy blocks' first machine pages.
   */
  replicateGroup(group: number, nodes: readonly number[]): number[] {
    let copies = this.groupCopies.get(group);
    if (copies === undefined && !this.canReplicateGroup(group)) return [];
    const master = this.blocks[group]!;
    const home = this.memory.nodeOf(master);
    const made: number[] = [];
    for (const node of nodes) {
      if (node === home || (copies !== undefined && copies[node] !== FREE) || !this.memory.allows(this.options.vm, node)) continue;
      const block = this.memory.allocateReplicaBlock(node, group * BLOCK_PAGES, this.options.vm);
      if (block === FREE) continue;
      if (copies === undefined) {
        // Read-only first: no vCPU may write the master once a copy of it was taken.
        this.options.shootDown(this.memory.addressOf(master), BLOCK_PAGES * PAGE);
        this.perm.fill(PERM_RX, group * BLOCK_PAGES, (group + 1) * BLOCK_PAGES);
        this.restricted[group] = BLOCK_PAGES;
        copies = new Int32Array(this.memory.layout.nodes.length).fill(FREE);
        this.groupCopies.set(group, copies);
      }
      for (let k = 0; k < BLOCK_PAGES; k++) this.memory.copyPage(master + k, block + k);
      copies[node] = block;
      made.push(block);
    }
    return made;
  }

  /**
   * Drops group `group`'s whole-block copies (a write to any of its pages, memory running short, or a page of it
   * about to change): every mapping of each copy block is shot down (both TLB levels, large entries too) and its
   * pages go back; the master block kept the contents and allows everything again, one large page as before.
   * Returns how many pages went back (0 if the group had no copies).
   */
  collapseGroup(group: number): number {
    const copies = this.groupCopies.get(group);
    if (copies === undefined) return 0;
    this.groupCopies.delete(group);
    let n = 0;
    for (const block of copies) {
      if (block === FREE) continue;
      this.options.shootDown(this.memory.addressOf(block), BLOCK_PAGES * PAGE);
      for (let k = 0; k < BLOCK_PAGES; k++) this.memory.freeReplica(block + k);
      n += BLOCK_PAGES;
    }
    for (let gppn = group * BLOCK_PAGES; gppn < (group + 1) * BLOCK_PAGES; gppn++) {
      if (this.perm[gppn] === PERM_RX) {
        this.perm[gppn] = PERM_RWX;
        this.restricted[group]!--;
      }
    }
    return n;
  }

  /** Whether a write collapsed group `group`'s whole-block copies since the last call (which forgets it). */
  takeWrittenGroup(group: number): boolean {
    const first = group * BLOCK_PAGES;
    const written = ((this.flags[first] ?? 0) & WRITTEN_GROUP) !== 0;
    if (written) this.flags[first]! &= ~WRITTEN_GROUP;
    return written;
  }

  /**
   * Drops guest page `gppn`'s mapping (its contents are lost: the guest gave it back); shoots it down. Its
   * replicas go first, and its 2 MiB group stops being a block. Returns true when its machine page went back
   * to the machine (no one else held it), false when others still hold it or it had none.
   */
  unmap(gppn: number): boolean {
    this.check(gppn);
    const old = this.machine[gppn]!;
    if (old === FREE) {
      this.onDiscard?.(gppn);
      return false;
    }
    this.collapse(gppn);
    this.options.shootDown(this.memory.addressOf(old));
    this.scatter(Math.floor(gppn / BLOCK_PAGES));
    this.forget(gppn);
    return this.memory.removeUser(old, this.options.vm, gppn);
  }

  /** Guest page `gppn` has no machine page any more (nothing else changes). */
  private forget(gppn: number): void {
    const group = Math.floor(gppn / BLOCK_PAGES);
    if (this.perm[gppn] !== PERM_RWX) this.restricted[group]!--;
    this.machine[gppn] = FREE;
    this.perm[gppn] = PERM_NONE;
    this.flags[gppn] = 0;
    this.inUse--;
  }

  /**
   * Memory runs short: every group not wholly touched gives its reserved pages back and stops being a
   * large page; with `nodes`, only those whose block lies on one of them. Returns how many pages went back.
   */
  giveBackReserved(nodes?: ReadonlySet<number>): number {
    let n = 0;
    for (let group = 0; group < this.blocks.length; group++) {
      const block = this.blocks[group]!;
      if (block >= 0 && this.placed[group]! < BLOCK_PAGES && (nodes === undefined || nodes.has(this.memory.nodeOf(block)))) {
        n += BLOCK_PAGES - this.placed[group]!;
        this.scatter(group);
      }
    }
    return n;
  }

  /**
   * Group `group` stops being a block (one of its pages moves or goes): its reserved pages not placed yet
   * go back to the machine, and its later pages come one by one. A caller that changes a page of a group
   * that was a large page shoots that page down, which drops every large entry of the block holding it.
   */
  private scatter(group: number, broken = true): void {
    this.collapseGroup(group);
    const block = this.blocks[group]!;
    this.blocks[group] = SCATTERED;
    if (block < 0) return;
    if (broken && this.placed[group] === BLOCK_PAGES) this.groupsBroken++;
    for (let k = 0; k < BLOCK_PAGES; k++) {
      if (this.machine[group * BLOCK_PAGES + k] === FREE) this.memory.unreserve(block + k);
    }
  }

  /** Everything the pmap holds, as plain data (snapshots). */
  saveState(): PmapState {
    const replicas: number[] = [];
    for (const [gppn, copies] of this.replicas) replicas.push(gppn, ...copies);
    for (const [group, copies] of this.groupCopies) {
      for (let k = 0; k < BLOCK_PAGES; k++) replicas.push(group * BLOCK_PAGES + k, ...[...copies].map((block) => (block === FREE ? FREE : block + k)));
    }
    return {
      machine: this.machine.slice(), perm: this.perm.slice(), flags: this.flags.slice(), blocks: this.blocks.slice(),
      replicas: Int32Array.from(replicas), readerNode: this.readerNode, replicasMade: this.replicasMade, collapses: this.collapses, groupsBroken: this.groupsBroken,
      homeNode: this.homeNode,
    };
  }

  /**
   * Puts back what `saveState` returned, on the same machine pages (a whole monitor restored: the memmap is
   * restored with it). The caller has checked it against the memmap; what follows from it is counted again.
   */
  restoreState(s: PmapState): void {
    this.machine.set(s.machine);
    this.perm.set(s.perm);
    this.flags.set(s.flags);
    this.blocks.set(s.blocks);
    this.replicas.clear();
    this.groupCopies.clear();
    const nodes = this.memory.layout.nodes.length;
    // A page with copies whose group is a block belongs to a group replicated whole (`PmapState.replicas`).
    const groupPages = new Map<number, number>();
    for (let i = 0; i < s.replicas.length; i += 1 + nodes) {
      const gppn = s.replicas[i]!;
      const copies = s.replicas.slice(i + 1, i + 1 + nodes);
      const group = Math.floor(gppn / BLOCK_PAGES);
      if (s.blocks[group]! < 0) {
        this.replicas.set(gppn, copies);
        continue;
      }
      const k = gppn % BLOCK_PAGES;
      if (k === 0) this.groupCopies.set(group, copies);
      const blocks = this.groupCopies.get(group);
      if (blocks === undefined || copies.some((mpn, n) => mpn !== (blocks[n] === FREE ? FREE : blocks[n]! + k)) || (groupPages.get(group) ?? 0) !== k) {
        throw new Error(`guest page ${gppn}'s copies are not its place in its group's copy blocks`);
      }
      groupPages.set(group, k + 1);
    }
    for (const [group, n] of groupPages) if (n !== BLOCK_PAGES) throw new Error(`group ${group} is replicated whole but ${n} of its pages have copies`);
    this.readerNode = s.readerNode;
    this.replicasMade = s.replicasMade;
    this.collapses = s.collapses;
    this.groupsBroken = s.groupsBroken;
    this.homeNode = s.homeNode;
    this.inUse = 0;
    this.placed.fill(0);
    this.restricted.fill(0);
    for (let gppn = 0; gppn < this.machine.length; gppn++) {
      const mpn = this.machine[gppn]!;
      if (mpn === FREE) continue;
      const group = Math.floor(gppn / BLOCK_PAGES);
      this.inUse++;
      if (this.perm[gppn] !== PERM_RWX) this.restricted[group]!++;
      if (this.blocks[group]! >= 0 && mpn === this.blocks[group]! + (gppn % BLOCK_PAGES)) this.placed[group]!++;
    }
  }

  /**
   * A VM restored into a running monitor (snapshots): maps every guest page `saved` (another pmap's
   * `saveState`) maps, on fresh machine pages, with the same permissions and flags, and each 2 MiB group that
   * was a block in a block again where the home node has one (else page by page). Guest pages that shared a
   * machine page share one here too (copy-on-write, as they were; pages shared with other VMs become this VM's
   * own, still copy-on-write). Replicas are not made again: a replicated page is its master alone, writable
   * again unless copy-on-write. Returns each saved machine page's new one; the contents are the caller's to
   * copy. Call it on a pmap that maps nothing. Throws OutOfMachineMemory, leaving what it mapped: end the VM.
   */
  placeLike(saved: PmapState): Map<number, number> {
    const moved = new Map<number, number>();
    const nodes = this.memory.layout.nodes.length;
    const replicated = new Set<number>();
    for (let i = 0; i < saved.replicas.length; i += 1 + nodes) replicated.add(saved.replicas[i]!);
    for (let gppn = 0; gppn < this.machine.length; gppn++) {
      const old = saved.machine[gppn]!;
      if (old === FREE) continue;
      const group = Math.floor(gppn / BLOCK_PAGES);
      const inBlock = saved.blocks[group]! >= 0 && old === saved.blocks[group]! + (gppn % BLOCK_PAGES);
      let mpn = moved.get(old);
      if (mpn !== undefined) {
        this.memory.addUser(mpn, this.options.vm, gppn);
      } else {
        if (inBlock && this.blocks[group] === FREE) {
          const reserved = this.memory.reserveBlock(this.homeNode, this.options.vm);
          this.blocks[group] = reserved === FREE ? SCATTERED : reserved;
        }
        const block = this.blocks[group]!;
        if (inBlock && block >= 0) {
          mpn = block + (gppn % BLOCK_PAGES);
          this.memory.allocateReserved(mpn, this.options.vm, gppn);
          this.placed[group]!++;
        } else {
          if (this.blocks[group] === FREE) this.blocks[group] = SCATTERED;
          const node = this.options.placement === 'round-robin' ? gppn % nodes : this.homeNode;
          mpn = this.memory.allocate(node, this.options.vm, gppn);
        }
        moved.set(old, mpn);
      }
      const flags = saved.flags[gppn]! & PMAP_FLAGS;
      let allows = saved.perm[gppn]! & PERM_RWX;
      if (replicated.has(gppn) && (flags & COPY_ON_WRITE) === 0 && allows === PERM_RX) allows = PERM_RWX;
      this.machine[gppn] = mpn;
      this.perm[gppn] = allows;
      this.flags[gppn] = flags;
      if (allows !== PERM_RWX) this.restricted[group]!++;
      this.inUse++;
    }
    this.readerNode = -1;
    return moved;
  }

  /** Gives every machine page back (the VM ended). Its vCPUs must not run again. */
  release(): void {
    if (this.released) return;
    this.dropReplicas();
    for (let group = 0; group < this.blocks.length; group++) this.scatter(group, false);
    for (let gppn = 0; gppn < this.machine.length; gppn++) {
      const mpn = this.machine[gppn]!;
      if (mpn === FREE) continue;
      this.forget(gppn);
      this.memory.removeUser(mpn, this.options.vm, gppn);
    }
    this.memory.removeSpace(this.options.vm);
    this.released = true;
  }
}

// One node's page allocator (MachineMemory's), the state of the cell that holds the node (docs/cells.md), and
// what the allocator asks of memory borrowing between cells (memory-borrowing.ts).

import { BLOCK_PAGES, FREE, MONITOR } from './machine-memory.js';

/** The allocator and memmap as plain data (`MachineMemory.saveState`); per-node arrays are indexed by node. */
export interface MachineMemoryState {
  owner: Int32Array;
  guestPage: Int32Array;
  users: Uint16Array;
  /** The users past each page's first, as (mpn, vm, gppn) triples in the memmap's order. */
  moreUsers: Int32Array;
  /** Per node: the next never-used page (counted from the node's first), and the freed pages in the order they are handed out again (last first). */
  fresh: Float64Array;
  freed: Int32Array[];
  used: Float64Array;
  monitorUsed: Float64Array;
  replicaUsed: Float64Array;
  reserved: Float64Array;
}

/** One node's page allocator. */
export interface NodePool {
  /** The next never-used page, counted from the node's first. */
  fresh: number;
  /** Pages freed since, handed out again last first. */
  freed: number[];
  /** Pages of VMs in use; of the monitor's own data (`allocateMonitor`); replicas (`allocateReplica`); reserved in blocks (`reserveBlock`), not yet allocated. */
  used: number;
  monitorUsed: number;
  replicaUsed: number;
  reserved: number;
  /** Retired pages no one holds any more (neither free nor in use). */
  retiredIdle: number;
  /** Free pages lent to other cells' borrowed chunks and not handed out yet (memory-borrowing.ts): not the node's own to give. */
  loaned: number;
}

/**
 * What the allocator asks of memory borrowing (memory-borrowing.ts), for VM `vm` confined to the nodes `within`.
 */
export interface PageLoans {
  /** An allocation for `vm` is about to be made: its cell, if low on memory, borrows now. */
  allocating(vm: number, within: readonly number[]): void;
  /** The node of a chunk `vm`'s cell borrowed with a page left (nearest `near` first), or undefined. */
  chunkNode(vm: number, within: readonly number[], near: number): number | undefined;
  /** Page `mpn` of that node went to `vm` (or to the monitor's data for it). */
  took(vm: number, node: number, mpn: number): void;
  /** Page `mpn` went free (`kept`: back on its node's free list); true when it went back into its chunk. */
  freed(mpn: number, kept: boolean): boolean;
}

export type Counted = 'used' | 'monitorUsed' | 'replicaUsed';

export function emptyPool(): NodePool {
  return { fresh: 0, freed: [], used: 0, monitorUsed: 0, replicaUsed: 0, reserved: 0, retiredIdle: 0, loaned: 0 };
}

/** The pools' part of `MachineMemoryState`. */
export function savePools(pools: readonly NodePool[]): Pick<MachineMemoryState, 'fresh' | 'freed' | 'used' | 'monitorUsed' | 'replicaUsed' | 'reserved'> {
  const perNode = (count: (pool: NodePool) => number): Float64Array => Float64Array.from(pools, count);
  return {
    fresh: perNode((p) => p.fresh), freed: pools.map((p) => Int32Array.from(p.freed)), used: perNode((p) => p.used),
    monitorUsed: perNode((p) => p.monitorUsed), replicaUsed: perNode((p) => p.replicaUsed), reserved: perNode((p) => p.reserved),
  };
}

/** Puts `savePools`' part of `s` back into `pools`. */
export function restorePools(pools: readonly NodePool[], s: MachineMemoryState): void {
  pools.forEach((p, n) => {
    p.fresh = s.fresh[n]!;
    p.freed = Array.from(s.freed[n]!);
    p.used = s.used[n]!;
    p.monitorUsed = s.monitorUsed[n]!;
    p.replicaUsed = s.replicaUsed[n]!;
    p.reserved = s.reserved[n]!;
  });
}

/**
 * A pool for the pages [first, end) made from the memmap's owners: the monitor's own pages counted, the
 * high-water mark past the last page in use, the free pages below it listed highest first (so the lowest goes
 * first, as never-used memory does); `held`: pages a VM, a replica or a cache still holds.
 */
export function poolFromMemmap(owners: Int32Array, first: number, end: number): { pool: NodePool; held: number } {
  const pool = emptyPool();
  let held = 0;
  for (let mpn = first; mpn < end; mpn++) {
    const owner = owners[mpn]!;
    if (owner === FREE) continue;
    if (owner === MONITOR) pool.monitorUsed++;
    else held++;
    pool.fresh = mpn - first + 1;
  }
  for (let mpn = first + pool.fresh - 1; mpn >= first; mpn--) if (owners[mpn] === FREE) pool.freed.push(mpn);
  return { pool, held };
}

/** The runs of free pages in [first, end), as [first page, pages]. */
export function freeRuns(owners: Int32Array, first: number, end: number): [number, number][] {
  const runs: [number, number][] = [];
  for (let mpn = first; mpn < end; ) {
    if (owners[mpn] !== FREE) {
      mpn++;
      continue;
    }
    let last = mpn;
    while (last + 1 < end && owners[last + 1] === FREE) last++;
    runs.push([mpn, last - mpn + 1]);
    mpn = last + 1;
  }
  return runs;
}

/**
 * The aligned blocks of a node's pages [first, first + pages), lowest first, whose pages were all freed, or
 * freed up to where the node's never-used pages begin (freed pages all lie below those: a block wholly never
 * used is not among them). `basePage`: the machine's first page number, for the alignment.
 */
export function freedBlocks(pool: NodePool, first: number, pages: number, basePage: number): number[] {
  const end = first + pages;
  const fresh = first + pool.fresh;
  const inBlock = new Map<number, number>();
  for (const mpn of pool.freed) {
    const block = mpn - ((basePage + mpn) % BLOCK_PAGES);
    inBlock.set(block, (inBlock.get(block) ?? 0) + 1);
  }
  const blocks: number[] = [];
  for (const [block, n] of inBlock) {
    const neverUsed = Math.max(0, block + BLOCK_PAGES - Math.max(block, fresh));
    if (block >= first && block + BLOCK_PAGES <= end && n + neverUsed === BLOCK_PAGES) blocks.push(block);
  }
  return blocks.sort((x, y) => x - y);
}

// Where the machine's shared pages came from, and the memory account that follows: per VM private, shared
// (by number of sharers) and reserved; for the machine the savings by source, adding up to the pages in use.

import { FREE, type MachineMemory } from './machine-memory.js';
import type { Pmap } from './pmap.js';

/**
 * How a machine page came to be shared: a zero page merged (content sharing finds it first), a disk block
 * read through the page cache, a page of a kernel or initrd the monitor loaded, a content merge of any
 * other page, or `other`: pages that a VM restored into a running one shares within itself (a whole
 * snapshot keeps the sources).
 */
export const SHARE_SOURCES = ['zero', 'disk', 'kernel', 'content', 'other'] as const;
export type ShareSource = (typeof SHARE_SOURCES)[number];

/**
 * The source of each machine page that is shared, by machine page (it follows a page `movePage` moves).
 * The first mechanism that shared a page keeps the page's savings: a disk block that a content merge later
 * joins stays `disk`.
 */
export class SharingLedger {
  private readonly source: Uint8Array;

  constructor(private readonly memory: MachineMemory) {
    this.source = new Uint8Array(memory.totalPages);
    memory.onPageMoved = (from, to) => {
      this.source[to] = this.source[from]!;
      this.source[from] = 0;
    };
  }

  /**
   * Machine page `mpn` is about to be shared by `source`: call it *before* the share. A page not shared yet
   * (one holder) takes the source; one already shared keeps the one it has.
   */
  note(mpn: number, source: Exclude<ShareSource, 'other'>): void {
    if (this.memory.users[mpn]! <= 1 || this.source[mpn] === 0) this.source[mpn] = SHARE_SOURCES.indexOf(source) + 1;
  }

  /** Each machine page's source, 0 for none (snapshots). */
  saveState(): Uint8Array {
    return this.source.slice();
  }

  /** Puts back what `saveState` returned (the caller checked its length and values: 0 to SHARE_SOURCES.length). */
  restoreState(sources: Uint8Array): void {
    this.source.set(sources);
  }

  sourceOf(mpn: number): ShareSource {
    const s = this.source[mpn]!;
    return s === 0 ? 'other' : SHARE_SOURCES[s - 1]!;
  }
}

/** One VM's pages by how they are held. */
export interface VmMemoryAccount {
  /** Guest pages whose machine page is theirs alone, and those whose machine page has other holders. */
  private: number;
  shared: number;
  /**
   * The shared pages by how many hold their machine page (guest pages of any VM that map it, and the page
   * cache if it keeps it): `{"2": 900, "8": 3000}`.
   */
  sharers: Record<string, number>;
  /** Machine pages reserved for its large pages and not touched yet. */
  reserved: number;
}

/**
 * The machine's pages given to VMs, accounted: `mapped` guest pages (every VM's pages in use summed) less
 * `saved` (each shared machine page saves one page per mapping beyond its first) plus `cacheOnly` (pages the
 * page cache alone holds) is `inUse`, the machine pages in use. `savedBy` splits `saved` by source.
 */
export interface MachineMemoryAccount {
  inUse: number;
  mapped: number;
  privatePages: number;
  /** Machine pages with more than one holder that some VM maps. */
  sharedPages: number;
  cacheOnly: number;
  saved: number;
  savedBy: Record<ShareSource, number>;
  reserved: number;
  monitor: number;
  replicas: number;
  /** Free pages lent to other cells' borrowed chunks, not handed out (memory-borrowing.ts): not free for their own node. */
  lent: number;
  free: number;
  total: number;
}

export interface MemoryAccount {
  machine: MachineMemoryAccount;
  /** By VM id, for the pmaps given. */
  vms: Map<number, VmMemoryAccount>;
}

/** Counts the pages of `pmaps` (the running VMs') and the machine's, with `cached` the page cache's pages. */
export function accountMemory(memory: MachineMemory, ledger: SharingLedger, pmaps: readonly Pmap[], cached: (mpn: number) => boolean, cacheSize: number): MemoryAccount {
  const vms = new Map<number, VmMemoryAccount>();
  /** Per shared machine page: its mappings by the pmaps given. */
  const mappings = new Map<number, number>();
  let mapped = 0;
  let privatePages = 0;
  for (const pmap of pmaps) {
    const a: VmMemoryAccount = { private: 0, shared: 0, sharers: {}, reserved: pmap.pagesReserved };
    for (let gppn = 0; gppn < pmap.pages; gppn++) {
      const mpn = pmap.lookup(gppn);
      if (mpn === FREE) continue;
      mapped++;
      const holders = memory.users[mpn]!;
      if (holders === 1) {
        a.private++;
        privatePages++;
        continue;
      }
      a.shared++;
      a.sharers[holders] = (a.sharers[holders] ?? 0) + 1;
      mappings.set(mpn, (mappings.get(mpn) ?? 0) + 1);
    }
    vms.set(pmap.vm, a);
  }
  const savedBy = Object.fromEntries(SHARE_SOURCES.map((s) => [s, 0])) as Record<ShareSource, number>;
  let saved = 0;
  let cachedAndMapped = 0;
  for (const [mpn, n] of mappings) {
    saved += n - 1;
    savedBy[ledger.sourceOf(mpn)] += n - 1;
    if (cached(mpn)) cachedAndMapped++;
  }
  const nodes = memory.layout.nodes.map((n) => n.id);
  const sum = (f: (node: number) => number): number => nodes.reduce((s, n) => s + f(n), 0);
  return {
    machine: {
      inUse: memory.pagesInUse(), mapped, privatePages, sharedPages: mappings.size, cacheOnly: cacheSize - cachedAndMapped, saved, savedBy,
      reserved: memory.pagesReserved(), monitor: memory.monitorPages(), replicas: memory.replicaPages(), lent: memory.pagesLent(), free: sum((n) => memory.pagesFree(n)),
      total: memory.totalPages,
    },
    vms,
  };
}

// The machine's one page cache (Disco's global disk cache): blocks of shared base images, and the pages of
// the boot images the monitor loads, each in one machine page mapped read-only into every VM that reads it.

import type { BlockPageHook } from '../devices/virtio/blk.js';
import { FREE, PAGE, PAGE_CACHE, type MachineMemory, type PageSpace } from './machine-memory.js';
import type { Pmap } from './pmap.js';
import type { SharingLedger } from './sharing-ledger.js';
import type { BootImage } from './vm.js';

/** Where a cached page came from: a block of a copy-on-write disk's base, or a page of a kernel or initrd the monitor loaded. */
export type CacheSource = 'disk' | 'kernel';

export interface PageCacheCounts {
  /** Reads (or loads) answered by mapping a cached page, and pages taken into the cache after a copy. */
  hits: number;
  fills: number;
  /** Lookups of pages not cached (the device then copied), and entries dropped (memory short, or a snapshot). */
  misses: number;
  dropped: number;
}

const noCounts = (): PageCacheCounts => ({ hits: 0, fills: 0, misses: 0, dropped: 0 });

/** The cache as plain data (a whole monitor snapshot, monitor-snapshot.ts): its slots, in the order it visits them. */
export interface PageCacheState {
  /** Per slot: its key, or null for a free slot. */
  keys: (string | null)[];
  /** Per slot: its machine page (FREE for a free slot). The memmap names the cache as user `slot` of that page. */
  pages: Int32Array;
  /** The free slots, in the order they are taken again (last first). */
  freeSlots: Int32Array;
  /** The slots that hold a page, in the order `trim` and `clear` visit them (the order the pages were taken or moved). */
  order: Int32Array;
  counts: Record<CacheSource, PageCacheCounts>;
}

/**
 * A cache from a key (a base image's identity and block number, or a boot image's and page number) to a
 * machine page holding exactly those bytes. The cache is one more user of each page it holds, in the
 * memmap (`PAGE_CACHE`), so the page stays while it is cached and every VM maps it copy-on-write: a write
 * by the guest, or a device's DMA into it, gets that VM a private copy and leaves the cached bytes as they
 * are. A page the cache alone holds is in use until memory runs short (`trim`).
 *
 * The first read of a block is copied into the VM's page by the device, and the cache then takes that page
 * (`offer`: it becomes copy-on-write in the VM); a later read of the block by any VM maps it (`map`).
 */
export class PageCache implements PageSpace {
  private readonly slotOf = new Map<string, number>();
  /** Per slot: its key and machine page (FREE for a free slot). */
  private readonly keys: (string | undefined)[] = [];
  private readonly pages: number[] = [];
  private readonly freeSlots: number[] = [];
  private readonly slotOfPage = new Map<number, number>();
  readonly counts: Record<CacheSource, PageCacheCounts> = { disk: noCounts(), kernel: noCounts() };

  constructor(private readonly memory: MachineMemory, private readonly ledger: SharingLedger) {
    memory.addSpace(PAGE_CACHE, this);
  }

  /** Machine pages the cache holds now. */
  get size(): number {
    return this.slotOfPage.size;
  }

  /** True when the cache holds machine page `mpn`. */
  holds(mpn: number): boolean {
    return this.slotOfPage.has(mpn);
  }

  /**
   * If `key` is cached, guest page `gppn` of `pmap` comes to map its page (copy-on-write) and true is returned.
   * With `verify`, only if the guest page already holds the same bytes (a page a loader wrote).
   */
  map(pmap: Pmap, gppn: number, key: string, source: CacheSource, verify = false): boolean {
    const slot = this.slotOf.get(key);
    if (slot === undefined) {
      this.counts[source].misses++;
      return false;
    }
    const mpn = this.pages[slot]!;
    const mine = pmap.lookup(gppn);
    if (verify && mine !== mpn && (mine === FREE || !this.memory.samePage(mine, mpn))) return false;
    this.ledger.note(mpn, source);
    if (!pmap.mapShared(gppn, mpn)) return false;
    this.counts[source].hits++;
    return true;
  }

  /** Guest page `gppn` of `pmap` holds `key`'s bytes now: unless `key` is cached already, the cache keeps that page. */
  offer(pmap: Pmap, gppn: number, key: string, source: CacheSource): void {
    if (this.slotOf.has(key)) return;
    const current = pmap.lookup(gppn);
    if (current === FREE || this.slotOfPage.has(current)) return;
    this.ledger.note(current, source);
    const mpn = pmap.shareOut(gppn);
    if (mpn === FREE) return;
    const slot = this.freeSlots.pop() ?? this.keys.length;
    this.keys[slot] = key;
    this.pages[slot] = mpn;
    this.slotOf.set(key, slot);
    this.slotOfPage.set(mpn, slot);
    this.memory.addUser(mpn, PAGE_CACHE, slot);
    this.counts[source].fills++;
  }

  /** Boot images the monitor loaded into `pmap` (the kernel, the initrd): each whole page mapped from the cache, or offered to it. */
  shareBootImages(pmap: Pmap, images: readonly BootImage[]): void {
    for (const image of images) {
      if ((image.address - pmap.base) % PAGE !== 0) continue;
      const id = imageId(image.bytes);
      const first = (image.address - pmap.base) / PAGE;
      const pages = Math.ceil(image.bytes.length / PAGE);
      for (let i = 0; i < pages && first + i < pmap.pages; i++) {
        const key = `kernel:${image.kind}:${id}:${i}`;
        if (!this.map(pmap, first + i, key, 'kernel', true)) this.offer(pmap, first + i, key, 'kernel');
      }
    }
  }

  /**
   * The block hook a virtio-blk device over base `baseId` gets in VM `pmap`'s machine (`running` says whether
   * the VM still runs). Keys are the base's identity and the block's number, so VMs over equal bases share.
   */
  blockHook(pmap: Pmap, baseId: string, running: () => boolean): BlockPageHook {
    const gppnOf = (address: number): number => {
      const offset = address - pmap.base;
      return offset >= 0 && offset < pmap.size && offset % PAGE === 0 ? offset / PAGE : -1;
    };
    return {
      map: (block, address) => {
        const gppn = gppnOf(address);
        return gppn >= 0 && running() && this.map(pmap, gppn, `disk:${baseId}:${block}`, 'disk');
      },
      copied: (block, address) => {
        const gppn = gppnOf(address);
        if (gppn >= 0 && running()) this.offer(pmap, gppn, `disk:${baseId}:${block}`, 'disk');
      },
    };
  }

  /** The memmap moved a cached page (with its users): the cache follows it. */
  moved(slot: number, mpn: number): void {
    const old = this.pages[slot];
    if (old === undefined) return;
    this.slotOfPage.delete(old);
    this.pages[slot] = mpn;
    this.slotOfPage.set(mpn, slot);
  }

  shootDown(): void {} // the cache never maps its pages into a TLB

  /** Everything the cache holds and counted, as plain data: the memmap and the pages' contents are saved apart. */
  saveState(): PageCacheState {
    return {
      keys: this.keys.map((k) => k ?? null), pages: Int32Array.from(this.pages), freeSlots: Int32Array.from(this.freeSlots),
      order: Int32Array.from(this.slotOfPage.values()), counts: { disk: { ...this.counts.disk }, kernel: { ...this.counts.kernel } },
    };
  }

  /** Puts back what `saveState` returned, checked (`readPageCache`) against the memmap it goes with. */
  restoreState(s: PageCacheState): void {
    this.slotOf.clear();
    this.slotOfPage.clear();
    this.keys.splice(0, this.keys.length, ...s.keys.map((k) => k ?? undefined));
    this.pages.splice(0, this.pages.length, ...Array.from(s.pages));
    this.freeSlots.splice(0, this.freeSlots.length, ...Array.from(s.freeSlots));
    s.keys.forEach((k, slot) => { if (k !== null) this.slotOf.set(k, slot); });
    for (const slot of s.order) this.slotOfPage.set(s.pages[slot]!, slot);
    for (const source of ['disk', 'kernel'] as const) Object.assign(this.counts[source], s.counts[source]);
  }

  /** Pages the cache alone holds go back to the machine (memory runs short). Returns how many. */
  trim(): number {
    let n = 0;
    // A Map may lose its entries while it is iterated (drop deletes the current one): no copy of the cache
    // on every reclaim, which memory running short calls at each refused page.
    for (const [mpn, slot] of this.slotOfPage) {
      if (this.memory.users[mpn] === 1) {
        this.drop(slot);
        n++;
      }
    }
    return n;
  }

  /** Forgets every entry (the memmap then names VMs' pages only). Returns how many went. */
  clear(): number {
    const n = this.slotOfPage.size;
    for (const slot of this.slotOfPage.values()) this.drop(slot);
    return n;
  }

  /** Drops the entry of machine page `mpn`, if the cache holds it (the page failed or is poisoned: no VM may map it again). */
  forget(mpn: number): void {
    const slot = this.slotOfPage.get(mpn);
    if (slot !== undefined) this.drop(slot);
  }

  /** Lets go of every page it holds on `nodes` (lost: fault-recovery.ts), from its own slots. Returns how many. */
  forgetOn(nodes: ReadonlySet<number>): number {
    let n = 0;
    this.pages.forEach((mpn, slot) => {
      if (mpn === FREE || !nodes.has(this.memory.nodeOf(mpn))) return;
      this.drop(slot);
      n++;
    });
    return n;
  }

  private drop(slot: number): void {
    const key = this.keys[slot]!;
    const mpn = this.pages[slot]!;
    this.slotOf.delete(key);
    this.slotOfPage.delete(mpn);
    this.keys[slot] = undefined;
    this.pages[slot] = FREE;
    this.freeSlots.push(slot);
    this.counts[key.startsWith('disk:') ? 'disk' : 'kernel'].dropped++;
    this.memory.removeUser(mpn, PAGE_CACHE, slot);
  }
}

/** Boot images hashed already, by the array they came in (every VM of a session gets the same one). */
const imageIds = new WeakMap<Uint8Array, string>();

/**
 * An image's identity for the page cache: its length and a 64-bit FNV-1a of its bytes (two 32-bit halves).
 * A collision costs nothing but a missed share: a boot image's page is mapped only if its bytes are equal.
 */
function imageId(bytes: Uint8Array): string {
  let id = imageIds.get(bytes);
  if (id !== undefined) return id;
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < bytes.length; i++) {
    a = Math.imul(a ^ bytes[i]!, 0x01000193);
    b = Math.imul(b ^ bytes[i]!, 0x5bd1e995);
  }
  id = `${bytes.length}-${(a >>> 0).toString(16)}${(b >>> 0).toString(16)}`;
  imageIds.set(bytes, id);
  return id;
}

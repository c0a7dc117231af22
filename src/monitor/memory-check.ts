// A saved allocator and memmap checked against the saved pmaps before any of it is restored (monitor-snapshot.ts):
// what each machine page is, and that every count agrees.

import { StateError } from '../memory/state.js';
import { BLOCK_PAGES, FREE, MONITOR, PAGE, PAGE_CACHE, REPLICA, type MachineMemory, type MachineMemoryState } from './machine-memory.js';
import type { PageCacheState } from './page-cache.js';
import type { ReadVm } from './vm-snapshot.js';

/** True if `a` and `b` are the same plain data (JSON's view of it, whatever the order of keys). */
export function same(a: unknown, b: unknown): boolean {
  const canonical = (v: unknown): unknown => {
    if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
    if (Array.isArray(v)) return v.map(canonical);
    if (typeof v === 'object' && v !== null) {
      return Object.fromEntries(Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

/** What a machine page is, as `checkMemory` finds it. */
const NOTHING = 0;
export const VM_PAGE = 1;
const MONITOR_PAGE = 2;
export const REPLICA_PAGE = 3;
const RESERVED_PAGE = 4;
const FREED_PAGE = 5;

/**
 * Checks a saved allocator and memmap against the saved pmaps and the monitor's pages (`monitorPages`): every
 * page is exactly one of a VM's (its memmap users are exactly the pmaps' guest pages that map it), the
 * monitor's, a replica, reserved in a pmap's block, freed, or never used; every count agrees. Returns each
 * page's kind. Throws StateError.
 */
export function checkMemory(memory: MachineMemory, s: MachineMemoryState, vms: readonly ReadVm[], monitorPages: readonly (readonly number[])[], cache: PageCacheState): Uint8Array {
  const fail = (why: string): never => { throw new StateError(`snapshot.whole.memory: ${why}`); };
  const total = memory.totalPages;
  const kind = new Uint8Array(total);
  const expectedUsers = new Uint16Array(total);
  const running = new Map(vms.filter((v) => v.state === 'running').map((v) => [v.id, v]));
  const nodes = memory.layout.nodes.length;
  for (const v of running.values()) {
    v.pmap.machine.forEach((mpn) => {
      if (mpn === FREE) return;
      kind[mpn] = VM_PAGE;
      expectedUsers[mpn]!++;
    });
    for (let i = 0; i < v.pmap.replicas.length; i += 1 + nodes) {
      for (let n = 1; n <= nodes; n++) {
        const mpn = v.pmap.replicas[i + n]!;
        if (mpn === FREE) continue;
        if (kind[mpn] !== NOTHING || s.owner[mpn] !== REPLICA || s.guestPage[mpn] !== v.pmap.replicas[i] || s.users[mpn] !== 1 || memory.nodeOf(mpn) !== n - 1) fail(`replica ${mpn} is not one`);
        kind[mpn] = REPLICA_PAGE;
      }
    }
  }
  // The page cache is one more user of each page it holds (a VM's too, or its alone).
  for (const mpn of cache.pages) {
    if (mpn === FREE) continue;
    if (kind[mpn] !== NOTHING && kind[mpn] !== VM_PAGE) fail(`cached page ${mpn} is not a VM's`);
    kind[mpn] = VM_PAGE;
    expectedUsers[mpn]!++;
  }
  for (const list of monitorPages) {
    for (const mpn of list) {
      if (mpn >= total || kind[mpn] !== NOTHING || s.owner[mpn] !== MONITOR || s.users[mpn] !== 1) fail(`page ${mpn} is not the monitor's`);
      kind[mpn] = MONITOR_PAGE;
    }
  }
  // The memmap's users of each VM page are exactly the guest pages that map it, each once.
  const seen = new Map([...running].map(([id, v]) => [id, new Uint8Array(v.pmap.machine.length)]));
  const cacheSeen = new Uint8Array(cache.pages.length);
  const user = (mpn: number, vm: number, gppn: number): void => {
    if (vm === PAGE_CACHE) {
      if (!(gppn >= 0 && gppn < cache.pages.length) || cache.pages[gppn] !== mpn || cacheSeen[gppn] !== 0) fail(`page ${mpn}'s user is the page cache's slot ${gppn}, which holds no such page`);
      cacheSeen[gppn] = 1;
      return;
    }
    const v = running.get(vm);
    if (v === undefined || !(gppn >= 0 && gppn < v.pmap.machine.length) || v.pmap.machine[gppn] !== mpn || seen.get(vm)![gppn] !== 0) fail(`page ${mpn}'s user ${vm}/${gppn} maps no such page`);
    seen.get(vm)![gppn] = 1;
  };
  const more = new Uint16Array(total);
  for (let i = 0; i + 2 < s.moreUsers.length; i += 3) {
    const mpn = s.moreUsers[i]!;
    if (!(mpn >= 0 && mpn < total) || s.users[mpn]! < 2) fail(`more users of page ${mpn}, which has not that many`);
    user(mpn, s.moreUsers[i + 1]!, s.moreUsers[i + 2]!);
    more[mpn]!++;
  }
  if (s.moreUsers.length % 3 !== 0) fail('more users not in threes');
  for (let mpn = 0; mpn < total; mpn++) {
    const k = kind[mpn]!;
    if (k === VM_PAGE) {
      if (s.users[mpn] !== expectedUsers[mpn] || more[mpn] !== expectedUsers[mpn]! - 1) fail(`page ${mpn} has ${s.users[mpn]} users, its pmaps say ${expectedUsers[mpn]}`);
      user(mpn, s.owner[mpn]!, s.guestPage[mpn]!);
    } else if (k === NOTHING && (s.users[mpn] !== 0 || s.owner[mpn] !== FREE || s.guestPage[mpn] !== FREE || more[mpn] !== 0)) {
      fail(`page ${mpn} has users no one knows`);
    }
  }
  // Reserved: the pages of a pmap's live block not placed yet.
  const reserved = new Float64Array(nodes);
  for (const v of running.values()) {
    v.pmap.blocks.forEach((block, group) => {
      if (block < 0) return;
      const node = memory.nodeOf(block);
      if ((memory.addressOf(block) / PAGE) % BLOCK_PAGES !== 0 || block + BLOCK_PAGES > total || memory.nodeOf(block + BLOCK_PAGES - 1) !== node ||
        (group + 1) * BLOCK_PAGES > v.pmap.machine.length) fail(`block ${block} is no aligned block of one node`);
      for (let k = 0; k < BLOCK_PAGES; k++) {
        if (v.pmap.machine[group * BLOCK_PAGES + k] === block + k) continue;
        if (kind[block + k] !== NOTHING) fail(`page ${block + k} of a block is in use`);
        kind[block + k] = RESERVED_PAGE;
        reserved[node]!++;
      }
    });
  }
  const counted = (k: number): Float64Array => {
    const c = new Float64Array(nodes);
    for (let mpn = 0; mpn < total; mpn++) if (kind[mpn] === k) c[memory.nodeOf(mpn)]!++;
    return c;
  };
  // Freed pages (each once, on its node, below the never-used ones) and never-used ones: the rest, exactly.
  for (let n = 0; n < nodes; n++) {
    const { first, pages } = memory.nodeSpan(n);
    const fresh = s.fresh[n]!;
    if (!Number.isInteger(fresh) || fresh > pages) fail(`node ${n}'s never-used pages start past its end`);
    for (const mpn of s.freed[n]!) {
      if (!(mpn >= first && mpn < first + fresh) || kind[mpn] !== NOTHING) fail(`freed page ${mpn} is not free on node ${n}`);
      kind[mpn] = FREED_PAGE;
    }
    for (let mpn = first; mpn < first + pages; mpn++) {
      if ((mpn < first + fresh) !== (kind[mpn] !== NOTHING)) fail(`page ${mpn} is ${kind[mpn] === NOTHING ? 'lost' : 'in use among the never-used ones'}`);
    }
  }
  if (!same(s.used, counted(VM_PAGE)) || !same(s.monitorUsed, counted(MONITOR_PAGE)) || !same(s.replicaUsed, counted(REPLICA_PAGE)) || !same(s.reserved, reserved)) {
    fail('the pages counted per node are not the pages there');
  }
  return kind;
}

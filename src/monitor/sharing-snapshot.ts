// Reading the page cache's and the content scanner's saved state (a whole monitor snapshot's `pageCache` and
// `scanner`), checked field by field: each is hostile input until it is (docs/snapshots.md).

import { MAX_AMOUNT, StateError, StateReader } from '../memory/state.js';
import type { SharingCosts } from './costs.js';
import { FREE } from './machine-memory.js';
import type { CacheSource, PageCacheCounts, PageCacheState } from './page-cache.js';
import { scanProblems, SEEN_STATE_MAX, type ScanCounts, type ScannerState } from './page-scanner.js';
import { CANDIDATES_PER_HASH, type ContentIndexState } from './page-sharing.js';

const CACHE_SOURCES: readonly CacheSource[] = ['disk', 'kernel'];

/**
 * The page cache of a machine of `totalPages` pages: every key a disk block's or a boot image's, each once;
 * every used slot one machine page, each once; the free slots and the visiting order exactly the others and
 * the used ones. That the memmap names the cache as the user of each of its pages is checked with the memmap.
 */
export function readPageCache(r: StateReader, totalPages: number): PageCacheState {
  const fail = (why: string): never => { throw new StateError(`${r.path}: ${why}`); };
  const keys = r.array('keys', (v, path) => {
    if (v !== null && (typeof v !== 'string' || !(v.startsWith('disk:') || v.startsWith('kernel:')))) throw new StateError(`${path}: not a cache key`);
    return v;
  });
  if (new Set(keys.filter((k) => k !== null)).size !== keys.filter((k) => k !== null).length) fail('a key twice');
  const pages = r.typed('pages', Int32Array, keys.length);
  const held = new Set<number>();
  pages.forEach((mpn, slot) => {
    if (keys[slot] === null) {
      if (mpn !== FREE) fail(`free slot ${slot} holds a page`);
      return;
    }
    if (!(mpn >= 0 && mpn < totalPages) || held.has(mpn)) fail(`slot ${slot}: page ${mpn} is no page, or held twice`);
    held.add(mpn);
  });
  const exactly = (key: string, free: boolean): Int32Array => {
    const slots = r.typed(key, Int32Array);
    const want = keys.flatMap((k, slot) => ((k === null) === free ? [slot] : []));
    if (slots.length !== want.length || new Set(slots).size !== slots.length || !slots.every((s) => s >= 0 && s < keys.length && (keys[s] === null) === free)) {
      fail(`${key}: not the ${free ? 'free' : 'used'} slots, each once`);
    }
    return slots;
  };
  const c = r.object('counts');
  const counts = Object.fromEntries(CACHE_SOURCES.map((source) => {
    const x = c.object(source);
    return [source, { hits: x.amount('hits'), fills: x.amount('fills'), misses: x.amount('misses'), dropped: x.amount('dropped') }];
  })) as Record<CacheSource, PageCacheCounts>;
  return { keys, pages, freeSlots: exactly('freeSlots', true), order: exactly('order', false), counts };
}

const COST_KEYS: readonly (keyof SharingCosts)[] = ['pageZeroCheck', 'pageHash', 'pageCompare', 'pageMerge', 'pageSkip'];
const COUNT_KEYS: readonly (keyof ScanCounts)[] = ['visited', 'zeroTests', 'hashed', 'compared', 'mergedZero', 'mergedContent', 'passes', 'cycles', 'cyclesCharged', 'idleCycles', 'referenceCycles'];

/** A VM as the scanner's state may name it: its id, its guest pages, and whether it runs. */
export interface ScannedVmShape {
  pages: number;
  running: boolean;
}

/**
 * The scanner of a machine of `cpus` CPUs whose VMs (by id, ended ones too) are `vms`: its parameters as
 * `setScan` takes them, its place in the running VMs, what it remembers of running VMs' pages, and its index
 * of candidates (any VM's pages: an ended VM's are found gone when looked at).
 */
export function readScanner(r: StateReader, vms: readonly ScannedVmShape[], cpus: number): ScannerState {
  const fail = (why: string): never => { throw new StateError(`${r.path}: ${why}`); };
  const p = r.object('parameters');
  const costs = p.object('costs');
  const parameters = {
    pagesPerSecond: p.number('pagesPerSecond'), idlePagesPerSecond: p.number('idlePagesPerSecond'), mergeOnFirstMatch: p.boolean('mergeOnFirstMatch'), cpu: p.number('cpu'),
    costs: Object.fromEntries(COST_KEYS.map((k) => [k, costs.amount(k)])) as unknown as SharingCosts,
  };
  const problems = scanProblems(parameters, cpus);
  if (problems.length > 0 || parameters.pagesPerSecond > MAX_AMOUNT || parameters.idlePagesPerSecond > MAX_AMOUNT) {
    fail(`parameters: ${problems.join('; ') || 'a rate too large'}`);
  }
  const c = r.object('counts');
  const counts = Object.fromEntries(COUNT_KEYS.map((k) => [k, c.amount(k)])) as unknown as ScanCounts;
  const budget = r.number('budget');
  const idleBudget = r.number('idleBudget');
  for (const [what, b] of [['budget', budget], ['idleBudget', idleBudget]] as const) if (!(b >= 0 && b <= MAX_AMOUNT)) fail(`${what} ${b} is not an amount`);
  const running = vms.filter((v) => v.running).length;
  const page = (vm: number, gppn: number, what: string): void => {
    if (!(Number.isInteger(vm) && vm >= 0 && vm < vms.length && Number.isInteger(gppn) && gppn >= 0 && gppn < vms[vm]!.pages)) fail(`${what}: VM ${vm} has no page ${gppn}`);
  };
  const seenVms = new Set<number>();
  const seen = r.array('seen', (v, path) => {
    const x = new StateReader(v, path);
    const vm = x.number('vm', 0, vms.length - 1);
    if (!vms[vm]!.running || seenVms.has(vm)) throw new StateError(`${path}.vm: VM ${vm} is not running, or named twice`);
    seenVms.add(vm);
    const flags = x.typed('seen', Uint8Array, vms[vm]!.pages);
    if (flags.some((f) => f > SEEN_STATE_MAX)) throw new StateError(`${path}.seen: not a page's scanner state`);
    return { vm, hash: x.typed('hash', Uint32Array, vms[vm]!.pages), seen: flags };
  });
  const i = r.object('index');
  const saltLimit = (vms.length + 1) * 2 ** 32;
  const keys = i.typed('keys', Float64Array);
  if (!keys.every((k) => Number.isInteger(k) && k >= 0 && k < saltLimit) || new Set(keys).size !== keys.length) fail('index.keys: not salts and hashes, each once');
  const candidateCounts = i.typed('candidateCounts', Uint8Array, keys.length);
  if (candidateCounts.some((n) => n > CANDIDATES_PER_HASH)) fail(`index.candidateCounts: more than ${CANDIDATES_PER_HASH} for a hash`);
  const candidates = i.typed('candidates', Int32Array, 2 * candidateCounts.reduce((a, b) => a + b, 0));
  for (let k = 0; k < candidates.length; k += 2) page(candidates[k]!, candidates[k + 1]!, 'index.candidates');
  const zeroPages = i.typed('zeroPages', Float64Array);
  if (zeroPages.length % 3 !== 0) fail('index.zeroPages: not in threes');
  const salts = new Set<number>();
  for (let k = 0; k < zeroPages.length; k += 3) {
    const salt = zeroPages[k]!;
    if (!Number.isInteger(salt) || salt < 0 || salt > vms.length || salts.has(salt)) fail(`index.zeroPages: salt ${salt}`);
    salts.add(salt);
    page(zeroPages[k + 1]!, zeroPages[k + 2]!, 'index.zeroPages');
  }
  const index: ContentIndexState = { keys, candidateCounts, candidates, zeroPages };
  return {
    parameters, counts, owed: r.amount('owed'), budget, idleBudget, absorbed: r.amount('absorbed'), lastCycles: r.value('lastCycles') === null ? null : r.amount('lastCycles'),
    vmCursor: r.number('vmCursor', 0, running), pageCursor: r.number('pageCursor', 0, 2 ** 31), seen, index,
  };
}

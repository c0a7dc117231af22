// Content-based page sharing (what VMware ESX added to Disco's ideas): machine pages of equal contents,
// in one VM or several, merged into one copy-on-write page. One pass on request (`mergeIdenticalPages`),
// or a page at a time by the monitor's rate-limited scanner (page-scanner.ts); both visit pages here.

import { FREE, MAX_PAGE_USERS, PAGE, type MachineMemory } from './machine-memory.js';
import type { Pmap } from './pmap.js';
import type { SharingLedger } from './sharing-ledger.js';

export interface SharingResult {
  /** Guest pages looked at, and those that came to share a machine page they did not share before. */
  scanned: number;
  merged: number;
  /** Machine pages in use before and after. */
  pagesBefore: number;
  pagesAfter: number;
}

/** A 32-bit FNV-1a-like hash of machine page `mpn`'s words: a candidate test, the bytes decide. */
export function pageHash(memory: MachineMemory, mpn: number): number {
  const words = memory.regionOf(mpn).i32;
  const first = memory.offsetOf(mpn) / 4;
  let h = 0x811c9dc5;
  for (let k = 0; k < PAGE / 4; k++) h = Math.imul(h ^ words[first + k]!, 0x01000193);
  return h >>> 0;
}

/** The index of page `mpn`'s first non-zero 32-bit word, or PAGE / 4 when the page is zero. */
export function firstNonZeroWord(memory: MachineMemory, mpn: number): number {
  const words = memory.regionOf(mpn).i32;
  const first = memory.offsetOf(mpn) / 4;
  for (let k = 0; k < PAGE / 4; k++) if (words[first + k] !== 0) return k;
  return PAGE / 4;
}

const ZERO = PAGE / 4;

/** The index of the first 32-bit word where machine pages `a` and `b` differ, or PAGE / 4 when they are equal. */
export function firstDifferentWord(memory: MachineMemory, a: number, b: number): number {
  const x = memory.regionOf(a).i32;
  const y = memory.regionOf(b).i32;
  const xo = memory.offsetOf(a) / 4;
  const yo = memory.offsetOf(b) / 4;
  for (let k = 0; k < ZERO; k++) if (x[xo + k] !== y[yo + k]) return k;
  return ZERO;
}

/** What reading a page up to (and including) word `k` reads, in bytes. */
const readTo = (k: number): number => Math.min(k + 1, ZERO) * 4;

/** What a visit did, for the caller's counts and the cycles it charges (costs.ts: pageZeroCheck, pageHash, pageCompare). */
export interface VisitWork {
  /** 32-bit words read by the zero test (0: no test), pages hashed, byte-for-byte comparisons made. */
  zeroWords: number;
  hashed: number;
  compared: number;
  /** 'zero' or 'content' when the page came to share another's machine page. */
  merged: 'zero' | 'content' | undefined;
}

/** Candidates kept per hash: a hash shared by more pages than this that differ is a collision worth losing. */
export const CANDIDATES_PER_HASH = 8;

interface Candidate {
  pmap: Pmap;
  gppn: number;
}

/** A content index as plain data (the scanner's, in a whole monitor snapshot): pages by VM id and guest page. */
export interface ContentIndexState {
  /** The keys seen (salt × 2^32 + hash), in the order first seen, and how many candidates each keeps. */
  keys: Float64Array;
  candidateCounts: Uint8Array;
  /** The candidates, key after key, oldest first: (VM id, guest page) pairs. */
  candidates: Int32Array;
  /** Each salt's zero page: (salt, VM id, guest page) triples. */
  zeroPages: Float64Array;
}

/**
 * The pages seen so far, by hash, and one zero page, each per *salt*: VMs that share with others have
 * salt 0; a VM that opted out (`share: false`) has a salt of its own, so its pages merge only among
 * themselves (ESX's answer to the side channels of cross-VM sharing).
 */
export class ContentIndex {
  private readonly byHash = new Map<number, Candidate[]>();
  private readonly zeroPages = new Map<number, Candidate>();

  constructor(private readonly memory: MachineMemory, private readonly ledger: SharingLedger | undefined) {}

  saveState(): ContentIndexState {
    const keys: number[] = [];
    const counts: number[] = [];
    const candidates: number[] = [];
    for (const [key, list] of this.byHash) {
      keys.push(key);
      counts.push(list.length);
      for (const c of list) candidates.push(c.pmap.vm, c.gppn);
    }
    const zero: number[] = [];
    for (const [salt, c] of this.zeroPages) zero.push(salt, c.pmap.vm, c.gppn);
    return { keys: Float64Array.from(keys), candidateCounts: Uint8Array.from(counts), candidates: Int32Array.from(candidates), zeroPages: Float64Array.from(zero) };
  }

  /** Puts back what `saveState` returned (checked by `readContentIndex`); `pmapOf` gives each VM id's pmap. */
  restoreState(s: ContentIndexState, pmapOf: (vm: number) => Pmap): void {
    this.byHash.clear();
    this.zeroPages.clear();
    let at = 0;
    s.keys.forEach((key, i) => {
      const list: Candidate[] = [];
      for (let k = 0; k < s.candidateCounts[i]!; k++, at += 2) list.push({ pmap: pmapOf(s.candidates[at]!), gppn: s.candidates[at + 1]! });
      this.byHash.set(key, list);
    });
    for (let i = 0; i < s.zeroPages.length; i += 3) this.zeroPages.set(s.zeroPages[i]!, { pmap: pmapOf(s.zeroPages[i + 1]!), gppn: s.zeroPages[i + 2]! });
  }

  /**
   * Looks at guest page `gppn` of `pmap` (mapped, not held) whose machine page is `mpn`: a zero page merges
   * with the salt's zero page at once; another page, when `stable` (its hash did not change since the
   * scanner's last look, or a one-pass merge), merges with a page of equal bytes seen before, else is
   * remembered as one. A page already shared with others is only remembered: others may join it. `read` is told
   * of every page the visit reads, and how many bytes from its start (timing mode charges them, page-scanner.ts).
   * With `hashNonZero` false a private page that is not zero is only tested for zero (the scanner's first look).
   */
  visit(pmap: Pmap, gppn: number, mpn: number, salt: number, stable: (hash: number) => boolean, read?: (mpn: number, bytes: number) => void, hashNonZero = true): VisitWork {
    const work: VisitWork = { zeroWords: 0, hashed: 0, compared: 0, merged: undefined };
    const shared = this.memory.users[mpn]! > 1;
    if (!shared) {
      const nonZero = firstNonZeroWord(this.memory, mpn);
      // The test reads up to the first non-zero word.
      work.zeroWords = Math.min(nonZero + 1, ZERO);
      read?.(mpn, readTo(nonZero));
      if (nonZero === ZERO) {
        const zero = this.zeroPages.get(salt);
        const theirs = zero === undefined ? FREE : zero.pmap.lookup(zero.gppn);
        const stillZero = (): boolean => {
          const k = firstNonZeroWord(this.memory, theirs);
          read?.(theirs, readTo(k));
          return k === ZERO;
        };
        // The salt's zero page, once shared as one (the ledger says so), is read-only to every holder and so
        // still zero: only otherwise (one holder, who may have written it, or another page mapped there since)
        // must it be tested again, which costs a comparison.
        const known = theirs !== FREE && this.memory.users[theirs]! > 1 && this.ledger?.sourceOf(theirs) === 'zero';
        const recheck = theirs !== FREE && theirs !== mpn && !known;
        // A zero page with as many users as the memmap counts (MAX_PAGE_USERS) takes no more: this one starts another.
        if (theirs === FREE || theirs === mpn || zero!.pmap.held(zero!.gppn) || this.memory.users[theirs]! >= MAX_PAGE_USERS || (recheck && !stillZero())) {
          this.zeroPages.set(salt, { pmap, gppn });
          return work;
        }
        if (recheck) work.compared++;
        this.merge(pmap, gppn, zero!, theirs, 'zero');
        work.merged = 'zero';
        return work;
      }
      if (!hashNonZero) return work;
    }
    const hash = pageHash(this.memory, mpn);
    read?.(mpn, PAGE);
    work.hashed++;
    if (!shared && !stable(hash)) return work;
    const key = salt * 2 ** 32 + hash;
    const candidates = this.byHash.get(key) ?? [];
    for (let i = 0; i < candidates.length; i++) {
      const c = candidates[i]!;
      const theirs = c.pmap.lookup(c.gppn);
      if (theirs === FREE) {
        candidates.splice(i--, 1);
        continue;
      }
      if (theirs === mpn) return work;
      if (c.pmap.held(c.gppn) || this.memory.users[theirs]! >= MAX_PAGE_USERS) continue;
      work.compared++;
      // Both pages are read up to their first difference.
      const differs = firstDifferentWord(this.memory, theirs, mpn);
      read?.(theirs, readTo(differs));
      read?.(mpn, readTo(differs));
      if (differs !== ZERO) continue;
      if (shared) return work;
      this.merge(pmap, gppn, c, theirs, 'content');
      work.merged = 'content';
      return work;
    }
    candidates.push({ pmap, gppn });
    if (candidates.length > CANDIDATES_PER_HASH) candidates.shift();
    this.byHash.set(key, candidates);
    return work;
  }

  private merge(pmap: Pmap, gppn: number, into: Candidate, theirs: number, source: 'zero' | 'content'): void {
    this.ledger?.note(theirs, source);
    pmap.shareFrom(gppn, into.pmap, into.gppn);
  }
}

/**
 * One pass over every mapped, not held page of `pmaps`: a page whose contents equal a page seen before (by
 * hash, then byte for byte) comes to map that page's machine page, copy-on-write, and its own goes back.
 * What the guests see does not change (`Pmap.shareFrom` refuses pages that differ). `saltOf` gives each
 * pmap its salt (ContentIndex; 0 for every one by default).
 */
export function mergeIdenticalPages(memory: MachineMemory, pmaps: readonly Pmap[], ledger?: SharingLedger, saltOf: (pmap: Pmap) => number = () => 0): SharingResult {
  const pagesBefore = memory.pagesInUse();
  const index = new ContentIndex(memory, ledger);
  let scanned = 0;
  let merged = 0;
  for (const pmap of pmaps) {
    const salt = saltOf(pmap);
    for (let gppn = 0; gppn < pmap.pages; gppn++) {
      const mpn = pmap.lookup(gppn);
      if (mpn === FREE || pmap.held(gppn)) continue;
      scanned++;
      if (index.visit(pmap, gppn, mpn, salt, () => true).merged !== undefined) merged++;
    }
  }
  return { scanned, merged, pagesBefore, pagesAfter: memory.pagesInUse() };
}

// Content-based page sharing (what VMware ESX added to Disco's ideas): machine pages of equal contents,
// in one VM or several, merged into one copy-on-write page.

import { FREE, PAGE, type MachineMemory } from './machine-memory.js';
import type { Pmap } from './pmap.js';

export interface SharingResult {
  /** Guest pages looked at, and those that came to share a machine page they did not share before. */
  scanned: number;
  merged: number;
  /** Machine pages in use before and after. */
  pagesBefore: number;
  pagesAfter: number;
}

/** A 32-bit FNV-1a-like hash of machine page `mpn`'s words: a candidate test, the bytes decide. */
function pageHash(memory: MachineMemory, mpn: number): number {
  const words = memory.regionOf(mpn).i32;
  const first = memory.offsetOf(mpn) / 4;
  let h = 0x811c9dc5;
  for (let k = 0; k < PAGE / 4; k++) h = Math.imul(h ^ words[first + k]!, 0x01000193);
  return h >>> 0;
}

/**
 * One pass over every mapped, not held page of `pmaps`: a page whose contents equal a page seen before (by
 * hash, then byte for byte) comes to map that page's machine page, copy-on-write, and its own goes back.
 * What the guests see does not change (`Pmap.shareFrom` refuses pages that differ).
 */
export function mergeIdenticalPages(memory: MachineMemory, pmaps: readonly Pmap[]): SharingResult {
  const pagesBefore = memory.pagesInUse();
  const seen = new Map<number, { pmap: Pmap; gppn: number }[]>();
  let scanned = 0;
  let merged = 0;
  for (const pmap of pmaps) {
    for (let gppn = 0; gppn < pmap.pages; gppn++) {
      const mpn = pmap.lookup(gppn);
      if (mpn === FREE || pmap.held(gppn)) continue;
      scanned++;
      const hash = pageHash(memory, mpn);
      const candidates = seen.get(hash);
      const same = candidates?.find((c) => {
        const theirs = c.pmap.lookup(c.gppn);
        return theirs !== FREE && (theirs === mpn || memory.samePage(theirs, mpn));
      });
      if (same === undefined) {
        if (candidates === undefined) seen.set(hash, [{ pmap, gppn }]);
        else candidates.push({ pmap, gppn });
        continue;
      }
      if (same.pmap.lookup(same.gppn) === mpn) continue;
      pmap.shareFrom(gppn, same.pmap, same.gppn);
      merged++;
    }
  }
  return { scanned, merged, pagesBefore, pagesAfter: memory.pagesInUse() };
}

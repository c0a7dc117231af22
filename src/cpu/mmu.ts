// Sv39/Sv48 address translation with hardware A/D updates, SUM and MXR (privileged spec §4.3–4.4).

import {
  CAUSE_FETCH_ACCESS, CAUSE_FETCH_PAGE_FAULT, CAUSE_LOAD_ACCESS, CAUSE_LOAD_PAGE_FAULT, CAUSE_STORE_ACCESS,
  CAUSE_STORE_PAGE_FAULT, PRIV_M, PRIV_S, PRIV_U,
} from '../isa/opcodes.js';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, type Access } from '../memory/bus.js';
import { MSTATUS_MXR, MSTATUS_SUM, SATP_MODE_SV39, type HartState } from './hart-state.js';
import { ALLOWS_EXEC, ALLOWS_READ, ALLOWS_WRITE } from './tlb-model.js';

export { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, type Access };

const PTE_V = 1;
const PTE_R = 2;
const PTE_W = 4;
const PTE_X = 8;
const PTE_U = 16;
const PTE_G = 32;
const PTE_A = 64;
const PTE_D = 128;

const PAGE_FAULT = [CAUSE_LOAD_PAGE_FAULT, CAUSE_STORE_PAGE_FAULT, CAUSE_FETCH_PAGE_FAULT];
const ACCESS_FAULT = [CAUSE_LOAD_ACCESS, CAUSE_STORE_ACCESS, CAUSE_FETCH_ACCESS];

/** 2^(12 + 9 level): a virtual address divided by it is the page number above level `level` (constants: `2 **` with a variable exponent is a call). */
const LEVEL_BYTES = [2 ** 12, 2 ** 21, 2 ** 30, 2 ** 39];
/** 2^(9 level): the 4 KiB pages a leaf at level `level` spans. */
const LEVEL_PAGES = [1, 2 ** 9, 2 ** 18, 2 ** 27];
/** Half the virtual address space of Sv39 and Sv48 (indexed by levels): valid addresses lie in [-half, half). */
const HALF_SPACE = [0, 0, 0, 2 ** 38, 2 ** 47];

export function accessFault(access: Access): number {
  return ACCESS_FAULT[access];
}

/**
 * Translates virtual address `va` for `access` at the hart's current effective privilege and returns
 * the physical address, or records a page/access fault and throws TRAP. Nothing is changed before the
 * walk succeeds except A/D bits of the leaf PTE, which the spec allows. A successful walk leaves in
 * `h.walkLevels` how many levels it read (fewer than the mode's for a superpage), in `h.walkGlobal` whether
 * the mapping is global and in `h.walkAllows` what the leaf allows without another walk.
 *
 * Under the monitor the walk's own reads and its A/D write are guest-physical accesses like any other: one
 * the monitor denies is a guest-page fault on an implicit access (privileged spec §9.5.1), an exit; once the
 * monitor has resolved it the walk starts again from the root, having changed nothing.
 */
export function translate(h: HartState, va: number, access: Access): number {
  const priv = access === ACCESS_EXEC ? h.priv : h.dataPriv;
  if (priv === PRIV_M || h.satpMode === 0) return va;
  const levels = h.satpMode === SATP_MODE_SV39 ? 3 : 4;
  const half = HALF_SPACE[levels]!;
  if (va < -half || va >= half) h.raise(PAGE_FAULT[access], va);
  const bus = h.env.bus;
  let table = h.satpPpn * 4096;
  // A G bit on a pointer makes everything below it global too (§4.3.1).
  let global = 0;
  for (let level = levels - 1; level >= 0; level--) {
    const vpn = Math.floor(va / LEVEL_BYTES[level]!) & 511;
    const pteAddress = table + vpn * 8;
    // PMP checks the walker's reads and A/D writes as S-mode accesses; a refusal is an access fault of the
    // access that walked (privileged spec §3.7.1, §4.3.2).
    if (!h.pmp.allows(pteAddress, 8, PRIV_S, ACCESS_READ)) h.raise(ACCESS_FAULT[access], va);
    // Under the monitor this is guest-physical: the bus finds the machine page through the VM's pmap.
    let region = bus.resolveRam(pteAddress, ACCESS_READ);
    if (region === undefined) {
      if (!bus.denied) h.raise(ACCESS_FAULT[access], va);
      h.guestPageFault(pteAddress, va, access, ACCESS_READ, true);
      return translate(h, va, access);
    }
    if (region.faults !== null) h.hardwareCheck(region, bus.resolvedOffset, 8, va, access);
    const step = levels - 1 - level;
    h.walkPteNode[step] = region.node;
    h.walkPteOffset[step] = bus.resolvedOffset;
    h.walkPteAddress[step] = pteAddress;
    const word = bus.resolvedOffset >>> 2;
    const lo = region.i32[word];
    const hi = region.i32[word + 1];
    // Bits 63..54 are reserved (or Svpbmt/Svnapot, which we do not implement): a set bit faults.
    if ((lo & PTE_V) === 0 || (lo & (PTE_R | PTE_W)) === PTE_W || (hi >>> 22) !== 0) h.raise(PAGE_FAULT[access], va);
    const ppn = (lo >>> 10) + (hi & 0x3fffff) * 4194304;
    global |= lo & PTE_G;
    if ((lo & (PTE_R | PTE_X)) === 0) {
      table = ppn * 4096;
      continue;
    }
    // A leaf: permissions (§4.3.1), then superpage alignment, then A/D.
    let ok: boolean;
    if (access === ACCESS_EXEC) ok = (lo & PTE_X) !== 0;
    else if (access === ACCESS_WRITE) ok = (lo & PTE_W) !== 0;
    else ok = (lo & PTE_R) !== 0 || ((h.mstatus & MSTATUS_MXR) !== 0 && (lo & PTE_X) !== 0);
    if ((lo & PTE_U) !== 0) {
      if (priv === PRIV_S && (access === ACCESS_EXEC || (h.mstatus & MSTATUS_SUM) === 0)) ok = false;
    } else if (priv === PRIV_U) ok = false;
    const span = LEVEL_PAGES[level]!;
    if (!ok || ppn % span !== 0) h.raise(PAGE_FAULT[access], va);
    const want = access === ACCESS_WRITE ? PTE_A | PTE_D : PTE_A;
    h.walkUpdated = (lo & want) !== want;
    if ((lo & want) !== want) {
      if (!h.pmp.allows(pteAddress, 8, PRIV_S, ACCESS_WRITE)) h.raise(ACCESS_FAULT[access], va);
      // The update is a write to the table's page: the monitor may have left it read-only.
      region = bus.resolveRam(pteAddress, ACCESS_WRITE);
      if (region === undefined) {
        h.guestPageFault(pteAddress, va, access, ACCESS_WRITE, true);
        return translate(h, va, access);
      }
      if (region.faults !== null) h.hardwareCheck(region, bus.resolvedOffset, 8, va, access);
      // A store like any other: it breaks other harts' reservations on the PTE (an SC there must not
      // write back the entry without the bits just set).
      const offset = bus.resolvedOffset;
      if (h.env.reservations.count !== 0) h.env.reservations.storeBy(h.id, region.base + offset, 8);
      // Atomic with the guest's own updates of the entry (privileged spec §4.3.1): if a hart on another
      // thread changed it since it was read, walk again (with one thread the exchange always succeeds).
      if (Atomics.compareExchange(region.i32, offset >>> 2, lo, lo | want) !== lo) return translate(h, va, access);
    }
    const pageInSpan = Math.floor(va / 4096) & (span - 1);
    h.walkLevels = levels - level;
    h.walkGlobal = global !== 0;
    const leaf = lo | want;
    h.walkAllows = ((leaf & PTE_R) !== 0 || ((h.mstatus & MSTATUS_MXR) !== 0 && (leaf & PTE_X) !== 0) ? ALLOWS_READ : 0)
      | ((leaf & (PTE_W | PTE_D)) === (PTE_W | PTE_D) ? ALLOWS_WRITE : 0) | ((leaf & PTE_X) !== 0 ? ALLOWS_EXEC : 0);
    return (ppn + pageInSpan) * 4096 + (va & 4095);
  }
  return h.raise(PAGE_FAULT[access], va);
}


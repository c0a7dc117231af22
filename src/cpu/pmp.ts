// Physical memory protection (privileged spec §3.7): the pmpcfg/pmpaddr CSRs' contract, and the checks a
// TLB fill and the page walker make against the entries.

import { PRIV_M } from '../isa/opcodes.js';
import type { Access } from '../memory/bus.js';

/** Entries a hart implements (pmpaddr0..63, pmpcfg0/2/…/14 on RV64). */
export const PMP_ENTRIES = 64;

/** Bits of an entry's configuration byte (§3.7.1). */
export const PMP_R = 1;
export const PMP_W = 2;
export const PMP_X = 4;
const A_SHIFT = 3;
const PMP_A = 3 << A_SHIFT;
export const PMP_L = 0x80;
/** Address matching modes of the A field. */
export const PMP_OFF = 0;
export const PMP_TOR = 1 << A_SHIFT;
export const PMP_NA4 = 2 << A_SHIFT;
export const PMP_NAPOT = 3 << A_SHIFT;
/** Bits 6..5 are reserved and read as zero. */
const CFG_WRITABLE = PMP_R | PMP_W | PMP_X | PMP_A | PMP_L;
/** pmpaddr holds bits 55..2 of an address on RV64. */
const ADDR_MASK = (1n << 54n) - 1n;
/** A NAPOT pmpaddr of all ones: every address (what firmware gives S-mode). */
export const PMP_ADDR_ALL = ADDR_MASK;

/** What one rule decides for a whole 4 KiB page (`Pmp.page`). */
export const PAGE_DENIED = 0;
export const PAGE_ALLOWED = 1;
/** Entries start or end inside the page: each access must be checked on its own (it stays out of the TLB). */
export const PAGE_PARTIAL = 2;

const PAGE_BYTES = 4096;

/**
 * The PMP unit of one hart. The CSRs are kept as written (cfg bytes, pmpaddr values); the entries that
 * match anything are compiled into byte ranges in priority order, which the checks walk. The checks are
 * made when a TLB entry is filled (hart-memory.ts) and on every page-table read (mmu.ts), never on the fast
 * path: a change of the compiled rules is reported to the caller, which empties the TLBs.
 */
export class Pmp {
  /** Configuration byte of each entry (pmpcfg0 holds entries 0–7, pmpcfg2 8–15, …). */
  readonly cfg = new Uint8Array(PMP_ENTRIES);
  /** pmpaddr of each entry: bits 55..2 of an address. */
  readonly addr: bigint[] = new Array<bigint>(PMP_ENTRIES).fill(0n);
  /**
   * Entries implemented: PMP_ENTRIES, or 0 for a hart that has none (a vCPU, whose memory the monitor's
   * pmap protects): its CSRs read as zero and ignore writes, and S/U accesses are never refused.
   */
  private implemented = PMP_ENTRIES;

  /** The compiled rules: [lo, hi) byte ranges and configuration bytes of the entries that match something. */
  private count = 0;
  private readonly lo = new Float64Array(PMP_ENTRIES);
  private readonly hi = new Float64Array(PMP_ENTRIES);
  private readonly rule = new Uint8Array(PMP_ENTRIES);
  /** Some rule is locked: M-mode accesses are checked too. */
  private lockedRules = false;

  get entries(): number {
    return this.implemented;
  }

  /** True if M-mode accesses can be refused (a locked entry exists); otherwise M-mode needs no check. */
  get checksMachineMode(): boolean {
    return this.lockedRules;
  }

  /** Makes the hart have no PMP at all (see `implemented`). */
  removeEntries(): void {
    this.implemented = 0;
    this.reset();
  }

  /** Reset (§3.7.1): every entry off and unlocked. */
  reset(): void {
    this.cfg.fill(0);
    this.addr.fill(0n);
    this.compile();
  }

  /** The value of pmpcfg`n` (n even, 0–14): eight configuration bytes. */
  readCfg(n: number): bigint {
    let v = 0n;
    for (let j = 7; j >= 0; j--) v = (v << 8n) | BigInt(this.cfg[n * 4 + j]!);
    return v;
  }

  readAddr(i: number): bigint {
    return this.addr[i]!;
  }

  /**
   * Writes pmpcfg`n` (n even). A locked entry keeps its byte; the reserved bits read as zero and the
   * reserved R=0 W=1 combination is made R=0 W=0 (WARL). Returns true if the rules changed.
   */
  writeCfg(n: number, value: bigint): boolean {
    if (this.implemented === 0) return false;
    for (let j = 0; j < 8; j++) {
      const i = n * 4 + j;
      if (this.cfg[i]! & PMP_L) continue;
      let byte = Number((value >> BigInt(8 * j)) & 0xffn) & CFG_WRITABLE;
      if ((byte & (PMP_R | PMP_W)) === PMP_W) byte &= ~PMP_W;
      this.cfg[i] = byte;
    }
    return this.compile();
  }

  /**
   * Writes pmpaddr`i`, ignored if entry i is locked, or if entry i + 1 is a locked TOR entry (whose bottom
   * it is). Returns true if the rules changed.
   */
  writeAddr(i: number, value: bigint): boolean {
    if (this.implemented === 0) return false;
    if (this.cfg[i]! & PMP_L) return false;
    const next = this.cfg[i + 1];
    if (next !== undefined && (next & PMP_L) !== 0 && (next & PMP_A) === PMP_TOR) return false;
    this.addr[i] = value & ADDR_MASK;
    return this.compile();
  }

  /** Puts saved CSR values back as they were, locks included (snapshots). */
  restore(cfg: readonly bigint[], addr: readonly bigint[]): void {
    for (let n = 0; n < cfg.length; n += 2) {
      for (let j = 0; j < 8; j++) this.cfg[n * 4 + j] = Number((cfg[n]! >> BigInt(8 * j)) & 0xffn) & CFG_WRITABLE;
    }
    addr.forEach((v, i) => { this.addr[i] = v & ADDR_MASK; });
    this.compile();
  }

  /**
   * True if an access of `size` bytes at physical `pa` of kind `access` at privilege `priv` is allowed: the
   * lowest-numbered entry that matches any of its bytes decides, and fails it if it does not match them all;
   * with no match, only M-mode succeeds (§3.7.1) — unless the hart has no entries at all.
   */
  allows(pa: number, size: number, priv: number, access: Access): boolean {
    if (this.implemented === 0) return true;
    const end = pa + size;
    for (let k = 0; k < this.count; k++) {
      const lo = this.lo[k]!;
      const hi = this.hi[k]!;
      if (end <= lo || pa >= hi) continue;
      if (pa < lo || end > hi) return false;
      return this.decides(k, priv, access);
    }
    return priv === PRIV_M;
  }

  /**
   * What the rules decide for every access of kind `access` at privilege `priv` inside the 4 KiB page at
   * physical `page`: PAGE_ALLOWED or PAGE_DENIED when one rule (or none) covers the whole page, else
   * PAGE_PARTIAL.
   */
  page(page: number, priv: number, access: Access): number {
    if (this.implemented === 0) return PAGE_ALLOWED;
    const end = page + PAGE_BYTES;
    for (let k = 0; k < this.count; k++) {
      const lo = this.lo[k]!;
      const hi = this.hi[k]!;
      if (end <= lo || page >= hi) continue;
      if (page < lo || end > hi) return PAGE_PARTIAL;
      return this.decides(k, priv, access) ? PAGE_ALLOWED : PAGE_DENIED;
    }
    return priv === PRIV_M ? PAGE_ALLOWED : PAGE_DENIED;
  }

  /** A matching rule: M-mode passes an unlocked one; otherwise its R, W or X bit decides. */
  private decides(k: number, priv: number, access: Access): boolean {
    const rule = this.rule[k]!;
    if (priv === PRIV_M && (rule & PMP_L) === 0) return true;
    // ACCESS_READ, _WRITE, _EXEC are 0, 1, 2: the R, W, X bits.
    return (rule & (1 << access)) !== 0;
  }

  /** Rebuilds the compiled rules from the CSRs; returns true if they differ from the previous ones. */
  private compile(): boolean {
    const before = this.signature();
    let count = 0;
    let locked = false;
    for (let i = 0; i < this.implemented; i++) {
      const cfg = this.cfg[i]!;
      const mode = cfg & PMP_A;
      if (mode === PMP_OFF) continue;
      const a = this.addr[i]!;
      let lo: bigint;
      let hi: bigint;
      if (mode === PMP_TOR) {
        // From the previous entry's address (0 for entry 0), whatever that entry's mode; empty if not below.
        lo = i === 0 ? 0n : this.addr[i - 1]! << 2n;
        hi = a << 2n;
      } else if (mode === PMP_NA4) {
        lo = a << 2n;
        hi = lo + 4n;
      } else {
        // NAPOT: the trailing ones of pmpaddr give the size, 2^(ones + 3) bytes (§3.7.1, table 3.9).
        let ones = 0n;
        while (ones < 54n && ((a >> ones) & 1n) === 1n) ones++;
        const size = 1n << (ones + 3n);
        lo = (a << 2n) & ~(size - 1n);
        hi = lo + size;
      }
      if (lo >= hi) continue;
      this.lo[count] = Number(lo);
      this.hi[count] = Number(hi);
      this.rule[count] = cfg;
      if (cfg & PMP_L) locked = true;
      count++;
    }
    this.count = count;
    this.lockedRules = locked;
    return this.signature() !== before;
  }

  private signature(): string {
    let s = '';
    for (let k = 0; k < this.count; k++) s += `${this.lo[k]},${this.hi[k]},${this.rule[k]};`;
    return s;
  }
}

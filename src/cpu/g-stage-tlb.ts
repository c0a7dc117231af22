// The G-stage TLB of a hart's page-table walker under H's two-stage translation: a small cache of the
// G-stage translations (guest-physical to machine) of the guest's own page-table pages, so that a nested walk
// need not walk the G-stage tables again for every guest level. CVA6's hypervisor support has one (the GTLB
// of Sá et al., "CVA6 RISC-V Virtualization", IEEE TVLSI 2023), as AMD's nested paging has its nested TLB
// (Bhargava et al., ASPLOS 2008). It only decides what timing mode charges: translation itself always goes
// through the pmap.

/** Entries of the G-stage TLB: CVA6's design space explored 8 and 16; docs/monitor.md shows the figures at 0, 8, 16 and 32. */
export const G_STAGE_TLB_ENTRIES = 16;

const PAGE = 4096;
const LARGE = 2 * 1024 * 1024;
const EMPTY = Number.NaN;

export interface GStageTlbState {
  key: Float64Array;
  used: Float64Array;
  clock: number;
}

/**
 * Fully associative, least recently used. An entry translates one guest-physical 4 KiB page, or a whole
 * 2 MiB group when the G-stage maps it as one large page (keyed then by the group's negative number).
 */
export class GStageTlb {
  private readonly key: Float64Array;
  private readonly used: Float64Array;
  private clock = 0;
  hits = 0;
  misses = 0;

  constructor(readonly entries: number = G_STAGE_TLB_ENTRIES) {
    if (!Number.isInteger(entries) || entries < 1) throw new Error(`a G-stage TLB needs at least one entry, not ${entries}`);
    this.key = new Float64Array(entries).fill(EMPTY);
    this.used = new Float64Array(entries);
  }

  /** Whether an entry translates guest-physical `gpa` (and if so it becomes the most recently used). */
  lookup(gpa: number): boolean {
    const page = Math.floor(gpa / PAGE);
    const group = -1 - Math.floor(gpa / LARGE);
    for (let i = 0; i < this.entries; i++) {
      const k = this.key[i];
      if (k === page || k === group) {
        this.used[i] = ++this.clock;
        this.hits++;
        return true;
      }
    }
    this.misses++;
    return false;
  }

  /** The walker translated `gpa` through the G-stage tables, which map its 2 MiB group as one page if `large`. */
  fill(gpa: number, large: boolean): void {
    let victim = 0;
    for (let i = 1; i < this.entries; i++) if (this.used[i]! < this.used[victim]!) victim = i;
    this.key[victim] = large ? -1 - Math.floor(gpa / LARGE) : Math.floor(gpa / PAGE);
    this.used[victim] = ++this.clock;
  }

  /** HFENCE.GVMA: the monitor changed or dropped a G-stage mapping, or another VM's vCPU had the CPU. */
  flush(): void {
    this.key.fill(EMPTY);
    this.used.fill(0);
  }

  saveState(): GStageTlbState {
    return { key: this.key.slice(), used: this.used.slice(), clock: this.clock };
  }

  /** Puts back what `saveState` returned, of a TLB of the same size. */
  restoreState(s: GStageTlbState): void {
    if (s.key.length !== this.entries || s.used.length !== this.entries) throw new Error(`a G-stage TLB of ${this.entries} entries cannot take a state of ${s.key.length}`);
    this.key.set(s.key);
    this.used.set(s.used);
    this.clock = s.clock;
  }
}

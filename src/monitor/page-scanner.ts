// The monitor's content-sharing scanner: a few pages each round, at a rate in pages per second of
// simulated time, merging pages of equal contents copy-on-write (page-sharing.ts), zero pages first, and
// charging its work to one physical CPU.

import { CPU_CYCLES_PER_SECOND } from '../board/topology.js';
import type { MemoryTiming } from '../cpu/memory-timing.js';
import { DEFAULT_SHARING_COSTS, type SharingCosts } from './costs.js';
import { FREE, PAGE, type MachineMemory } from './machine-memory.js';
import { touchBytes, type MemmapTable, type VmTables } from './monitor-data.js';
import { ContentIndex, type ContentIndexState } from './page-sharing.js';
import type { Pmap } from './pmap.js';
import type { SharingLedger } from './sharing-ledger.js';

export interface ScanParameters {
  /** Guest pages looked at per second of simulated (machine) time, over all VMs. */
  pagesPerSecond: number;
  /**
   * The rate while its CPU has no vCPU to run: work there delays no one, so it may go faster, but the part
   * above `pagesPerSecond` never past the idle cycles themselves (a visit that would end beyond them is
   * owed as busy work is). At or below `pagesPerSecond` (0 included): off, idle time is scanned as any.
   */
  idlePagesPerSecond?: number;
  /**
   * Merge a page at its first hash when a page of equal bytes is in the index (VMware ESX; the default),
   * rather than only once its hash held still over two looks (KSM). A page written after it merged costs a
   * copy-on-write break. Measured in the memory experiment (docs/experiments.md): 8 VMs' memory at the end
   * of pmake 28 % less (62.7 → 45.3 MiB), pmake 1.050 → 1.056 × without sharing.
   */
  mergeOnFirstMatch?: boolean;
  /** The physical CPU the scanner runs on: its work is charged to whichever vCPU runs there next. */
  cpu: number;
  /** What its work costs (costs.ts DEFAULT_SHARING_COSTS). */
  costs?: SharingCosts;
}

/** The default idle rate, as a multiple of the busy one (what the idle cycles allow caps it in any case). */
export const IDLE_RATE_FACTOR = 10;

/**
 * 2000 pages a second: at about 4000 cycles a page (a zero test and a hash, costs.ts) that is 8 % of one CPU
 * of the 100 MHz machine clock, 1 % of an 8-CPU machine; a pass over eight VMs that touched 32 MiB each
 * (65 536 pages) then takes about 33 simulated seconds.
 */
export const DEFAULT_SCAN: Required<ScanParameters> = {
  pagesPerSecond: 2000, idlePagesPerSecond: IDLE_RATE_FACTOR * 2000, mergeOnFirstMatch: true, cpu: 0, costs: DEFAULT_SHARING_COSTS,
};

/** Problems with scan parameters, one line each (empty when they are fine). */
export function scanProblems(p: ScanParameters, cpus: number): string[] {
  const problems: string[] = [];
  if (!Number.isFinite(p.pagesPerSecond) || p.pagesPerSecond <= 0) problems.push(`pagesPerSecond must be a positive number (got ${p.pagesPerSecond})`);
  const idle = p.idlePagesPerSecond;
  if (idle !== undefined && (!Number.isFinite(idle) || idle < 0)) problems.push(`idlePagesPerSecond must be 0 (off) or a positive number (got ${idle})`);
  if (!Number.isInteger(p.cpu) || p.cpu < 0 || p.cpu >= cpus) problems.push(`cpu must be one of the machine's CPUs 0–${cpus - 1} (got ${p.cpu})`);
  return problems;
}

/** A page's state in the scanner's memory: never looked at, tested for zero once, hashed (its hash kept). */
const NOT_SEEN = 0;
const ZERO_TESTED = 2;
const HASHED = 1;
/** The highest of those states (a saved scanner's `seen` holds no other value). */
export const SEEN_STATE_MAX = ZERO_TESTED;

/** What the scanner did since it started. */
export interface ScanCounts {
  /** Guest pages with a machine page it looked at, zero tests, hashes, comparisons. */
  visited: number;
  zeroTests: number;
  hashed: number;
  compared: number;
  /** Pages merged into the machine's zero page (per salt) and into other pages of equal contents. */
  mergedZero: number;
  mergedContent: number;
  /** Full passes over every VM's pages. */
  passes: number;
  /** Cycles of its work, and those charged to vCPUs (the rest fell in idle time of its CPU). */
  cycles: number;
  cyclesCharged: number;
  /** Of `cycles`, those of the work the idle rate added, done in its CPU's idle time. */
  idleCycles: number;
  /** Of `cycles`, those its memory references took through its CPU's cache (timing mode; 0 in fast mode). */
  referenceCycles: number;
}

function sharingCosts(c: SharingCosts): SharingCosts {
  return { pageZeroCheck: c.pageZeroCheck, pageHash: c.pageHash, pageCompare: c.pageCompare, pageMerge: c.pageMerge, pageSkip: c.pageSkip };
}

/** The scanner as plain data (a whole monitor snapshot): where it is, what it remembers, what it counted. */
export interface ScannerState {
  parameters: Required<ScanParameters>;
  counts: ScanCounts;
  owed: number;
  /** Pages it may still visit (a fraction of a page carries over), and the machine time of its last call (null: none yet). */
  budget: number;
  /** The same at the idle rate, and owed cycles done in this round's idle time (`idled`). */
  idleBudget: number;
  absorbed: number;
  lastCycles: number | null;
  /** The place in the running VMs and in that VM's pages where it goes on. */
  vmCursor: number;
  pageCursor: number;
  /** Per running VM (by id) it visited: each page's hash at the last visit, and whether it was visited. */
  seen: { vm: number; hash: Uint32Array; seen: Uint8Array }[];
  index: ContentIndexState;
}

/** The VM a scanned pmap belongs to, as the scanner needs it. */
export interface ScannedVm {
  pmap: Pmap;
  /** False for a VM that opted out (`share: false`): its pages merge only among themselves. */
  sharesWithOthers: boolean;
  /** Where its pmap's entries lie in machine memory (monitor-data.ts), for timing mode's references. */
  tables?: Pick<VmTables, 'pmapEntry'>;
}

/**
 * Timing mode: the machine's model, through which the scanner's memory references go on its CPU's cache (the
 * pages it tests, hashes and compares, read line by line, and the pmap and memmap entries it reads and
 * writes), and the memmap, which it reads.
 */
export interface ScanReferences {
  timing: MemoryTiming;
  memmap: MemmapTable;
}

/**
 * Visits guest pages in order (VM by VM, page by page, round and round), `pagesPerSecond` of those with a
 * machine page per simulated second (unmapped pages are passed over, cheaply and not counted; held and
 * already shared ones count, but are only looked at). A page not written for a while is one whose hash did not change since the scanner's
 * last visit (KSM's test: no write tracking, no faults): only then may it merge. A page's first visit only tests it for zero. Zero pages come first: a
 * zero page merges with the zero page at its first visit, before anything is hashed (most merges, and the
 * cheapest). Call `afterRound` at the monitor's safe point; it returns nothing and owes the cycles to its
 * CPU (`owed`), which the monitor charges to the vCPU it runs there next.
 */
export class PageScanner {
  readonly counts: ScanCounts = { visited: 0, zeroTests: 0, hashed: 0, compared: 0, mergedZero: 0, mergedContent: 0, passes: 0, cycles: 0, cyclesCharged: 0, idleCycles: 0, referenceCycles: 0 };
  readonly parameters: Required<ScanParameters>;
  /** Cycles of work its CPU still owes (charged by the monitor to the next vCPU that runs there). */
  owed = 0;
  private readonly index: ContentIndex;
  /** Per pmap: each page's hash at the last visit, and whether it was visited. */
  private readonly lastHash = new WeakMap<Pmap, { hash: Uint32Array; seen: Uint8Array }>();
  private budget = 0;
  /** Pages it may still visit at the idle rate (a fraction of a page carries over), and owed cycles done at the start of this round's idle time. */
  private idleBudget = 0;
  private absorbed = 0;
  private lastCycles: number | undefined;
  private vmCursor = 0;
  private pageCursor = 0;

  constructor(private readonly memory: MachineMemory, ledger: SharingLedger, parameters: ScanParameters) {
    this.parameters = {
      ...DEFAULT_SCAN, ...parameters, costs: parameters.costs ?? DEFAULT_SHARING_COSTS,
      idlePagesPerSecond: parameters.idlePagesPerSecond ?? IDLE_RATE_FACTOR * parameters.pagesPerSecond,
      mergeOnFirstMatch: parameters.mergeOnFirstMatch ?? DEFAULT_SCAN.mergeOnFirstMatch,
    };
    this.index = new ContentIndex(memory, ledger);
  }

  /**
   * Machine time is `now` cycles: visits the pages the rate allows since the last call, of which its CPU ran
   * no vCPU for `idleCycles` (the monitor's count for the round; 0 when it does not say). Its work at
   * `pagesPerSecond` is owed to its CPU, as always. With an idle rate above that, the idle cycles bring the
   * difference too, done first and in them, charged to no one, as far as they go once what its CPU owed
   * from before was done there. With `references` (timing mode) its reads and writes go through its CPU's
   * cache: they evict and miss as a vCPU's do, and their cycles are charged on top of the table's.
   */
  afterRound(now: number, vms: readonly ScannedVm[], references?: ScanReferences, idleCycles = 0): void {
    const since = this.lastCycles === undefined ? 0 : now - this.lastCycles;
    this.lastCycles = now;
    const { pagesPerSecond, idlePagesPerSecond } = this.parameters;
    const idle = idlePagesPerSecond > pagesPerSecond ? Math.min(Math.max(0, idleCycles), since) : 0;
    this.budget += (since * pagesPerSecond) / CPU_CYCLES_PER_SECOND;
    this.idleBudget += (idle * (idlePagesPerSecond - pagesPerSecond)) / CPU_CYCLES_PER_SECOND;
    // The idle time left once what its CPU owed from before was done there (the monitor's `idled`).
    const room = Math.max(0, idle - this.absorbed);
    this.absorbed = 0;
    const total = vms.reduce((n, v) => n + v.pmap.pages, 0);
    if (total === 0) {
      this.budget = 0;
      this.idleBudget = 0;
      return;
    }
    // After a long idle skip the budget may exceed a whole pass: one pass (one of each budget) is all there
    // is to do. (Over a skip nothing is written, so later looks would find every hash still; they are left
    // to later calls, which keeps a skip's host time to a pass or two.)
    this.budget = Math.min(this.budget, total);
    this.idleBudget = Math.min(this.idleBudget, total);
    // The idle rate's work first, free while it fits in the idle cycles: what is left of them is gone, and
    // with it the budget they brought. A visit begun in them and ending past them delays whoever runs next.
    if (this.idleBudget > 1 - 1e-9 && room > 0) {
      const done = this.walk(vms, references, 'idle', room);
      this.counts.idleCycles += Math.min(done, room);
      this.owed += Math.max(0, done - room);
    }
    if (this.idleBudget >= 1) this.idleBudget = 0;
    if (this.budget > 1 - 1e-9) this.owed += this.walk(vms, references, 'busy', Infinity);
  }

  /**
   * Visits pages on `kind`'s budget while it lasts and the cycles spent are below `limit`; returns those
   * cycles (counted in `counts.cycles`, the caller says who pays them).
   */
  private walk(vms: readonly ScannedVm[], references: ScanReferences | undefined, kind: 'idle' | 'busy', limit: number): number {
    const total = vms.reduce((n, v) => n + v.pmap.pages, 0);
    const costs = this.parameters.costs;
    const cpu = this.parameters.cpu;
    const firstMatch = this.parameters.mergeOnFirstMatch;
    let cycles = 0;
    let stalls = 0;
    const read = references === undefined ? undefined
      : (page: number, bytes: number): void => { stalls += touchBytes(this.memory, references.timing, cpu, page, bytes, false); };
    const budget = (): number => (kind === 'idle' ? this.idleBudget : this.budget);
    const spend = (): void => {
      if (kind === 'idle') this.idleBudget--;
      else this.budget--;
    };
    // Looking at unmapped pages costs a pmap read each; they do not count against the rate, but the walk stops after two passes' worth of steps.
    // (A budget a rounding error short of a page is a page: 0.005 s at 1000 pages/s is five.)
    for (let steps = 0; budget() > 1 - 1e-9 && steps < 2 * total && cycles + stalls < limit; steps++) {
      if (this.vmCursor >= vms.length) {
        this.vmCursor = 0;
        this.counts.passes++;
      }
      const vm = vms[this.vmCursor]!;
      if (this.pageCursor >= vm.pmap.pages) {
        this.vmCursor++;
        this.pageCursor = 0;
        continue;
      }
      const gppn = this.pageCursor++;
      const mpn = vm.pmap.lookup(gppn);
      if (references !== undefined) {
        // The pmap entry, and the memmap entry of a page that has one (its users).
        stalls += vm.tables?.pmapEntry(references.timing, cpu, vm.pmap.base + gppn * PAGE, false) ?? 0;
        if (mpn !== FREE) stalls += references.memmap.entry(references.timing, cpu, mpn, false);
      }
      if (mpn === FREE) {
        cycles += costs.pageSkip;
        continue;
      }
      // Every page with a machine page counts against the rate, as KSM's pages_to_scan counts the pages it
      // passes: counting private pages only made a VM whose pages were nearly all shared (a booting one, with
      // its kernel from the page cache) have its few private pages hashed thousands of times a second, the
      // cost charged to its vCPU until it made no progress.
      spend();
      // A page already shared (merged before, or the page cache's) is left alone: it can only be joined, and
      // the page it was merged with is remembered already. Looking costs a pmap and a memmap read.
      if (vm.pmap.held(gppn) || this.memory.users[mpn]! > 1) {
        cycles += costs.pageSkip;
        continue;
      }
      this.counts.visited++;
      const seen = this.seenOf(vm.pmap);
      // A page's first look is a zero test only: most pages that merge are zero, and a test that stops at the
      // first non-zero word costs next to nothing, where hashing every page in the first pass cost a third of
      // the scanner's cycles for pages that could not merge before a second look anyway. Hashing starts at
      // the second look; merging at the third, once the hash held still, or with `mergeOnFirstMatch` at the
      // second, when a page of equal bytes is in the index already (ESX's way).
      const first = seen.seen[gppn] === NOT_SEEN;
      const work = this.index.visit(vm.pmap, gppn, mpn, vm.sharesWithOthers ? 0 : vm.pmap.vm + 1, (hash) => {
        const stable = firstMatch || (seen.seen[gppn] === HASHED && seen.hash[gppn] === hash);
        seen.hash[gppn] = hash;
        seen.seen[gppn] = HASHED;
        return stable;
      }, read, !first);
      if (first && work.hashed === 0) seen.seen[gppn] = ZERO_TESTED;
      if (work.zeroWords > 0) this.counts.zeroTests++;
      this.counts.hashed += work.hashed;
      this.counts.compared += work.compared;
      if (work.merged === 'zero') this.counts.mergedZero++;
      if (work.merged === 'content') this.counts.mergedContent++;
      if (work.merged !== undefined && references !== undefined) {
        // A merge writes the pmap entry and both pages' memmap entries (one gains a user, the other goes free).
        const { timing, memmap } = references;
        stalls += (vm.tables?.pmapEntry(timing, cpu, vm.pmap.base + gppn * PAGE, true) ?? 0)
          + memmap.entry(timing, cpu, vm.pmap.lookup(gppn), true) + memmap.entry(timing, cpu, mpn, true);
      }
      cycles += Math.ceil((work.zeroWords / (PAGE / 4)) * costs.pageZeroCheck) + work.hashed * costs.pageHash
        + work.compared * costs.pageCompare + (work.merged === undefined ? 0 : costs.pageMerge);
    }
    cycles += stalls;
    this.counts.referenceCycles += stalls;
    this.counts.cycles += cycles;
    return cycles;
  }

  /** The monitor charged `cycles` of what the CPU owed to a vCPU running there. */
  charged(cycles: number): void {
    this.owed -= cycles;
    this.counts.cyclesCharged += cycles;
  }

  /**
   * Its CPU was idle for a round: what it owed was done in that idle time, charged to no one (and that idle
   * time is not there for the idle rate's work of the round).
   */
  idled(): void {
    this.absorbed += this.owed;
    this.owed = 0;
  }

  /** Its state as plain data; `pmaps` are the running VMs' (the others' pages are never looked at again). */
  saveState(pmaps: readonly Pmap[]): ScannerState {
    const seen: ScannerState['seen'] = [];
    for (const pmap of pmaps) {
      const s = this.lastHash.get(pmap);
      if (s !== undefined) seen.push({ vm: pmap.vm, hash: s.hash.slice(), seen: s.seen.slice() });
    }
    return {
      // Only the parameters it reads: a caller's other keys would not come back from a restore.
      parameters: {
        pagesPerSecond: this.parameters.pagesPerSecond, idlePagesPerSecond: this.parameters.idlePagesPerSecond,
        mergeOnFirstMatch: this.parameters.mergeOnFirstMatch, cpu: this.parameters.cpu, costs: sharingCosts(this.parameters.costs),
      },
      counts: { ...this.counts }, owed: this.owed, budget: this.budget, idleBudget: this.idleBudget, absorbed: this.absorbed,
      lastCycles: this.lastCycles ?? null, vmCursor: this.vmCursor, pageCursor: this.pageCursor, seen, index: this.index.saveState(),
    };
  }

  /**
   * Puts back what `saveState` returned (checked by `readScanner`) into a scanner made with its parameters;
   * `pmapOf` gives each VM id's pmap.
   */
  restoreState(s: ScannerState, pmapOf: (vm: number) => Pmap): void {
    Object.assign(this.counts, s.counts);
    this.owed = s.owed;
    this.budget = s.budget;
    this.idleBudget = s.idleBudget;
    this.absorbed = s.absorbed;
    this.lastCycles = s.lastCycles ?? undefined;
    this.vmCursor = s.vmCursor;
    this.pageCursor = s.pageCursor;
    for (const x of s.seen) this.lastHash.set(pmapOf(x.vm), { hash: x.hash.slice(), seen: x.seen.slice() });
    this.index.restoreState(s.index, pmapOf);
  }

  private seenOf(pmap: Pmap): { hash: Uint32Array; seen: Uint8Array } {
    let s = this.lastHash.get(pmap);
    if (s === undefined) {
      s = { hash: new Uint32Array(pmap.pages), seen: new Uint8Array(pmap.pages) };
      this.lastHash.set(pmap, s);
    }
    return s;
  }
}

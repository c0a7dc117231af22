// Memory borrowing between cells, by Cellular Disco's policy (docs/cells.md, "Borrowing"): a cell low on free
// memory keeps some available from each cell on its preference list, borrowing a chunk at a time over the cell
// bus from lenders with enough free; a page of a chunk makes its VM depend on the lender; unused chunks go back.

import type { CellBus } from './cell-bus.js';
import type { CellMap } from './cells.js';
import { PAGE, type MachineMemory, type PageLoans } from './machine-memory.js';
import type { CellObjects } from './revocable.js';

const MiB = 2 ** 20;

/** The policy's four thresholds, in bytes (whole pages). */
export interface BorrowParameters {
  /** A cell whose own nodes have less free than this borrows. */
  lowFree: number;
  /** What a low cell keeps available (borrowed and not handed out) from each cell on its preference list. */
  keep: number;
  /** What it borrows at a time: one chunk. */
  chunk: number;
  /** A lender lends only while it has more than this free on its nodes. */
  lenderMinFree: number;
}

export const BORROW_KEYS = ['lowFree', 'keep', 'chunk', 'lenderMinFree'] as const;

/** The paper's numbers (Govil et al., SOSP '99, section 4.4), for a cell of `PAPER_CELL_BYTES`. */
export const PAPER_BORROW: BorrowParameters = { lowFree: 16 * MiB, keep: 4 * MiB, chunk: 4 * MiB, lenderMinFree: 32 * MiB };

/**
 * The cell size the paper's numbers are taken to be for: 256 MiB, so that the low threshold is 1/16 of a cell,
 * a chunk and what is kept from each lender 1/64, and a lender's minimum 1/8. The paper gives sizes, not
 * fractions; this reference is our choice (docs/cells.md, "Borrowing", says why).
 */
export const PAPER_CELL_BYTES = 256 * MiB;

/**
 * The defaults for a machine of `memoryBytes` in `cells` cells: the paper's numbers scaled by the average cell's
 * memory against `PAPER_CELL_BYTES`, each rounded down to whole pages and at least one page.
 */
export function defaultBorrowParameters(memoryBytes: number, cells: number): BorrowParameters {
  const scale = memoryBytes / cells / PAPER_CELL_BYTES;
  const scaled = (bytes: number): number => Math.max(PAGE, Math.floor((bytes * scale) / PAGE) * PAGE);
  return { lowFree: scaled(PAPER_BORROW.lowFree), keep: scaled(PAPER_BORROW.keep), chunk: scaled(PAPER_BORROW.chunk), lenderMinFree: scaled(PAPER_BORROW.lenderMinFree) };
}

/** What is wrong with `p`, one message per mistake (the monitor and the machine file refuse it). */
export function borrowProblems(p: BorrowParameters): string[] {
  const problems: string[] = [];
  for (const key of BORROW_KEYS) {
    const v = p[key];
    const least = key === 'lenderMinFree' ? 0 : PAGE;
    if (!Number.isSafeInteger(v) || v < least || v % PAGE !== 0) {
      problems.push(`${key} must be ${least === 0 ? 'zero or ' : ''}a whole number of 4 KiB pages${least === 0 ? '' : ' (at least one)'}, not ${v} bytes`);
    }
  }
  return problems;
}

/** One chunk, as the borrower and the lender each record it in their own state. */
interface Chunk {
  readonly id: number;
  readonly lender: number;
  readonly borrower: number;
  readonly node: number;
  /** Its pages (fewer once a page of it was lost: poisoned, or its node given up), and those handed out. */
  pages: number;
  inUse: number;
}

/** A cell's loans, among its revocable state: what it borrowed, and what it lent, by loan id. */
interface CellLoans {
  readonly borrowed: Map<number, Chunk>;
  readonly lent: Map<number, Chunk>;
}

/** Per cell: what it borrowed and lent now, and how many requests it made and answered (`query-monitor`). */
export interface CellLoanStats {
  borrowedChunks: number;
  borrowedPages: number;
  /** Pages of its borrowed chunks its VMs hold. */
  borrowedInUse: number;
  lentChunks: number;
  lentPages: number;
  lentInUse: number;
  /** Chunks it asked for, was given, was refused (the lender had too little free, or did not answer), gave back. */
  requests: number;
  granted: number;
  refused: number;
  returned: number;
}

export interface BorrowingHost {
  readonly memory: MachineMemory;
  readonly cells: CellMap;
  readonly distances: readonly (readonly number[])[];
  readonly bus: CellBus;
  readonly objects: CellObjects;
  now(): number;
  /** VM `vm` now holds a page on cell `cell`'s node: it depends on that cell (Monitor.vmDependsOn). */
  dependOn(vm: number, cell: number): void;
  /** VM `vm` owes `cycles` of the bus's round trips, paid by its next vCPU to run (CellRecovery.owe). */
  owe(vm: number, cycles: number): void;
}

interface BorrowArgs {
  borrower: number;
  pages: number;
}

interface Granted {
  id: number;
  node: number;
  pages: number;
}

const BORROW = 'memory.borrow';
const RETURN = 'memory.return';

/**
 * Cellular Disco's memory borrowing. A confined VM's allocation is where its cell finds itself low (below
 * `lowFree` free on its own nodes): it then asks each cell on its preference list, nearest first, for chunks
 * until it has `keep` available from it; a lender answers over the bus, lending only with more than
 * `lenderMinFree` free, and records the loan in its own revocable state, the pages reserved on one of its
 * nodes. Pages of a chunk are handed out once the borrower's own nodes are full. At round boundaries a cell
 * well above its threshold (twice `lowFree`) gives back its unused chunks, and loans to or from failed cells go.
 */
export class MemoryBorrowing implements PageLoans {
  private states: CellLoans[];
  /** Per cell: the other cells, nearest first (by the distance between monitor nodes; ties: lower id). */
  readonly preference: number[][];
  /** The machine page of every page handed out from a chunk: its borrower and loan. */
  private readonly pageChunk = new Map<number, { borrower: number; id: number }>();
  /** Per VM: the lenders it depends on for its pages. */
  private readonly lenders = new Map<number, Set<number>>();
  /** Pairs "borrower:lender" refused (or unanswered) this round: not asked again before the next. */
  private readonly refusedNow = new Set<string>();
  private nextLoan = 0;
  private readonly counts: { requests: number; granted: number; refused: number; returned: number }[];
  /** Cycles of returning chunks: the borrowing cell's monitor work at a round boundary, charged to no VM. */
  returnCycles = 0;

  constructor(private readonly host: BorrowingHost, readonly parameters: BorrowParameters) {
    const cells = host.cells.cells;
    this.states = cells.map((c) => this.makeState(c.id));
    this.counts = cells.map(() => ({ requests: 0, granted: 0, refused: 0, returned: 0 }));
    this.preference = cells.map((c) => cells.filter((o) => o.id !== c.id)
      .sort((a, b) => host.distances[c.monitorNode]![a.monitorNode]! - host.distances[c.monitorNode]![b.monitorNode]! || a.id - b.id).map((o) => o.id));
    for (const cell of cells) {
      // Not idempotent: a loan is recorded once, whatever a retry does (the bus answers it from its cache).
      host.bus.handle<BorrowArgs, Granted | null>(cell.id, BORROW, (args) => this.lend(cell.id, args));
      // Giving a loan back twice does nothing the second time.
      host.bus.handle<{ id: number }, boolean>(cell.id, RETURN, (args) => this.takeBack(cell.id, args.id), { idempotent: true });
    }
  }

  private makeState(cell: number): CellLoans {
    return this.host.objects.create(cell, { borrowed: new Map(), lent: new Map() } as CellLoans);
  }

  /** Cell `cell` rejoined (a new generation of its revocable state): it starts with no loans. */
  readmitCell(cell: number): void {
    this.states[cell] = this.makeState(cell);
  }

  private pages(bytes: number): number {
    return bytes / PAGE;
  }

  private live(cell: number): boolean {
    return !this.host.objects.isRevoked(cell) && this.host.cells.cells[cell]!.failure === undefined;
  }

  /** Free pages on cell `cell`'s own nodes (lent ones are not free). */
  private ownFree(cell: number): number {
    let n = 0;
    for (const node of this.host.cells.cells[cell]!.nodes) if (!this.host.memory.nodeLost(node)) n += this.host.memory.pagesFree(node);
    return n;
  }

  allocating(vm: number, within: readonly number[]): void {
    const cell = this.host.cells.cellOf(within[0]!).id;
    if (!this.live(cell) || this.ownFree(cell) >= this.pages(this.parameters.lowFree)) return;
    const keep = this.pages(this.parameters.keep);
    const state = this.states[cell]!;
    for (const lender of this.preference[cell]!) {
      if (!this.live(lender) || this.refusedNow.has(`${cell}:${lender}`)) continue;
      let available = 0;
      for (const c of state.borrowed.values()) if (c.lender === lender && !this.host.memory.nodeLost(c.node)) available += c.pages - c.inUse;
      while (available < keep) {
        const got = this.borrow(vm, cell, lender);
        if (got === 0) break;
        available += got;
      }
    }
  }

  /** Cell `cell` asks `lender` for a chunk, for VM `vm`'s allocation (which pays the round trip). Returns its pages, 0 if refused. */
  private borrow(vm: number, cell: number, lender: number): number {
    const counts = this.counts[cell]!;
    counts.requests++;
    const result = this.host.bus.call<Granted | null>(cell, lender, BORROW, { borrower: cell, pages: this.pages(this.parameters.chunk) } satisfies BorrowArgs, { now: this.host.now() });
    this.host.owe(vm, result.cycles);
    if (!result.ok || result.value === null) {
      counts.refused++;
      this.refusedNow.add(`${cell}:${lender}`);
      return 0;
    }
    counts.granted++;
    const g = result.value;
    this.states[cell]!.borrowed.set(g.id, { id: g.id, lender, borrower: cell, node: g.node, pages: g.pages, inUse: 0 });
    return g.pages;
  }

  /** The lender's handler: a chunk from its node nearest the borrower with room, if it has more than its minimum free. */
  private lend(cell: number, args: BorrowArgs): Granted | null {
    const memory = this.host.memory;
    if (this.ownFree(cell) * PAGE <= this.parameters.lenderMinFree) return null;
    const near = this.host.cells.cells[args.borrower]!.monitorNode;
    const nodes = [...this.host.cells.cells[cell]!.nodes].sort((a, b) => this.host.distances[near]![a]! - this.host.distances[near]![b]! || a - b);
    const node = nodes.find((n) => !memory.nodeLost(n) && memory.pagesFree(n) >= args.pages);
    if (node === undefined || !memory.lendPages(node, args.pages)) return null;
    const id = this.nextLoan++;
    this.states[cell]!.lent.set(id, { id, lender: cell, borrower: args.borrower, node, pages: args.pages, inUse: 0 });
    return { id, node, pages: args.pages };
  }

  /** The lender's handler for a chunk given back: its pages not handed out are its own again. */
  private takeBack(cell: number, id: number): boolean {
    const loan = this.states[cell]!.lent.get(id);
    if (loan === undefined) return false;
    this.host.memory.endLoan(loan.node, loan.pages - loan.inUse);
    this.states[cell]!.lent.delete(id);
    return true;
  }

  chunkNode(vm: number, within: readonly number[], near: number): number | undefined {
    const cell = this.host.cells.cellOf(within[0]!).id;
    if (!this.live(cell)) return undefined;
    let best: Chunk | undefined;
    for (const c of this.states[cell]!.borrowed.values()) {
      if (c.inUse >= c.pages || !this.live(c.lender) || this.host.memory.nodeLost(c.node)) continue;
      if (best === undefined || this.host.distances[near]![c.node]! < this.host.distances[near]![best.node]!) best = c;
    }
    this.pick = best;
    return best?.node;
  }

  /** The chunk `chunkNode` chose, for `took`. */
  private pick: Chunk | undefined = undefined;

  took(vm: number, node: number, mpn: number): void {
    const cell = this.pick?.borrower;
    const chunk = this.pick?.node === node ? this.pick : [...this.states[cell ?? 0]!.borrowed.values()].find((c) => c.node === node && c.inUse < c.pages);
    this.pick = undefined;
    if (chunk === undefined) throw new Error(`machine page ${mpn} was taken from no borrowed chunk on node ${node}`);
    chunk.inUse++;
    const loan = this.states[chunk.lender]!.lent.get(chunk.id);
    if (loan !== undefined) loan.inUse++;
    this.pageChunk.set(mpn, { borrower: chunk.borrower, id: chunk.id });
    let lenders = this.lenders.get(vm);
    if (lenders === undefined) this.lenders.set(vm, (lenders = new Set()));
    if (!lenders.has(chunk.lender)) {
      lenders.add(chunk.lender);
      this.host.dependOn(vm, chunk.lender);
    }
  }

  freed(mpn: number, kept: boolean): boolean {
    const entry = this.pageChunk.get(mpn);
    if (entry === undefined) return false;
    this.pageChunk.delete(mpn);
    const lender = this.host.cells.cellOf(this.host.memory.nodeOf(mpn)).id;
    const settle = (c: Chunk | undefined): void => {
      if (c === undefined) return;
      c.inUse--;
      if (!kept) c.pages--;
    };
    if (!this.host.objects.isRevoked(entry.borrower)) settle(this.states[entry.borrower]!.borrowed.get(entry.id));
    const loan = this.host.objects.isRevoked(lender) ? undefined : this.states[lender]!.lent.get(entry.id);
    settle(loan);
    return kept && loan !== undefined;
  }

  /** The cells (lenders) VM `vm` holds or held pages of (it depends on them). */
  lendersOf(vm: number): number[] {
    return [...(this.lenders.get(vm) ?? [])].sort((a, b) => a - b);
  }

  /** A VM ended: what it depended on is forgotten (its pages went back with it). */
  forget(vm: number): void {
    this.lenders.delete(vm);
  }

  /**
   * A round boundary: a lender lets go of its loans to cells that failed; a borrower forgets the chunks of
   * lenders that failed (their pages went with them) and gives back, one request each, its unused chunks once
   * its own free memory is at least twice `lowFree`, and any unused chunk on a node given up. Refusals are
   * forgotten: a cell may ask again.
   */
  afterRound(): void {
    this.refusedNow.clear();
    const cells = this.host.cells.cells;
    for (const cell of cells) {
      if (!this.live(cell.id)) continue;
      const state = this.states[cell.id]!;
      for (const loan of [...state.lent.values()]) {
        if (this.live(loan.borrower)) continue;
        this.host.memory.endLoan(loan.node, loan.pages - loan.inUse);
        state.lent.delete(loan.id);
      }
      for (const chunk of [...state.borrowed.values()]) {
        if (this.live(chunk.lender)) continue;
        state.borrowed.delete(chunk.id);
        for (const [mpn, e] of this.pageChunk) if (e.id === chunk.id) this.pageChunk.delete(mpn);
      }
      const high = this.ownFree(cell.id) >= 2 * this.pages(this.parameters.lowFree);
      for (const chunk of [...state.borrowed.values()]) {
        if (chunk.inUse > 0 || !(high || this.host.memory.nodeLost(chunk.node) || chunk.pages === 0)) continue;
        const result = this.host.bus.call<boolean>(cell.id, chunk.lender, RETURN, { id: chunk.id }, { now: this.host.now() });
        this.returnCycles += result.cycles;
        // Not answered: kept, and given back at a later boundary (or dropped once the lender is known failed).
        if (!result.ok) break;
        state.borrowed.delete(chunk.id);
        this.counts[cell.id]!.returned++;
      }
    }
  }

  /** True while any live cell holds a loan (a whole snapshot refuses it). */
  get loans(): number {
    let n = 0;
    for (const cell of this.host.cells.cells) if (this.live(cell.id)) n += this.states[cell.id]!.borrowed.size + this.states[cell.id]!.lent.size;
    return n;
  }

  /** Cell `cell`'s loans now and its requests so far (zeros for a failed cell: its state went with it). */
  stats(cell: number): CellLoanStats {
    const counts = this.counts[cell]!;
    const s = { borrowedChunks: 0, borrowedPages: 0, borrowedInUse: 0, lentChunks: 0, lentPages: 0, lentInUse: 0, ...counts };
    if (!this.live(cell)) return s;
    for (const c of this.states[cell]!.borrowed.values()) {
      s.borrowedChunks++;
      s.borrowedPages += c.pages;
      s.borrowedInUse += c.inUse;
    }
    for (const c of this.states[cell]!.lent.values()) {
      s.lentChunks++;
      s.lentPages += c.pages;
      s.lentInUse += c.inUse;
    }
    return s;
  }
}

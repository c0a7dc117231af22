// The block translator: per-hart caches of compiled basic blocks, keyed by virtual pc and checked against
// the physical page they were read from, and a machine-wide record of which RAM pages hold code.
// docs/translator.md explains the design.

import { PRIV_M, PRIV_S, PRIV_U } from '../isa/opcodes.js';
import type { Bus } from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';
import { lt, ltu, mulDiv32, mulDiv64, mulhu32 } from './alu.js';
import { generateBlock, measureBlock, type FetchTiming, type RegionLimits } from './block-source.js';
import type { HartState } from './hart-state.js';
import { decodeBlock } from './warm-tier.js';
import type { FetchProbe, MemoryTiming } from './memory-timing.js';

const PAGE_SHIFT = 12;
const PAGE_BYTES = 1 << PAGE_SHIFT;
/** Halfwords per page: a block's halfword base shifted right by this is its page number in the region. */
const HALFWORDS_PER_PAGE_SHIFT = PAGE_SHIFT - 1;
/** Longest block: a block runs only if it fits in the slice, so this bounds what is interpreted at a slice end. */
export const MAX_BLOCK_INSTRUCTIONS = 48;
/** Direct-mapped front of each hart's block cache (entries indexed by pc / 2). */
const CACHE_BITS = 14;
const CACHE_MASK = (1 << CACHE_BITS) - 1;
/**
 * Executions of a block before it is compiled. A new function runs in V8's bytecode interpreter, slower
 * than our (optimized) interpreter, until V8 has seen it run thousands of times: measured on a Linux boot,
 * compiling after 100 runs made it 1.9x slower, after 10 000 as fast; loops that matter run millions of times.
 */
export const HOT_BLOCK = 10000;
/** Look-ups of a pc (a jump target, or the instruction after a block) before its block is measured. */
export const WARM_BLOCK = 128;
/** A page whose code is overwritten this many times is interpreted from then on (code and data mixed). */
const MAX_PAGE_INVALIDATIONS = 32;
/** Bound on the shared table of compiled functions, so a long run cannot grow it without limit. */
const MAX_COMPILED = 1 << 14;
/** A block joins a region once it has run this fraction of the runs that make a block hot. */
const CHAIN_HEAT = 4;
/**
 * Regions: a hot block compiled with the blocks of its page it reaches by direct jumps (docs/translator.md,
 * "Chaining"), at most this many entry points and instructions in one function.
 */
export const CHAINED: RegionLimits = { segments: 12, instructions: 256, segmentLimit: MAX_BLOCK_INSTRUCTIONS };
/**
 * What hot blocks are compiled with by default: each alone. Regions (CHAINED) were measured slower on the
 * CPU benchmark (docs/translator.md, "Chaining"), so they are only on where asked for (tests, experiments).
 */
export const REGION: RegionLimits = { segments: 1, instructions: 0, segmentLimit: MAX_BLOCK_INSTRUCTIONS };

/** The compiled form of a block: runs it and returns how many instructions ran. */
export type BlockFunction = (h: HartState, x: Int32Array, t: Translator, left: number) => number;

/** Helpers the generated code calls; they are closure constants of each compiled block, so V8 inlines them. */
const HELPERS = { lt, ltu, mulhu32, mulDiv32, mulDiv64 };
type Factory = (helpers: typeof HELPERS, pcs: number[], ks: number[]) => BlockFunction;

export class Block {
  /** Times the block was interpreted since it was measured; it is compiled when this reaches hotBlock. */
  heat = 0;
  /** Its decoded form, which the warm tier runs until it is compiled (warm-tier.ts). */
  ops: Int32Array | undefined = undefined;

  constructor(
    readonly pc: number,
    /** Instructions on its longest path; 0 means the instruction at pc is left to the interpreter. */
    readonly count: number,
    /** The pc of each instruction (a cold block is interpreted while the pc follows them). */
    readonly pcs: number[],
    /** The compiled block, once it is hot; until then the interpreter runs its instructions. */
    public run: BlockFunction | undefined,
    /** The halfword view and index of the physical page the block was read from. */
    readonly mem: Uint16Array,
    readonly base: number,
    /** The code version of that page when the block was read; a store to the page bumps it. */
    readonly versions: Uint32Array,
    readonly page: number,
    readonly version: number,
    /**
     * The halfwords the block was decoded from, from halfword `textOffset` of its page, to recheck it after a
     * FENCE.I (memory written by DMA). Once compiled, they cover every segment of its region.
     */
    public text: Uint16Array,
    public textOffset: number,
    /** The FENCE.I epoch the block was last checked in. */
    public epoch: number,
  ) {}

  /** True if memory still holds the instructions the block was decoded from. */
  unchanged(): boolean {
    const start = this.base + this.textOffset;
    const text = this.text;
    const mem = this.mem;
    for (let i = 0; i < text.length; i++) if (mem[start + i] !== text[i]) return false;
    return true;
  }
}

/** Code tracking of one RAM region: a version per page, bumped when a page holding code is written. */
class RegionCode {
  readonly versions: Uint32Array;
  readonly hasCode: Uint8Array;
  readonly invalidations: Uint8Array;

  constructor(readonly region: RamRegion) {
    const pages = region.size >>> PAGE_SHIFT;
    this.versions = new Uint32Array(pages);
    this.hasCode = new Uint8Array(pages);
    this.invalidations = new Uint8Array(pages);
  }
}

/**
 * What every hart of one machine shares: which RAM pages hold translated code, and the compiled functions.
 * Found through the bus (one per bus), so the harts need no new wiring from the board.
 */
export class CodePages {
  /** Hot blocks found again on another page with the same instructions (a replica) and not warmed up again. */
  blocksAdopted = 0;
  private readonly regions = new Map<RamRegion, RegionCode>();
  private readonly translators: Translator[] = [];
  private readonly compiled = new Map<string, BlockFunction>();
  private readonly harts: HartState[] = [];

  constructor(private readonly bus: Bus) {}

  /** The RAM region whose halfword view is `mem` (the hart's fetch pointer holds only the view). */
  regionByView(mem: Uint16Array): RamRegion {
    const region = this.bus.machineRam.find((r) => r.u16 === mem);
    if (region === undefined) throw new Error('fetching from memory that is not a RAM region of this bus');
    return region;
  }

  add(t: Translator, hart: HartState): void {
    this.translators.push(t);
    this.harts.push(hart);
  }

  /** Forgets a hart that will not run again (a VM that ended): its TLBs are no longer kept in step. */
  remove(t: Translator): void {
    const i = this.translators.indexOf(t);
    if (i < 0) return;
    this.translators.splice(i, 1);
    this.harts.splice(i, 1);
  }

  /**
   * The monitor gave the machine page at `physicalPage` other contents (freed, zeroed, moved): blocks
   * decoded from it are stale, whichever VM's hart decoded them.
   */
  pageReplaced(physicalPage: number): void {
    const region = this.bus.machineRam.find((r) => physicalPage >= r.base && physicalPage < r.end);
    const code = region === undefined ? undefined : this.regions.get(region);
    if (code === undefined) return;
    const page = (physicalPage - code.region.base) >>> PAGE_SHIFT;
    code.hasCode[page] = 0;
    code.versions[page]++;
  }

  regionCode(region: RamRegion): RegionCode {
    let r = this.regions.get(region);
    if (r === undefined) {
      r = new RegionCode(region);
      this.regions.set(region, r);
    }
    return r;
  }

  /**
   * Marks a page as holding code. Every hart's write-TLB entries for it are dropped, so the next store to
   * it from any hart takes the slow path, where `written` sees it.
   */
  markCode(code: RegionCode, page: number): void {
    if (code.hasCode[page] !== 0) return;
    code.hasCode[page] = 1;
    const physical = code.region.base + page * PAGE_BYTES;
    for (const h of this.harts) {
      for (const set of h.tlbSets) set.write.hidePhysical(physical);
    }
  }

  /** A store is about to write RAM at byte `offset` of `region` (a write translation was just made). */
  written(region: RamRegion, offset: number): boolean {
    const code = this.regions.get(region);
    if (code === undefined) return false;
    const page = offset >>> PAGE_SHIFT;
    if (code.hasCode[page] === 0) return false;
    code.hasCode[page] = 0;
    code.versions[page]++;
    if (code.invalidations[page] < MAX_PAGE_INVALIDATIONS) code.invalidations[page]++;
    return true;
  }

  /** Counts FENCE.I instructions; a block decoded in an earlier epoch is compared with memory before use. */
  epoch = 0;

  /**
   * FENCE.I (ISA §5.1) on any hart. Stores by harts are seen as they happen (`written`), but devices write
   * RAM by DMA unseen; the guest then executes FENCE.I (Linux does, and asks the SBI to do it on the other
   * harts), so every block is rechecked against memory before its next use.
   */
  fenceI(): void {
    this.epoch++;
    for (const t of this.translators) t.flushFront();
    for (const code of this.regions.values()) code.invalidations.fill(0);
  }

  compile(body: string, pcs: number[], ks: number[]): BlockFunction {
    let fn = this.compiled.get(body);
    if (fn !== undefined) return fn;
    const source = `'use strict';\nconst { lt, ltu, mulhu32, mulDiv32, mulDiv64 } = helpers;\n` +
      `return function block(h, x, t, left) {\n${body}\n};`;
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- compiling guest code is the point
    const factory = new Function('helpers', 'pcs', 'ks', source) as Factory;
    fn = factory(HELPERS, pcs, ks);
    if (this.compiled.size >= MAX_COMPILED) this.compiled.clear();
    this.compiled.set(body, fn);
    return fn;
  }
}

const shared = new WeakMap<object, CodePages>();

/** The code record shared by the harts on `bus`. */
function codePagesOf(bus: Bus): CodePages {
  // Keyed by the machine memory, not the bus: the VMs of one monitor share it, as they share machine pages.
  let c = shared.get(bus.codeDomain);
  if (c === undefined) {
    c = new CodePages(bus);
    shared.set(bus.codeDomain, c);
  }
  return c;
}

/**
 * The monitor replaced the contents of machine page `physicalPage` of the memory whose buses have code
 * domain `domain` (see Bus.codeDomain and CodePages.pageReplaced).
 */
export function machinePageReplaced(domain: object, physicalPage: number): void {
  shared.get(domain)?.pageReplaced(physicalPage);
}

/** Hot blocks the harts of code domain `domain` took over from another page with the same instructions (`Translator.adopt`). */
export function blocksAdopted(domain: object): number {
  return shared.get(domain)?.blocksAdopted ?? 0;
}

/**
 * True if `b`, just measured, starts at the same pc as the compiled `a` and its page holds what `a` was
 * decoded from (every segment of `a`'s region, at the same offsets).
 */
function sameInstructions(a: Block, b: Block): boolean {
  if (a.pc !== b.pc || a.count !== b.count) return false;
  const start = b.base + a.textOffset;
  for (let i = 0; i < a.text.length; i++) if (b.mem[start + i] !== a.text[i]) return false;
  return true;
}

/** One hart's translator: its block cache and the bookkeeping of precise traps. */
export class Translator {
  /** Instructions a block completed before one of its loads or stores trapped (read and reset by run). */
  done = 0;
  /** Timing mode's memory model, which compiled blocks charge (read by the generated code), or undefined. */
  timing: MemoryTiming | undefined = undefined;
  /** The model's fetch probe while timing (read by the generated code), or undefined. */
  fetchProbe: FetchProbe | undefined = undefined;
  private readonly code: CodePages;
  private readonly front: (Block | undefined)[] = new Array<Block | undefined>(CACHE_MASK + 1);
  private readonly all = new Map<number, Block>();
  /** Look-ups per front slot that found no block, since that slot last measured one. */
  private readonly heat = new Uint8Array(CACHE_MASK + 1);

  /**
   * `hotBlock`: interpreted runs before a block is compiled (0 compiles it at once: tests use that so that
   * short programs exercise the generated code).
   */
  constructor(hart: HartState, private readonly hotBlock = HOT_BLOCK, private readonly warmBlock = Math.min(WARM_BLOCK, hotBlock),
    /** What a compiled block takes in with it (tests compare chaining with single blocks). */
    private readonly region: RegionLimits = REGION) {
    this.code = codePagesOf(hart.env.bus);
    this.code.add(this, hart);
  }

  /** This hart will not run again: its machine's code registry forgets it. */
  release(): void {
    this.code.remove(this);
  }

  /**
   * The block at `pc`, whose page the hart currently fetches from halfword `base` of `mem`, or undefined
   * while that pc is still cold (the caller interprets). A block is measured when its pc has been looked
   * up warmBlock times, and again if the one cached was read from another physical page or from
   * overwritten code.
   */
  lookup(pc: number, mem: Uint16Array, base: number): Block | undefined {
    const slot = (pc >>> 1) & CACHE_MASK;
    const b = this.front[slot];
    if (b !== undefined && b.pc === pc && b.mem === mem && b.base === base && b.versions[b.page] === b.version) return b;
    // Code reached fewer than warmBlock times is not even measured: most of a boot runs a few times only.
    if (++this.heat[slot] < this.warmBlock) return undefined;
    this.heat[slot] = 0;
    return this.find(pc, mem, base, slot);
  }

  private find(pc: number, mem: Uint16Array, base: number, slot: number): Block {
    let b = this.all.get(pc);
    if (b === undefined || b.mem !== mem || b.base !== base || b.versions[b.page] !== b.version ||
      (b.epoch !== this.code.epoch && !b.unchanged())) {
      const before = b;
      b = this.translate(pc, mem, base);
      if (before !== undefined && before.run !== undefined && b.run === undefined && sameInstructions(before, b)) this.adopt(before, b);
      this.all.set(pc, b);
    }
    b.epoch = this.code.epoch;
    this.front[slot] = b;
    return b;
  }

  private translate(pc: number, mem: Uint16Array, base: number): Block {
    const region = this.regionOf(mem);
    const code = this.code.regionCode(region);
    const page = base >>> HALFWORDS_PER_PAGE_SHIFT;
    const version = code.versions[page];
    const offset = pc & (PAGE_BYTES - 1);
    const limit = code.invalidations[page] >= MAX_PAGE_INVALIDATIONS ? 0 : MAX_BLOCK_INSTRUCTIONS;
    const shape = measureBlock(mem, base, offset, pc, limit);
    // The page is watched from now on, so a store to it between now and compiling is seen too.
    if (shape.count > 0) this.code.markCode(code, page);
    const start = base + (offset >>> 1);
    const text = mem.slice(start, start + (shape.bytes >>> 1));
    const b = new Block(pc, shape.count, shape.pcs, undefined, mem, base, code.versions, page, version, text, offset >>> 1, this.code.epoch);
    if (this.hotBlock === 0 && b.count > 0) this.compileBlock(b);
    else if (b.count > 0) b.ops = decodeBlock(mem, base, shape.pcs, shape.count);
    return b;
  }

  /**
   * Timing mode on (`timing`) or off. Blocks compiled for the other mode are dropped, so fast mode runs
   * the same code as if timing mode never existed, and timing mode's blocks charge every fetch.
   */
  setTiming(timing: MemoryTiming | undefined): void {
    if (timing === this.timing) return;
    this.timing = timing;
    this.fetchProbe = timing?.fetchProbe?.();
    this.front.fill(undefined);
    this.all.clear();
  }

  /**
   * `b` holds the same instructions at the same pc as `before`, which was hot, read from another page (a
   * replica of it, or a copy the monitor made) or from the same page rewritten with the same code: it is hot
   * too. In fast mode a block's code is a function of its instructions and pc alone, so it takes `before`'s
   * function; in timing mode its fetches are charged to where its page is, so it is compiled for that page
   * now, without being interpreted `hotBlock` times first.
   */
  private adopt(before: Block, b: Block): void {
    const samePage = before.mem === b.mem && before.base === b.base;
    b.text = before.text;
    b.textOffset = before.textOffset;
    if (this.timing === undefined || samePage) b.run = before.run;
    else this.compileBlock(b);
    b.heat = this.hotBlock;
    if (!samePage) this.code.blocksAdopted++;
  }

  /** The cold block `b` was just interpreted once more: compile it when it is hot. */
  warm(b: Block): void {
    if (++b.heat >= this.hotBlock) this.compileBlock(b);
  }

  private compileBlock(b: Block): void {
    const offset = b.pc & (PAGE_BYTES - 1);
    // The block itself from the halfwords it was measured from (or adopted), not from memory now: a device
    // may have written the page since (DMA is unseen until FENCE.I), and code generated from other
    // instructions than the `count` measured could complete none of them (an instruction left to the
    // interpreter at the start), leaving the hart's run loop calling a block that returns 0 forever. The rest
    // of its region from memory now; until a FENCE.I either is what the hart may run (ISA §5.1), and `text`
    // then holds what the whole function was generated from.
    const page = b.mem.slice(b.base, b.base + (PAGE_BYTES >>> 1));
    page.set(b.text, b.textOffset);
    const source = generateBlock(page, 0, offset, b.pc, b.count, this.fetchTiming(b), this.region, (target) => this.runsOften(target, b));
    b.text = page.slice(source.low >>> 1, source.high >>> 1);
    b.textOffset = source.low >>> 1;
    b.run = this.code.compile(source.body, source.pcs, source.ks);
    b.ops = undefined;
  }

  /**
   * True if the block at `target`, on `b`'s page, has run often enough to be worth compiling into `b`'s
   * function: code never run there would be compiled for nothing, and V8 deoptimizes a function when a path
   * it has no feedback for runs.
   */
  private runsOften(target: number, b: Block): boolean {
    // Compiling at once (tests) compiles every region whole, so that short programs run its code.
    if (this.hotBlock === 0) return true;
    const t = this.all.get(target);
    return t !== undefined && t.mem === b.mem && t.base === b.base && (t.run !== undefined || t.heat * CHAIN_HEAT >= this.hotBlock);
  }

  /** What a block compiled in timing mode needs to charge its fetches, or undefined in fast mode. */
  private fetchTiming(b: Block): FetchTiming | undefined {
    const timing = this.timing;
    if (timing === undefined) return undefined;
    // Without chargeLineHits every fetch is charged on its own (lineBytes 0).
    const lineBytes = timing.chargeLineHits !== undefined ? timing.lineBytes ?? 0 : 0;
    return { node: this.regionOf(b.mem).node, pageOffset: b.base * 2, lineBytes, probe: this.fetchProbe };
  }

  /** The RAM region whose halfword view is `mem`. */
  private regionOf(mem: Uint16Array): RamRegion {
    let r = this.regionCache;
    if (r === undefined || r.u16 !== mem) {
      r = this.code.regionByView(mem);
      this.regionCache = r;
    }
    return r;
  }

  private regionCache: RamRegion | undefined = undefined;

  /** A store is about to write RAM; true if that invalidated code (the caller ends the block). */
  written(region: RamRegion, offset: number): boolean {
    return this.code.written(region, offset);
  }

  /** FENCE.I was executed: every hart's blocks are rechecked before their next use. */
  fenceI(): void {
    this.code.fenceI();
  }

  /** Empties the direct-mapped front, so every block passes the full check of `find` again. */
  flushFront(): void {
    this.front.fill(undefined);
  }
}

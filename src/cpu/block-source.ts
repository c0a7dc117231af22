// A block's extent and its JavaScript: straight-line code up to the first JAL or JALR, with conditional
// branches as side exits, registers in locals, one exit path that writes them back, and precise traps.
//
// The generated body runs as `function (h, x, t, left)`: h the hart, x its Int32Array register file
// (register i in x[2i] low, x[2i+1] high), t the translator (told how many instructions completed when a
// load or store traps), left the instructions the slice may still run. It returns the number of instructions
// it executed and leaves h.pc at the next one. A block that jumps to its own start loops inside the function.

import { expandCompressed } from '../isa/compressed.js';
import { OP_AUIPC, OP_BRANCH, OP_IMM, OP_IMM_32, OP_JAL, OP_JALR, OP_LOAD, OP_LUI, OP_OP, OP_OP_32, OP_STORE } from '../isa/opcodes.js';
import { hi, immB, immI, immJ, immS, InstructionWriter, lo, translatable, type RegisterUse } from './codegen.js';
import type { FetchProbe } from './memory-timing.js';

const PAGE_BYTES = 4096;

export interface BlockShape {
  /** Instructions on the block's longest path (0: the first one must be interpreted). */
  readonly count: number;
  /** The pc of each of them. */
  readonly pcs: number[];
  /** Bytes of code they occupy. */
  readonly bytes: number;
}

export interface BlockSource {
  readonly count: number;
  /** The pc of each instruction, for precise traps. */
  readonly pcs: number[];
  /** Per instruction of pcs: the instructions of its segment before it (what a trap there has completed). */
  readonly ks: number[];
  /** Entry points compiled into the function (1: the block alone). */
  readonly segments: number;
  /** The bytes of the page the code was read from: [low, high). */
  readonly low: number;
  readonly high: number;
  /** The function body. */
  readonly body: string;
}

/** What a block compiled for timing mode needs to charge its instruction fetches as the interpreter does. */
export interface FetchTiming {
  /** The NUMA node of the RAM region the block's page is in. */
  readonly node: number;
  /** Byte offset of the block's page in that region. */
  readonly pageOffset: number;
  /** The cache line size: a run of fetches in one line with no load or store between is one charge and line hits; 0 charges each. */
  readonly lineBytes: number;
  /** When the model offers one: fetches test for a most-recently-used-way hit inline, calling it only otherwise. */
  readonly probe?: FetchProbe;
}

/** Fetches the instruction at byte `offset` of the page: [word, length], or undefined if it cannot be decoded here. */
function fetch(mem: Uint16Array, base: number, offset: number): [number, number] | undefined {
  const half = mem[base + (offset >>> 1)];
  if ((half & 3) === 3) {
    // A 32-bit instruction whose upper half is on the next page: the interpreter fetches it (and its fault).
    if (offset + 2 >= PAGE_BYTES) return undefined;
    return [half | (mem[base + (offset >>> 1) + 1] << 16), 4];
  }
  const insn = expandCompressed(half);
  return insn === 0 ? undefined : [insn, 2];
}

const endsBlock = (insn: number): boolean => (insn & 0x7f) === OP_JAL || (insn & 0x7f) === OP_JALR;

/**
 * The extent of the block at `pc`, at byte `offset` of its page (whose halfwords start at `mem[base]`):
 * up to and including the first JAL or JALR, stopping before an instruction we do not translate, before a
 * 32-bit instruction straddling the page end, at the page end, or after `limit` instructions.
 */
export function measureBlock(mem: Uint16Array, base: number, offset: number, pc: number, limit: number): BlockShape {
  const pcs: number[] = [];
  const start = offset;
  while (offset < PAGE_BYTES && pcs.length < limit) {
    const fetched = fetch(mem, base, offset);
    if (fetched === undefined) break;
    const [insn, len] = fetched;
    if (!translatable(insn)) break;
    pcs.push(pc + offset - start);
    offset += len;
    if (endsBlock(insn)) break;
  }
  return { count: pcs.length, pcs, bytes: offset - start };
}

/** The registers a block reads and writes. */
class Registers implements RegisterUse {
  readonly used = new Set<number>();
  readonly dirty = new Set<number>();
  read(r: number): void { if (r !== 0) this.used.add(r); }
  written(r: number): void {
    if (r === 0) return;
    this.used.add(r);
    this.dirty.add(r);
  }
}

/** Bounds on a block's region: the blocks of its page it reaches by direct jumps, compiled with it. */
export interface RegionLimits {
  /** Entry points in one compiled function, the block's own included (1: no chaining). */
  readonly segments: number;
  /** Instructions over all of them; no further entry point is added once this many were generated. */
  readonly instructions: number;
  /** Longest segment after the first (the first has the `limit` measured for it). */
  readonly segmentLimit: number;
}

const NO_REGION: RegionLimits = { segments: 1, instructions: 0, segmentLimit: 0 };

/** Stands for segment j's instruction count in a transfer to it (known once j is generated). */
const segmentCount = (j: number): string => `\u0003${j}\u0003`;
/** Stands for the switch to segment j in a transfer to it (nothing if the block has one segment). */
const segmentSwitch = (j: number): string => `\u0004${j}\u0004`;

/**
 * The JavaScript of the block measured by measureBlock with the same arguments. With `region` it also
 * compiles, into the same function, the blocks its direct jumps, branches and fall-through reach on the same
 * page that `chainTo` accepts (*segments*, found breadth first): a jump to one of them continues in the function (`seg = j;
 * continue block`) with the registers still in locals, if the whole segment fits in the budget left, instead of
 * returning to the run loop (docs/translator.md, "Chaining"). With `timing` (timing mode)
 * the block also charges the model `t.timing` for each instruction fetch, right before the instruction, as
 * the interpreter's `step` does: the first instruction, the first in a new cache line and the first after a
 * load or store are charged as accesses; every other fetch re-reads the line the hart's previous access (the
 * previous fetch) touched, so it is a hit that changes no cache state, and such hits are counted in one
 * `chargeLineHits` call before the next access or exit (docs/translator.md, "Timing mode").
 */
export function generateBlock(mem: Uint16Array, base: number, offset: number, pc: number, limit: number, timing?: FetchTiming,
  region: RegionLimits = NO_REGION, chainTo: (target: number) => boolean = () => true): BlockSource {
  const regs = new Registers();
  const w = new InstructionWriter(regs);
  const pagePc = pc - offset;
  /** Each segment's byte offset in the page, and its index by offset. */
  const starts: number[] = [offset];
  const segmentAt = new Map<number, number>([[offset, 0]]);
  const counts: number[] = [];
  const segmentLines: string[][] = [];
  const pcs: number[] = [];
  /** Per instruction of pcs: how many instructions of its segment come before it (done when it traps). */
  const ks: number[] = [];
  let touchesMemory = false;
  let loops = false;
  let bigInts = false;
  /** Bytes of the page the segments occupy, from `low` to `high`. */
  let low = offset;
  let high = offset;
  /** Timing mode: fetches since the last charged access that are line hits not yet counted. */
  let pending = 0;
  let afterMemory = true;
  let lastLine = -1;
  /** Counts the pending line hits (statically known on every path through the block). */
  const hits = (): string => (pending === 0 ? '' : `h.stallCycles += tm.chargeLineHits(cpu, ${pending}); `);
  /** Leaves the block with the pc at `target` after `done` instructions of this iteration. */
  const exit = (target: string | number, done: number): string => `${hits()}h.pc = ${target}; ret = n + ${done}; break block;`;
  /** The segment starting at `target`, added if the region has room; undefined if it is not in the region. */
  const segmentFor = (target: number): number | undefined => {
    const at = target - pagePc;
    if (at < 0 || at >= PAGE_BYTES) return undefined;
    const known = segmentAt.get(at);
    if (known !== undefined) return known;
    if (starts.length >= region.segments || pcs.length >= region.instructions || !chainTo(target)) return undefined;
    starts.push(at);
    segmentAt.set(at, starts.length - 1);
    return starts.length - 1;
  };
  /**
   * Goes to `target` after `done` instructions of this segment: on in this function if it starts a segment
   * whose whole length fits in the budget, else out of the block.
   */
  const jump = (target: number, done: number): string => {
    const j = segmentFor(target);
    if (j === undefined) return exit(target, done);
    loops = true;
    return `${hits()}n += ${done}; if (n + ${segmentCount(j)} <= left) { ${segmentSwitch(j)}continue block; } h.pc = ${target}; ret = n; break block;`;
  };
  /** Timing mode: the charge of the fetch at byte `offset` of the page, updating `pending`. */
  const fetchCharge = (at: number, isFirst: boolean): string => {
    if (timing === undefined) return '';
    const where = timing.pageOffset + at;
    const line = timing.lineBytes === 0 ? -1 : Math.floor(where / timing.lineBytes);
    const sameLine = !isFirst && !afterMemory && line >= 0 && line === lastLine;
    lastLine = line;
    afterMemory = false;
    if (sameLine) {
      pending++;
      return '';
    }
    const counted = hits();
    pending = 0;
    const call = `h.stallCycles += tm.chargeRamAccess(cpu, ${timing.node}, ${where}, false);`;
    const probe = timing.probe;
    if (probe === undefined) return `${counted}${call} `;
    const probed = probe.line(timing.node, where);
    return `${counted}if (pt[pm[pb + ${probe.set(probed)}]] === ${probed}) { ph[cpu]++; h.stallCycles += ${probe.hitCycles}; } else ${call} `;
  };
  for (let s = 0; s < starts.length; s++) {
    const lines: string[] = [];
    const first = pcs.length;
    const segmentLimit = s === 0 ? limit : region.segmentLimit;
    // Every segment is entered by a jump: its first fetch is an access, as the interpreter charges it.
    pending = 0;
    afterMemory = true;
    lastLine = -1;
    let ended = false;
    offset = starts[s]!;
    let at = pagePc + offset;
    while (offset < PAGE_BYTES && pcs.length - first < segmentLimit) {
      const fetched = fetch(mem, base, offset);
      if (fetched === undefined) break;
      const [insn, len] = fetched;
      const k = pcs.length - first;
      const g = pcs.length;
      const next = at + len;
      const rd = (insn >>> 7) & 31;
      const rs1 = (insn >>> 15) & 31;
      const rs2 = (insn >>> 20) & 31;
      const f3 = (insn >>> 12) & 7;
      const f7 = insn >>> 25;
      let code: string | undefined;
      let memory = false;
      // The fetch is charged before the instruction's own code, whose exits count it (restored if untranslated).
      const saved = [pending, afterMemory, lastLine] as const;
      const charge = fetchCharge(offset, k === 0);
      switch (insn & 0x7f) {
        case OP_IMM: code = w.opImm(f3, rd, rs1, immI(insn)); break;
        case OP_LUI: code = w.setConst(rd, insn & 0xfffff000); break;
        case OP_AUIPC: code = w.setConst(rd, at + (insn & 0xfffff000)); break;
        case OP_OP: code = w.op(f3, f7, rd, rs1, rs2); bigInts ||= f7 === 1 && f3 !== 0; break;
        case OP_IMM_32: code = w.opImm32(f3, rd, rs1, immI(insn)); break;
        case OP_OP_32: code = w.op32(f3, f7, rd, rs1, rs2); break;
        case OP_LOAD: code = w.load(f3, rd, rs1, immI(insn)); memory = true; break;
        case OP_STORE: code = w.store(f3, rs1, rs2, immS(insn)); memory = true; break;
        case OP_BRANCH: {
          const cond = w.condition(f3, rs1, rs2);
          if (cond !== undefined) code = `if (${cond}) { ${jump(at + immB(insn), k + 1)} }`;
          break;
        }
        case OP_JAL:
          code = `${w.setConst(rd, next)} ${jump(at + immJ(insn), k + 1)}`;
          break;
        case OP_JALR:
          // Bit 0 of the sum is cleared, not of rs1 (ISA §2.5); the target is read before rd is written.
          if (f3 === 0) code = `{ const target = ${w.address(rs1, immI(insn))}; ${w.setConst(rd, next)} ${exit('target - (target & 1)', k + 1)} }`;
          break;
      }
      if (code === undefined) {
        [pending, afterMemory, lastLine] = saved;
        break;
      }
      pcs.push(at);
      ks.push(k);
      if (memory) {
        // A trap leaves c on this instruction; MMIO may set h.stop, which ends the block after it.
        touchesMemory = true;
        const counted = hits();
        pending = 0;
        afterMemory = true;
        lines.push(`${charge}c = ${g}; ${counted}${code} if (h.stop) { ${exit(next, k + 1)} }`);
      } else lines.push(charge + code);
      at = next;
      offset += len;
      if (endsBlock(insn)) {
        ended = true;
        break;
      }
    }
    const count = pcs.length - first;
    // A segment cut by its length goes on in the next one; one cut by the page end or an instruction that is
    // not translated leaves the block.
    if (!ended) lines.push(region.segments > 1 && count === region.segmentLimit ? jump(at, count) : exit(at, count));
    counts.push(count);
    segmentLines.push(lines);
    low = Math.min(low, starts[s]!);
    high = Math.max(high, offset);
  }
  const used = [...regs.used].sort((a, b) => a - b);
  const dirty = [...regs.dirty].sort((a, b) => a - b);
  const load = used.length === 0 ? '' : `let ${used.map((r) => `${lo(r)} = x[${2 * r}], ${hi(r)} = x[${2 * r + 1}]`).join(', ')};`;
  const writeBack = dirty.map((r) => `x[${2 * r}] = ${lo(r)}; x[${2 * r + 1}] = ${hi(r)};`).join(' ');
  let body = starts.length === 1
    ? `block: ${loops ? 'for (;;)' : ''} {\n${segmentLines[0]!.join('\n')}\n}`
    : `block: for (;;) { switch (seg) {\n${segmentLines.map((l, j) => `case ${j}: {\n${l.join('\n')}\n}`).join('\n')}\n} }`;
  body = body.replace(/\u0003(\d+)\u0003/g, (_, j: string) => `${counts[Number(j)]}`)
    .replace(/\u0004(\d+)\u0004/g, (_, j: string) => (starts.length === 1 ? '' : `seg = ${j}; `));
  if (touchesMemory) {
    const done = starts.length === 1 ? 'c' : 'ks[c]';
    body = `let c = 0;\ntry {\n${body}\n} catch (e) { ${writeBack} t.done = n + ${done}; h.pc = pcs[c]; throw e; }`;
  }
  const probe = timing?.probe;
  const probing = probe === undefined ? '' : `const fp = t.fetchProbe, pt = fp.tags, pm = fp.mruWay, ph = fp.hits, pb = cpu * ${probe.sets};\n`;
  const prologue = `${bigInts ? 'const x64 = h.x64;\n' : ''}${timing === undefined ? '' : `const tm = t.timing, cpu = h.timingCpu;\n${probing}`}` +
    `${load}\nlet n = 0, ret = 0${starts.length === 1 ? '' : ', seg = 0'};\n`;
  return { count: counts[0]!, pcs, ks, segments: starts.length, low, high, body: `${prologue}${body}\n${writeBack}\nreturn ret;` };
}

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
/** Stands for the block's instruction count, known only at its end. */
const BLOCK_COUNT = '\u0002';

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

/**
 * The JavaScript of the block measured by measureBlock with the same arguments. With `timing` (timing mode)
 * the block also charges the model `t.timing` for each instruction fetch, right before the instruction, as
 * the interpreter's `step` does: the first instruction, the first in a new cache line and the first after a
 * load or store are charged as accesses; every other fetch re-reads the line the hart's previous access (the
 * previous fetch) touched, so it is a hit that changes no cache state, and such hits are counted in one
 * `chargeLineHits` call before the next access or exit (docs/translator.md, "Timing mode").
 */
export function generateBlock(mem: Uint16Array, base: number, offset: number, pc: number, limit: number, timing?: FetchTiming): BlockSource {
  const regs = new Registers();
  const w = new InstructionWriter(regs);
  const lines: string[] = [];
  const pcs: number[] = [];
  let touchesMemory = false;
  let loops = false;
  let bigInts = false;
  let ended = false;
  /** Timing mode: fetches since the last charged access that are line hits not yet counted. */
  let pending = 0;
  let afterMemory = true;
  let lastLine = -1;
  /** Counts the pending line hits (statically known on every path through the block). */
  const hits = (): string => (pending === 0 ? '' : `h.stallCycles += tm.chargeLineHits(cpu, ${pending}); `);
  /** Leaves the block with the pc at `target` after `done` instructions of this iteration. */
  const exit = (target: string | number, done: number): string => `${hits()}h.pc = ${target}; ret = n + ${done}; break block;`;
  /** Back to the start after `done` instructions, if a whole iteration still fits in the budget. */
  const again = (done: number): string => {
    loops = true;
    return `${hits()}n += ${done}; if (n + ${BLOCK_COUNT} <= left) continue block; h.pc = ${pc}; ret = n; break block;`;
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
  let at = pc;
  while (offset < PAGE_BYTES && pcs.length < limit) {
    const fetched = fetch(mem, base, offset);
    if (fetched === undefined) break;
    const [insn, len] = fetched;
    const k = pcs.length;
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
        const target = at + immB(insn);
        if (cond !== undefined) code = `if (${cond}) { ${target === pc ? again(k + 1) : exit(target, k + 1)} }`;
        break;
      }
      case OP_JAL: {
        const target = at + immJ(insn);
        code = `${w.setConst(rd, next)} ${target === pc ? again(k + 1) : exit(target, k + 1)}`;
        break;
      }
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
    if (memory) {
      // A trap leaves c on this instruction; MMIO may set h.stop, which ends the block after it.
      touchesMemory = true;
      const counted = hits();
      pending = 0;
      afterMemory = true;
      lines.push(`${charge}c = ${k}; ${counted}${code} if (h.stop) { ${exit(next, k + 1)} }`);
    } else lines.push(charge + code);
    at = next;
    offset += len;
    if (endsBlock(insn)) {
      ended = true;
      break;
    }
  }
  if (!ended) lines.push(exit(at, pcs.length));
  const used = [...regs.used].sort((a, b) => a - b);
  const dirty = [...regs.dirty].sort((a, b) => a - b);
  const load = used.length === 0 ? '' : `let ${used.map((r) => `${lo(r)} = x[${2 * r}], ${hi(r)} = x[${2 * r + 1}]`).join(', ')};`;
  const writeBack = dirty.map((r) => `x[${2 * r}] = ${lo(r)}; x[${2 * r + 1}] = ${hi(r)};`).join(' ');
  let body = `block: ${loops ? 'for (;;)' : ''} {\n${lines.join('\n')}\n}`.replaceAll(BLOCK_COUNT, `${pcs.length}`);
  if (touchesMemory) {
    body = `let c = 0;\ntry {\n${body}\n} catch (e) { ${writeBack} t.done = n + c; h.pc = pcs[c]; throw e; }`;
  }
  const probe = timing?.probe;
  const probing = probe === undefined ? '' : `const fp = t.fetchProbe, pt = fp.tags, pm = fp.mruWay, ph = fp.hits, pb = cpu * ${probe.sets};\n`;
  const prologue = `${bigInts ? 'const x64 = h.x64;\n' : ''}${timing === undefined ? '' : `const tm = t.timing, cpu = h.timingCpu;\n${probing}`}` +
    `${load}\nlet n = 0, ret = 0;\n`;
  return { count: pcs.length, pcs, body: `${prologue}${body}\n${writeBack}\nreturn ret;` };
}

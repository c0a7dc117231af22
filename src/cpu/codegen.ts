// JavaScript source for one basic block: RV64IM integer ops, loads/stores through the hart, branches and jumps.
//
// The generated body runs as `function (h, x, t, left)`: h the hart, x its Int32Array register file (register
// i in x[2i] low, x[2i+1] high), t the translator (which receives the count of completed instructions when a
// load or store traps), left the instructions the slice may still run. It returns the number of instructions
// it executed and leaves h.pc at the next one. A block that jumps to its own start loops inside the function.
// Semantics mirror Hart.execute exactly; any encoding it reserves or we do not translate ends the block.

import { expandCompressed } from '../isa/compressed.js';
import {
  OP_AUIPC, OP_BRANCH, OP_IMM, OP_IMM_32, OP_JAL, OP_JALR, OP_LOAD, OP_LUI, OP_MISC_MEM, OP_OP, OP_OP_32, OP_STORE,
} from '../isa/opcodes.js';

const PAGE_BYTES = 4096;
const TWO_32 = 4294967296;
const FUNCT7_ALT = 0x20;
const FUNCT7_MULDIV = 0x01;
const FUNCT3_FENCE_I = 1;

export interface BlockSource {
  /** Instructions in the block (0: the first one must be interpreted). */
  readonly count: number;
  /** Statements of the function body. */
  readonly body: string;
  /** The pc of each instruction, for precise traps. */
  readonly pcs: number[];
  /** The instruction at the block's pc is FENCE.I (only meaningful when count is 0). */
  readonly fenceI: boolean;
  /** The block has loads or stores, which may trap. */
  readonly touchesMemory: boolean;
  /** Bytes of code in the block. */
  readonly bytes: number;
  /** The block ends with a jump back to its own start: it loops inside while the budget allows. */
  readonly loops: boolean;
}

/** Translation of an instruction whose result goes to x0: nothing, if the encoding is one we translate. */
const discarded = (code: string | undefined): string | undefined => (code === undefined ? undefined : '');

/** Low and high int32 words of a signed 64-bit value held in a double. */
function words(v: number): [number, number] {
  return [v | 0, Math.floor(v / TWO_32) | 0];
}

/** The 12-bit I-type immediate, sign-extended. */
const immI = (insn: number): number => insn >> 20;
const immS = (insn: number): number => ((insn >> 25) << 5) | ((insn >>> 7) & 31);
const immB = (insn: number): number =>
  ((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1);
const immJ = (insn: number): number =>
  ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);

/** Source for the low and high words of register r (x0 reads as the constant 0). */
const lo = (r: number): string => (r === 0 ? '0' : `x[${2 * r}]`);
const hi = (r: number): string => (r === 0 ? '0' : `x[${2 * r + 1}]`);

/** Source for the 64-bit address rs1 + imm as a double, as the interpreter computes it. */
function address(rs1: number, imm: number): string {
  return rs1 === 0 ? `${imm}` : `(${hi(rs1)} * ${TWO_32} + (${lo(rs1)} >>> 0) + ${imm})`;
}

/** Assigns a sign-extended int32 expression to rd. */
function setW(rd: number, expr: string): string {
  return `{ const v = ${expr}; x[${2 * rd}] = v; x[${2 * rd + 1}] = v >> 31; }`;
}

/** Assigns a constant 64-bit value (a double) to rd. */
function setConst(rd: number, v: number): string {
  const [l, h] = words(v);
  return `x[${2 * rd}] = ${l}; x[${2 * rd + 1}] = ${h};`;
}

/** OP-IMM (ISA §2.4.1); undefined for reserved shift encodings. */
function opImm(f3: number, rd: number, rs1: number, imm: number): string | undefined {
  const d = 2 * rd;
  const ih = imm >> 31;
  const a = `${lo(rs1)}, ${hi(rs1)}`;
  switch (f3) {
    case 0:
      if (rs1 === 0) return setConst(rd, imm);
      if (imm === 0) return `x[${d}] = ${lo(rs1)}; x[${d + 1}] = ${hi(rs1)};`;
      return `add(x, ${d}, ${a}, ${imm}, ${ih});`;
    case 1: return (imm & 0xfc0) !== 0 ? undefined : `sll(x, ${d}, ${a}, ${imm & 63});`;
    case 2: return `x[${d}] = lt(${a}, ${imm}, ${ih}) ? 1 : 0; x[${d + 1}] = 0;`;
    case 3: return `x[${d}] = ltu(${a}, ${imm}, ${ih}) ? 1 : 0; x[${d + 1}] = 0;`;
    case 4: return `x[${d}] = ${lo(rs1)} ^ ${imm}; x[${d + 1}] = ${hi(rs1)} ^ ${ih};`;
    case 5:
      if ((imm & 0xbc0) !== 0) return undefined;
      return `${imm & 0x400 ? 'sra' : 'srl'}(x, ${d}, ${a}, ${imm & 63});`;
    case 6: return `x[${d}] = ${lo(rs1)} | ${imm}; x[${d + 1}] = ${hi(rs1)} | ${ih};`;
    default: return `x[${d}] = ${lo(rs1)} & ${imm}; x[${d + 1}] = ${hi(rs1)} & ${ih};`;
  }
}

/** OP and the M extension (ISA §2.4.2, §7.1–7.2); undefined for reserved funct7 values. */
function op(f3: number, f7: number, rd: number, rs1: number, rs2: number): string | undefined {
  const d = 2 * rd;
  const a = `${lo(rs1)}, ${hi(rs1)}`;
  const b = `${lo(rs2)}, ${hi(rs2)}`;
  if (f7 === 0) {
    switch (f3) {
      case 0: return `add(x, ${d}, ${a}, ${b});`;
      case 1: return `sll(x, ${d}, ${a}, ${lo(rs2)} & 63);`;
      case 2: return `x[${d}] = lt(${a}, ${b}) ? 1 : 0; x[${d + 1}] = 0;`;
      case 3: return `x[${d}] = ltu(${a}, ${b}) ? 1 : 0; x[${d + 1}] = 0;`;
      case 4: return `x[${d}] = ${lo(rs1)} ^ ${lo(rs2)}; x[${d + 1}] = ${hi(rs1)} ^ ${hi(rs2)};`;
      case 5: return `srl(x, ${d}, ${a}, ${lo(rs2)} & 63);`;
      case 6: return `x[${d}] = ${lo(rs1)} | ${lo(rs2)}; x[${d + 1}] = ${hi(rs1)} | ${hi(rs2)};`;
      default: return `x[${d}] = ${lo(rs1)} & ${lo(rs2)}; x[${d + 1}] = ${hi(rs1)} & ${hi(rs2)};`;
    }
  }
  if (f7 === FUNCT7_ALT && f3 === 0) return `sub(x, ${d}, ${a}, ${b});`;
  if (f7 === FUNCT7_ALT && f3 === 5) return `sra(x, ${d}, ${a}, ${lo(rs2)} & 63);`;
  if (f7 === FUNCT7_MULDIV) {
    if (f3 === 0) return `mul(x, ${d}, ${a}, ${b});`;
    return `mulDiv64(x64, ${rd}, ${f3}, x64[${rs1}], x64[${rs2}]);`;
  }
  return undefined;
}

/** OP-IMM-32 (ISA §4.2.1). */
function opImm32(f3: number, rd: number, rs1: number, imm: number): string | undefined {
  const a = lo(rs1);
  if (f3 === 0) return setW(rd, `(${a} + ${imm}) | 0`);
  if (f3 === 1 && (imm & 0xfe0) === 0) return setW(rd, `${a} << ${imm & 31}`);
  if (f3 === 5 && (imm & 0xfe0) === 0) return setW(rd, `(${a} >>> ${imm & 31}) | 0`);
  if (f3 === 5 && (imm & 0xfe0) === 0x400) return setW(rd, `${a} >> ${imm & 31}`);
  return undefined;
}

/** OP-32 and the M extension's word forms (ISA §4.2.2, §7.1–7.2). */
function op32(f3: number, f7: number, rd: number, rs1: number, rs2: number): string | undefined {
  const a = lo(rs1);
  const b = lo(rs2);
  if (f7 === 0 && f3 === 0) return setW(rd, `(${a} + ${b}) | 0`);
  if (f7 === FUNCT7_ALT && f3 === 0) return setW(rd, `(${a} - ${b}) | 0`);
  if (f7 === 0 && f3 === 1) return setW(rd, `${a} << (${b} & 31)`);
  if (f7 === 0 && f3 === 5) return setW(rd, `(${a} >>> (${b} & 31)) | 0`);
  if (f7 === FUNCT7_ALT && f3 === 5) return setW(rd, `${a} >> (${b} & 31)`);
  if (f7 === FUNCT7_MULDIV && (f3 === 0 || f3 >= 4)) return setW(rd, `mulDiv32(${f3}, ${a}, ${b})`);
  return undefined;
}

/** A load (ISA §2.6): performed even when rd is x0, since it may fault or touch a device. */
function load(f3: number, rd: number, rs1: number, imm: number): string | undefined {
  const va = address(rs1, imm);
  const d = 2 * rd;
  const call = ['load8', 'load16', 'load32', 'load64', 'load8', 'load16', 'load32'][f3];
  if (call === undefined) return undefined;
  if (rd === 0) return `h.${call}(${va});`;
  switch (f3) {
    case 0: return setW(rd, `(h.load8(${va}) << 24) >> 24`);
    case 1: return setW(rd, `(h.load16(${va}) << 16) >> 16`);
    case 2: return setW(rd, `h.load32(${va})`);
    case 3: return `x[${d}] = h.load64(${va}); x[${d + 1}] = h.loadHi;`;
    default: return `x[${d}] = h.${call}(${va}); x[${d + 1}] = 0;`;
  }
}

/** A store (ISA §2.6). */
function store(f3: number, rs1: number, rs2: number, imm: number): string | undefined {
  const va = address(rs1, imm);
  switch (f3) {
    case 0: return `h.store8(${va}, ${lo(rs2)} & 0xff);`;
    case 1: return `h.store16(${va}, ${lo(rs2)} & 0xffff);`;
    case 2: return `h.store32(${va}, ${lo(rs2)});`;
    case 3: return `h.store64(${va}, ${lo(rs2)}, ${hi(rs2)});`;
    default: return undefined;
  }
}

/** The condition of a conditional branch (ISA §2.5); undefined for the reserved funct3 2 and 3. */
function condition(f3: number, rs1: number, rs2: number): string | undefined {
  const args = `${lo(rs1)}, ${hi(rs1)}, ${lo(rs2)}, ${hi(rs2)}`;
  switch (f3) {
    case 0: return `${lo(rs1)} === ${lo(rs2)} && ${hi(rs1)} === ${hi(rs2)}`;
    case 1: return `${lo(rs1)} !== ${lo(rs2)} || ${hi(rs1)} !== ${hi(rs2)}`;
    case 4: return `lt(${args})`;
    case 5: return `!lt(${args})`;
    case 6: return `ltu(${args})`;
    case 7: return `!ltu(${args})`;
    default: return undefined;
  }
}

/** Marks an instruction count in a return statement, made relative to the loop iteration once the block is known. */
const RET = '\u0001';
const RETURN_COUNT = /\u0001(\d+)/g;
/** Stands for the block's instruction count, known only at its end. */
const BLOCK_COUNT = '\u0002';

/**
 * A jump back to the block's start after `done` instructions: run it again if its longest path still fits
 * in the budget `left`, as the run loop would have, else leave with the pc at the start.
 */
function again(done: number, pc: number): string {
  return `n += ${done}; if (n + ${BLOCK_COUNT} <= left) continue; h.pc = ${pc}; return n;`;
}

/**
 * True if the generators translate `insn` (a 32-bit or expanded compressed word): the same rules, without
 * building source, so a block can be measured cheaply while it is still interpreted.
 */
export function translatable(insn: number): boolean {
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  const shamt = (insn >>> 20) & 0xfff;
  switch (insn & 0x7f) {
    case OP_IMM: return f3 === 1 ? (shamt & 0xfc0) === 0 : f3 === 5 ? (shamt & 0xbc0) === 0 : true;
    case OP_LUI: case OP_AUIPC: case OP_JAL: return true;
    case OP_OP: return f7 === 0 || f7 === FUNCT7_MULDIV || (f7 === FUNCT7_ALT && (f3 === 0 || f3 === 5));
    case OP_IMM_32:
      return f3 === 0 || (f3 === 1 && (shamt & 0xfe0) === 0) || (f3 === 5 && ((shamt & 0xfe0) === 0 || (shamt & 0xfe0) === 0x400));
    case OP_OP_32:
      return (f3 === 0 && (f7 === 0 || f7 === FUNCT7_ALT)) || (f3 === 1 && f7 === 0) ||
        (f3 === 5 && (f7 === 0 || f7 === FUNCT7_ALT)) || (f7 === FUNCT7_MULDIV && (f3 === 0 || f3 >= 4));
    case OP_LOAD: return f3 !== 7;
    case OP_STORE: return f3 <= 3;
    case OP_BRANCH: return f3 !== 2 && f3 !== 3;
    case OP_JALR: return f3 === 0;
    default: return false;
  }
}

/** True for the instructions that end a block after themselves (a conditional branch is a side exit). */
const endsBlock = (insn: number): boolean => {
  const opcode = insn & 0x7f;
  return opcode === OP_JAL || opcode === OP_JALR;
};

export interface BlockShape {
  /** Instructions on the block's longest path. */
  readonly count: number;
  /** The pc of each of them. */
  readonly pcs: number[];
  /** Bytes of code they occupy. */
  readonly bytes: number;
  /** The instruction at the block's pc is FENCE.I (count is then 0). */
  readonly fenceI: boolean;
}

/** The extent of the block at `pc` (as generateBlock would decode it) and whether it is a lone FENCE.I. */
export function measureBlock(mem: Uint16Array, base: number, offset: number, pc: number, limit: number): BlockShape {
  const pcs: number[] = [];
  const start = offset;
  while (offset < PAGE_BYTES && pcs.length < limit) {
    const half = mem[base + (offset >>> 1)];
    let insn: number;
    let len: number;
    if ((half & 3) === 3) {
      if (offset + 2 >= PAGE_BYTES) break;
      insn = half | (mem[base + (offset >>> 1) + 1] << 16);
      len = 4;
    } else {
      insn = expandCompressed(half);
      if (insn === 0) break;
      len = 2;
    }
    if (!translatable(insn)) {
      const fenceI = pcs.length === 0 && (insn & 0x7f) === OP_MISC_MEM && ((insn >>> 12) & 7) === FUNCT3_FENCE_I;
      return { count: pcs.length, pcs, bytes: offset - start, fenceI };
    }
    pcs.push(pc + offset - start);
    offset += len;
    if (endsBlock(insn)) break;
  }
  return { count: pcs.length, pcs, bytes: offset - start, fenceI: false };
}

/**
 * Decodes from `pc` (at byte `offset` of its page, whose halfwords start at `mem[base]`) up to and
 * including the first JAL or JALR (conditional branches are side exits), stopping before an instruction we do not translate, before a
 * 32-bit instruction that straddles the page end, at the page end, or after `limit` instructions.
 */
export function generateBlock(mem: Uint16Array, base: number, offset: number, pc: number, limit: number): BlockSource {
  const lines: string[] = [];
  const pcs: number[] = [];
  let fenceI = false;
  let touchesMemory = false;
  let jumped = false;
  let loops = false;
  let at = pc;
  while (offset < PAGE_BYTES && pcs.length < limit) {
    const half = mem[base + (offset >>> 1)];
    let insn: number;
    let len: number;
    if ((half & 3) === 3) {
      if (offset + 2 >= PAGE_BYTES) break; // the upper half is on the next page: the interpreter fetches it
      insn = half | (mem[base + (offset >>> 1) + 1] << 16);
      len = 4;
    } else {
      insn = expandCompressed(half);
      if (insn === 0) break;
      len = 2;
    }
    const k = pcs.length;
    const next = at + len;
    const rd = (insn >>> 7) & 31;
    const rs1 = (insn >>> 15) & 31;
    const rs2 = (insn >>> 20) & 31;
    const f3 = (insn >>> 12) & 7;
    const f7 = insn >>> 25;
    let code: string | undefined;
    /** A load or store: may trap (precise state) or end the slice (MMIO sets h.stop). */
    let memory = false;
    let jump = false;
    switch (insn & 0x7f) {
      case OP_IMM: code = rd === 0 ? discarded(opImm(f3, 1, rs1, immI(insn))) : opImm(f3, rd, rs1, immI(insn)); break;
      case OP_LUI: code = rd === 0 ? '' : setConst(rd, insn & 0xfffff000); break;
      case OP_AUIPC: code = rd === 0 ? '' : setConst(rd, at + (insn & 0xfffff000)); break;
      case OP_OP: code = rd === 0 ? discarded(op(f3, f7, 1, rs1, rs2)) : op(f3, f7, rd, rs1, rs2); break;
      case OP_IMM_32: code = rd === 0 ? discarded(opImm32(f3, 1, rs1, immI(insn))) : opImm32(f3, rd, rs1, immI(insn)); break;
      case OP_OP_32: code = rd === 0 ? discarded(op32(f3, f7, 1, rs1, rs2)) : op32(f3, f7, rd, rs1, rs2); break;
      case OP_LOAD: code = load(f3, rd, rs1, immI(insn)); memory = true; break;
      case OP_STORE: code = store(f3, rs1, rs2, immS(insn)); memory = true; break;
      case OP_BRANCH: {
        const cond = condition(f3, rs1, rs2);
        if (cond !== undefined) {
          const target = at + immB(insn);
          const taken = target === pc ? again(k + 1, pc) : `h.pc = ${target}; return ${RET}${k + 1};`;
          code = `if (${cond}) { ${taken} }`;
          if (target === pc) loops = true;
        }
        break;
      }
      case OP_JAL:
        code = `${rd === 0 ? '' : setConst(rd, next)} ` +
          (at + immJ(insn) === pc ? again(k + 1, pc) : `h.pc = ${at + immJ(insn)}; return ${RET}${k + 1};`);
        if (at + immJ(insn) === pc) loops = true;
        jump = true;
        break;
      case OP_JALR:
        if (f3 === 0) {
          // Bit 0 of the sum is cleared, not of rs1 (ISA §2.5); the target is read before rd is written.
          code = `{ const target = ${address(rs1, immI(insn))}; ${rd === 0 ? '' : setConst(rd, next)}` +
            ` h.pc = target - (target & 1); return ${RET}${k + 1}; }`;
        }
        jump = true;
        break;
      case OP_MISC_MEM:
        if (k === 0 && f3 === FUNCT3_FENCE_I) fenceI = true;
        break;
    }
    if (code === undefined) break;
    pcs.push(at);
    if (memory) {
      touchesMemory = true;
      lines.push(`c = ${k}; ${code} if (h.stop) { h.pc = ${next}; return ${RET}${k + 1}; }`);
    } else lines.push(code);
    at = next;
    offset += len;
    if (jump) {
      jumped = true;
      break;
    }
  }
  if (!jumped) lines.push(`h.pc = ${at}; return ${RET}${pcs.length};`);
  // Instruction counts are relative to the current iteration in a loop, absolute otherwise.
  let body = lines.join('\n').replace(RETURN_COUNT, loops ? 'n + $1' : '$1').replaceAll(BLOCK_COUNT, `${pcs.length}`);
  if (loops) body = `for (;;) {\n${body}\n}`;
  return { count: pcs.length, body, pcs, fenceI, touchesMemory, loops, bytes: at - pc };
}

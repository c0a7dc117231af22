// JavaScript statements for single RV64IM instructions, on registers held in locals (`r5l`, `r5h`: the low
// and high int32 words of x5). Semantics mirror Hart.execute exactly; `undefined` means "not translated"
// (a reserved encoding, or a class left to the interpreter), which ends the block before the instruction.
// Every value given to a local is an int32, as the Int32Array register file would hold it.

import {
  OP_AUIPC, OP_BRANCH, OP_IMM, OP_IMM_32, OP_JAL, OP_JALR, OP_LOAD, OP_LUI, OP_OP, OP_OP_32, OP_STORE,
} from '../isa/opcodes.js';

const TWO_32 = 4294967296;
const FUNCT7_ALT = 0x20;
const FUNCT7_MULDIV = 0x01;

/** The registers an instruction reads and writes, so the block loads and writes back only those. */
export interface RegisterUse {
  read(r: number): void;
  written(r: number): void;
}

/** Low and high int32 words of a signed 64-bit value held in a double. */
export function words(v: number): [number, number] {
  return [v | 0, Math.floor(v / TWO_32) | 0];
}

export const immI = (insn: number): number => insn >> 20;
export const immS = (insn: number): number => ((insn >> 25) << 5) | ((insn >>> 7) & 31);
export const immB = (insn: number): number =>
  ((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1);
export const immJ = (insn: number): number =>
  ((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1);

/** Local names of register r's words (x0 reads as the constant 0; it is never written). */
export const lo = (r: number): string => (r === 0 ? '0' : `r${r}l`);
export const hi = (r: number): string => (r === 0 ? '0' : `r${r}h`);

/** Generates the statements of one instruction, recording the registers it uses. */
export class InstructionWriter {
  constructor(private readonly use: RegisterUse) {}

  private a(r: number): string {
    this.use.read(r);
    return lo(r);
  }

  private ah(r: number): string {
    this.use.read(r);
    return hi(r);
  }

  /** rd = (l, h): both computed (as tl, th) before either is assigned, since rd may be a source. */
  private set(rd: number, l: string, h: string): string {
    this.use.written(rd);
    return `{ const tl = ${l}, th = ${h}; ${lo(rd)} = tl; ${hi(rd)} = th; }`;
  }

  /** rd = a sign-extended int32 expression. */
  private setW(rd: number, expr: string): string {
    this.use.written(rd);
    return `{ const v = ${expr}; ${lo(rd)} = v; ${hi(rd)} = v >> 31; }`;
  }

  setConst(rd: number, v: number): string {
    if (rd === 0) return '';
    this.use.written(rd);
    const [l, h] = words(v);
    return `${lo(rd)} = ${l}; ${hi(rd)} = ${h};`;
  }

  /** The 64-bit address rs1 + imm as a double, as the interpreter computes it. */
  address(rs1: number, imm: number): string {
    return rs1 === 0 ? `${imm}` : `(${this.ah(rs1)} * ${TWO_32} + (${this.a(rs1)} >>> 0) + ${imm})`;
  }

  private add(rd: number, al: string, ah: string, bl: string, bh: string): string {
    return this.set(rd, `(${al} + ${bl}) | 0`, `(${ah} + ${bh} + ((tl >>> 0) < (${al} >>> 0) ? 1 : 0)) | 0`);
  }

  private shiftLeft(rd: number, al: string, ah: string, sh: number): string {
    if (sh === 0) return this.set(rd, al, ah);
    if (sh < 32) return this.set(rd, `${al} << ${sh}`, `(${ah} << ${sh}) | (${al} >>> ${32 - sh})`);
    return this.set(rd, '0', `${al} << ${sh - 32}`);
  }

  private shiftRight(rd: number, al: string, ah: string, sh: number, arithmetic: boolean): string {
    if (sh === 0) return this.set(rd, al, ah);
    if (sh < 32) {
      return this.set(rd, `(${al} >>> ${sh}) | (${ah} << ${32 - sh})`, arithmetic ? `${ah} >> ${sh}` : `(${ah} >>> ${sh}) | 0`);
    }
    return arithmetic ? this.set(rd, `${ah} >> ${sh - 32}`, `${ah} >> 31`) : this.set(rd, `(${ah} >>> ${sh - 32}) | 0`, '0');
  }

  /** A shift by a register amount: the cases of the constant shifts, chosen at run time. */
  private shiftBy(rd: number, kind: 'sll' | 'srl' | 'sra', rs1: number, rs2: number): string {
    const al = this.a(rs1);
    const ah = this.ah(rs1);
    const s = `(${this.a(rs2)} & 63)`;
    this.use.written(rd);
    const small = kind === 'sll'
      ? `th = (${ah} << s) | (${al} >>> (32 - s)); tl = ${al} << s;`
      : `tl = (${al} >>> s) | (${ah} << (32 - s)); th = ${kind === 'sra' ? `${ah} >> s` : `(${ah} >>> s) | 0`};`;
    const large = kind === 'sll' ? `th = ${al} << (s - 32); tl = 0;`
      : kind === 'sra' ? `tl = ${ah} >> (s - 32); th = ${ah} >> 31;` : `tl = (${ah} >>> (s - 32)) | 0; th = 0;`;
    return `{ const s = ${s}; let tl = ${al}, th = ${ah}; if (s >= 32) { ${large} } else if (s !== 0) { ${small} } ` +
      `${lo(rd)} = tl; ${hi(rd)} = th; }`;
  }

  /** OP-IMM (ISA §2.4.1). */
  opImm(f3: number, rd: number, rs1: number, imm: number): string | undefined {
    const ih = imm >> 31;
    if (f3 === 1 && (imm & 0xfc0) !== 0) return undefined;
    if (f3 === 5 && (imm & 0xbc0) !== 0) return undefined;
    if (rd === 0) return '';
    const al = this.a(rs1);
    const ah = this.ah(rs1);
    switch (f3) {
      case 0:
        if (rs1 === 0) return this.setConst(rd, imm);
        return imm === 0 ? this.set(rd, al, ah) : this.add(rd, al, ah, `${imm}`, `${ih}`);
      case 1: return this.shiftLeft(rd, al, ah, imm & 63);
      case 2: return this.set(rd, `lt(${al}, ${ah}, ${imm}, ${ih}) ? 1 : 0`, '0');
      case 3: return this.set(rd, `ltu(${al}, ${ah}, ${imm}, ${ih}) ? 1 : 0`, '0');
      case 4: return this.set(rd, `${al} ^ ${imm}`, `${ah} ^ ${ih}`);
      case 5: return this.shiftRight(rd, al, ah, imm & 63, (imm & 0x400) !== 0);
      case 6: return this.set(rd, `${al} | ${imm}`, `${ah} | ${ih}`);
      default: return this.set(rd, `${al} & ${imm}`, `${ah} & ${ih}`);
    }
  }

  /** OP and the M extension (ISA §2.4.2, §7.1–7.2). */
  op(f3: number, f7: number, rd: number, rs1: number, rs2: number): string | undefined {
    const valid = f7 === 0 || f7 === FUNCT7_MULDIV || (f7 === FUNCT7_ALT && (f3 === 0 || f3 === 5));
    if (!valid) return undefined;
    if (rd === 0) return '';
    const [al, ah, bl, bh] = [this.a(rs1), this.ah(rs1), this.a(rs2), this.ah(rs2)];
    if (f7 === FUNCT7_ALT) {
      if (f3 === 5) return this.shiftBy(rd, 'sra', rs1, rs2);
      return this.set(rd, `(${al} - ${bl}) | 0`, `(${ah} - ${bh} - ((${al} >>> 0) < (${bl} >>> 0) ? 1 : 0)) | 0`);
    }
    if (f7 === FUNCT7_MULDIV) {
      if (f3 === 0) {
        return this.set(rd, `Math.imul(${al}, ${bl})`, `(mulhu32(${al}, ${bl}) + Math.imul(${ah}, ${bl}) + Math.imul(${al}, ${bh})) | 0`);
      }
      // MULH*, DIV*, REM*: a helper writes the pair into the register file, read back into the locals.
      this.use.written(rd);
      return `mulDiv64(x, ${2 * rd}, ${f3}, ${al}, ${ah}, ${bl}, ${bh}); ${lo(rd)} = x[${2 * rd}]; ${hi(rd)} = x[${2 * rd + 1}];`;
    }
    switch (f3) {
      case 0: return this.add(rd, al, ah, bl, bh);
      case 1: return this.shiftBy(rd, 'sll', rs1, rs2);
      case 2: return this.set(rd, `lt(${al}, ${ah}, ${bl}, ${bh}) ? 1 : 0`, '0');
      case 3: return this.set(rd, `ltu(${al}, ${ah}, ${bl}, ${bh}) ? 1 : 0`, '0');
      case 4: return this.set(rd, `${al} ^ ${bl}`, `${ah} ^ ${bh}`);
      case 5: return this.shiftBy(rd, 'srl', rs1, rs2);
      case 6: return this.set(rd, `${al} | ${bl}`, `${ah} | ${bh}`);
      default: return this.set(rd, `${al} & ${bl}`, `${ah} & ${bh}`);
    }
  }

  /** OP-IMM-32 (ISA §4.2.1). */
  opImm32(f3: number, rd: number, rs1: number, imm: number): string | undefined {
    const shift = imm & 0xfe0;
    const valid = f3 === 0 || (f3 === 1 && shift === 0) || (f3 === 5 && (shift === 0 || shift === 0x400));
    if (!valid) return undefined;
    if (rd === 0) return '';
    const a = this.a(rs1);
    if (f3 === 0) return this.setW(rd, `(${a} + ${imm}) | 0`);
    if (f3 === 1) return this.setW(rd, `${a} << ${imm & 31}`);
    return this.setW(rd, shift === 0 ? `(${a} >>> ${imm & 31}) | 0` : `${a} >> ${imm & 31}`);
  }

  /** OP-32 and the M extension's word forms (ISA §4.2.2, §7.1–7.2). */
  op32(f3: number, f7: number, rd: number, rs1: number, rs2: number): string | undefined {
    let expr: (a: string, b: string) => string;
    if (f7 === 0 && f3 === 0) expr = (a, b) => `(${a} + ${b}) | 0`;
    else if (f7 === FUNCT7_ALT && f3 === 0) expr = (a, b) => `(${a} - ${b}) | 0`;
    else if (f7 === 0 && f3 === 1) expr = (a, b) => `${a} << (${b} & 31)`;
    else if (f7 === 0 && f3 === 5) expr = (a, b) => `(${a} >>> (${b} & 31)) | 0`;
    else if (f7 === FUNCT7_ALT && f3 === 5) expr = (a, b) => `${a} >> (${b} & 31)`;
    else if (f7 === FUNCT7_MULDIV && (f3 === 0 || f3 >= 4)) expr = (a, b) => `mulDiv32(${f3}, ${a}, ${b})`;
    else return undefined;
    if (rd === 0) return '';
    return this.setW(rd, expr(this.a(rs1), this.a(rs2)));
  }

  /** A load (ISA §2.6): performed even when rd is x0, since it may fault or touch a device. */
  load(f3: number, rd: number, rs1: number, imm: number): string | undefined {
    const call = ['load8', 'load16', 'load32', 'load64', 'load8', 'load16', 'load32'][f3];
    if (call === undefined) return undefined;
    const va = this.address(rs1, imm);
    if (rd === 0) return `h.${call}(${va});`;
    switch (f3) {
      case 0: return this.setW(rd, `(h.load8(${va}) << 24) >> 24`);
      case 1: return this.setW(rd, `(h.load16(${va}) << 16) >> 16`);
      case 2: return this.setW(rd, `h.load32(${va})`);
      case 3: return this.set(rd, `h.load64(${va})`, 'h.loadHi');
      default: return this.set(rd, `h.${call}(${va})`, '0');
    }
  }

  /** A store (ISA §2.6). */
  store(f3: number, rs1: number, rs2: number, imm: number): string | undefined {
    if (f3 > 3) return undefined;
    const va = this.address(rs1, imm);
    const v = this.a(rs2);
    switch (f3) {
      case 0: return `h.store8(${va}, ${v} & 0xff);`;
      case 1: return `h.store16(${va}, ${v} & 0xffff);`;
      case 2: return `h.store32(${va}, ${v});`;
      default: return `h.store64(${va}, ${v}, ${this.ah(rs2)});`;
    }
  }

  /** The condition of a conditional branch (ISA §2.5); undefined for the reserved funct3 2 and 3. */
  condition(f3: number, rs1: number, rs2: number): string | undefined {
    if (f3 === 2 || f3 === 3) return undefined;
    const [al, ah, bl, bh] = [this.a(rs1), this.ah(rs1), this.a(rs2), this.ah(rs2)];
    const args = `${al}, ${ah}, ${bl}, ${bh}`;
    switch (f3) {
      case 0: return `${al} === ${bl} && ${ah} === ${bh}`;
      case 1: return `${al} !== ${bl} || ${ah} !== ${bh}`;
      case 4: return `lt(${args})`;
      case 5: return `!lt(${args})`;
      case 6: return `ltu(${args})`;
      default: return `!ltu(${args})`;
    }
  }
}

/**
 * True if InstructionWriter translates `insn` (a 32-bit or expanded compressed word): the same rules,
 * without building source, so a block can be measured cheaply while it is still interpreted.
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

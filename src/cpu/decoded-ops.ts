// The decoded form of an instruction shared by the warm tier (warm-tier.ts) and the cold tier (cold-tier.ts):
// a dense operation number (so the runners' switches are jump tables) with rd, rs1, rs2 and the length in one
// int32 word, and an immediate (or a 64-bit constant's two words). The operations are the ones blocks hold
// (codegen.ts `translatable`), plus, for the cold tier, AUIPC (its value depends on where the code runs),
// the rest of the ISA (SLOW: Hart.execute on the expanded instruction) and reserved RVC encodings.

import {
  OP_AUIPC, OP_BRANCH, OP_IMM, OP_IMM_32, OP_JAL, OP_JALR, OP_LOAD, OP_LUI, OP_OP, OP_OP_32, OP_STORE,
} from '../isa/opcodes.js';
import { immB, immI, immJ, immS, words } from './codegen.js';

// Operation numbers: dense, so the runners' switches are jump tables. A const enum, so that each case label
// is a literal number: V8 makes a jump table of a switch only when its labels are literals, and otherwise
// compares the value with one constant after another.
export const enum Op {
  ADDI = 0,
  SLTI = 1,
  SLTIU = 2,
  XORI = 3,
  ORI = 4,
  ANDI = 5,
  SLLI = 6,
  SRLI = 7,
  SRAI = 8,
  ADD = 9,
  SUB = 10,
  SLL = 11,
  SLT = 12,
  SLTU = 13,
  XOR = 14,
  SRL = 15,
  SRA = 16,
  OR = 17,
  AND = 18,
  MUL = 19,
  MULDIV = 20,
  ADDIW = 21,
  SLLIW = 22,
  SRLIW = 23,
  SRAIW = 24,
  ADDW = 25,
  SUBW = 26,
  SLLW = 27,
  SRLW = 28,
  SRAW = 29,
  MULDIVW = 30,
  CONST = 31,
  LB = 32,
  LH = 33,
  LW = 34,
  LD = 35,
  LBU = 36,
  LHU = 37,
  LWU = 38,
  SB = 39,
  SH = 40,
  SW = 41,
  SD = 42,
  BEQ = 43,
  BNE = 44,
  BLT = 45,
  BGE = 46,
  BLTU = 47,
  BGEU = 48,
  JAL = 49,
  JALR = 50,
  /** AUIPC in the cold tier, whose decoded form must not depend on the pc (the immediate is insn & 0xfffff000). */
  AUIPC = 51,
  /** Anything else: Hart.execute runs the (expanded) instruction, the immediate word. */
  SLOW = 52,
  /** A reserved RVC encoding: an illegal-instruction trap with the halfword as tval. */
  ILLEGAL_C = 53,
}

const OP_IMM_OPS = [Op.ADDI, Op.SLLI, Op.SLTI, Op.SLTIU, Op.XORI, Op.SRLI, Op.ORI, Op.ANDI];
const OP_OPS = [Op.ADD, Op.SLL, Op.SLT, Op.SLTU, Op.XOR, Op.SRL, Op.OR, Op.AND];
const BRANCH_OPS = [Op.BEQ, Op.BNE, -1, -1, Op.BLT, Op.BGE, Op.BLTU, Op.BGEU];

/** The operation of a translatable 32-bit instruction word (see codegen.ts `translatable`), with its immediate. */
export function operation(insn: number, pc: number): [op: number, imm: number, hi: number] {
  const f3 = (insn >>> 12) & 7;
  const f7 = insn >>> 25;
  const imm = immI(insn);
  switch (insn & 0x7f) {
    case OP_IMM: return [f3 === 5 && (imm & 0x400) !== 0 ? Op.SRAI : OP_IMM_OPS[f3]!, f3 === 1 || f3 === 5 ? imm & 63 : imm, 0];
    case OP_LUI: {
      const v = insn & 0xfffff000;
      return [Op.CONST, v, v >> 31];
    }
    case OP_AUIPC: return [Op.CONST, ...words(pc + (insn & 0xfffff000))];
    case OP_OP:
      if (f7 === 1) return f3 === 0 ? [Op.MUL, 0, 0] : [Op.MULDIV, f3, 0];
      if (f7 === 0x20) return [f3 === 0 ? Op.SUB : Op.SRA, 0, 0];
      return [OP_OPS[f3]!, 0, 0];
    case OP_IMM_32:
      if (f3 === 0) return [Op.ADDIW, imm, 0];
      return [f3 === 1 ? Op.SLLIW : (imm & 0x400) !== 0 ? Op.SRAIW : Op.SRLIW, imm & 31, 0];
    case OP_OP_32:
      if (f7 === 1) return [Op.MULDIVW, f3, 0];
      if (f3 === 0) return [f7 === 0 ? Op.ADDW : Op.SUBW, 0, 0];
      return [f3 === 1 ? Op.SLLW : f7 === 0 ? Op.SRLW : Op.SRAW, 0, 0];
    case OP_LOAD: return [Op.LB + f3, imm, 0];
    case OP_STORE: return [Op.SB + f3, immS(insn), 0];
    case OP_BRANCH: return [BRANCH_OPS[f3]!, immB(insn), 0];
    case OP_JAL: return [Op.JAL, immJ(insn), 0];
    default: return [Op.JALR, imm, 0]; // OP_JALR with funct3 0, the only other translatable one
  }
}


/** The decoded word of an instruction: its operation, registers and length (2 or 4 bytes). */
export function decodedWord(op: number, insn: number, len: number): number {
  return op | (((insn >>> 7) & 31) << 8) | (((insn >>> 15) & 31) << 13) | (((insn >>> 20) & 31) << 18) | (len << 23);
}

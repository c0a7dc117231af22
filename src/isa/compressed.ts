// The C extension: each 16-bit instruction expanded to the 32-bit instruction it stands for (RVC, RV64).
// Unprivileged spec chapter 16. Returns 0 (an illegal encoding) for reserved or illegal forms.

import {
  OP_BRANCH, OP_IMM, OP_IMM_32, OP_JAL, OP_JALR, OP_LOAD, OP_LOAD_FP, OP_LUI, OP_OP, OP_OP_32,
  OP_STORE, OP_STORE_FP, OP_SYSTEM,
} from './opcodes.js';

const EBREAK = 0x00100073;

function bits(h: number, hi: number, lo: number): number {
  return (h >>> lo) & ((1 << (hi - lo + 1)) - 1);
}

function sext(value: number, width: number): number {
  const shift = 32 - width;
  return (value << shift) >> shift;
}

const i = (op: number, rd: number, f3: number, rs1: number, imm: number): number =>
  ((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
const s = (op: number, f3: number, rs1: number, rs2: number, imm: number): number =>
  (((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op;
const b = (f3: number, rs1: number, rs2: number, imm: number): number =>
  (((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
  (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | OP_BRANCH;
const j = (rd: number, imm: number): number =>
  (((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) |
  (((imm >> 12) & 0xff) << 12) | (rd << 7) | OP_JAL;
const r = (op: number, f7: number, rd: number, f3: number, rs1: number, rs2: number): number =>
  (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;

export function expandCompressed(h: number): number {
  const f3 = bits(h, 15, 13);
  const rdp = bits(h, 4, 2) + 8; // rd' / rs2'
  const rs1p = bits(h, 9, 7) + 8;
  const rd = bits(h, 11, 7);
  const rs2 = bits(h, 6, 2);
  switch (h & 3) {
    case 0:
      switch (f3) {
        case 0: { // C.ADDI4SPN
          const imm = (bits(h, 12, 11) << 4) | (bits(h, 10, 7) << 6) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 3);
          return imm === 0 ? 0 : i(OP_IMM, rdp, 0, 2, imm);
        }
        case 1: return i(OP_LOAD_FP, rdp, 3, rs1p, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6)); // C.FLD
        case 2: return i(OP_LOAD, rdp, 2, rs1p, (bits(h, 12, 10) << 3) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 6));
        case 3: return i(OP_LOAD, rdp, 3, rs1p, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6)); // C.LD
        case 5: return s(OP_STORE_FP, 3, rs1p, rdp, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6)); // C.FSD
        case 6: return s(OP_STORE, 2, rs1p, rdp, (bits(h, 12, 10) << 3) | (bits(h, 6, 6) << 2) | (bits(h, 5, 5) << 6));
        case 7: return s(OP_STORE, 3, rs1p, rdp, (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6)); // C.SD
        default: return 0;
      }
    case 1: {
      const imm6 = sext((bits(h, 12, 12) << 5) | rs2, 6);
      switch (f3) {
        case 0: return i(OP_IMM, rd, 0, rd, imm6); // C.ADDI (C.NOP when rd = 0)
        case 1: return rd === 0 ? 0 : i(OP_IMM_32, rd, 0, rd, imm6); // C.ADDIW
        case 2: return i(OP_IMM, rd, 0, 0, imm6); // C.LI
        case 3:
          if (rd === 2) { // C.ADDI16SP
            const imm = sext((bits(h, 12, 12) << 9) | (bits(h, 6, 6) << 4) | (bits(h, 5, 5) << 6) |
              (bits(h, 4, 3) << 7) | (bits(h, 2, 2) << 5), 10);
            return imm === 0 ? 0 : i(OP_IMM, 2, 0, 2, imm);
          } else { // C.LUI
            const imm = sext((bits(h, 12, 12) << 17) | (rs2 << 12), 18);
            return imm === 0 ? 0 : (imm & 0xfffff000) | (rd << 7) | OP_LUI;
          }
        case 4: {
          const rdq = rs1p;
          switch (bits(h, 11, 10)) {
            case 0: return i(OP_IMM, rdq, 5, rdq, (bits(h, 12, 12) << 5) | rs2); // C.SRLI
            case 1: return i(OP_IMM, rdq, 5, rdq, 0x400 | (bits(h, 12, 12) << 5) | rs2); // C.SRAI
            case 2: return i(OP_IMM, rdq, 7, rdq, imm6); // C.ANDI
            default: {
              const f = bits(h, 6, 5);
              if (bits(h, 12, 12) === 0) {
                switch (f) {
                  case 0: return r(OP_OP, 0x20, rdq, 0, rdq, rdp); // C.SUB
                  case 1: return r(OP_OP, 0, rdq, 4, rdq, rdp); // C.XOR
                  case 2: return r(OP_OP, 0, rdq, 6, rdq, rdp); // C.OR
                  default: return r(OP_OP, 0, rdq, 7, rdq, rdp); // C.AND
                }
              }
              if (f === 0) return r(OP_OP_32, 0x20, rdq, 0, rdq, rdp); // C.SUBW
              if (f === 1) return r(OP_OP_32, 0, rdq, 0, rdq, rdp); // C.ADDW
              return 0;
            }
          }
        }
        case 5: { // C.J
          const imm = sext((bits(h, 12, 12) << 11) | (bits(h, 11, 11) << 4) | (bits(h, 10, 9) << 8) |
            (bits(h, 8, 8) << 10) | (bits(h, 7, 7) << 6) | (bits(h, 6, 6) << 7) | (bits(h, 5, 3) << 1) |
            (bits(h, 2, 2) << 5), 12);
          return j(0, imm);
        }
        default: { // C.BEQZ / C.BNEZ
          const imm = sext((bits(h, 12, 12) << 8) | (bits(h, 11, 10) << 3) | (bits(h, 6, 5) << 6) |
            (bits(h, 4, 3) << 1) | (bits(h, 2, 2) << 5), 9);
          return b(f3 === 6 ? 0 : 1, rs1p, 0, imm);
        }
      }
    }
    case 2:
      switch (f3) {
        case 0: return i(OP_IMM, rd, 1, rd, (bits(h, 12, 12) << 5) | rs2); // C.SLLI
        case 1: return i(OP_LOAD_FP, rd, 3, 2, (bits(h, 12, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6));
        case 2: return rd === 0 ? 0 : i(OP_LOAD, rd, 2, 2, (bits(h, 12, 12) << 5) | (bits(h, 6, 4) << 2) | (bits(h, 3, 2) << 6));
        case 3: return rd === 0 ? 0 : i(OP_LOAD, rd, 3, 2, (bits(h, 12, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6));
        case 4:
          if (bits(h, 12, 12) === 0) {
            if (rs2 === 0) return rd === 0 ? 0 : i(OP_JALR, 0, 0, rd, 0); // C.JR
            return r(OP_OP, 0, rd, 0, 0, rs2); // C.MV
          }
          if (rs2 === 0) return rd === 0 ? EBREAK | OP_SYSTEM : i(OP_JALR, 1, 0, rd, 0); // C.EBREAK / C.JALR
          return r(OP_OP, 0, rd, 0, rd, rs2); // C.ADD
        case 5: return s(OP_STORE_FP, 3, 2, rs2, (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6)); // C.FSDSP
        case 6: return s(OP_STORE, 2, 2, rs2, (bits(h, 12, 9) << 2) | (bits(h, 8, 7) << 6)); // C.SWSP
        default: return s(OP_STORE, 3, 2, rs2, (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6)); // C.SDSP
      }
    default:
      return 0;
  }
}

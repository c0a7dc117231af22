// Decode and execution of the F and D instructions that do not access memory (ISA chapters 11–12).
import type { FpState } from '../fp-state.js';
import { FFLAG_NV, RM_DYN, RM_RMM } from '../fp-state.js';
import { OP_MADD, OP_MSUB, OP_NMADD, OP_NMSUB, OP_OP_FP } from '../opcodes.js';
import { add32, div32, fma32, mul32, sqrt32, sub32 } from './arith32.js';
import { add64, div64, fma64, mul64, sqrt64, sub64 } from './arith64.js';
import { boxed32, classify32, classify64, compare, minMax, signInject } from './compare.js';
import { doubleToSingle, floatToInt, INT_LU, intToDouble, intToSingle } from './convert.js';
import { CANONICAL_NAN_32, CANONICAL_NAN_64_HI, f32Bits, f32FromBits, isNan32, isNan64, isSnan32, isSnan64, status } from './float-bits.js';

/** The funct5 field (bits 31..27) of OP-FP (ISA table 24.2, RV32F/RV32D/RV64F/RV64D). */
const FADD = 0x00;
const FSUB = 0x01;
const FMUL = 0x02;
const FDIV = 0x03;
const FSGNJ = 0x04;
const FMINMAX = 0x05;
const FCVT_FMT_FMT = 0x08;
const FSQRT = 0x0b;
const FCMP = 0x14;
const FCVT_INT_FMT = 0x18;
const FCVT_FMT_INT = 0x1a;
const FMV_X_FMT_FCLASS = 0x1c;
const FMV_FMT_X = 0x1e;

/** The fmt field (bits 26..25): S and D are implemented, H and Q are not. */
const FMT_S = 0;
const FMT_D = 1;

/** The largest valid rounding mode (RMM); 5 and 6 are reserved, 7 selects frm (ISA §11.2). */
const RM_MAX = RM_RMM;

/** The effective rounding mode, or −1 when the instruction is illegal because of it. */
function roundingMode(s: FpState, rm: number): number {
  const mode = rm === RM_DYN ? s.frm : rm;
  return mode <= RM_MAX ? mode : -1;
}

function writeDouble(s: FpState, rd: number, v: number): void {
  if (v !== v) {
    s.f[2 * rd] = 0;
    s.f[2 * rd + 1] = CANONICAL_NAN_64_HI;
  } else {
    s.f64[rd] = v;
  }
}

function writeSingle(s: FpState, rd: number, v: number): void {
  s.f[2 * rd] = v !== v ? CANONICAL_NAN_32 : f32Bits(v);
  s.f[2 * rd + 1] = -1;
}

function writeX(s: FpState, rd: number, lo: number, hi: number): void {
  if (rd === 0) return;
  s.x[2 * rd] = lo;
  s.x[2 * rd + 1] = hi;
}

/**
 * Whether register r holds a NaN; a signalling one raises NV. Arithmetic on a NaN gives the
 * canonical NaN (ISA §11.3).
 */
function nanOperand(s: FpState, r: number, double: boolean): boolean {
  if (double) {
    const lo = s.f[2 * r];
    const hi = s.f[2 * r + 1];
    if (!isNan64(lo, hi)) return false;
    if (isSnan64(lo, hi)) status.flags |= FFLAG_NV;
    return true;
  }
  const bits = boxed32(s, r);
  if (!isNan32(bits)) return false;
  if (isSnan32(bits)) status.flags |= FFLAG_NV;
  return true;
}

function value(s: FpState, r: number, double: boolean): number {
  return double ? s.f64[r] : f32FromBits(boxed32(s, r));
}

function writeFloat(s: FpState, rd: number, v: number, double: boolean): void {
  if (double) writeDouble(s, rd, v);
  else writeSingle(s, rd, v);
}

function arithmetic(s: FpState, funct5: number, rd: number, rs1: number, rs2: number, rm: number, double: boolean): void {
  const a = value(s, rs1, double);
  const b = value(s, rs2, double);
  // NaN operands are rare: look at their bits (signalling or not) only when there is one.
  if (a !== a || (b !== b && funct5 !== FSQRT)) {
    nanOperand(s, rs1, double);
    if (funct5 !== FSQRT) nanOperand(s, rs2, double);
    writeFloat(s, rd, NaN, double);
    return;
  }
  let r: number;
  switch (funct5) {
    case FADD: r = double ? add64(a, b, rm) : add32(a, b, rm); break;
    case FSUB: r = double ? sub64(a, b, rm) : sub32(a, b, rm); break;
    case FMUL: r = double ? mul64(a, b, rm) : mul32(a, b, rm); break;
    case FDIV: r = double ? div64(a, b, rm) : div32(a, b, rm); break;
    default: r = double ? sqrt64(a, rm) : sqrt32(a, rm); break;
  }
  writeFloat(s, rd, r, double);
}

function isInfinite(v: number): boolean {
  return v === Infinity || v === -Infinity;
}

/** FMADD/FMSUB/FNMSUB/FNMADD: ±(rs1·rs2) ± rs3 with one rounding (ISA §11.6). */
function fused(s: FpState, insn: number, opcode: number): boolean {
  const fmt = (insn >>> 25) & 3;
  const rm = roundingMode(s, (insn >>> 12) & 7);
  if ((fmt !== FMT_S && fmt !== FMT_D) || rm < 0) return false;
  const double = fmt === FMT_D;
  const rd = (insn >>> 7) & 31;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  const rs3 = insn >>> 27;
  status.flags = 0;
  let a = value(s, rs1, double);
  const b = value(s, rs2, double);
  let c = value(s, rs3, double);
  if (a !== a || b !== b || c !== c) {
    nanOperand(s, rs1, double);
    nanOperand(s, rs2, double);
    nanOperand(s, rs3, double);
    // ∞·0 is invalid even when the addend is a quiet NaN (ISA §11.6).
    if ((isInfinite(a) && b === 0) || (a === 0 && isInfinite(b))) status.flags |= FFLAG_NV;
    writeFloat(s, rd, NaN, double);
  } else {
    if (opcode === OP_NMSUB || opcode === OP_NMADD) a = -a;
    if (opcode === OP_MSUB || opcode === OP_NMADD) c = -c;
    writeFloat(s, rd, double ? fma64(a, b, c, rm) : fma32(a, b, c, rm), double);
  }
  s.fflags |= status.flags;
  return true;
}

export function executeFp(s: FpState, insn: number): boolean {
  const opcode = insn & 0x7f;
  if (opcode !== OP_OP_FP) return opcode === OP_MADD || opcode === OP_MSUB || opcode === OP_NMSUB || opcode === OP_NMADD ? fused(s, insn, opcode) : false;
  const fmt = (insn >>> 25) & 3;
  if (fmt !== FMT_S && fmt !== FMT_D) return false;
  const double = fmt === FMT_D;
  const funct5 = insn >>> 27;
  const rd = (insn >>> 7) & 31;
  const funct3 = (insn >>> 12) & 7;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  status.flags = 0;
  switch (funct5) {
    case FADD: case FSUB: case FMUL: case FDIV: case FSQRT: {
      const rm = roundingMode(s, funct3);
      if (rm < 0 || (funct5 === FSQRT && rs2 !== 0)) return false;
      arithmetic(s, funct5, rd, rs1, rs2, rm, double);
      break;
    }
    case FSGNJ:
      if (funct3 > 2) return false;
      signInject(s, rd, rs1, rs2, funct3, double);
      break;
    case FMINMAX:
      if (funct3 > 1) return false;
      minMax(s, rd, rs1, rs2, funct3, double);
      break;
    case FCMP:
      if (funct3 > 2) return false;
      compare(s, rd, rs1, rs2, funct3, double);
      break;
    case FCVT_FMT_FMT: {
      // FCVT.S.D has fmt S and rs2 = 1 (D); FCVT.D.S has fmt D and rs2 = 0 (S).
      const rm = roundingMode(s, funct3);
      if (rm < 0 || rs2 !== (double ? FMT_S : FMT_D)) return false;
      if (nanOperand(s, rs1, !double)) writeFloat(s, rd, NaN, double);
      else if (double) writeDouble(s, rd, value(s, rs1, false));
      else writeSingle(s, rd, doubleToSingle(s.f64[rs1], rm));
      break;
    }
    case FCVT_INT_FMT: {
      const rm = roundingMode(s, funct3);
      if (rm < 0 || rs2 > INT_LU) return false;
      floatToInt(s, rd, value(s, rs1, double), rs2, rm);
      break;
    }
    case FCVT_FMT_INT: {
      const rm = roundingMode(s, funct3);
      if (rm < 0 || rs2 > INT_LU) return false;
      writeFloat(s, rd, double ? intToDouble(s, rs1, rs2, rm) : intToSingle(s, rs1, rs2, rm), double);
      break;
    }
    case FMV_X_FMT_FCLASS:
      if (rs2 !== 0 || funct3 > 1) return false;
      if (funct3 === 1) {
        writeX(s, rd, double ? classify64(s.f[2 * rs1], s.f[2 * rs1 + 1]) : classify32(boxed32(s, rs1)), 0);
      } else if (double) {
        writeX(s, rd, s.f[2 * rs1], s.f[2 * rs1 + 1]);
      } else {
        // FMV.X.W moves the low 32 bits whatever the NaN-boxing, sign-extended (ISA §11.7).
        writeX(s, rd, s.f[2 * rs1], s.f[2 * rs1] >> 31);
      }
      break;
    case FMV_FMT_X:
      if (rs2 !== 0 || funct3 !== 0) return false;
      s.f[2 * rd] = s.x[2 * rs1];
      s.f[2 * rd + 1] = double ? s.x[2 * rs1 + 1] : -1;
      break;
    default:
      return false;
  }
  s.fflags |= status.flags;
  return true;
}

// Sign injection, minimum/maximum, comparisons and classification (ISA §11.6–11.9, §12.6).
import type { FpState } from '../fp-state.js';
import { FFLAG_NV } from '../fp-state.js';
import { CANONICAL_NAN_32, CANONICAL_NAN_64_HI, f32FromBits, isNan32, isNan64, isSnan32, isSnan64, status } from './float-bits.js';

/** FCLASS result bits (ISA table 11.5). */
export const CLASS_NEG_INF = 1 << 0;
export const CLASS_NEG_NORMAL = 1 << 1;
export const CLASS_NEG_SUBNORMAL = 1 << 2;
export const CLASS_NEG_ZERO = 1 << 3;
export const CLASS_POS_ZERO = 1 << 4;
export const CLASS_POS_SUBNORMAL = 1 << 5;
export const CLASS_POS_NORMAL = 1 << 6;
export const CLASS_POS_INF = 1 << 7;
export const CLASS_SNAN = 1 << 8;
export const CLASS_QNAN = 1 << 9;

/** FMIN/FMAX select with funct3 0/1; comparisons FLE/FLT/FEQ with funct3 0/1/2. */
export const SELECT_MIN = 0;
export const CMP_LE = 0;
export const CMP_LT = 1;
export const CMP_EQ = 2;

/**
 * Operand bits of a binary32 register: an improperly NaN-boxed value reads as the canonical NaN
 * (ISA §12.2).
 */
export function boxed32(s: FpState, r: number): number {
  return s.f[2 * r + 1] === -1 ? s.f[2 * r] : CANONICAL_NAN_32;
}

function classify(negative: boolean, expAllOnes: boolean, expZero: boolean, fracZero: boolean, quietBit: boolean): number {
  if (expAllOnes) {
    if (fracZero) return negative ? CLASS_NEG_INF : CLASS_POS_INF;
    return quietBit ? CLASS_QNAN : CLASS_SNAN;
  }
  if (expZero) {
    if (fracZero) return negative ? CLASS_NEG_ZERO : CLASS_POS_ZERO;
    return negative ? CLASS_NEG_SUBNORMAL : CLASS_POS_SUBNORMAL;
  }
  return negative ? CLASS_NEG_NORMAL : CLASS_POS_NORMAL;
}

export function classify32(bits: number): number {
  const exp = (bits >>> 23) & 0xff;
  return classify(bits < 0, exp === 0xff, exp === 0, (bits & 0x7fffff) === 0, (bits & 0x400000) !== 0);
}

export function classify64(lo: number, hi: number): number {
  const exp = (hi >>> 20) & 0x7ff;
  return classify(hi < 0, exp === 0x7ff, exp === 0, (hi & 0xfffff) === 0 && lo === 0, (hi & 0x80000) !== 0);
}

/** FSGNJ/FSGNJN/FSGNJX (funct3 0/1/2): the magnitude of rs1 with a sign made from both signs. */
export function signInject(s: FpState, rd: number, rs1: number, rs2: number, mode: number, double: boolean): void {
  const f = s.f;
  const a = double ? f[2 * rs1 + 1] : boxed32(s, rs1);
  const b = double ? f[2 * rs2 + 1] : boxed32(s, rs2);
  const sign = mode === 0 ? b : mode === 1 ? ~b : a ^ b;
  const word = (a & 0x7fffffff) | (sign & 0x80000000);
  if (double) {
    f[2 * rd] = f[2 * rs1];
    f[2 * rd + 1] = word;
  } else {
    f[2 * rd] = word;
    f[2 * rd + 1] = -1;
  }
}

/** Operand reading shared by min/max and comparisons: value, NaN and signalling-NaN status. */
let aValue = 0;
let bValue = 0;
let aNan = false;
let bNan = false;
let anySnan = false;

function load(s: FpState, rs1: number, rs2: number, double: boolean): void {
  if (double) {
    const f = s.f;
    aNan = isNan64(f[2 * rs1], f[2 * rs1 + 1]);
    bNan = isNan64(f[2 * rs2], f[2 * rs2 + 1]);
    anySnan = isSnan64(f[2 * rs1], f[2 * rs1 + 1]) || isSnan64(f[2 * rs2], f[2 * rs2 + 1]);
    aValue = s.f64[rs1];
    bValue = s.f64[rs2];
  } else {
    const a = boxed32(s, rs1);
    const b = boxed32(s, rs2);
    aNan = isNan32(a);
    bNan = isNan32(b);
    anySnan = isSnan32(a) || isSnan32(b);
    aValue = f32FromBits(a);
    bValue = f32FromBits(b);
  }
}

function copy(s: FpState, rd: number, rs: number, double: boolean): void {
  if (double) {
    s.f[2 * rd] = s.f[2 * rs];
    s.f[2 * rd + 1] = s.f[2 * rs + 1];
  } else {
    s.f[2 * rd] = boxed32(s, rs);
    s.f[2 * rd + 1] = -1;
  }
}

/**
 * FMIN/FMAX: IEEE 754-2019 minimumNumber/maximumNumber — a NaN operand loses to a number, two NaNs
 * give the canonical NaN, −0 is below +0, and a signalling NaN raises NV (ISA §11.6).
 */
export function minMax(s: FpState, rd: number, rs1: number, rs2: number, select: number, double: boolean): void {
  load(s, rs1, rs2, double);
  if (anySnan) status.flags |= FFLAG_NV;
  let pickA: boolean;
  if (aNan && bNan) {
    if (double) {
      s.f[2 * rd] = 0;
      s.f[2 * rd + 1] = CANONICAL_NAN_64_HI;
    } else {
      s.f[2 * rd] = CANONICAL_NAN_32;
      s.f[2 * rd + 1] = -1;
    }
    return;
  } else if (aNan) {
    pickA = false;
  } else if (bNan) {
    pickA = true;
  } else if (aValue === bValue) {
    // Equal values differ only for ±0: the minimum takes the negative one, the maximum the positive.
    const aNegative = 1 / aValue < 0;
    pickA = select === SELECT_MIN ? aNegative : !aNegative;
  } else {
    pickA = select === SELECT_MIN ? aValue < bValue : aValue > bValue;
  }
  copy(s, rd, pickA ? rs1 : rs2, double);
}

/** FEQ is quiet (NV only for a signalling NaN); FLT and FLE are signalling (NV for any NaN). */
export function compare(s: FpState, rd: number, rs1: number, rs2: number, relation: number, double: boolean): void {
  load(s, rs1, rs2, double);
  let result = 0;
  if (aNan || bNan) {
    if (relation !== CMP_EQ || anySnan) status.flags |= FFLAG_NV;
  } else if (relation === CMP_EQ) {
    result = aValue === bValue ? 1 : 0;
  } else if (relation === CMP_LT) {
    result = aValue < bValue ? 1 : 0;
  } else {
    result = aValue <= bValue ? 1 : 0;
  }
  if (rd !== 0) {
    s.x[2 * rd] = result;
    s.x[2 * rd + 1] = 0;
  }
}

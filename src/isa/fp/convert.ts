// FCVT between floating-point values and 32/64-bit integers (ISA §11.7, §12.5), saturating as table 11.4 says.
import type { FpState } from '../fp-state.js';
import { FFLAG_NV, FFLAG_NX, RM_RDN, RM_RMM, RM_RNE, RM_RTZ, RM_RUP } from '../fp-state.js';
import { adjust } from './arith64.js';
import { eftError, status, twoSum } from './float-bits.js';
import { roundSingle } from './round-single.js';

/** The rs2 field of FCVT selects the integer type. */
export const INT_W = 0;
export const INT_WU = 1;
export const INT_L = 2;
export const INT_LU = 3;

const TWO_32 = 4294967296;
const TWO_63 = 2 ** 63;
const TWO_64 = 2 ** 64;

/** Smallest value of each integer type, as doubles, indexed by INT_*. */
const INT_MIN = [-(2 ** 31), 0, -TWO_63, 0];
/**
 * One above the largest value of each type: an integral double at or above it is out of range. The largest
 * values themselves are no bounds: 2^63 − 1 and 2^64 − 1 round to 2^63 and 2^64 as doubles, which would let
 * exactly 2^63 and 2^64 through (wrapped) instead of saturating.
 */
const INT_LIMIT = [2 ** 31, TWO_32, TWO_63, TWO_64];
/** The same limits as register words (lo, hi); 32-bit results are sign-extended (ISA §12.5). */
const SATURATED_MIN_LO = [0x80000000 | 0, 0, 0, 0];
const SATURATED_MIN_HI = [-1, 0, 0x80000000 | 0, 0];
const SATURATED_MAX_LO = [0x7fffffff, -1, -1, -1];
const SATURATED_MAX_HI = [0, -1, 0x7fffffff, -1];

let roundedInexact = false;

/** v rounded to an integer by `rm` (an infinity stays itself); sets roundedInexact. */
function roundToInteger(v: number, rm: number): number {
  const t = Math.trunc(v);
  const fraction = v - t;
  roundedInexact = fraction !== 0 && fraction === fraction;
  if (!roundedInexact) return t;
  const half = Math.abs(fraction);
  switch (rm) {
    case RM_RNE: return half > 0.5 || (half === 0.5 && t % 2 !== 0) ? t + Math.sign(v) : t;
    case RM_RMM: return half >= 0.5 ? t + Math.sign(v) : t;
    case RM_RDN: return Math.floor(v);
    case RM_RUP: return Math.ceil(v);
    case RM_RTZ:
    default: return t;
  }
}

function writeX(s: FpState, rd: number, lo: number, hi: number): void {
  if (rd === 0) return;
  s.x[2 * rd] = lo;
  s.x[2 * rd + 1] = hi;
}

/**
 * FCVT.{W,WU,L,LU}.{S,D}: v (any value, NaN included) to the integer type `kind`. Out-of-range
 * inputs and NaN give the saturated value of table 11.4 and only the NV flag.
 */
export function floatToInt(s: FpState, rd: number, v: number, kind: number, rm: number): void {
  const r = v === v ? roundToInteger(v, rm) : NaN;
  if (!(r >= INT_MIN[kind])) {
    status.flags |= FFLAG_NV;
    if (r === r) writeX(s, rd, SATURATED_MIN_LO[kind], SATURATED_MIN_HI[kind]);
    else writeX(s, rd, SATURATED_MAX_LO[kind], SATURATED_MAX_HI[kind]);
    return;
  }
  if (r >= INT_LIMIT[kind]) {
    status.flags |= FFLAG_NV;
    writeX(s, rd, SATURATED_MAX_LO[kind], SATURATED_MAX_HI[kind]);
    return;
  }
  if (roundedInexact) status.flags |= FFLAG_NX;
  if (kind <= INT_WU) {
    const lo = r | 0;
    writeX(s, rd, lo, lo >> 31);
  } else {
    const hi = Math.floor(r / TWO_32);
    writeX(s, rd, (r - hi * TWO_32) | 0, hi | 0);
  }
}

/** The integer of type `kind` in x[rs] as RN(value) in binary64, the exact remainder left in eftError. */
function intValue(s: FpState, rs: number, kind: number): number {
  const lo = s.x[2 * rs];
  const hi = s.x[2 * rs + 1];
  switch (kind) {
    case INT_W: return twoSum(lo, 0);
    case INT_WU: return twoSum(lo >>> 0, 0);
    case INT_L: return twoSum(hi * TWO_32, lo >>> 0);
    default: return twoSum((hi >>> 0) * TWO_32, lo >>> 0);
  }
}

/** FCVT.S.{W,WU,L,LU}: rounded once to binary32 (the binary64 value plus its exact error). */
export function intToSingle(s: FpState, rs: number, kind: number, rm: number): number {
  const d = intValue(s, rs, kind);
  return roundSingle(d, Math.sign(eftError), rm);
}

/** FCVT.D.{W,WU,L,LU}: exact for 32-bit integers, rounded by `rm` for wide 64-bit ones. */
export function intToDouble(s: FpState, rs: number, kind: number, rm: number): number {
  const d = intValue(s, rs, kind);
  return adjust(d, eftError, rm, true);
}

/** FCVT.S.D of a value that is not NaN. */
export function doubleToSingle(v: number, rm: number): number {
  if (v === Infinity || v === -Infinity || v === 0) return v;
  return roundSingle(v, 0, rm);
}

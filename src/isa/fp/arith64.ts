// Binary64 add, multiply, divide, square root and fused multiply-add, on values that are not NaN.
import { FFLAG_DZ, FFLAG_NV, FFLAG_NX, RM_RDN, RM_RMM, RM_RNE, RM_RTZ, RM_RUP } from '../fp-state.js';
import { BINARY64, exactAdd, exactDiv, exactFma, exactMul, exactSqrt, unpack, type Exact } from './exact.js';
import { eftError, f64BigBits, f64FromBigBits, nextDown64, nextUp64, status, twoProduct, twoSum } from './float-bits.js';

/*
 * The host computes each operation rounded to nearest-even; an error-free transformation (TwoSum,
 * Dekker's TwoProduct, or the residual of a quotient or root) gives the exact error, from which the
 * inexact flag and the other rounding modes follow. Results near the overflow or underflow
 * thresholds, or operands too large to split, take the exact BigInt path instead. A NaN return means
 * the canonical NaN (ISA §11.3).
 */

/** Above this magnitude nothing can overflow after a one-ulp adjustment. */
const FAST_MAX = 2 ** 1023;
/** Below this, a product's rounding error may underflow (2^-1022 · 2^53) or the result be tiny. */
const FAST_MIN = 2 ** -968;
/** Veltkamp's split of a larger operand would overflow. */
const SPLIT_MAX = 2 ** 995;
/** A residual a − d·b or a − s·s whose partial products could overflow. */
const RESIDUAL_MAX = 2 ** 1020;

/** Whether x is negative, counting −0. */
export function isNegative(x: number): boolean {
  return x < 0 || (x === 0 && 1 / x < 0);
}

/** The sign of an exact zero sum (IEEE 754 §6.3). */
export function zeroSum(aNegative: boolean, bNegative: boolean, rm: number): number {
  if (aNegative && bNegative) return -0;
  if (!aNegative && !bNegative) return 0;
  return rm === RM_RDN ? -0 : 0;
}

export function invalid(): number {
  status.flags |= FFLAG_NV;
  return NaN;
}

/**
 * a·b + c when an operand is infinite (no NaN operands reach here): ∞·0 and ∞ − ∞ are invalid, otherwise
 * the infinity; undefined when all operands are finite. Shared by the binary32 and binary64 forms.
 */
export function fmaInfinite(a: number, b: number, c: number): number | undefined {
  if (a === Infinity || a === -Infinity || b === Infinity || b === -Infinity) {
    if (a === 0 || b === 0) return invalid();
    const product = a * b;
    const sum = product + c;
    return sum !== sum ? invalid() : product;
  }
  if (c === Infinity || c === -Infinity) return c;
  return undefined;
}

function exact(x: number): Exact {
  return unpack(f64BigBits(x), BINARY64);
}

/**
 * Moves d, the nearest-even rounding of d + err, to the rounding of `rm`. `tieable` says that err is
 * exact, so halfway cases can be recognised (quotients and roots are never exactly halfway).
 */
export function adjust(d: number, err: number, rm: number, tieable: boolean): number {
  if (err === 0) return d;
  status.flags |= FFLAG_NX;
  switch (rm) {
    case RM_RTZ:
      if (d > 0 && err < 0) return nextDown64(d);
      if (d < 0 && err > 0) return nextUp64(d);
      return d;
    case RM_RDN:
      return err < 0 ? nextDown64(d) : d;
    case RM_RUP:
      return err > 0 ? nextUp64(d) : d;
    case RM_RMM: {
      if (!tieable) return d;
      const other = err > 0 ? nextUp64(d) : nextDown64(d);
      if (other - d !== 2 * err) return d;
      return Math.abs(other) > Math.abs(d) ? other : d;
    }
    default:
      return d;
  }
}

function inFastRange(d: number): boolean {
  const m = Math.abs(d);
  return m >= FAST_MIN && m < FAST_MAX;
}

export function add64(a: number, b: number, rm: number): number {
  const d = twoSum(a, b);
  if (d !== d) return invalid();
  const m = Math.abs(d);
  // A sum below 2^-1021 is always exact (it is a multiple of 2^-1074), so only overflow is hard.
  if (m < FAST_MAX && d !== 0) return adjust(d, eftError, rm, true);
  if (d === 0) return rm === RM_RNE ? d : zeroSum(isNegative(a), isNegative(b), rm);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return d;
  return f64FromBigBits(exactAdd(exact(a), exact(b), BINARY64, rm));
}

export function sub64(a: number, b: number, rm: number): number {
  return add64(a, -b, rm);
}

export function mul64(a: number, b: number, rm: number): number {
  const d = a * b;
  if (d !== d) return invalid();
  if (inFastRange(d) && Math.abs(a) < SPLIT_MAX && Math.abs(b) < SPLIT_MAX) {
    twoProduct(a, b);
    return adjust(d, eftError, rm, true);
  }
  // Infinite or zero operands give exact results.
  if (a === 0 || b === 0 || a === Infinity || a === -Infinity || b === Infinity || b === -Infinity) return d;
  return f64FromBigBits(exactMul(exact(a), exact(b), BINARY64, rm));
}

export function div64(a: number, b: number, rm: number): number {
  const d = a / b;
  if (d !== d) return invalid();
  if (b === 0 && Number.isFinite(a)) status.flags |= FFLAG_DZ;
  if (a === 0 || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return d;
  const ma = Math.abs(a);
  const mb = Math.abs(b);
  const md = Math.abs(d);
  if (md >= FAST_MIN && md < SPLIT_MAX && ma >= FAST_MIN && ma < RESIDUAL_MAX && mb < SPLIT_MAX) {
    // The residual a − d·b is exactly representable and has the sign of (a/b − d)·b.
    const p = twoProduct(d, b);
    const residual = (a - p) - eftError;
    return adjust(d, b > 0 ? residual : -residual, rm, false);
  }
  return f64FromBigBits(exactDiv(exact(a), exact(b), BINARY64, rm));
}

export function sqrt64(a: number, rm: number): number {
  if (a === 0 || a === Infinity) return a;
  if (a < 0) return invalid();
  const s = Math.sqrt(a);
  if (a >= FAST_MIN && a < RESIDUAL_MAX) {
    const p = twoProduct(s, s);
    return adjust(s, (a - p) - eftError, rm, false);
  }
  return f64FromBigBits(exactSqrt(exact(a), BINARY64, rm));
}

/** a·b + c rounded once (ISA §11.6); the caller has negated operands for the other three forms. */
export function fma64(a: number, b: number, c: number, rm: number): number {
  const special = fmaInfinite(a, b, c);
  if (special !== undefined) return special;
  if (a === 0 || b === 0) {
    if (c !== 0) return c;
    return zeroSum(isNegative(a) !== isNegative(b), isNegative(c), rm);
  }
  const fast = fmaFast(a, b, c, rm);
  if (fast === fast) return fast;
  return f64FromBigBits(exactFma(exact(a), exact(b), exact(c), BINARY64, rm));
}

/**
 * a·b + c for finite a, b, c with a nonzero product, or NaN when the case is too hard. The exact
 * value ph + pl + c (Dekker's product) is renormalised by TwoSums into r + re + te, r = RN(s + t).
 * When te is zero, re is the exact error. Otherwise te is far below the granularity of re, so
 * r is still RN(exact) and sign(re) the error's sign, except when re is exactly half an ulp of r
 * (te then breaks the tie), and when re is zero (te is then the error and cannot make a tie).
 */
function fmaFast(a: number, b: number, c: number, rm: number): number {
  if (Math.abs(a) >= SPLIT_MAX || Math.abs(b) >= SPLIT_MAX || Math.abs(c) >= RESIDUAL_MAX) return NaN;
  const ph = twoProduct(a, b);
  const pl = eftError;
  const mp = Math.abs(ph);
  if (mp < FAST_MIN || mp >= RESIDUAL_MAX) return NaN;
  const s = twoSum(ph, c);
  const t = twoSum(eftError, pl);
  const te = eftError;
  const r = twoSum(s, t);
  const re = eftError;
  const mr = Math.abs(r);
  if (mr < FAST_MIN || mr >= RESIDUAL_MAX) return NaN;
  if (te === 0) return adjust(r, re, rm, true);
  if (re === 0) return adjust(r, te, rm, false);
  const other = re > 0 ? nextUp64(r) : nextDown64(r);
  if (other - r === 2 * re) return NaN;
  return adjust(r, re, rm, false);
}

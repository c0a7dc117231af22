// Binary32 arithmetic, computed in binary64 with the exact error and rounded once to binary32.
import { FFLAG_DZ, RM_RNE } from '../fp-state.js';
import { fmaInfinite, invalid, isNegative, zeroSum } from './arith64.js';
import { eftError, status, twoProduct, twoSum } from './float-bits.js';
import { roundSingle } from './round-single.js';

/*
 * Operands are binary32 values held as numbers, never NaN (the caller handles NaN inputs). Products
 * of two binary32 values are exact in binary64, sums and fused sums have an exact TwoSum error, and
 * quotients and roots an exactly representable residual, so roundSingle sees the true error sign.
 * A NaN return means the canonical NaN.
 */


export function add32(a: number, b: number, rm: number): number {
  const d = twoSum(a, b);
  if (d !== d) return invalid();
  if (d === Infinity || d === -Infinity) return d;
  if (d === 0) return rm === RM_RNE ? d : zeroSum(isNegative(a), isNegative(b), rm);
  return roundSingle(d, Math.sign(eftError), rm);
}

export function sub32(a: number, b: number, rm: number): number {
  return add32(a, -b, rm);
}

export function mul32(a: number, b: number, rm: number): number {
  const d = a * b;
  if (d !== d) return invalid();
  if (d === 0 || d === Infinity || d === -Infinity) return d;
  return roundSingle(d, 0, rm);
}

export function div32(a: number, b: number, rm: number): number {
  const d = a / b;
  if (d !== d) return invalid();
  if (b === 0 && Number.isFinite(a)) status.flags |= FFLAG_DZ;
  if (a === 0 || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return d;
  const p = twoProduct(d, b);
  const residual = (a - p) - eftError;
  return roundSingle(d, Math.sign(b > 0 ? residual : -residual), rm);
}

export function sqrt32(a: number, rm: number): number {
  if (a === 0 || a === Infinity) return a;
  if (a < 0) return invalid();
  const s = Math.sqrt(a);
  const p = twoProduct(s, s);
  return roundSingle(s, Math.sign((a - p) - eftError), rm);
}

/** a·b + c rounded once; the binary32 product is exact in binary64 (24 + 24 ≤ 53 bits). */
export function fma32(a: number, b: number, c: number, rm: number): number {
  const special = fmaInfinite(a, b, c);
  if (special !== undefined) return special;
  const p = a * b;
  if (p === 0 && c === 0) return zeroSum(isNegative(a) !== isNegative(b), isNegative(c), rm);
  const d = twoSum(p, c);
  if (d === 0) return rm === RM_RNE ? d : zeroSum(isNegative(p), isNegative(c), rm);
  return roundSingle(d, Math.sign(eftError), rm);
}

// Exact (BigInt) floating-point arithmetic with IEEE 754 rounding: the slow path for the hard cases.
import { FFLAG_NX, FFLAG_OF, FFLAG_UF, RM_RDN, RM_RMM, RM_RNE, RM_RTZ, RM_RUP } from '../fp-state.js';
import { status } from './float-bits.js';

/** An IEEE binary interchange format: precision p (with the hidden bit) and exponent range (IEEE 754 §3.3). */
export interface Format {
  readonly precision: number;
  readonly emin: number;
  readonly emax: number;
}

export const BINARY32: Format = { precision: 24, emin: -126, emax: 127 };
export const BINARY64: Format = { precision: 53, emin: -1022, emax: 1023 };

/** A finite value (-1)^negative · m · 2^e. */
export interface Exact {
  negative: boolean;
  m: bigint;
  e: number;
}

/** Splits the bits of a finite value of `fmt` into sign, integer significand and exponent. */
export function unpack(bits: bigint, fmt: Format): Exact {
  const fracBits = BigInt(fmt.precision - 1);
  const expField = Number((bits >> fracBits) & BigInt(2 * fmt.emax + 1));
  const frac = bits & ((1n << fracBits) - 1n);
  const negative = ((bits >> fracBits) >> BigInt(bitLength(BigInt(2 * fmt.emax + 1)))) !== 0n;
  const quantum = fmt.emin - (fmt.precision - 1);
  if (expField === 0) return { negative, m: frac, e: quantum };
  return { negative, m: frac | (1n << fracBits), e: quantum + expField - 1 };
}

export function bitLength(m: bigint): number {
  return m === 0n ? 0 : m.toString(2).length;
}

function signBit(negative: boolean, fmt: Format): bigint {
  return negative ? 1n << BigInt(fmt.precision - 1 + bitLength(BigInt(2 * fmt.emax + 1))) : 0n;
}

function infinityBits(fmt: Format): bigint {
  return BigInt(2 * fmt.emax + 1) << BigInt(fmt.precision - 1);
}

let lastInexact = false;

/** m·2^-shift rounded to an integer by `rm`; `sticky` means a little more than m. Sets lastInexact. */
function roundShift(m: bigint, shift: number, sticky: boolean, negative: boolean, rm: number): bigint {
  if (shift <= 0) {
    lastInexact = sticky;
    return m << BigInt(-shift);
  }
  const s = BigInt(shift);
  let q = m >> s;
  const rem = m & ((1n << s) - 1n);
  const half = 1n << (s - 1n);
  const inexact = rem !== 0n || sticky;
  const above = rem > half || (rem === half && sticky);
  const tie = rem === half && !sticky;
  let up = false;
  switch (rm) {
    case RM_RNE: up = above || (tie && (q & 1n) === 1n); break;
    case RM_RMM: up = above || tie; break;
    case RM_RTZ: up = false; break;
    case RM_RDN: up = negative && inexact; break;
    case RM_RUP: up = !negative && inexact; break;
  }
  if (up) q += 1n;
  lastInexact = inexact;
  return q;
}

/**
 * The bits of (-1)^negative·(m + sticky·ε)·2^e rounded to `fmt` by `rm`, with NX/UF/OF ORed into
 * status.flags. Tininess is detected after rounding, as RISC-V does (ISA §11.4, IEEE 754 §7.5).
 * m must be nonzero; when sticky it must have at least precision+2 bits.
 */
export function roundExact(negative: boolean, m: bigint, e: number, sticky: boolean, fmt: Format, rm: number): bigint {
  const p = fmt.precision;
  const top = e + bitLength(m) - 1;
  const bounded = Math.max(top, fmt.emin);
  const q = roundShift(m, bounded - (p - 1) - e, sticky, negative, rm);
  const inexact = lastInexact;
  let bits = (BigInt(bounded - fmt.emin) << BigInt(p - 1)) + q;
  if (inexact) {
    status.flags |= FFLAG_NX;
    let tiny = top < fmt.emin - 1;
    if (top === fmt.emin - 1) tiny = roundShift(m, top - (p - 1) - e, sticky, negative, rm) < (1n << BigInt(p));
    if (tiny) status.flags |= FFLAG_UF;
  }
  const inf = infinityBits(fmt);
  if (bits >= inf) {
    status.flags |= FFLAG_OF | FFLAG_NX;
    // IEEE 754 §7.4: the largest finite number when rounding toward zero-ish, else infinity.
    const toMax = rm === RM_RTZ || (rm === RM_RDN && !negative) || (rm === RM_RUP && negative);
    bits = toMax ? inf - 1n : inf;
  }
  return bits | signBit(negative, fmt);
}

/** The sign of an exact zero sum (IEEE 754 §6.3): +0 unless both addends negative, −0 under RDN. */
export function zeroSumBits(aNegative: boolean, bNegative: boolean, fmt: Format, rm: number): bigint {
  const negative = aNegative && bNegative ? true : aNegative !== bNegative ? rm === RM_RDN : aNegative;
  return signBit(negative, fmt);
}

export function exactAdd(a: Exact, b: Exact, fmt: Format, rm: number): bigint {
  const e = Math.min(a.e, b.e);
  const am = a.m << BigInt(a.e - e);
  const bm = b.m << BigInt(b.e - e);
  const sum = (a.negative ? -am : am) + (b.negative ? -bm : bm);
  if (sum === 0n) return zeroSumBits(a.negative, b.negative, fmt, rm);
  return roundExact(sum < 0n, sum < 0n ? -sum : sum, e, false, fmt, rm);
}

export function exactMul(a: Exact, b: Exact, fmt: Format, rm: number): bigint {
  const negative = a.negative !== b.negative;
  const m = a.m * b.m;
  if (m === 0n) return signBit(negative, fmt);
  return roundExact(negative, m, a.e + b.e, false, fmt, rm);
}

/** a·b + c with a single rounding (ISA §11.6). */
export function exactFma(a: Exact, b: Exact, c: Exact, fmt: Format, rm: number): bigint {
  const product: Exact = { negative: a.negative !== b.negative, m: a.m * b.m, e: a.e + b.e };
  return exactAdd(product, c, fmt, rm);
}

/** a / b for nonzero b. */
export function exactDiv(a: Exact, b: Exact, fmt: Format, rm: number): bigint {
  const negative = a.negative !== b.negative;
  if (a.m === 0n) return signBit(negative, fmt);
  // Enough quotient bits for the rounding bit plus one guard; the remainder is the sticky bit.
  const k = Math.max(0, fmt.precision + 2 + bitLength(b.m) - bitLength(a.m));
  const num = a.m << BigInt(k);
  const q = num / b.m;
  return roundExact(negative, q, a.e - b.e - k, num - q * b.m !== 0n, fmt, rm);
}

/** √a for positive a. */
export function exactSqrt(a: Exact, fmt: Format, rm: number): bigint {
  let m = a.m;
  let e = a.e;
  if ((e & 1) !== 0) {
    m <<= 1n;
    e -= 1;
  }
  const k = Math.max(0, Math.ceil((2 * fmt.precision + 4 - bitLength(m)) / 2));
  const radicand = m << BigInt(2 * k);
  const root = isqrt(radicand);
  return roundExact(false, root, (e - 2 * k) / 2, radicand - root * root !== 0n, fmt, rm);
}

/** ⌊√n⌋ by Newton's iteration from above. */
export function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(bitLength(n) / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

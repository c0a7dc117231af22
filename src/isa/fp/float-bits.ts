// Bit-level helpers for IEEE binary32/binary64 on the host: scratch views, neighbours, error-free transforms.

/** Accrued exception flags of the instruction being executed (NV DZ OF UF NX in bits 4..0). */
export const status = { flags: 0 };

const scratch = new ArrayBuffer(8);
const scratchF64 = new Float64Array(scratch);
const scratchF32 = new Float32Array(scratch);
const scratchI32 = new Int32Array(scratch);
const scratchU64 = new BigUint64Array(scratch);

export const CANONICAL_NAN_32 = 0x7fc00000;
export const CANONICAL_NAN_64_HI = 0x7ff80000;

const F32_MIN_SUBNORMAL = 2 ** -149;
export const F32_MIN_NORMAL = 2 ** -126;
export const F32_MAX = (2 - 2 ** -23) * 2 ** 127;

/** The value of the binary32 whose bits are `bits` (a NaN comes out as some NaN). */
export function f32FromBits(bits: number): number {
  scratchI32[0] = bits;
  return scratchF32[0];
}

/** The bits of `v`, which must be exactly representable as a binary32 (not NaN). */
export function f32Bits(v: number): number {
  scratchF32[0] = v;
  return scratchI32[0];
}

export function f64FromBigBits(bits: bigint): number {
  scratchU64[0] = bits;
  return scratchF64[0];
}

export function f64BigBits(v: number): bigint {
  scratchF64[0] = v;
  return scratchU64[0];
}

export function isNan32(bits: number): boolean {
  return (bits & 0x7fffffff) > 0x7f800000;
}

/** A signalling NaN has the most significant fraction bit clear (ISA §11.3). */
export function isSnan32(bits: number): boolean {
  return isNan32(bits) && (bits & 0x00400000) === 0;
}

export function isNan64(lo: number, hi: number): boolean {
  const h = hi & 0x7fffffff;
  return h > 0x7ff00000 || (h === 0x7ff00000 && lo !== 0);
}

export function isSnan64(lo: number, hi: number): boolean {
  return isNan64(lo, hi) && (hi & 0x00080000) === 0;
}

/** The next binary64 above finite `v` (toward +∞). */
export function nextUp64(v: number): number {
  if (v === 0) return Number.MIN_VALUE;
  scratchF64[0] = v;
  // Adding one to the magnitude (as a 64-bit integer of two words) moves away from zero.
  if (v > 0) {
    scratchI32[0] = (scratchI32[0] + 1) | 0;
    if (scratchI32[0] === 0) scratchI32[1]++;
  } else {
    if (scratchI32[0] === 0) scratchI32[1]--;
    scratchI32[0] = (scratchI32[0] - 1) | 0;
  }
  return scratchF64[0];
}

export function nextDown64(v: number): number {
  return -nextUp64(-v);
}

/** The next binary32 above the finite binary32 `v`. */
export function nextUp32(v: number): number {
  if (v === 0) return F32_MIN_SUBNORMAL;
  scratchF32[0] = v;
  scratchI32[0] += v > 0 ? 1 : -1;
  return scratchF32[0];
}

export function nextDown32(v: number): number {
  return -nextUp32(-v);
}


/** Error of the last `twoSum`/`twoProduct`: the exact result is the returned value plus this. */
export let eftError = 0;

/** Knuth's TwoSum: returns RN(a+b) and leaves a+b-RN(a+b) (exact, barring overflow) in `eftError`. */
export function twoSum(a: number, b: number): number {
  const s = a + b;
  const bb = s - a;
  eftError = (a - (s - bb)) + (b - bb);
  return s;
}

/** Veltkamp's splitter 2^27+1 cuts a binary64 into two 26-bit halves (Dekker 1971). */
const SPLITTER = 134217729;

/**
 * Dekker's TwoProduct: returns RN(a*b) and leaves the exact error in `eftError`; exact when
 * |a|,|b| < 2^995 (no overflow in the split) and |a*b| ≥ 2^-969 (the error does not underflow).
 */
export function twoProduct(a: number, b: number): number {
  const p = a * b;
  let c = SPLITTER * a;
  const ah = c - (c - a);
  const al = a - ah;
  c = SPLITTER * b;
  const bh = c - (c - b);
  const bl = b - bh;
  eftError = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
  return p;
}

// 64-bit integer arithmetic on lo/hi int32 pairs, writing into the register file (no allocation).
// Register i lives in x[2i] (low word) and x[2i+1] (high word).

export function add(x: Int32Array, d: number, al: number, ah: number, bl: number, bh: number): void {
  const lo = (al + bl) | 0;
  const carry = (lo >>> 0) < (al >>> 0) ? 1 : 0;
  x[d] = lo;
  x[d + 1] = (ah + bh + carry) | 0;
}

export function sub(x: Int32Array, d: number, al: number, ah: number, bl: number, bh: number): void {
  const borrow = (al >>> 0) < (bl >>> 0) ? 1 : 0;
  x[d] = (al - bl) | 0;
  x[d + 1] = (ah - bh - borrow) | 0;
}

export function sll(x: Int32Array, d: number, al: number, ah: number, sh: number): void {
  if (sh === 0) { x[d] = al; x[d + 1] = ah; }
  else if (sh < 32) { x[d + 1] = (ah << sh) | (al >>> (32 - sh)); x[d] = al << sh; }
  else { x[d + 1] = al << (sh - 32); x[d] = 0; }
}

export function srl(x: Int32Array, d: number, al: number, ah: number, sh: number): void {
  if (sh === 0) { x[d] = al; x[d + 1] = ah; }
  else if (sh < 32) { x[d] = (al >>> sh) | (ah << (32 - sh)); x[d + 1] = ah >>> sh; }
  else { x[d] = ah >>> (sh - 32); x[d + 1] = 0; }
}

export function sra(x: Int32Array, d: number, al: number, ah: number, sh: number): void {
  if (sh === 0) { x[d] = al; x[d + 1] = ah; }
  else if (sh < 32) { x[d] = (al >>> sh) | (ah << (32 - sh)); x[d + 1] = ah >> sh; }
  else { x[d] = ah >> (sh - 32); x[d + 1] = ah >> 31; }
}

/** Signed a < b on pairs. */
export function lt(al: number, ah: number, bl: number, bh: number): boolean {
  return ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0));
}

/** Unsigned a < b on pairs. */
export function ltu(al: number, ah: number, bl: number, bh: number): boolean {
  const ahu = ah >>> 0;
  const bhu = bh >>> 0;
  return ahu < bhu || (ahu === bhu && (al >>> 0) < (bl >>> 0));
}

/** The high 32 bits of the unsigned 64-bit product of two 32-bit words. */
export function mulhu32(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const t = a0 * b0;
  const m1 = a1 * b0 + (t >>> 16);
  const m2 = a0 * b1 + (m1 % 65536);
  return (a1 * b1 + Math.floor(m1 / 65536) + Math.floor(m2 / 65536)) >>> 0;
}

/** MUL: the low 64 bits of the product. */
export function mul(x: Int32Array, d: number, al: number, ah: number, bl: number, bh: number): void {
  const hi = (mulhu32(al, bl) + Math.imul(ah, bl) + Math.imul(al, bh)) | 0;
  x[d] = Math.imul(al, bl);
  x[d + 1] = hi;
}

const TWO32 = 4294967296;

// Scratch results of the pair helpers below, read at once by the caller: a typed array, since module
// variables holding doubles would box each value written.
const out = new Float64Array(4);
const Q_LO = 0;
const Q_HI = 1;
const R_LO = 2;
const R_HI = 3;

/** The high 64 bits of the unsigned 128-bit product of two pairs, into out[0], out[1] (unsigned words). */
function mulhuPairs(al: number, ah: number, bl: number, bh: number): void {
  const w1 = mulhu32(al, bl) + (Math.imul(al, bh) >>> 0) + (Math.imul(ah, bl) >>> 0);
  const w2 = mulhu32(al, bh) + mulhu32(ah, bl) + (Math.imul(ah, bh) >>> 0) + Math.floor(w1 / TWO32);
  out[0] = w2 >>> 0;
  out[1] = (mulhu32(ah, bh) + Math.floor(w2 / TWO32)) >>> 0;
}

/**
 * Unsigned division of pairs (divisor not zero) into out (quotient and remainder words, unsigned). A divisor under
 * 2^32 divides in exact double steps of at most 48 bits (`Math.floor(t / b)` is exact for t < 2^53); a
 * larger one has a quotient under 2^32, rare enough for BigInt.
 */
function divuPairs(al: number, ah: number, bl: number, bh: number): void {
  const a0 = al >>> 0;
  const a1 = ah >>> 0;
  const b = bl >>> 0;
  if (bh === 0) {
    if (a1 === 0) {
      const q = Math.floor(a0 / b);
      out[Q_LO] = q; out[Q_HI] = 0; out[R_LO] = a0 - q * b; out[R_HI] = 0;
      return;
    }
    const q2 = Math.floor(a1 / b);
    let r = a1 - q2 * b;
    let t = r * 65536 + (a0 >>> 16);
    const q1 = Math.floor(t / b);
    r = t - q1 * b;
    t = r * 65536 + (a0 & 0xffff);
    const q0 = Math.floor(t / b);
    out[Q_LO] = q1 * 65536 + q0; out[Q_HI] = q2; out[R_LO] = t - q0 * b; out[R_HI] = 0;
    return;
  }
  const a = (BigInt(a1) << 32n) | BigInt(a0);
  const d = (BigInt(bh >>> 0) << 32n) | BigInt(b);
  const q = a / d;
  const r = a - q * d;
  out[Q_LO] = Number(q); out[Q_HI] = 0; // q < 2^32, the divisor being at least 2^32
  out[R_LO] = Number(r & 0xffffffffn); out[R_HI] = Number(r >> 32n);
}

/** Writes the pair (lo, hi), negated when `negate`, into x[d], x[d+1]. */
function putPair(x: Int32Array, d: number, lo: number, hi: number, negate: boolean): void {
  if (negate) {
    x[d] = -lo | 0;
    x[d + 1] = (~hi + (lo === 0 ? 1 : 0)) | 0;
  } else {
    x[d] = lo | 0;
    x[d + 1] = hi | 0;
  }
}

/**
 * MULH/MULHSU/MULHU/DIV/DIVU/REM/REMU by funct3 (ISA §7.1–7.2) on pairs, into x[d], x[d+1] (d = 2·rd, not 0).
 * No BigInt on the common paths: the products from 32-bit words, the divisions in exact double steps.
 */
export function mulDiv64(x: Int32Array, d: number, f3: number, al: number, ah: number, bl: number, bh: number): void {
  switch (f3) {
    case 1: case 2: case 3: { // MULH, MULHSU, MULHU: the signed forms subtract what the sign bits added
      mulhuPairs(al, ah, bl, bh);
      let lo = out[0];
      let hi = out[1];
      if (f3 !== 3 && ah < 0) { const borrow = lo < (bl >>> 0) ? 1 : 0; lo = (lo - (bl >>> 0)) >>> 0; hi = (hi - (bh >>> 0) - borrow) >>> 0; }
      if (f3 === 1 && bh < 0) { const borrow = lo < (al >>> 0) ? 1 : 0; lo = (lo - (al >>> 0)) >>> 0; hi = (hi - (ah >>> 0) - borrow) >>> 0; }
      x[d] = lo | 0;
      x[d + 1] = hi | 0;
      return;
    }
    case 5: case 7: // DIVU, REMU
      if (bl === 0 && bh === 0) {
        if (f3 === 5) { x[d] = -1; x[d + 1] = -1; } else { x[d] = al; x[d + 1] = ah; }
        return;
      }
      divuPairs(al, ah, bl, bh);
      if (f3 === 5) putPair(x, d, out[Q_LO], out[Q_HI], false); else putPair(x, d, out[R_LO], out[R_HI], false);
      return;
    default: { // DIV, REM: on magnitudes (-2^63 / -1 comes out as 2^63, which is -2^63 again, remainder 0)
      if (bl === 0 && bh === 0) {
        if (f3 === 4) { x[d] = -1; x[d + 1] = -1; } else { x[d] = al; x[d + 1] = ah; }
        return;
      }
      const an = ah < 0;
      const bn = bh < 0;
      const ml = an ? -al | 0 : al;
      const mh = an ? (~ah + (al === 0 ? 1 : 0)) | 0 : ah;
      const nl = bn ? -bl | 0 : bl;
      const nh = bn ? (~bh + (bl === 0 ? 1 : 0)) | 0 : bh;
      divuPairs(ml, mh, nl, nh);
      if (f3 === 4) putPair(x, d, out[Q_LO], out[Q_HI], an !== bn); else putPair(x, d, out[R_LO], out[R_HI], an);
    }
  }
}

/** The 32-bit M instructions (MULW, DIVW, DIVUW, REMW, REMUW) on int32 words; result sign-extended. */
export function mulDiv32(f3: number, a: number, b: number): number {
  switch (f3) {
    case 0: return Math.imul(a, b);
    case 4: return b === 0 ? -1 : a === -2147483648 && b === -1 ? a : (a / b) | 0;
    case 5: return b === 0 ? -1 : ((a >>> 0) / (b >>> 0)) | 0;
    case 6: return b === 0 ? a : a === -2147483648 && b === -1 ? 0 : (a % b) | 0;
    default: return b === 0 ? a : ((a >>> 0) % (b >>> 0)) | 0;
  }
}

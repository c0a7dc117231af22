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

const MASK64 = (1n << 64n) - 1n;

/** MULH/MULHSU/MULHU/DIV/DIVU/REM/REMU by funct3 (ISA §7.1–7.2), on BigInts: rare enough. */
export function mulDiv64(x64: BigInt64Array, rd: number, f3: number, a: bigint, b: bigint): void {
  const au = a & MASK64;
  const bu = b & MASK64;
  let r: bigint;
  switch (f3) {
    case 1: r = (a * b) >> 64n; break; // MULH
    case 2: r = (a * bu) >> 64n; break; // MULHSU
    case 3: r = (au * bu) >> 64n; break; // MULHU
    case 4: r = b === 0n ? -1n : a === -(1n << 63n) && b === -1n ? a : a / b; break; // DIV
    case 5: r = bu === 0n ? MASK64 : au / bu; break; // DIVU
    case 6: r = b === 0n ? a : a === -(1n << 63n) && b === -1n ? 0n : a % b; break; // REM
    default: r = bu === 0n ? au : au % bu; break; // REMU
  }
  if (rd !== 0) x64[rd] = BigInt.asIntN(64, r);
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

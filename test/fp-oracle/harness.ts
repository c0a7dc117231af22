// Test harness for the F/D semantics: builds the C oracle, encodes instructions, runs them on a bare FpState.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { FpState } from '../../src/isa/fp-state.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Compiles oracle.c with the host compiler; returns the executable, or a reason to skip. */
export function buildOracle(): { path: string } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fp-oracle-'));
  const out = join(dir, 'oracle');
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  try {
    // -frounding-math and -fsignaling-nans keep the compiler from folding or reordering FP operations.
    execFileSync('cc', ['-O1', '-frounding-math', '-fsignaling-nans', '-ffp-contract=off', '-o', out, join(here, 'oracle.c'), '-lm'], { stdio: 'pipe' });
    return { path: out };
  } catch (e) {
    return { skip: `no working C compiler for the FP oracle (${(e as Error).message.split('\n')[0]})` };
  }
}

export interface OracleCase {
  op: string;
  rm: number;
  a: bigint;
  b: bigint;
  c: bigint;
}

export interface OracleResult {
  bits: bigint;
  flags: number;
}

/** Runs all cases through the oracle in one process. */
export function runOracle(path: string, cases: readonly OracleCase[]): OracleResult[] {
  const input = cases.map((k) => `${k.op} ${k.rm} ${k.a.toString(16)} ${k.b.toString(16)} ${k.c.toString(16)}\n`).join('');
  const run = spawnSync(path, [], { input, maxBuffer: 1 << 28, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`oracle failed: ${run.stderr}`);
  const lines = run.stdout.trim().split('\n');
  if (lines.length !== cases.length) throw new Error(`oracle answered ${lines.length} of ${cases.length} cases`);
  return lines.map((line) => {
    const [bits, flags] = line.split(' ');
    return { bits: BigInt('0x' + bits), flags: Number(flags) };
  });
}

export function newState(): FpState {
  const fregs = new ArrayBuffer(32 * 8);
  return { x: new Int32Array(64), f: new Int32Array(fregs), f64: new Float64Array(fregs), frm: 0, fflags: 0 };
}

export const OPCODE_OP_FP = 0x53;
export const OPCODE_MADD = 0x43;

/** An R-type (or R4-type when rs3 is given) instruction word. */
export function encode(opcode: number, funct7: number, rs2: number, rs1: number, rm: number, rd: number, rs3 = 0): number {
  return ((rs3 << 27) | (funct7 << 25) | (rs2 << 20) | (rs1 << 15) | (rm << 12) | (rd << 7) | opcode) >>> 0;
}

const MASK32 = 0xffffffffn;

export function setF64(s: FpState, r: number, bits: bigint): void {
  s.f[2 * r] = Number(bits & MASK32) | 0;
  s.f[2 * r + 1] = Number((bits >> 32n) & MASK32) | 0;
}

/** A binary32 in an FP register, NaN-boxed. */
export function setF32(s: FpState, r: number, bits: bigint): void {
  s.f[2 * r] = Number(bits & MASK32) | 0;
  s.f[2 * r + 1] = -1;
}

export function getF64(s: FpState, r: number): bigint {
  return (BigInt(s.f[2 * r + 1] >>> 0) << 32n) | BigInt(s.f[2 * r] >>> 0);
}

export function setX(s: FpState, r: number, v: bigint): void {
  s.x[2 * r] = Number(v & MASK32) | 0;
  s.x[2 * r + 1] = Number((v >> 32n) & MASK32) | 0;
}

export function getX(s: FpState, r: number): bigint {
  return (BigInt(s.x[2 * r + 1] >>> 0) << 32n) | BigInt(s.x[2 * r] >>> 0);
}

export function hex(v: bigint): string {
  return '0x' + v.toString(16);
}

// ---- operand generators ----

const D = (v: number): bigint => {
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, v);
  return buf.getBigUint64(0);
};
const S = (v: number): bigint => {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, v);
  return BigInt(buf.getUint32(0));
};

const EDGE_NUMBERS = [
  0, 1, 1.5, 2, 2.5, 3, 3.5, 0.5, 0.49999999999999994, 0.1, 1 / 3, Math.PI, 1e10,
  2 ** 23, 2 ** 24, 2 ** 24 + 1, 2 ** 31 - 1, 2 ** 31 - 0.5, 2 ** 31, 2 ** 31 + 0.5, 2 ** 32 - 1, 2 ** 32 - 0.5, 2 ** 32,
  2 ** 52, 2 ** 52 + 0.5, 2 ** 53, 2 ** 53 + 2, 2 ** 62, 2 ** 63 - 1024, 2 ** 63, 2 ** 64 - 2048, 2 ** 64,
  2 ** 127, 2 ** 128 - 2 ** 104, 2 ** 128 - 2 ** 103, 2 ** 128, 1e300, 2 ** 1023, Number.MAX_VALUE,
  2 ** -126, 2 ** -126 - 2 ** -150, 2 ** -127, 2 ** -149, 2 ** -150, 1e-40, 2 ** -1022, 2 ** -1022 - 2 ** -1074,
  2 ** -1023, Number.MIN_VALUE, 2 ** -969, 2 ** -1000, 2 ** 995, 2 ** 996,
];

const DOUBLE_SPECIAL_BITS = [
  0x7ff0000000000000n, 0xfff0000000000000n, 0x7ff8000000000000n, 0xfff8000000000000n, 0x7ff0000000000001n,
  0x7ff4000000000000n, 0x7fffffffffffffffn, 0x000fffffffffffffn, 0x0010000000000001n, 0x7fefffffffffffffn,
];
const SINGLE_SPECIAL_BITS = [
  0x7f800000n, 0xff800000n, 0x7fc00000n, 0xffc00000n, 0x7f800001n, 0x7fa00000n, 0x007fffffn, 0x00800001n,
  0x7f7fffffn, 0x3f800001n, 0x3f7fffffn, 0x4b800001n,
];

const signed = (bits: bigint, width: bigint): fc.Arbitrary<bigint> =>
  fc.boolean().map((neg) => (neg ? bits | (1n << (width - 1n)) : bits));

/** Doubles (as bits): edge values, random patterns, short significands at any exponent, values near 1. */
export function doubleBits(): fc.Arbitrary<bigint> {
  const edges = fc.constantFrom(...EDGE_NUMBERS.map(D), ...DOUBLE_SPECIAL_BITS).chain((b) => signed(b, 64n));
  const shortSignificand = fc.tuple(fc.integer({ min: 1, max: 2 ** 20 }), fc.integer({ min: -1074, max: 1000 }), fc.boolean())
    .map(([m, e, neg]) => D((neg ? -m : m) * 2 ** e))
    .filter((b) => (b & 0x7ff0000000000000n) !== 0x7ff0000000000000n);
  const moderate = fc.tuple(fc.bigInt(0n, (1n << 52n) - 1n), fc.integer({ min: 1023 - 70, max: 1023 + 70 }), fc.boolean())
    .map(([frac, exp, neg]) => (neg ? 1n << 63n : 0n) | (BigInt(exp) << 52n) | frac);
  return fc.oneof(edges, fc.bigInt(0n, (1n << 64n) - 1n), shortSignificand, moderate, moderate);
}

export function singleBits(): fc.Arbitrary<bigint> {
  const edges = fc.constantFrom(...EDGE_NUMBERS.map((v) => S(Math.fround(v))), ...SINGLE_SPECIAL_BITS).chain((b) => signed(b, 32n));
  const shortSignificand = fc.tuple(fc.integer({ min: 1, max: 2 ** 10 }), fc.integer({ min: -149, max: 118 }), fc.boolean())
    .map(([m, e, neg]) => S(Math.fround((neg ? -m : m) * 2 ** e)));
  const moderate = fc.tuple(fc.bigInt(0n, (1n << 23n) - 1n), fc.integer({ min: 127 - 30, max: 127 + 30 }), fc.boolean())
    .map(([frac, exp, neg]) => (neg ? 1n << 31n : 0n) | (BigInt(exp) << 23n) | frac);
  return fc.oneof(edges, fc.bigInt(0n, (1n << 32n) - 1n), shortSignificand, moderate, moderate);
}

/** 64-bit integer patterns: edges, random, and short values at every shift (to reach ties). */
export function intBits(): fc.Arbitrary<bigint> {
  const edges = fc.constantFrom(0n, 1n, (1n << 64n) - 1n, (1n << 63n) - 1n, 1n << 63n, (1n << 24n) + 1n, (1n << 53n) + 1n,
    (1n << 31n) - 1n, 1n << 31n, 0xffffffffn, 0xffffffff80000000n, (1n << 54n) + 2n, 0xffffffffffffff01n);
  const short = fc.tuple(fc.bigInt(1n, (1n << 26n) - 1n), fc.integer({ min: 0, max: 40 }), fc.boolean())
    .map(([m, sh, neg]) => ((neg ? -m : m) << BigInt(sh)) & ((1n << 64n) - 1n));
  return fc.oneof(edges, fc.bigInt(0n, (1n << 64n) - 1n), short, fc.bigInt(0n, 0xffffffffn));
}

/**
 * Operand triples whose product, quotient or sum lands within a few ulps of the smallest normal, where
 * tininess after rounding matters: a is random in [1, 2), b ≈ target / a, c a few subnormal steps.
 */
export function nearMinNormalTriple(fmt: 's' | 'd'): fc.Arbitrary<[bigint, bigint, bigint]> {
  const minNormal = fmt === 'd' ? 2 ** -1022 : 2 ** -126;
  const ulp = fmt === 'd' ? 2 ** -1074 : 2 ** -149;
  const round = fmt === 'd' ? (v: number) => v : Math.fround;
  const bits = fmt === 'd' ? D : S;
  return fc.tuple(fc.double({ min: 1, max: 2, noNaN: true }), fc.integer({ min: -8, max: 8 }), fc.integer({ min: -4, max: 4 }), fc.boolean())
    .map(([x, k, j, neg]) => {
      const a = round(x);
      const target = minNormal + k * ulp;
      const b = round((neg ? -target : target) / a);
      return [bits(a), bits(b), bits(j * ulp)];
    });
}

/**
 * FMA operands whose exact result sits on or next to a halfway point: c is an odd multiple of half
 * an ulp of the rounded product, so the product's low part alone decides the rounding.
 */
export function fmaHalfwayTriple(fmt: 's' | 'd'): fc.Arbitrary<[bigint, bigint, bigint]> {
  const p = fmt === 'd' ? 53 : 24;
  const round = fmt === 'd' ? (v: number) => v : Math.fround;
  const bits = fmt === 'd' ? D : S;
  return fc.tuple(fc.double({ min: 1, max: 2, noNaN: true }), fc.double({ min: 1, max: 2, noNaN: true }), fc.integer({ min: -7, max: 7 }), fc.boolean())
    .map(([x, y, k, neg]) => {
      const a = round(x);
      const b = round(neg ? -y : y);
      const product = round(a * b);
      const halfUlp = 2 ** (Math.floor(Math.log2(Math.abs(product))) - p);
      return [bits(a), bits(b), bits((2 * k + 1) * halfUlp)];
    });
}

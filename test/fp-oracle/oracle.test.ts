// F/D instructions compared bit for bit, flags included, with the host's IEEE 754 hardware (oracle.c).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { executeFp } from '../../src/isa/fp/execute.js';
import {
  buildOracle, doubleBits, encode, fmaHalfwayTriple, getF64, getX, hex, intBits, nearMinNormalTriple, newState, OPCODE_MADD, OPCODE_OP_FP, runOracle,
  setF32, setF64, setX, singleBits, type OracleCase, type OracleResult,
} from './harness.js';

const oracle = buildOracle();
const skip = 'skip' in oracle ? oracle.skip : false;
const RM_DYN = 7;
const ROUNDING_MODES = [0, 1, 2, 3, 4];
const CASES_PER_MODE = 1500;
const NV = 16;
const NX = 1;

const F1 = 1, F2 = 2, F3 = 3, FD = 4, X_IN = 5, X_OUT = 6;

/** How an operation is encoded and where its operands and result live. */
interface Shape {
  op: string;
  insn: (rm: number) => number;
  operands: 'ff' | 'f' | 'fff' | 'x';
  /** Operand and result formats: s or d (or x for an integer result). */
  input: 's' | 'd';
  output: 's' | 'd' | 'x';
  /** Negations applied to (a, c) to express this instruction as an oracle fma. */
  negate?: [boolean, boolean];
  oracleOp?: string;
}

const fmtBit = (f: 's' | 'd'): number => (f === 'd' ? 1 : 0);
const opfp = (funct5: number, fmt: 's' | 'd', rs2: number, rd = FD) => (rm: number) => encode(OPCODE_OP_FP, (funct5 << 2) | fmtBit(fmt), rs2, F1, rm, rd);

function arithmeticShapes(fmt: 's' | 'd'): Shape[] {
  const fused = (opcode: number, negate: [boolean, boolean]): Shape => ({
    op: `fma${opcode.toString(16)}.${fmt}`, oracleOp: `fma.${fmt}`, operands: 'fff', input: fmt, output: fmt, negate,
    insn: (rm) => encode(opcode, fmtBit(fmt), F2, F1, rm, FD, F3),
  });
  return [
    { op: `add.${fmt}`, insn: opfp(0x00, fmt, F2), operands: 'ff', input: fmt, output: fmt },
    { op: `sub.${fmt}`, insn: opfp(0x01, fmt, F2), operands: 'ff', input: fmt, output: fmt },
    { op: `mul.${fmt}`, insn: opfp(0x02, fmt, F2), operands: 'ff', input: fmt, output: fmt },
    { op: `div.${fmt}`, insn: opfp(0x03, fmt, F2), operands: 'ff', input: fmt, output: fmt },
    { op: `sqrt.${fmt}`, insn: opfp(0x0b, fmt, 0), operands: 'f', input: fmt, output: fmt },
    fused(OPCODE_MADD, [false, false]),
    fused(0x47, [false, true]),
    fused(0x4b, [true, false]),
    fused(0x4f, [true, true]),
  ];
}

const conversionShapes: Shape[] = [
  { op: 'cvt.s.d', insn: opfp(0x08, 's', 1), operands: 'f', input: 'd', output: 's' },
  { op: 'cvt.d.s', insn: opfp(0x08, 'd', 0), operands: 'f', input: 's', output: 'd' },
  ...(['s', 'd'] as const).flatMap((fmt) => ['w', 'wu', 'l', 'lu'].map((kind, rs2): Shape => ({
    op: `cvt.${fmt}.${kind}`, operands: 'x', input: fmt, output: fmt,
    insn: (rm) => encode(OPCODE_OP_FP, (0x1a << 2) | fmtBit(fmt), rs2, X_IN, rm, FD),
  }))),
];

function sample(shape: Shape, seed: number): OracleCase[] {
  const gen = shape.operands === 'x' ? intBits() : shape.input === 'd' ? doubleBits() : singleBits();
  const independent = fc.tuple(gen, gen, gen);
  const triples = fc.sample(shape.operands === 'x' ? independent : fc.oneof({ arbitrary: independent, weight: 4 },
    { arbitrary: nearMinNormalTriple(shape.input), weight: 1 },
    { arbitrary: fmaHalfwayTriple(shape.input), weight: shape.operands === 'fff' ? 2 : 0 }), { seed, numRuns: CASES_PER_MODE });
  const signBit = shape.input === 'd' ? 1n << 63n : 1n << 31n;
  return ROUNDING_MODES.flatMap((rm) => triples.map(([a, b, c]) => {
    const [negA, negC] = shape.negate ?? [false, false];
    return { op: shape.oracleOp ?? shape.op, rm, a: negA ? a ^ signBit : a, b, c: negC ? c ^ signBit : c };
  }));
}

function isNanBits(bits: bigint, f: 's' | 'd'): boolean {
  return f === 'd' ? (bits & 0x7fffffffffffffffn) > 0x7ff0000000000000n : (bits & 0x7fffffffn) > 0x7f800000n;
}

const CANONICAL = { s: 0xffffffff7fc00000n, d: 0x7ff8000000000000n };

/** Runs one case on the implementation; returns its result bits and flags. */
function execute(shape: Shape, k: OracleCase, index: number): OracleResult {
  const s = newState();
  const [negA, negC] = shape.negate ?? [false, false];
  const signBit = shape.input === 'd' ? 1n << 63n : 1n << 31n;
  const operands = [negA ? k.a ^ signBit : k.a, k.b, negC ? k.c ^ signBit : k.c];
  if (shape.operands === 'x') setX(s, X_IN, operands[0]);
  else operands.forEach((v, i) => (shape.input === 'd' ? setF64 : setF32)(s, F1 + i, v));
  // Half the cases use the dynamic mode from frm, half the static field.
  const dynamic = index % 2 === 1;
  s.frm = dynamic ? k.rm : 0;
  assert.equal(executeFp(s, shape.insn(dynamic ? RM_DYN : k.rm)), true, `${shape.op} rejected`);
  return { bits: shape.output === 'x' ? getX(s, X_OUT) : getF64(s, FD), flags: s.fflags };
}

/** The oracle's answer made RISC-V's: NaN results are the canonical NaN, singles NaN-boxed. */
function expected(shape: Shape, r: OracleResult): OracleResult {
  const f = shape.output as 's' | 'd';
  if (isNanBits(r.bits, f)) return { bits: CANONICAL[f], flags: r.flags };
  return { bits: f === 's' ? r.bits | 0xffffffff00000000n : r.bits, flags: r.flags };
}

function check(shapes: Shape[], seed: number): void {
  const cases = shapes.map((shape, i) => sample(shape, seed + i));
  const answers = runOracle((oracle as { path: string }).path, cases.flat());
  const failures: string[] = [];
  let next = 0;
  shapes.forEach((shape, i) => cases[i].forEach((k, j) => {
    const want = expected(shape, answers[next++]);
    const got = execute(shape, k, j);
    if ((got.bits !== want.bits || got.flags !== want.flags) && failures.length < 12) {
      failures.push(`${shape.op} rm=${k.rm} ${hex(k.a)} ${hex(k.b)} ${hex(k.c)}: got ${hex(got.bits)}/${got.flags}, want ${hex(want.bits)}/${want.flags}`);
    }
  }));
  assert.deepEqual(failures, []);
}

test('binary32 arithmetic and fused multiply-add match the hardware in every rounding mode', { skip }, () => {
  check(arithmeticShapes('s'), 1000);
});

test('binary64 arithmetic and fused multiply-add match the hardware in every rounding mode', { skip }, () => {
  check(arithmeticShapes('d'), 2000);
});

test('conversions between formats and from integers match the hardware', { skip }, () => {
  check(conversionShapes, 3000);
});

/** RISC-V table 11.4: saturated results of FCVT to integer, as 64-bit register patterns. */
const INT_KINDS = [
  { name: 'w', min: -(2n ** 31n), max: 2n ** 31n - 1n, wide: false },
  { name: 'wu', min: 0n, max: 2n ** 32n - 1n, wide: false },
  { name: 'l', min: -(2n ** 63n), max: 2n ** 63n - 1n, wide: true },
  { name: 'lu', min: 0n, max: 2n ** 64n - 1n, wide: true },
];

/**
 * What FCVT to integer type `kind` gives for `r`, the operand rounded to an integral value by the oracle:
 * the value and NX, or the saturated value of table 11.4 and NV alone. The range is checked exactly, in
 * BigInt: as doubles 2^63 − 1 and 2^64 − 1 are 2^63 and 2^64, which are out of range.
 */
function integerResult(kind: (typeof INT_KINDS)[number], r: number, roundedFlags: number): { want: bigint; flags: number } {
  let want: bigint;
  let flags: number;
  if (Number.isNaN(r)) {
    [want, flags] = [kind.max, NV];
  } else if (!Number.isFinite(r)) {
    [want, flags] = [r < 0 ? kind.min : kind.max, NV];
  } else if (BigInt(r) < kind.min || BigInt(r) > kind.max) {
    [want, flags] = [r < 0 ? kind.min : kind.max, NV];
  } else {
    [want, flags] = [BigInt(r), roundedFlags & NX];
  }
  // 32-bit results are sign-extended to the register (ISA §12.5).
  want = kind.wide ? BigInt.asUintN(64, want) : BigInt.asUintN(64, BigInt.asIntN(32, want));
  return { want, flags };
}

/** Runs FCVT.{W,WU,L,LU}.fmt on every case and compares with integerResult of the oracle's rint; returns the failures. */
function checkToInteger(fmt: 's' | 'd', cases: readonly OracleCase[]): string[] {
  const failures: string[] = [];
  const answers = runOracle((oracle as { path: string }).path, cases);
  cases.forEach((k, j) => INT_KINDS.forEach((kind, rs2) => {
    const s = newState();
    (fmt === 'd' ? setF64 : setF32)(s, F1, k.a);
    s.frm = k.rm;
    assert.equal(executeFp(s, encode(OPCODE_OP_FP, (0x18 << 2) | fmtBit(fmt), rs2, F1, j % 2 ? RM_DYN : k.rm, X_OUT)), true);
    const rounded = new DataView(new ArrayBuffer(8));
    rounded.setBigUint64(0, answers[j].bits);
    const { want, flags } = integerResult(kind, rounded.getFloat64(0), answers[j].flags);
    const got = getX(s, X_OUT);
    if ((got !== want || s.fflags !== flags) && failures.length < 12) {
      failures.push(`fcvt.${kind.name}.${fmt} rm=${k.rm} ${hex(k.a)}: got ${hex(got)}/${s.fflags}, want ${hex(want)}/${flags}`);
    }
  }));
  return failures;
}

test('conversions to integers round like the hardware and saturate as table 11.4 says', { skip }, () => {
  const failures: string[] = [];
  for (const fmt of ['s', 'd'] as const) {
    const shape: Shape = { op: `rint.${fmt}`, insn: () => 0, operands: 'f', input: fmt, output: 'd' };
    failures.push(...checkToInteger(fmt, sample(shape, fmt === 's' ? 4000 : 5000)));
  }
  assert.deepEqual(failures, []);
});

/**
 * Every bound of every integer type, approached from both sides in both formats: the bound itself, its
 * neighbouring floats, and the values a half, a quarter and three quarters away, which round onto or over
 * it depending on the mode; NaNs, infinities, zeros, and the negative values above −1 that round to 0 for
 * the unsigned types (NX only) or to −1 (NV).
 */
function boundaryOperands(fmt: 's' | 'd'): bigint[] {
  const view = new DataView(new ArrayBuffer(8));
  const bits = (v: number): bigint => {
    if (fmt === 'd') { view.setFloat64(0, v); return view.getBigUint64(0); }
    view.setFloat32(0, v); return BigInt(view.getUint32(0));
  };
  const neighbours = (v: number): number[] => {
    if (v === 0) return [0];
    // The floats just below and above v in the format (v is a power of two here, or one of its neighbours).
    const ulp = 2 ** (Math.floor(Math.log2(Math.abs(v))) - (fmt === 'd' ? 52 : 23));
    return [v - ulp / 2, v, v + ulp];
  };
  // Kept as a list (a Set of numbers would take -0 for 0); duplicates go once they are bit patterns.
  const values: number[] = [];
  for (const bound of [2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64]) {
    for (const sign of [1, -1]) {
      for (const offset of [0, -1, 1, -0.5, 0.5, -0.25, 0.25, -0.75, 0.75, -1.5, 1.5]) {
        for (const v of neighbours(sign * bound)) values.push(v + offset);
      }
    }
  }
  for (const v of [0, -0, 0.25, 0.5, 0.75, 1, -0.25, -0.5, -0.75, -1, -1.5, -(2 ** -1074), Infinity, -Infinity]) values.push(v);
  const round = fmt === 'd' ? (v: number) => v : Math.fround;
  const out = values.map((v) => bits(round(v)));
  const nans = fmt === 'd'
    ? [0x7ff8000000000000n, 0xfff8000000000000n, 0x7ff0000000000001n, 0xfff4000000000000n]
    : [0x7fc00000n, 0xffc00000n, 0x7f800001n, 0xffa00000n];
  return [...new Set([...out, ...nans])];
}

test('conversions to integers at every bound, in every rounding mode, saturate exactly', { skip }, () => {
  const failures: string[] = [];
  for (const fmt of ['s', 'd'] as const) {
    const cases = ROUNDING_MODES.flatMap((rm) => boundaryOperands(fmt).map((a) => ({ op: `rint.${fmt}`, rm, a, b: 0n, c: 0n })));
    failures.push(...checkToInteger(fmt, cases));
  }
  assert.deepEqual(failures, []);
});

test('min, max and comparisons match IEEE 754-2019 minimumNumber/maximumNumber and the hardware compares', { skip }, () => {
  const shapes: Shape[] = (['s', 'd'] as const).flatMap((fmt) => [
    { op: `min.${fmt}`, insn: () => opfp(0x05, fmt, F2)(0), operands: 'ff', input: fmt, output: fmt },
    { op: `max.${fmt}`, insn: () => opfp(0x05, fmt, F2)(1), operands: 'ff', input: fmt, output: fmt },
    { op: `le.${fmt}`, insn: () => opfp(0x14, fmt, F2, X_OUT)(0), operands: 'ff', input: fmt, output: 'x' },
    { op: `lt.${fmt}`, insn: () => opfp(0x14, fmt, F2, X_OUT)(1), operands: 'ff', input: fmt, output: 'x' },
    { op: `eq.${fmt}`, insn: () => opfp(0x14, fmt, F2, X_OUT)(2), operands: 'ff', input: fmt, output: 'x' },
  ] satisfies Shape[]);
  const failures: string[] = [];
  const cases = shapes.map((shape, i) => sample(shape, 6000 + i).filter((k) => k.rm === 0));
  const answers = runOracle((oracle as { path: string }).path, cases.flat());
  let next = 0;
  shapes.forEach((shape, i) => cases[i].forEach((k, j) => {
    const answer = answers[next++];
    const want = shape.output === 'x' ? answer : expected(shape, answer);
    const got = execute(shape, k, j);
    if ((got.bits !== want.bits || got.flags !== want.flags) && failures.length < 12) {
      failures.push(`${shape.op} ${hex(k.a)} ${hex(k.b)}: got ${hex(got.bits)}/${got.flags}, want ${hex(want.bits)}/${want.flags}`);
    }
  }));
  assert.deepEqual(failures, []);
});

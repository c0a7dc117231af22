// Unit tests of the F/D instructions that need no oracle: moves, sign injection, classification, NaN-boxing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FpState } from '../fp-state.js';
import { FFLAG_NV, FFLAG_NX } from '../fp-state.js';
import { executeFp } from './execute.js';

const OP_FP = 0x53;

function state(): FpState {
  const buffer = new ArrayBuffer(32 * 8);
  return { x: new Int32Array(64), f: new Int32Array(buffer), f64: new Float64Array(buffer), frm: 0, fflags: 0 };
}

function opfp(funct5: number, fmt: number, rs2: number, rs1: number, funct3: number, rd: number): number {
  return ((funct5 << 27) | (fmt << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | OP_FP) >>> 0;
}

const S = 0;
const D = 1;
const FSGNJ = 0x04, FADD = 0x00, FCVT_D_S = 0x08, FCMP = 0x14, FCVT_INT = 0x18, FMV_X = 0x1c, FMV_F = 0x1e;

function setSingle(s: FpState, r: number, bits: number): void {
  s.f[2 * r] = bits;
  s.f[2 * r + 1] = -1;
}

function run(s: FpState, insn: number): void {
  assert.equal(executeFp(s, insn), true);
}

test('FMV.X.W sign-extends the low word whatever the boxing; FMV.W.X boxes', () => {
  const s = state();
  s.f[2] = 0x80000001 | 0;
  s.f[3] = 0x12345678; // not a NaN-box: FMV.X.W still moves the low 32 bits (ISA §11.7)
  run(s, opfp(FMV_X, S, 0, 1, 0, 5));
  assert.deepEqual([s.x[10], s.x[11]], [0x80000001 | 0, -1]);
  s.x[12] = 0x3f800000;
  s.x[13] = 0x55555555;
  run(s, opfp(FMV_F, S, 0, 6, 0, 2));
  assert.deepEqual([s.f[4], s.f[5]], [0x3f800000, -1]);
});

test('FMV.X.D and FMV.D.X move all 64 bits, a signalling NaN included, with no flags', () => {
  const s = state();
  s.x[12] = 1;
  s.x[13] = 0x7ff00000;
  run(s, opfp(FMV_F, D, 0, 6, 0, 3));
  assert.deepEqual([s.f[6], s.f[7]], [1, 0x7ff00000]);
  run(s, opfp(FMV_X, D, 0, 3, 0, 7));
  assert.deepEqual([s.x[14], s.x[15]], [1, 0x7ff00000]);
  assert.equal(s.fflags, 0);
});

test('no instruction writes x0', () => {
  const s = state();
  s.f64[1] = 1.5;
  s.f64[2] = 1.5;
  for (const insn of [opfp(FMV_X, D, 0, 1, 0, 0), opfp(FMV_X, D, 0, 1, 1, 0), opfp(FCMP, D, 2, 1, 2, 0), opfp(FCVT_INT, D, 0, 1, 1, 0)]) {
    run(s, insn);
    assert.deepEqual([s.x[0], s.x[1]], [0, 0]);
  }
});

test('sign injection takes the sign from rs2 (J), its inverse (JN) or the xor (JX), and never raises flags', () => {
  const s = state();
  s.f64[1] = -2.5;
  s.f64[2] = -1;
  run(s, opfp(FSGNJ, D, 2, 1, 0, 3));
  assert.equal(s.f64[3], -2.5);
  run(s, opfp(FSGNJ, D, 2, 1, 1, 3));
  assert.equal(s.f64[3], 2.5);
  run(s, opfp(FSGNJ, D, 2, 1, 2, 3));
  assert.equal(s.f64[3], 2.5);
  setSingle(s, 4, 0x7f800001); // a signalling NaN keeps its payload through FSGNJ
  setSingle(s, 5, 0x80000000 | 0);
  run(s, opfp(FSGNJ, S, 5, 4, 0, 6));
  assert.deepEqual([s.f[12], s.f[13]], [0xff800001 | 0, -1]);
  assert.equal(s.fflags, 0);
});

test('an improperly NaN-boxed single reads as the canonical NaN (ISA §12.2)', () => {
  const s = state();
  s.f[2] = 0x3f800000;
  s.f[3] = 0; // 1.0f without the box
  setSingle(s, 2, 0x80000000 | 0);
  run(s, opfp(FSGNJ, S, 2, 1, 0, 3)); // magnitude of the canonical NaN, sign of -0
  assert.deepEqual([s.f[6], s.f[7]], [0xffc00000 | 0, -1]);
  run(s, opfp(FMV_X, S, 0, 1, 1, 5)); // FCLASS: quiet NaN
  assert.equal(s.x[10], 1 << 9);
  run(s, opfp(FADD, S, 1, 1, 0, 4));
  assert.deepEqual([s.f[8], s.f[9]], [0x7fc00000, -1]);
  run(s, opfp(FCVT_D_S, D, 0, 1, 0, 4));
  assert.deepEqual([s.f[8], s.f[9]], [0, 0x7ff80000]);
  assert.equal(s.fflags, 0, 'a canonical NaN is quiet');
});

test('FCLASS sets exactly one bit for each class (ISA table 11.5)', () => {
  const singles: [number, number][] = [
    [0xff800000, 0], [0xbf800000, 1], [0x807fffff, 2], [0x80000000, 3], [0, 4], [1, 5], [0x3f800000, 6],
    [0x7f800000, 7], [0x7f800001, 8], [0x7fc00000, 9], [0xffc00001, 9],
  ];
  const s = state();
  for (const [bits, bit] of singles) {
    setSingle(s, 1, bits | 0);
    run(s, opfp(FMV_X, S, 0, 1, 1, 5));
    assert.deepEqual([s.x[10], s.x[11]], [1 << bit, 0], bits.toString(16));
  }
  const doubles: [number, number, number][] = [
    [0xfff00000, 0, 0], [0xbff00000, 0, 1], [0x800fffff, -1, 2], [0x80000000, 0, 3], [0, 0, 4], [0, 1, 5],
    [0x00100000, 0, 6], [0x7ff00000, 0, 7], [0x7ff00000, 1, 8], [0x7ff80000, 0, 9],
  ];
  for (const [hi, lo, bit] of doubles) {
    s.f[2] = lo;
    s.f[3] = hi | 0;
    run(s, opfp(FMV_X, D, 0, 1, 1, 5));
    assert.equal(s.x[10], 1 << bit, `${hi.toString(16)}:${lo}`);
  }
});

test('flags accrue: an instruction ORs into fflags and never clears it', () => {
  const s = state();
  s.fflags = FFLAG_NV;
  s.f64[1] = 1;
  s.f64[2] = 3;
  run(s, opfp(0x03, D, 2, 1, 0, 3));
  assert.equal(s.fflags, FFLAG_NV | FFLAG_NX);
  run(s, opfp(FADD, D, 2, 1, 0, 3));
  assert.equal(s.fflags, FFLAG_NV | FFLAG_NX);
});

test('results of arithmetic on NaNs are canonical, NV only for a signalling input', () => {
  const s = state();
  s.f[2] = 5;
  s.f[3] = 0xfff80000 | 0; // a negative quiet NaN with payload
  s.f64[2] = 1;
  run(s, opfp(FADD, D, 2, 1, 0, 3));
  assert.deepEqual([s.f[6], s.f[7], s.fflags], [0, 0x7ff80000, 0]);
  s.f[3] = 0x7ff00000; // signalling
  run(s, opfp(FADD, D, 2, 1, 0, 3));
  assert.deepEqual([s.f[6], s.f[7], s.fflags], [0, 0x7ff80000, FFLAG_NV]);
});

test('∞·0 in a fused multiply-add is invalid even when the addend is a quiet NaN (ISA §11.6)', () => {
  const s = state();
  s.f64[1] = Infinity;
  s.f64[2] = 0;
  s.f[6] = 0;
  s.f[7] = 0x7ff80000; // quiet NaN addend
  const fmaddD = ((3 << 27) | (D << 25) | (2 << 20) | (1 << 15) | (0 << 12) | (4 << 7) | 0x43) >>> 0;
  run(s, fmaddD);
  assert.deepEqual([s.f[8], s.f[9], s.fflags], [0, 0x7ff80000, FFLAG_NV]);
  s.fflags = 0;
  s.f64[2] = 1; // ∞·1 + qNaN: just the NaN, no flag
  run(s, fmaddD);
  assert.deepEqual([s.f[8], s.f[9], s.fflags], [0, 0x7ff80000, 0]);
});

test('FCVT.W.S of an improperly boxed single converts the canonical NaN: 2^31 − 1 and NV', () => {
  const s = state();
  s.f[2] = 0x3f800000;
  s.f[3] = 0;
  run(s, opfp(FCVT_INT, S, 0, 1, 1, 5));
  assert.deepEqual([s.x[10], s.x[11], s.fflags], [0x7fffffff, 0, FFLAG_NV]);
});

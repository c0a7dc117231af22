// RV64IM register-register and register-immediate instructions against BigInt semantics (ISA ch. 2, 4, 7).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BareMachine, RAM_BASE } from '../helpers/bare-machine.js';

const MIN64 = -(1n << 63n);
const s64 = (v: bigint): bigint => BigInt.asIntN(64, v);
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const s32 = (v: bigint): bigint => BigInt.asIntN(32, v);
const u32 = (v: bigint): bigint => BigInt.asUintN(32, v);

// Encodings written out from the base formats (ISA §2.2), independent of the code under test.
const rType = (op: number, f3: number, f7: number, rd: number, rs1: number, rs2: number): number =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const iType = (op: number, f3: number, rd: number, rs1: number, imm: number): number =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;

const OP = 0x33;
const OP_32 = 0x3b;
const OP_IMM = 0x13;
const OP_IMM_32 = 0x1b;

function divS(a: bigint, b: bigint, min: bigint): bigint {
  if (b === 0n) return -1n;
  if (a === min && b === -1n) return a;
  return a / b; // BigInt division truncates toward zero, as DIV does
}
function remS(a: bigint, b: bigint, min: bigint): bigint {
  if (b === 0n) return a;
  if (a === min && b === -1n) return 0n;
  return a % b;
}

/** name, funct3, funct7, semantics on signed 64-bit operands returning the value for rd. */
const R64: [string, number, number, (a: bigint, b: bigint) => bigint][] = [
  ['add', 0, 0x00, (a, b) => a + b],
  ['sub', 0, 0x20, (a, b) => a - b],
  ['sll', 1, 0x00, (a, b) => a << (u64(b) & 63n)],
  ['slt', 2, 0x00, (a, b) => (a < b ? 1n : 0n)],
  ['sltu', 3, 0x00, (a, b) => (u64(a) < u64(b) ? 1n : 0n)],
  ['xor', 4, 0x00, (a, b) => a ^ b],
  ['srl', 5, 0x00, (a, b) => u64(a) >> (u64(b) & 63n)],
  ['sra', 5, 0x20, (a, b) => a >> (u64(b) & 63n)],
  ['or', 6, 0x00, (a, b) => a | b],
  ['and', 7, 0x00, (a, b) => a & b],
  ['mul', 0, 0x01, (a, b) => a * b],
  ['mulh', 1, 0x01, (a, b) => (a * b) >> 64n],
  ['mulhsu', 2, 0x01, (a, b) => (a * u64(b)) >> 64n],
  ['mulhu', 3, 0x01, (a, b) => (u64(a) * u64(b)) >> 64n],
  ['div', 4, 0x01, (a, b) => divS(a, b, MIN64)],
  ['divu', 5, 0x01, (a, b) => (b === 0n ? -1n : u64(a) / u64(b))],
  ['rem', 6, 0x01, (a, b) => remS(a, b, MIN64)],
  ['remu', 7, 0x01, (a, b) => (b === 0n ? a : u64(a) % u64(b))],
];

/** The W forms compute on the low 32 bits and sign-extend the 32-bit result (ISA §4.2). */
const R32: [string, number, number, (a: bigint, b: bigint) => bigint][] = [
  ['addw', 0, 0x00, (a, b) => a + b],
  ['subw', 0, 0x20, (a, b) => a - b],
  ['sllw', 1, 0x00, (a, b) => a << (b & 31n)],
  ['srlw', 5, 0x00, (a, b) => u32(a) >> (b & 31n)],
  ['sraw', 5, 0x20, (a, b) => s32(a) >> (b & 31n)],
  ['mulw', 0, 0x01, (a, b) => a * b],
  ['divw', 4, 0x01, (a, b) => divS(s32(a), s32(b), -(1n << 31n))],
  ['divuw', 5, 0x01, (a, b) => (u32(b) === 0n ? -1n : u32(a) / u32(b))],
  ['remw', 6, 0x01, (a, b) => remS(s32(a), s32(b), -(1n << 31n))],
  ['remuw', 7, 0x01, (a, b) => (u32(b) === 0n ? u32(a) : u32(a) % u32(b))],
];

const EDGES = [0n, 1n, -1n, 2n, MIN64, -MIN64 - 1n, 0x7fffffffn, -0x80000000n, 0x80000000n, 0xffffffffn,
  0x100000000n, -0x100000000n, 31n, 32n, 63n, 64n];
const word64 = fc.oneof(
  fc.bigInt({ min: MIN64, max: -MIN64 - 1n }),
  fc.constantFrom(...EDGES),
  fc.integer({ min: -4096, max: 4096 }).map(BigInt),
);

const machine = new BareMachine(new Uint8Array(0));
const hart = machine.harts[0];

/** Executes one instruction with x5 = a, x6 = b and returns x7. */
function exec(insn: number, a: bigint, b: bigint, rd = 7): bigint {
  hart.x64[5] = a;
  hart.x64[6] = b;
  hart.x64[7] = 0x5a5a5a5an;
  hart.execute(insn | 0, RAM_BASE, 4);
  hart.x64[0] = 0n;
  assert.equal(hart.pc, RAM_BASE + 4);
  return hart.x64[rd];
}

for (const [name, f3, f7, semantics] of R64) {
  test(`${name}: random and edge operands match BigInt semantics`, () => {
    fc.assert(fc.property(word64, word64, (a, b) => {
      assert.equal(exec(rType(OP, f3, f7, 7, 5, 6), a, b), s64(semantics(a, b)), `${name} ${a} ${b}`);
    }), { numRuns: 300 });
  });
}

for (const [name, f3, f7, semantics] of R32) {
  test(`${name}: 32-bit result sign-extended to 64 bits`, () => {
    fc.assert(fc.property(word64, word64, (a, b) => {
      assert.equal(exec(rType(OP_32, f3, f7, 7, 5, 6), a, b), s32(semantics(a, b)), `${name} ${a} ${b}`);
    }), { numRuns: 300 });
  });
}

const imm12 = fc.oneof(fc.integer({ min: -2048, max: 2047 }), fc.constantFrom(-2048, -1, 0, 1, 2047));
const I64: [string, number, (a: bigint, i: bigint) => bigint][] = [
  ['addi', 0, (a, i) => a + i],
  ['slti', 2, (a, i) => (a < i ? 1n : 0n)],
  ['sltiu', 3, (a, i) => (u64(a) < u64(i) ? 1n : 0n)], // the immediate is sign-extended, then compared unsigned
  ['xori', 4, (a, i) => a ^ i],
  ['ori', 6, (a, i) => a | i],
  ['andi', 7, (a, i) => a & i],
];
for (const [name, f3, semantics] of I64) {
  test(`${name}: sign-extended 12-bit immediate`, () => {
    fc.assert(fc.property(word64, imm12, (a, imm) => {
      assert.equal(exec(iType(OP_IMM, f3, 7, 5, imm), a, 0n), s64(semantics(a, BigInt(imm))), `${name} ${a} ${imm}`);
    }), { numRuns: 300 });
  });
}

test('addiw: 32-bit sum sign-extended', () => {
  fc.assert(fc.property(word64, imm12, (a, imm) => {
    assert.equal(exec(iType(OP_IMM_32, 0, 7, 5, imm), a, 0n), s32(a + BigInt(imm)));
  }), { numRuns: 300 });
});

test('slli/srli/srai: every shift amount 0..63', () => {
  fc.assert(fc.property(word64, (a) => {
    for (let sh = 0; sh < 64; sh++) {
      const s = BigInt(sh);
      assert.equal(exec(iType(OP_IMM, 1, 7, 5, sh), a, 0n), s64(a << s), `slli ${a} ${sh}`);
      assert.equal(exec(iType(OP_IMM, 5, 7, 5, sh), a, 0n), s64(u64(a) >> s), `srli ${a} ${sh}`);
      assert.equal(exec(iType(OP_IMM, 5, 7, 5, 0x400 | sh), a, 0n), s64(a >> s), `srai ${a} ${sh}`);
    }
  }), { numRuns: 40 });
});

test('slliw/srliw/sraiw: every shift amount 0..31, result sign-extended', () => {
  fc.assert(fc.property(word64, (a) => {
    for (let sh = 0; sh < 32; sh++) {
      const s = BigInt(sh);
      assert.equal(exec(iType(OP_IMM_32, 1, 7, 5, sh), a, 0n), s32(a << s), `slliw ${a} ${sh}`);
      assert.equal(exec(iType(OP_IMM_32, 5, 7, 5, sh), a, 0n), s32(u32(a) >> s), `srliw ${a} ${sh}`);
      assert.equal(exec(iType(OP_IMM_32, 5, 7, 5, 0x400 | sh), a, 0n), s32(s32(a) >> s), `sraiw ${a} ${sh}`);
    }
  }), { numRuns: 40 });
});

test('shift amounts 0, 31, 32 and 63 from a register (only the low 6 bits count)', () => {
  const a = -0x123456789abcdefn;
  for (const sh of [0n, 31n, 32n, 63n, 64n + 31n, -1n]) {
    const s = u64(sh) & 63n;
    assert.equal(exec(rType(OP, 1, 0, 7, 5, 6), a, sh), s64(a << s));
    assert.equal(exec(rType(OP, 5, 0, 7, 5, 6), a, sh), s64(u64(a) >> s));
    assert.equal(exec(rType(OP, 5, 0x20, 7, 5, 6), a, sh), a >> s);
  }
});

test('division edge cases: by zero and the one overflow (ISA §7.2 table 7.1)', () => {
  const div = (f3: number, a: bigint, b: bigint): bigint => exec(rType(OP, f3, 1, 7, 5, 6), a, b);
  assert.equal(div(4, 7n, 0n), -1n);
  assert.equal(div(5, 7n, 0n), -1n);
  assert.equal(div(6, 7n, 0n), 7n);
  assert.equal(div(7, -7n, 0n), -7n);
  assert.equal(div(4, MIN64, -1n), MIN64);
  assert.equal(div(6, MIN64, -1n), 0n);
  const divw = (f3: number, a: bigint, b: bigint): bigint => exec(rType(OP_32, f3, 1, 7, 5, 6), a, b);
  assert.equal(divw(4, -0x80000000n, -1n), -0x80000000n);
  assert.equal(divw(6, -0x80000000n, -1n), 0n);
  assert.equal(divw(5, 5n, 0x100000000n), -1n, 'divuw by a divisor whose low word is 0');
  assert.equal(divw(7, 0x1_8000_0000n, 0n), -0x80000000n, 'remuw by 0 gives the sign-extended low word');
});

test('rd may equal both sources', () => {
  hart.x64[5] = 40n;
  hart.execute(rType(OP, 0, 0, 5, 5, 5) | 0, RAM_BASE, 4);
  assert.equal(hart.x64[5], 80n);
});

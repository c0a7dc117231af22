// RV64I control flow, upper immediates, loads and stores (every width), misaligned and page-crossing
// accesses, FENCE.I with self-modifying code, and x0 — each program records values the test checks.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runAsm } from '../helpers/bare-machine.js';

/** Program skeleton: `rec reg` appends a register to `results`; the body ends with `pass`. */
function recording(body: string): string {
  return `
.option norvc
.macro rec reg
  sd \\reg, 0(s10)
  addi s10, s10, 8
.endm
.globl _start
_start:
  la s10, results
${body}
.data
.align 12
results: .zero 4096
data: .zero 8192
`;
}

let symbols: ReadonlyMap<string, number> = new Map();

function run(t: Parameters<typeof runAsm>[0], body: string): bigint[] | undefined {
  const r = runAsm(t, recording(body));
  if (!r) return undefined;
  symbols = r.program.symbols;
  assert.equal(r.exitCode, 0);
  const start = r.program.symbols.get('results')!;
  const end = Number(r.machine.reg(26));
  const out: bigint[] = [];
  for (let a = start; a < end; a += 8) out.push(BigInt.asIntN(64, r.machine.read64(a)));
  return out;
}

test('LUI and AUIPC sign-extend their 32-bit result, including negative immediates', (t) => {
  const got = run(t, `
  lui a0, 0x80000
  rec a0
  lui a0, 0xfffff
  rec a0
  lui a0, 0x7ffff
  rec a0
here:
  auipc a0, 0x80000
  rec a0
  auipc a0, 0xfffff
  rec a0
  auipc a0, 0
  rec a0
  pass
`);
  if (!got) return;
  assert.equal(got[0], -0x80000000n);
  assert.equal(got[1], -0x1000n);
  assert.equal(got[2], 0x7ffff000n);
  const auipc = BigInt(symbols.get('here')!);
  assert.equal(got[3], auipc - 0x80000000n, 'AUIPC adds a sign-extended negative offset');
  assert.equal(got[4], auipc + 12n - 0x1000n);
  assert.equal(got[5], auipc + 24n);
});

test('branches: taken and not taken, signed and unsigned comparisons', (t) => {
  // For each pair (a, b) record a bit per branch: 1 if taken.
  const pairs: [bigint, bigint][] = [[0n, 0n], [1n, 2n], [2n, 1n], [-1n, 1n], [1n, -1n], [-2n, -1n],
    [-(1n << 63n), (1n << 63n) - 1n], [0x100000000n, 0xffffffffn], [-0x100000000n, 0n]];
  const branches = ['beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu'];
  let body = '';
  for (const [a, b] of pairs) {
    body += `  li a0, ${a}\n  li a1, ${b}\n  li a2, 0\n`;
    branches.forEach((br, k) => {
      body += `  ${br} a0, a1, 1f\n  j 2f\n1: ori a2, a2, ${1 << k}\n2:\n`;
    });
    body += '  rec a2\n';
  }
  const got = run(t, body + '  pass\n');
  if (!got) return;
  const u = (v: bigint): bigint => BigInt.asUintN(64, v);
  pairs.forEach(([a, b], i) => {
    const expected = [a === b, a !== b, a < b, a >= b, u(a) < u(b), u(a) >= u(b)]
      .reduce((acc, taken, k) => acc | (taken ? 1n << BigInt(k) : 0n), 0n);
    assert.equal(got[i], expected, `branches on ${a}, ${b}`);
  });
});

test('backward branches and JAL: link is pc + 4, targets relative', (t) => {
  const got = run(t, `
  li a0, 5
  li a1, 0
loop:
  addi a1, a1, 3
  addi a0, a0, -1
  bnez a0, loop
  rec a1
  jal ra, target
back:
  rec a1
  pass
target:
  rec ra
  la t0, back
  rec t0
  li a1, 99
  jr ra
`);
  if (!got) return;
  assert.equal(got[0], 15n);
  assert.equal(got[1], got[2], 'JAL links the address of the next instruction');
  assert.equal(got[3], 99n);
});

test('JALR: target is (rs1 + imm) with bit 0 cleared; rd may equal rs1', (t) => {
  const got = run(t, `
  la t0, land_a
  addi t0, t0, 1
  jalr ra, 0(t0)
  fail 1
land_a:
  li a0, 1
  rec a0
  la t0, land_b
  addi t0, t0, -1
  jalr ra, 1(t0)
  fail 2
land_b:
  li a0, 2
  rec a0
  la t0, land_c
  addi t0, t0, -3
  jalr t0, 3(t0)
ret_c:
  fail 3
land_c:
  li a0, 3
  rec a0
  rec t0
  la t1, ret_c
  rec t1
  pass
`);
  if (!got) return;
  assert.deepEqual(got.slice(0, 3), [1n, 2n, 3n]);
  assert.equal(got[3], got[4], 'rd = rs1: the link value wins, the target used the old rs1');
});

test('loads of every width sign- or zero-extend; stores write exactly their width', (t) => {
  const got = run(t, `
  la t0, data
  li t1, 0x8877665544332211
  sd t1, 0(t0)
  li t1, 0xf0e0d0c0b0a09080
  sd t1, 8(t0)
  lb a0, 8(t0)
  rec a0
  lbu a0, 8(t0)
  rec a0
  lh a0, 8(t0)
  rec a0
  lhu a0, 8(t0)
  rec a0
  lw a0, 12(t0)
  rec a0
  lwu a0, 12(t0)
  rec a0
  ld a0, 8(t0)
  rec a0
  lb a0, 0(t0)
  rec a0
  lw a0, 0(t0)
  rec a0
  li t1, -1
  sb t1, 16(t0)
  sh t1, 18(t0)
  sw t1, 20(t0)
  ld a0, 16(t0)
  rec a0
  sd zero, 24(t0)
  sb t1, 25(t0)
  ld a0, 24(t0)
  rec a0
  sh t1, 29(t0)
  ld a0, 24(t0)
  rec a0
  pass
`);
  if (!got) return;
  assert.deepEqual(got.map((v) => BigInt.asUintN(64, v).toString(16)), [
    'ffffffffffffff80', '80', 'ffffffffffff9080', '9080', 'fffffffff0e0d0c0', 'f0e0d0c0', 'f0e0d0c0b0a09080',
    '11', '44332211', 'ffffffffffff00ff', 'ff00', 'ffff000000ff00',
  ]);
});

test('misaligned loads and stores of every width, within a page and across a page boundary', (t) => {
  const got = run(t, `
  la t0, data
  li t1, 0x0807060504030201
  li t2, 0x100f0e0d0c0b0a09
  sd t1, 0(t0)
  sd t2, 8(t0)
  lh a0, 1(t0)
  rec a0
  lw a0, 3(t0)
  rec a0
  ld a0, 5(t0)
  rec a0
  lhu a0, 7(t0)
  rec a0
  lwu a0, 6(t0)
  rec a0
  li t3, 4096
  add t3, t0, t3
  li t1, 0x1122334455667788
  sd t1, -3(t3)
  ld a0, -3(t3)
  rec a0
  lbu a0, -1(t3)
  rec a0
  lbu a0, 4(t3)
  rec a0
  sw t1, -2(t3)
  lw a0, -2(t3)
  rec a0
  sh t1, -1(t3)
  lh a0, -1(t3)
  rec a0
  pass
`);
  if (!got) return;
  assert.deepEqual(got.map((v) => BigInt.asUintN(64, v).toString(16)), [
    '302', '7060504', 'd0c0b0a09080706', '908', 'a090807',
    '1122334455667788', '66', '11', '55667788', '7788',
  ]);
});

test('FENCE.I: a rewritten instruction is executed in its new form', (t) => {
  const got = run(t, `
  la t0, patch
  li a1, 0
  li t1, 0x02a00513   # addi a0, x0, 42
  sw t1, 0(t0)
  fence.i
patch:
  addi a0, x0, 1
  rec a0
  li t1, 0x00700513   # addi a0, x0, 7
  sw t1, 0(t0)
  fence.i
  addi a1, a1, 1
  li t3, 2
  bne a1, t3, patch
  pass
`);
  if (!got) return;
  assert.deepEqual(got, [42n, 7n]);
});

test('writes to x0 are discarded by every kind of instruction', (t) => {
  const got = run(t, `
  la t0, data
  li t1, 5
  sd t1, 0(t0)
  addi x0, x0, 5
  lui x0, 0x12345
  auipc x0, 1
  add x0, t1, t1
  ld x0, 0(t0)
  jal x0, 1f
1:
  csrr x0, mscratch
  amoadd.d x0, t1, (t0)
  rec x0
  ld a0, 0(t0)
  rec a0
  pass
`);
  if (!got) return;
  assert.deepEqual(got, [0n, 10n]);
});

test('a 32-bit instruction that straddles a page boundary executes (fetched in two halves)', (t) => {
  const got = run(t, `
  li a0, 1
  j cross
.balign 4096
.skip 4094
cross:
  addi a0, a0, 41
  rec a0
  pass
`);
  if (!got) return;
  assert.deepEqual(got, [42n]);
  assert.equal(symbols.get('cross')! % 4096, 4094);
});

test('Zicsr: each CSR instruction returns the old value and writes set/clear/replace, immediates too', (t) => {
  const got = run(t, `
  li t0, 0xf0
  csrw mscratch, t0
  li t1, 0x0f
  csrrw a0, mscratch, t1
  rec a0
  csrrs a0, mscratch, t0
  rec a0
  csrrc a0, mscratch, t1
  rec a0
  csrrwi a0, mscratch, 0x1f
  rec a0
  csrrsi a0, mscratch, 0x10
  rec a0
  csrrci a0, mscratch, 0x3
  rec a0
  csrr a0, mscratch
  rec a0
  li a0, 0x55
  csrrw a0, mscratch, a0
  rec a0
  csrr a0, mscratch
  rec a0
  li t0, -1
  csrw mscratch, t0
  csrr a0, mscratch
  rec a0
  pass
`);
  if (!got) return;
  assert.deepEqual(got, [0xf0n, 0x0fn, 0xffn, 0xf0n, 0x1fn, 0x1fn, 0x1cn, 0x1cn, 0x55n, -1n]);
});

test('compressed code runs with 2-byte steps; C.JALR links pc + 2; an illegal RVC traps with its bits in mtval', (t) => {
  const r = runAsm(t, `
.option rvc
.globl _start
_start:
  la t0, trap
  csrw mtvec, t0
  c.li a0, 0
  c.li a1, 10
1: c.addi a0, 3
  c.addi a1, -1
  c.bnez a1, 1b
  la a2, func
  c.jalr a2
after_jalr:
  c.mv a4, ra
  .2byte 0x6101
  c.j done
func:
  c.li a3, 7
  c.jr ra
.balign 4
trap:
  csrr s0, mcause
  csrr s1, mtval
  csrr s2, mepc
  addi s2, s2, 2
  csrw mepc, s2
  mret
done:
  pass
`);
  if (!r) return;
  const m = r.machine;
  assert.equal(m.reg(10), 30n);
  assert.equal(m.reg(13), 7n);
  assert.equal(m.reg(14), BigInt(r.program.symbols.get('after_jalr')!));
  assert.equal(m.reg(8), 2n, 'illegal instruction');
  assert.equal(m.reg(9), 0x6101n, 'mtval = the 16-bit encoding');
});

test('FCVT to a 64-bit integer of exactly 2^63 or 2^64 saturates and raises NV; just below converts exactly', (t) => {
  // A double bound would let these through wrapped: 2^63 − 1 and 2^64 − 1 are 2^63 and 2^64 as doubles.
  const convert = (insn: string) => `
  csrw fflags, zero
  ${insn}
  rec a0
  csrr a0, fflags
  rec a0`;
  const got = run(t, `
  li t0, 0x6000
  csrs mstatus, t0
  li t1, 0x43e0000000000000
  fmv.d.x ft0, t1
  li t1, 0x43f0000000000000
  fmv.d.x ft1, t1
  li t1, 0x43dfffffffffffff
  fmv.d.x ft2, t1
  li t1, 0x5f000000
  fmv.w.x ft3, t1
  li t1, 0x5f800000
  fmv.w.x ft4, t1
  li t1, 0x5f7fffff
  fmv.w.x ft5, t1
${convert('fcvt.l.d a0, ft0, rtz')}
${convert('fcvt.lu.d a0, ft1, rtz')}
${convert('fcvt.l.s a0, ft3, rne')}
${convert('fcvt.lu.s a0, ft4, rup')}
${convert('fcvt.lu.d a0, ft0, rtz')}
${convert('fcvt.l.d a0, ft2, rtz')}
${convert('fcvt.lu.s a0, ft5, rtz')}
  pass
`);
  if (!got) return;
  const NV = 16n;
  assert.deepEqual(got, [
    0x7fffffffffffffffn, NV, // fcvt.l.d 2^63
    -1n, NV, // fcvt.lu.d 2^64
    0x7fffffffffffffffn, NV, // fcvt.l.s 2^63
    -1n, NV, // fcvt.lu.s 2^64
    -0x8000000000000000n, 0n, // fcvt.lu.d 2^63: in range
    0x7ffffffffffffc00n, 0n, // fcvt.l.d of the double below 2^63
    -0x10000000000n, 0n, // fcvt.lu.s of the single below 2^64: 2^64 − 2^40
  ]);
});

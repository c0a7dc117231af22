// The A extension: every AMO on W and D against BigInt semantics, LR/SC success and failure, and
// reservations broken by another hart's store (ISA ch. 8).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BareMachine, RAM_BASE, runAsm } from '../helpers/bare-machine.js';
import { PageTables, PTE_A, PTE_R, PTE_W } from '../helpers/trap-runtime.js';

const s64 = (v: bigint): bigint => BigInt.asIntN(64, v);
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);
const s32 = (v: bigint): bigint => BigInt.asIntN(32, v);
const u32 = (v: bigint): bigint => BigInt.asUintN(32, v);

/** funct5 and semantics (memory value, rs2 value) → new memory value, for signed operands of the width. */
const AMOS: [string, number, (m: bigint, r: bigint, u: (v: bigint) => bigint) => bigint][] = [
  ['amoadd', 0x00, (m, r) => m + r],
  ['amoswap', 0x01, (_m, r) => r],
  ['amoxor', 0x04, (m, r) => m ^ r],
  ['amoor', 0x08, (m, r) => m | r],
  ['amoand', 0x0c, (m, r) => m & r],
  ['amomin', 0x10, (m, r) => (m < r ? m : r)],
  ['amomax', 0x14, (m, r) => (m > r ? m : r)],
  ['amominu', 0x18, (m, r, u) => (u(m) < u(r) ? m : r)],
  ['amomaxu', 0x1c, (m, r, u) => (u(m) > u(r) ? m : r)],
];

/** AMO encoding (ISA §8.4): funct5 | aq | rl | rs2 | rs1 | funct3 | rd | 0x2f. */
const amo = (funct5: number, width: number, rd: number, rs1: number, rs2: number, aqrl = 0): number =>
  ((funct5 << 27) | (aqrl << 25) | (rs2 << 20) | (rs1 << 15) | (width << 12) | (rd << 7) | 0x2f) | 0;

const MIN64 = -(1n << 63n);
const edge64 = fc.oneof(
  fc.bigInt({ min: MIN64, max: -MIN64 - 1n }),
  fc.constantFrom(0n, 1n, -1n, MIN64, -MIN64 - 1n, 0x7fffffffn, -0x80000000n, 0xffffffffn, 0x80000000n),
);

const machine = new BareMachine(new Uint8Array(0));
const hart = machine.harts[0];
const CELL = RAM_BASE + 0x1000;

for (const [name, funct5, semantics] of AMOS) {
  test(`${name}.w and ${name}.d: old value to rd (sign-extended), combined value to memory`, () => {
    fc.assert(fc.property(edge64, edge64, fc.integer({ min: 0, max: 3 }), (mem, reg, aqrl) => {
      // .d
      machine.write64(CELL, mem);
      hart.x64[10] = BigInt(CELL);
      hart.x64[11] = reg;
      hart.execute(amo(funct5, 3, 12, 10, 11, aqrl), RAM_BASE, 4);
      assert.equal(hart.x64[12], s64(mem), `${name}.d rd`);
      assert.equal(machine.read64(CELL), u64(semantics(mem, reg, u64)), `${name}.d memory`);
      // .w: operates on the low word of rs2 and the 32-bit memory word; the upper word is untouched
      machine.write64(CELL, mem);
      hart.execute(amo(funct5, 2, 12, 10, 11, aqrl), RAM_BASE, 4);
      const m32 = s32(mem);
      assert.equal(hart.x64[12], m32, `${name}.w rd`);
      const expected = (u64(mem) & ~0xffffffffn) | u32(semantics(m32, s32(reg), u32));
      assert.equal(machine.read64(CELL), expected, `${name}.w memory`);
    }), { numRuns: 200 });
  });
}

test('AMO with rd = rs2 uses the old rs2 as operand', () => {
  machine.write64(CELL, 5n);
  hart.x64[10] = BigInt(CELL);
  hart.x64[11] = 7n;
  hart.execute(amo(0x00, 3, 11, 10, 11), RAM_BASE, 4);
  assert.equal(hart.x64[11], 5n);
  assert.equal(machine.read64(CELL), 12n);
});

test('LR/SC: success writes and returns 0; a second SC fails; SC without LR fails; values sign-extend', (t) => {
  const r = runAsm(t, `
.globl _start
_start:
  la a0, cell
  li t0, 0x80000001
  sw t0, 0(a0)
  lr.w a1, (a0)
  addi t1, a1, 1
  sc.w a2, t1, (a0)
  sc.w a3, t1, (a0)
  lw a4, 0(a0)
  sc.d a5, t1, (a0)
  lr.d s1, (a0)
  li t2, 0x123456789
  sc.d s2, t2, (a0)
  ld s3, 0(a0)
  pass
.data
.align 6
cell: .dword 0
`);
  if (!r) return;
  const m = r.machine;
  assert.equal(m.reg(11), -0x7fffffffn, 'lr.w sign-extends');
  assert.equal(m.reg(12), 0n, 'first sc.w succeeds');
  assert.equal(m.reg(13), 1n, 'second sc.w fails: the reservation was used up');
  assert.equal(m.reg(14), -0x7ffffffen);
  assert.equal(m.reg(15), 1n, 'sc.d with no reservation fails');
  assert.equal(m.reg(18), 0n);
  assert.equal(m.reg(19), 0x123456789n);
});

test('a failed SC leaves memory unchanged', (t) => {
  const r = runAsm(t, `
.globl _start
_start:
  la a0, cell
  li t0, 11
  sd t0, 0(a0)
  li t1, 22
  sc.d a1, t1, (a0)
  ld a2, 0(a0)
  pass
.data
.align 6
cell: .dword 0
`);
  if (!r) return;
  assert.equal(r.machine.reg(11), 1n);
  assert.equal(r.machine.reg(12), 11n);
});

test('another hart\'s store (or AMO) to the reserved line breaks the reservation; a store elsewhere does not', (t) => {
  // Hart 1 waits for a flag, stores, and raises a second flag; hart 0 holds the reservation meanwhile.
  const r = runAsm(t, `
.globl _start
_start:
  la s0, cell
  la s1, flag
  bnez a0, hart1
  lr.d t0, (s0)
  li t1, 1
  sd t1, 0(s1)
1: ld t1, 8(s1)
  beqz t1, 1b
  sc.d a1, t0, (s0)
  lr.d t0, (s0)
  li t1, 2
  sd t1, 0(s1)
2: ld t1, 8(s1)
  li t2, 2
  bne t1, t2, 2b
  sc.d a2, t0, (s0)
  lr.d t0, (s0)
  li t1, 3
  sd t1, 0(s1)
3: ld t1, 8(s1)
  li t2, 3
  bne t1, t2, 3b
  sc.d a3, t0, (s0)
  pass
hart1:
1: ld t1, 0(s1)
  beqz t1, 1b
  sd zero, 8(s0)
  li t1, 1
  sd t1, 8(s1)
2: ld t1, 0(s1)
  li t2, 2
  bne t1, t2, 2b
  li t3, 1
  amoadd.d zero, t3, (s0)
  li t1, 2
  sd t1, 8(s1)
3: ld t1, 0(s1)
  li t2, 3
  bne t1, t2, 3b
  sd zero, 64(s0)
  li t1, 3
  sd t1, 8(s1)
4: j 4b
.data
.align 6
cell: .zero 128
flag: .zero 16
`, { harts: 2, slice: 7 });
  if (!r) return;
  assert.equal(r.machine.reg(11), 1n, 'store to the same 64-byte granule broke it');
  assert.equal(r.machine.reg(12), 1n, 'AMO broke it');
  assert.equal(r.machine.reg(13), 0n, 'a store to the next line did not');
});

test('AMOs and LR/SC must be naturally aligned; LR.W/D with rs2 != 0 and unknown funct5 are reserved', () => {
  const fresh = new BareMachine(new Uint8Array(0));
  const h = fresh.harts[0];
  /** The exception cause an instruction raises (execute throws after recording it). */
  const causeOf = (insn: number): number => {
    h.pendingCause = -1;
    assert.throws(() => h.execute(insn, RAM_BASE, 4));
    return h.pendingCause;
  };
  h.x64[10] = BigInt(CELL + 4);
  assert.equal(causeOf(amo(0x00, 3, 12, 10, 11)), 6, 'misaligned AMO: store/AMO address misaligned');
  assert.equal(causeOf(amo(0x03, 3, 12, 10, 11)), 6, 'misaligned SC');
  assert.equal(causeOf(amo(0x02, 3, 12, 10, 0)), 4, 'misaligned LR: load address misaligned');
  h.x64[10] = BigInt(CELL);
  assert.equal(causeOf(amo(0x02, 3, 12, 10, 1)), 2, 'LR with rs2 = x1');
  assert.equal(causeOf(amo(0x05, 3, 12, 10, 1)), 2, 'funct5 = 5 is not an AMO');
  assert.equal(causeOf(amo(0x00, 1, 12, 10, 1)), 2, 'funct3 = 1 is not a width');
});

test('the page walker setting a PTE\'s A bit breaks another hart\'s reservation on that PTE', (t) => {
  // Hart 1 holds an LR on a leaf PTE whose A bit is clear; hart 0 then loads through it (as S-mode, by
  // MPRV), so the walker writes A into the PTE. That write is a store like any other (privileged spec
  // §4.3.1: the update must be atomic with respect to other accesses to the PTE), so hart 1's SC must
  // fail: were it to succeed, it would write back the PTE without A and lose the walker's update.
  const VA = 0x1_4000_0000n;
  const r = runAsm(t, `
.globl _start
_start:
  la s1, flag
  la t0, pte_address
  ld s0, 0(t0)
  bnez a0, hart1
1: ld t1, 0(s1)
  beqz t1, 1b
  pmp_allow_all
  la t0, satp_value
  ld t0, 0(t0)
  csrw satp, t0
  sfence.vma
  li t0, 0x1800
  csrc mstatus, t0
  li t0, 0x20800
  csrs mstatus, t0
  li a1, ${VA}
  ld a2, 0(a1)
  li t0, 0x20000
  csrc mstatus, t0
  li t1, 1
  sd t1, 8(s1)
2: ld t1, 16(s1)
  beqz t1, 2b
  ld a3, 24(s1)
  ld a4, 0(s0)
  pass
hart1:
  lr.d t0, (s0)
  li t1, 1
  sd t1, 0(s1)
3: ld t1, 8(s1)
  beqz t1, 3b
  sc.d t2, t0, (s0)
  sd t2, 24(s1)
  li t1, 1
  sd t1, 16(s1)
4: j 4b
.data
.align 6
flag: .zero 64
pte_address: .dword 0
satp_value: .dword 0
`, {
    harts: 2, slice: 5, ramBytes: 16 << 20,
    setup: (m, p) => {
      const tables = new PageTables(m, 3);
      const pte = tables.map(VA, RAM_BASE + (12 << 20), PTE_R | PTE_W);
      m.write64(p.symbols.get('pte_address')!, BigInt(pte));
      m.write64(p.symbols.get('satp_value')!, tables.satp);
      m.write64(RAM_BASE + (12 << 20), 0x5eedn);
    },
  });
  if (!r) return;
  assert.equal(r.exitCode, 0);
  assert.equal(r.machine.reg(12), 0x5eedn, 'the load went through the mapping');
  assert.equal(r.machine.reg(13), 1n, 'the SC failed');
  assert.equal(r.machine.reg(14) & PTE_A, PTE_A, 'the PTE keeps the A bit the walker set');
});

// Synchronous traps and their CSRs, delegation with medeleg, MRET/SRET, CSR access rules (privileged spec ch. 2–4).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { causes, runPrivileged } from '../helpers/trap-runtime.js';

const sym = (r: { program: { symbols: ReadonlyMap<string, number> } }, name: string): bigint =>
  BigInt(r.program.symbols.get(name)!);

test('exceptions in M-mode: mcause, mepc and mtval for each kind', (t) => {
  const r = runPrivileged(t, `
main:
illegal_at:
  .word 0xffffffff
ebreak_at:
  ebreak
ecall_at:
  ecall
  li a1, 0x1000
load_at:
  ld a0, 0(a1)
store_at:
  sd a0, 8(a1)
  la a1, trap_log
amo_at:
  amoadd.w a0, a0, (a1)
  addi a1, a1, 2
amo_misaligned_at:
  amoadd.w a0, a0, (a1)
lr_misaligned_at:
  lr.d a0, (a1)
  li a1, 0x3000
fetch_at:
  jalr ra, 0(a1)
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['2@3', '3@3', '11@3', '5@3', '7@3', '6@3', '4@3', '1@3']);
  const [illegal, brk, ecall, load, store, amo, lr, fetch] = r.log;
  assert.equal(illegal.epc, sym(r, 'illegal_at'));
  assert.equal(illegal.tval, 0xffffffffn, 'mtval holds the illegal instruction');
  assert.equal(brk.epc, sym(r, 'ebreak_at'));
  assert.equal(ecall.epc, sym(r, 'ecall_at'));
  assert.equal(ecall.tval, 0n);
  assert.equal(load.epc, sym(r, 'load_at'));
  assert.equal(load.tval, 0x1000n, 'load access fault: the address');
  assert.equal(store.tval, 0x1008n);
  assert.equal(amo.epc, sym(r, 'amo_misaligned_at'), 'the aligned AMO to RAM did not trap');
  assert.equal(amo.tval, sym(r, 'trap_log') + 2n);
  assert.equal(lr.epc, sym(r, 'lr_misaligned_at'));
  assert.equal(fetch.epc, 0x3000n, 'fetch fault: mepc is the target');
  assert.equal(fetch.tval, 0x3000n);
});

test('illegal encodings: reserved opcode, bad funct fields, shifts with bit 5/6 set in W forms', (t) => {
  const bad = [
    0x00000000, // all zero (defined illegal)
    0x0000007f, // 64-bit instruction prefix space, not implemented
    0x40005013 | (1 << 26), // srai with funct6 = 0b010001 (bad)
    0x0200101b, // slliw with shamt[5] set (reserved on RV64)
    0x4000003b | (3 << 12), // funct7 0x20 with funct3 3 on OP-32
    0x00002063, // branch funct3 = 2
    0x00007003, // load funct3 = 7
    0x00004023, // store funct3 = 4
    0x00001067, // jalr funct3 = 1
    0x1010302f, // lr.d with rs2 = x1 (must be x0)
  ];
  const lines = bad.map((w) => `  .word 0x${(w >>> 0).toString(16)}`).join('\n');
  const r = runPrivileged(t, `
main:
${lines}
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), bad.map(() => '2@3'));
  r.log.forEach((e, k) => assert.equal(e.tval, BigInt(bad[k] >>> 0), `tval of 0x${bad[k].toString(16)}`));
});

test('ECALL cause depends on the mode: 8 from U, 9 from S, 11 from M', (t) => {
  const r = runPrivileged(t, `
main:
  ecall
  enter_mode 1
  ecall
  enter_mode 0
  ecall
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['11@3', '9@3', '8@3']);
  assert.equal((r.log[1].status >> 11n) & 3n, 1n, 'MPP = S');
  assert.equal((r.log[2].status >> 11n) & 3n, 0n, 'MPP = U');
});

test('medeleg sends delegated exceptions from S/U to the S handler, never from M', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, (1 << 2) | (1 << 8) | (1 << 11)
  csrw medeleg, t0
  csrr a2, medeleg
  .word 0
  enter_mode 1
s_illegal:
  .word 0
  to_m
  enter_mode 0
  csrsi sstatus, 0
u_illegal:
  .word 0
  ecall
  .word 0x00000000
  li t0, 0
  pass
`.replace('  csrsi sstatus, 0\n', ''));
  if (!r) return;
  // From M: not delegated. From S: illegal delegated. ECALL from S (9) is not in medeleg.
  // From U: illegal and ECALL (8) delegated; the last illegal after ECALL too.
  assert.deepEqual(causes(r.log).slice(0, 5), ['2@3', '2@1', '9@3', '2@1', '8@1']);
  assert.equal(r.machine.reg(12), BigInt((1 << 2) | (1 << 8)), 'cause 11 (ECALL from M) cannot be delegated');
  const sTrap = r.log[1];
  assert.equal(sTrap.epc, sym(r, 's_illegal'));
  assert.equal(sTrap.status & 0x100n, 0x100n, 'SPP = S');
  const uTrap = r.log[3];
  assert.equal(uTrap.epc, sym(r, 'u_illegal'));
  assert.equal(uTrap.status & 0x100n, 0n, 'SPP = U');
});

test('MRET pops MPIE into MIE, sets MPIE, MPP = U; SRET pops SPIE into SIE, SPP = U', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, MSTATUS_MPIE | MSTATUS_MPP
  csrs mstatus, t0
  csrci mstatus, MSTATUS_MIE
  la t0, 1f
  csrw mepc, t0
  mret
1:
  csrr a0, mstatus
  li t0, MSTATUS_SPIE | MSTATUS_SPP
  csrs mstatus, t0
  csrci mstatus, MSTATUS_SIE
  la t0, 2f
  csrw sepc, t0
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPP_S
  csrs mstatus, t0
  la t0, 3f
  csrw mepc, t0
  mret
3:
  sret
2:
  csrr a1, sstatus
  to_m
  csrr a2, mstatus
  pass
`);
  if (!r) return;
  const a0 = r.machine.reg(10);
  assert.equal(a0 & 0x8n, 0x8n, 'MIE = old MPIE');
  assert.equal(a0 & 0x80n, 0x80n, 'MPIE = 1');
  assert.equal((a0 >> 11n) & 3n, 0n, 'MPP = U after MRET');
  const a1 = r.machine.reg(11);
  assert.equal(a1 & 0x2n, 0x2n, 'SIE = old SPIE');
  assert.equal(a1 & 0x20n, 0x20n, 'SPIE = 1');
  assert.equal(a1 & 0x100n, 0n, 'SPP = U after SRET');
  assert.deepEqual(causes(r.log), ['9@3'], 'SRET returned to S (SPP was S)');
});

test('xRET privilege: MRET outside M, SRET in U, SRET in S with TSR, SFENCE.VMA in U or with TVM are illegal', (t) => {
  const r = runPrivileged(t, `
main:
  enter_mode 1
  mret
  to_m
  enter_mode 0
  sret
  mret
  sfence.vma
  to_m
  li t0, MSTATUS_TSR | MSTATUS_TVM
  csrs mstatus, t0
  enter_mode 1
  sret
  sfence.vma
  csrr a0, satp
  to_m
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['2@3', '9@3', '2@3', '2@3', '2@3', '8@3', '2@3', '2@3', '2@3', '9@3']);
  assert.equal(r.log[0].tval, 0x30200073n);
});

test('CSR access: privilege from the address, read-only CSRs, missing CSRs, counters gated by xcounteren', (t) => {
  const r = runPrivileged(t, `
main:
  csrr a0, mhartid
  csrw mhartid, zero
  csrrs a1, mhartid, zero
  csrrsi a1, mhartid, 0
  csrrsi a1, mhartid, 1
  csrr a1, 0x7c0
  csrr a1, cycle
  csrw cycle, zero
  enter_mode 1
  csrr a2, mstatus
  csrr a2, sstatus
  csrr a2, cycle
  to_m
  li t0, 7
  csrw mcounteren, t0
  enter_mode 1
  csrr a2, cycle
  csrr a2, time
  csrr a2, instret
  to_m
  enter_mode 0
  csrr a3, sstatus
  csrr a3, cycle
  to_m
  csrwi scounteren, 1
  enter_mode 0
  csrr a3, cycle
  csrr a3, time
  to_m
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), [
    '2@3', // csrw mhartid
    '2@3', // csrrsi mhartid, 1 (a write to a read-only CSR)
    '2@3', // 0x7c0 does not exist here
    '2@3', // csrw cycle
    '2@3', // S reads mstatus
    '2@3', // S reads cycle with mcounteren = 0
    '9@3',
    '9@3', // S reads cycle/time/instret once mcounteren allows
    '2@3', // U reads sstatus
    '2@3', // U reads cycle: scounteren = 0
    '8@3',
    '2@3', // U reads time: scounteren allows only cycle
    '8@3',
  ]);
  assert.equal(r.log[0].tval, 0xf1401073n, 'mtval holds the csrw encoding');
});

test('sstatus, sie and sip are views of mstatus, mie and mip restricted to S fields', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, -1
  csrw sstatus, t0
  csrr a0, mstatus
  csrr a1, sstatus
  li t0, 0x222
  csrw mideleg, t0
  li t0, -1
  csrw sie, t0
  csrr a2, mie
  csrw mie, zero
  li t0, 0xaaa
  csrw mie, t0
  csrr a3, sie
  csrw sip, t0
  csrr a4, mip
  csrr a5, misa
  pass
`);
  if (!r) return;
  const mstatus = r.machine.reg(10);
  assert.equal(mstatus & 0x1888n, 0n, 'M fields (MIE, MPIE, MPP) untouched by an sstatus write');
  assert.equal(mstatus & 0xc6122n, 0xc6122n, 'SIE SPIE SPP FS SUM MXR set');
  const sstatus = BigInt.asUintN(64, r.machine.reg(11));
  assert.equal(sstatus >> 63n, 1n, 'SD reflects FS = dirty');
  assert.equal((sstatus >> 32n) & 3n, 2n, 'UXL = 64');
  assert.equal((sstatus >> 34n) & 3n, 0n, 'SXL is not visible in sstatus');
  assert.equal(r.machine.reg(12), 0x222n, 'sie writes only delegated bits');
  assert.equal(r.machine.reg(13), 0x222n, 'sie shows only delegated bits');
  assert.equal(r.machine.reg(14) & 0x2n, 0x2n, 'sip: SSIP writable when delegated');
  const misa = BigInt.asUintN(64, r.machine.reg(15));
  assert.equal(misa >> 62n, 2n, 'MXL = 64');
  for (const ext of 'ACDFIMSU') assert.equal((misa >> BigInt(ext.charCodeAt(0) - 65)) & 1n, 1n, `misa.${ext}`);
});

test('mtvec, stvec, mepc and sepc are WARL: reserved modes and bit 0 are not kept', (t) => {
  const r = runPrivileged(t, `
main:
  la s0, m_trap
  li t0, 0x80001003
  csrw mtvec, t0
  csrr a0, mtvec
  csrw mtvec, s0
  li t0, 0x80001001
  csrw stvec, t0
  csrr a1, stvec
  li t0, 0x80001235
  csrw mepc, t0
  csrr a2, mepc
  csrw sepc, t0
  csrr a3, sepc
  pass
`);
  if (!r) return;
  assert.notEqual(r.machine.reg(10) & 3n, 3n, 'mtvec mode 3 is reserved');
  assert.equal(r.machine.reg(11), 0x80001001n, 'vectored stvec kept');
  assert.equal(r.machine.reg(12), 0x80001234n, 'mepc[0] is always zero');
  assert.equal(r.machine.reg(13), 0x80001234n);
});

test('trigger CSRs exist but offer no trigger: tselect 0, tdata1 type 0, tinfo 1, writes ignored', (t) => {
  const r = runPrivileged(t, `
main:
  csrw tselect, zero
  csrr a0, tselect
  li t0, (2 << 60) | (1 << 6) | (1 << 2)
  csrw tdata1, t0
  csrr a1, tdata1
  csrr a2, tinfo
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), []);
  assert.deepEqual([r.machine.reg(10), r.machine.reg(11), r.machine.reg(12)], [0n, 0n, 1n]);
});

test('mhartid names each hart; time reads the machine clock (the CLINT mtime)', (t) => {
  const r = runPrivileged(t, `
main:
  csrr a1, mhartid
  bnez a1, 2f
1: li t0, CLINT_BASE + 0xbff8
  ld a2, 0(t0)
  csrr a3, time
  bne a2, a3, 1b
  la t0, other
3: ld a4, 0(t0)
  beqz a4, 3b
  pass
2: la t0, other
  addi a1, a1, 100
  sd a1, 0(t0)
4: j 4b
.data
.align 3
other: .dword 0
`, { harts: 2 });
  if (!r) return;
  assert.equal(r.machine.reg(11, 0), 0n);
  assert.equal(r.machine.reg(14, 0), 101n, 'hart 1 read mhartid 1');
  assert.equal(r.machine.reg(12), r.machine.reg(13));
});

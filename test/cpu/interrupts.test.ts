// Interrupts: enables, priority, delegation, vectored mtvec, WFI wake-up (privileged spec §3.1.6.1, §3.1.9, §3.3.3).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { causes, runPrivileged } from '../helpers/trap-runtime.js';

/** Arms the CLINT timer of hart 0 `ticks` from now (mtimecmp = mtime + ticks; CLINT layout). */
const ARM_TIMER = (ticks: number): string => `
  li t1, CLINT_BASE + 0xbff8
  ld t2, 0(t1)
  addi t2, t2, ${ticks}
  li t1, CLINT_BASE + 0x4000
  sd t2, 0(t1)
`;
const MSIP_ON = 'li t1, CLINT_BASE\n  li t2, 1\n  sw t2, 0(t1)';

test('WFI wakes on a pending enabled interrupt even with mstatus.MIE clear, and takes no trap', (t) => {
  const r = runPrivileged(t, `
main:
  ${ARM_TIMER(20)}
  li t0, 0x80
  csrw mie, t0
  wfi
  csrr a0, mip
  andi a0, a0, 0x80
  beqz a0, 1f
  pass
1: fail 1
`);
  if (!r) return;
  assert.equal(r.exitCode, 0);
  assert.deepEqual(causes(r.log), [], 'MIE = 0: the interrupt stays pending, no trap');
});

test('a machine timer interrupt: mcause, mepc after WFI, MIE/MPIE stack, MRET restores MIE', (t) => {
  const r = runPrivileged(t, `
main:
  ${ARM_TIMER(20)}
  li t0, 0x80
  csrw mie, t0
  csrsi mstatus, MSTATUS_MIE
  wfi
after_wfi:
  csrr a0, mstatus
  pass
`);
  if (!r) return;
  assert.equal(r.exitCode, 0);
  assert.deepEqual(causes(r.log), ['irq7@3']);
  const [irq] = r.log;
  assert.equal(irq.epc, BigInt(r.program.symbols.get('after_wfi')!), 'mepc is the instruction after WFI');
  assert.equal(irq.tval, 0n);
  assert.equal(irq.status & 0x8n, 0n, 'MIE cleared in the handler');
  assert.equal(irq.status & 0x80n, 0x80n, 'MPIE holds the old MIE');
  assert.equal((irq.status >> 11n) & 3n, 3n, 'MPP = M');
  assert.equal(r.machine.reg(10) & 0x8n, 0x8n, 'MRET restored MIE');
});

test('interrupts are not taken in M-mode while MIE is clear, and are as soon as it is set', (t) => {
  const r = runPrivileged(t, `
main:
  ${MSIP_ON}
  li t0, 0x8
  csrw mie, t0
  nop
  nop
  la a1, before
  csrsi mstatus, MSTATUS_MIE
before:
  nop
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['irq3@3']);
  assert.equal(r.log[0].epc, BigInt(r.program.symbols.get('before')!));
});

test('priority: MEI > MSI > MTI > SEI > SSI > STI when several are pending together', (t) => {
  const r = runPrivileged(t, `
main:
  ${MSIP_ON}
  ${ARM_TIMER(0)}
  li t0, 0x222
  csrs mip, t0
  li t0, 0x2aa
  csrw mie, t0
1: csrr t0, mip
  andi t0, t0, 0x80
  beqz t0, 1b
  csrsi mstatus, MSTATUS_MIE
  nop
  pass
`);
  if (!r) return;
  // The handler disables each interrupt in mie once taken, so all six arrive in priority order.
  assert.deepEqual(causes(r.log), ['irq3@3', 'irq7@3', 'irq9@3', 'irq1@3', 'irq5@3']);
});

test('vectored mtvec: interrupts jump to base + 4 * cause, exceptions to base', (t) => {
  const r = runPrivileged(t, `
main:
  la t0, vectors
  ori t0, t0, 1
  csrw mtvec, t0
  ${MSIP_ON}
  li t0, 0x8
  csrw mie, t0
  csrsi mstatus, MSTATUS_MIE
  nop
  fail 1
.align 8
vectors:
  j exception
  j wrong_vector
  j wrong_vector
  j software
wrong_vector:
  fail 2
software:
  ebreak
  pass
exception:
  csrr t0, mcause
  li t1, 3
  bne t0, t1, 1f
  li a0, 0x77
  csrr t0, mepc
  addi t0, t0, 4
  csrw mepc, t0
  mret
1: fail 4
`);
  if (!r) return;
  assert.equal(r.exitCode, 0);
  assert.equal(r.machine.reg(10), 0x77n, 'EBREAK went to the base');
});

test('mideleg: a delegated interrupt goes to S when SIE is set, never in M-mode; not delegated ones preempt S', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, 0x2
  csrw mideleg, t0
  li t0, 0x2 | 0x8
  csrw mie, t0
  csrsi mip, 0x2
  csrsi mstatus, MSTATUS_MIE
  nop
  nop
  enter_mode 1
  nop
  csrsi sstatus, MSTATUS_SIE
s_enabled:
  nop
  csrci sstatus, MSTATUS_SIE
  ${MSIP_ON}
  nop
  nop
  to_m
  pass
`);
  if (!r) return;
  // SSIP is pending in M (not taken: delegated), then in S with SIE=0 (not taken), then SIE=1: taken by S.
  // MSIP is not delegated: it preempts S even though mstatus.MIE = 0 there (below M, M interrupts are on).
  assert.deepEqual(causes(r.log), ['irq1@1', 'irq3@3', '9@3']);
  assert.equal(r.log[0].epc, BigInt(r.program.symbols.get('s_enabled')!));
  assert.equal(r.log[0].status & 0x100n, 0x100n, 'SPP = S');
  assert.equal(r.log[0].status & 0x20n, 0x20n, 'SPIE = old SIE');
  assert.equal(r.log[0].status & 0x2n, 0n, 'SIE cleared');
});

test('in U-mode a delegated interrupt is taken even with sstatus.SIE clear', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, 0x2
  csrw mideleg, t0
  csrw mie, t0
  csrsi mip, 0x2
  enter_mode 0
in_user:
  nop
  to_m
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['irq1@1', '8@3']);
  assert.equal(r.log[0].epc, BigInt(r.program.symbols.get('in_user')!));
  assert.equal(r.log[0].status & 0x100n, 0n, 'SPP = U');
});

test('WFI is illegal in U-mode and in S-mode with mstatus.TW', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, 0x80
  csrw mie, t0
  ${ARM_TIMER(1000)}
  li t0, MSTATUS_TW
  csrs mstatus, t0
  enter_mode 1
  wfi
  to_m
  enter_mode 0
  wfi
  to_m
  pass
`);
  if (!r) return;
  assert.deepEqual(causes(r.log), ['2@3', '9@3', '2@3', '8@3']);
  assert.equal(r.log[0].tval, 0x10500073n, 'mtval holds the WFI encoding');
});

test('a timer interrupt wakes WFI in S-mode (delegated STIP set by M-mode)', (t) => {
  const r = runPrivileged(t, `
main:
  li t0, 0x20
  csrw mideleg, t0
  csrw mie, t0
  ${ARM_TIMER(30)}
  li t0, 0x80
  csrs mie, t0
  enter_mode 1
  csrsi sstatus, MSTATUS_SIE
  wfi
  to_m
  pass
`);
  if (!r) return;
  // MTIP wakes the hart and preempts S (M interrupts are always enabled below M); the runtime then
  // disables MTIE and returns to after the WFI; S then ECALLs.
  assert.deepEqual(causes(r.log), ['irq7@3', '9@3']);
});

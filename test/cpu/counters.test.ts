// cycle and instret count every instruction exactly, even between two reads in one time slice, and a
// write to minstret is counted from (privileged spec §3.1.11, unprivileged §10.1); in timing mode cycle
// also counts the memory model's stalls.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RAM_BASE, runAsm } from '../helpers/bare-machine.js';
import { TimingModel } from '../../src/timing/timing-model.js';

test('minstret and mcycle advance by exactly the instructions between two reads, within one slice', (t) => {
  const r = runAsm(t, `
  csrr a1, minstret
  addi t0, zero, 1
  addi t0, t0, 1
  addi t0, t0, 1
  csrr a2, minstret
  csrr a3, mcycle
  nop
  csrr a4, mcycle
  pass
`, { slice: 1000 });
  if (!r) return;
  assert.equal(r.exitCode, 0);
  assert.equal(r.machine.reg(12) - r.machine.reg(11), 4n, 'three addi and the first csrr retired');
  assert.equal(r.machine.reg(14) - r.machine.reg(13), 2n);
});

test('a value written to minstret is what the next instruction reads: the write replaces the increment', (t) => {
  // Zicsr: "a value written to instret by one instruction will be the value read by the following instruction".
  const r = runAsm(t, `
  .rept 10
  nop
  .endr
  csrwi minstret, 0
  csrr a0, minstret
  li t0, 1000
  csrw minstret, t0
  nop
  nop
  nop
  csrr a1, minstret
  csrwi mcycle, 7
  csrr a2, mcycle
  li t0, -1
  csrw minstret, t0
  csrr a3, minstret
  csrr a4, minstret
  pass
`, { slice: 1000 });
  if (!r) return;
  const m = r.machine;
  assert.equal(m.reg(10), 0n, 'csrwi minstret, 0; csrr a0, minstret');
  assert.equal(m.reg(11), 1003n, '1000 and the three nops');
  assert.equal(m.reg(12), 7n, 'csrwi mcycle, 7; csrr a2, mcycle');
  assert.equal(m.reg(13), -1n, 'all 64 bits of the value written');
  assert.equal(m.reg(14), 0n, 'and the counter wraps from there');
});

test('mcycle written goes on from the value written, and a write to minstret leaves it alone', (t) => {
  const r = runAsm(t, `
  li t0, 5000
  csrw mcycle, t0
  li t1, 100
  csrw minstret, t1
  nop
  csrr a1, mcycle
  csrr a2, minstret
  pass
`, { slice: 1000 });
  if (!r) return;
  // From 5000: li, csrw minstret, nop; from 100: nop, csrr a1.
  assert.equal(r.machine.reg(11), 5003n);
  assert.equal(r.machine.reg(12), 102n);
});

test('writes to mcycle and minstret do not move simulated time or the instructions retired', (t) => {
  const r = runAsm(t, `
  li t0, 1
  slli t0, t0, 60
  csrw minstret, t0
  csrw mcycle, t0
  csrwi minstret, 0
  csrwi mcycle, 0
  csrw minstret, t0
  pass
`, { slice: 1000 });
  if (!r) return;
  const h = r.machine.harts[0]!;
  // The harts interleave by simulatedCycles and the statistics count instret: a guest cannot move them.
  assert.equal(h.instret, r.machine.instructions);
  assert.equal(h.simulatedCycles, r.machine.instructions);
});

test('counting from inside compiled blocks: a loop between two reads is counted exactly', (t) => {
  const r = runAsm(t, `
  csrwi minstret, 0
  csrwi mcycle, 0
  li t0, 100
1:
  addi t0, t0, -1
  bnez t0, 1b
  csrr a0, minstret
  csrr a1, mcycle
  pass
`, { slice: 10_000 });
  if (!r) return;
  // csrwi mcycle, li, and 100 iterations of two (compiled: the harness compiles every block at once).
  assert.equal(r.machine.reg(10), 202n);
  assert.equal(r.machine.reg(11), 202n);
});

test('mcountinhibit stops mcycle and minstret at their value; written while stopped, they hold what was written', (t) => {
  const r = runAsm(t, `
  csrwi minstret, 0
  csrwi mcycle, 0
  csrwi mcountinhibit, 5
  nop
  nop
  csrr a0, minstret
  csrr a1, mcycle
  csrr a2, instret
  csrr a3, cycle
  li t0, 500
  csrw minstret, t0
  csrw mcycle, t0
  nop
  csrr a4, minstret
  csrr a5, mcycle
  csrwi mcountinhibit, 0
  csrr a6, minstret
  csrr a7, mcycle
  csrwi mcountinhibit, 4
  csrr s2, minstret
  csrr s3, mcycle
  li t0, -1
  csrw mcountinhibit, t0
  csrr s4, mcountinhibit
  pass
`, { slice: 1000 });
  if (!r) return;
  const m = r.machine;
  // Stopped by the csrwi mcountinhibit, which is not counted: minstret at 1 (csrwi mcycle), mcycle at the 0 written.
  assert.deepEqual([m.reg(10), m.reg(11), m.reg(12), m.reg(13)], [1n, 0n, 1n, 0n], 'stopped: the shadows too');
  assert.deepEqual([m.reg(14), m.reg(15)], [500n, 500n], 'a write while stopped is the value');
  // Started again by a csrwi that is counted: 501, then the csrr a6 itself for mcycle.
  assert.deepEqual([m.reg(16), m.reg(17)], [501n, 502n]);
  // Only IR stopped: minstret holds 503 (csrr a6, csrr a7 ran), mcycle goes on.
  assert.deepEqual([m.reg(18), m.reg(19)], [503n, 505n]);
  assert.equal(m.reg(20), 5n, 'only CY and IR can be stopped (no hpm counters)');
});

test('counter CSRs that fault (read-only shadows written, RV32-only halves, no permission) leave the count exact', (t) => {
  // The handler is one jump to t4 (in M-mode, touching no CSR, so nothing else resyncs the count); the
  // instruction that traps does not retire.
  const r = runAsm(t, `
.option norvc
.macro faulting insn, before, after
  la t4, 1f
  csrr \\before, minstret
  \\insn
1:
  csrr \\after, minstret
.endm
  la t0, handler
  csrw mtvec, t0
  csrwi mcounteren, 0
  faulting "csrw cycle, zero", s0, s1
  faulting "csrr a0, instreth", s2, s3
  faulting "csrw time, zero", s4, s5
  faulting "ebreak", s6, s7
  li t0, 0x1800
  csrc mstatus, t0
  la t0, 2f
  csrw mepc, t0
  la t4, 1f
  csrr s8, minstret
  mret
2:
  rdcycle a1
1:
  csrr s9, minstret
  pass
handler:
  jr t4
`, { slice: 1000 });
  if (!r) return;
  const m = r.machine;
  const delta = (a: number, b: number) => Number(m.reg(b) - m.reg(a));
  // The first csrr and the jump; not the faulting instruction.
  assert.equal(delta(8, 9), 2, 'csrw cycle');
  assert.equal(delta(18, 19), 2, 'csrr instreth');
  assert.equal(delta(20, 21), 2, 'csrw time');
  assert.equal(delta(22, 23), 2, 'ebreak');
  // csrr s8, mret, and the jump; not rdcycle from U-mode without mcounteren.
  assert.equal(delta(24, 25), 3, 'rdcycle in U-mode');
});

test('in timing mode mcycle also counts memory stalls; minstret only instructions', (t) => {
  const MISS = 40;
  const r = runAsm(t, `
  li a0, 0x80100000
  csrr a1, mcycle
  csrr a2, minstret
  ld t0, 0(a0)
  ld t0, 512(a0)
  ld t0, 1024(a0)
  csrr a3, mcycle
  csrr a4, minstret
  pass
`, {
    slice: 1000,
    setup: (m) => {
      const model = new TimingModel({ cpuNode: [0], nodes: [{ base: RAM_BASE, size: m.ram.size }], latencies: { hitCycles: 0, missCycles: [[MISS]], uncachedCycles: 0, tlbLevelCycles: 0 } });
      m.harts[0]!.setMemoryTiming(model);
    },
  });
  if (!r) return;
  const cycles = Number(r.machine.reg(13) - r.machine.reg(11));
  const instructions = Number(r.machine.reg(14) - r.machine.reg(12));
  // Three loads to three lines never touched: at least three misses beyond the instructions' own cycles
  // (the fetches of this code may miss too).
  assert.ok(cycles >= instructions + 3 * MISS, `mcycle moved ${cycles}, minstret ${instructions}`);
  assert.ok(instructions >= 4 && instructions <= 6, `${instructions} instructions`);
});

test('in timing mode a counter read is fetched (and charged) once', (t) => {
  const HIT = 3;
  const r = runAsm(t, `
  .align 6
  csrr a1, mcycle
  csrr a2, mcycle
  pass
`, {
    slice: 1000,
    setup: (m) => {
      const model = new TimingModel({ cpuNode: [0], nodes: [{ base: RAM_BASE, size: m.ram.size }], latencies: { hitCycles: HIT, missCycles: [[40]], uncachedCycles: 0, tlbLevelCycles: 0 } });
      m.harts[0]!.setMemoryTiming(model);
    },
  });
  if (!r) return;
  // Between the reads: the first csrr retires, the second is fetched from the line the first was in (a hit).
  // The run executes a counter access twice (the first time only to bring instret up to date).
  assert.equal(r.machine.reg(12) - r.machine.reg(11), BigInt(1 + HIT));
});

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

test('a value written to minstret is what the count continues from', (t) => {
  const r = runAsm(t, `
  .rept 10
  nop
  .endr
  li t0, 1000
  csrw minstret, t0
  nop
  nop
  nop
  csrr a1, minstret
  pass
`, { slice: 1000 });
  if (!r) return;
  const value = Number(r.machine.reg(11));
  // 1000, the three nops, and (in our model) the csrw itself: the spec leaves that one to the implementation.
  assert.ok(value === 1003 || value === 1004, `minstret ${value} continues from 1000`);
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
  const cycle = Number(r.machine.reg(11));
  const instret = Number(r.machine.reg(12));
  // From 5000: li, csrw minstret, nop (and, by our model, the csrw mcycle itself): a few cycles, not 100-based.
  assert.ok(cycle >= 5003 && cycle <= 5005, `mcycle ${cycle} continues from 5000`);
  assert.ok(instret >= 101 && instret <= 103, `minstret ${instret} continues from 100`);
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

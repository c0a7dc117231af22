// The built-in SBI with harts on worker threads (docs/threads.md, board/threaded-sbi.ts): an S-mode
// program on 2 harts, one a thread, starts the other hart, sends it an IPI, patches code it runs and makes
// a remote FENCE.I that must reach the other thread's translated code before the call returns, has both
// harts fence each other hundreds of times at once (no deadlock), sets an SBI timer, and powers off; and a
// remote SFENCE.VMA that must empty the other thread's TLB before the call returns.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startUnderSbi } from '../board/boot.js';
import { Machine } from '../board/machine.js';
import { assemble, requireToolchain } from '../../test/helpers/asm.js';
import { ThreadCounters, WORKER_COUNTER } from '../board/thread-counters.js';
import { SBI_PRELUDE, SBI_PROGRAM } from '../../test/helpers/sbi-programs.js';
import { runThreaded } from './threaded-runner.js';

const RAM = 0x8000_0000;


// A lost IPI, start or ack leaves a hart waiting for good: the timeout turns that into a failure.
test('the built-in SBI on 2 threads: HSM start, an IPI, a remote FENCE.I that reaches the other thread\'s blocks, fences both ways at once, a timer, reset', { timeout: 120_000 }, async (t) => {
  if (!requireToolchain(t)) return;
  const output: number[] = [];
  const machine = new Machine({
    config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: true,
    console: (bytes) => output.push(...bytes),
  });
  machine.bus.guestMemory().write(RAM, assemble(SBI_PROGRAM).image);
  startUnderSbi(machine, RAM, 0);
  let counters: ThreadCounters | undefined;
  assert.deepEqual(await runThreaded(machine, { threads: 2, counted: (c) => { counters = c; } }), { kind: 'poweroff', code: 0 });
  assert.equal(String.fromCharCode(...output), 'OK');
  assert.ok(machine.clock.now() >= 1000, 'time reached the timer hart 1 set');
  // The counters saw the IPI and the fences cross, each from one worker and taken on the other.
  const c = counters!;
  const slot = (worker: number, k: number): number => c.slots[c.worker(worker) + k]!;
  assert.ok(slot(0, WORKER_COUNTER.IPIS_SENT) >= 1 && slot(1, WORKER_COUNTER.IPIS_TAKEN) >= 1);
  for (const [from, to] of [[0, 1], [1, 0]] as const) {
    assert.ok(slot(from, WORKER_COUNTER.FENCES_SENT) >= 300, `worker ${from} asked for its 300 fences`);
    assert.ok(slot(to, WORKER_COUNTER.FENCES_SERVED) >= 1, `worker ${to} served fences`);
  }
  assert.ok(slot(0, WORKER_COUNTER.FIRMWARE) >= 2, 'the console bytes and the reset went to the main thread');
});

/**
 * Hart 1 (on the other thread) maps virtual 0x4000_0000 through a 2 MiB page to physical 0x8020_0000 and
 * reads it until its TLB holds the page. Hart 0 then points the entry at 0x8040_0000 and makes a remote
 * SFENCE.VMA of that page on hart 1: hart 1's next read must come from the new page. Exit 0 if so.
 */
const SFENCE_PROGRAM = `${SBI_PRELUDE}
.equ OLD, 0x80200000
.equ NEW, 0x80400000
.equ VA, 0x40000000
.globl _start
_start:
  li t0, OLD
  li t1, 0x1111
  sw t1, 0(t0)
  li t0, NEW
  li t1, 0x2222
  sw t1, 0(t0)
  # root[2]: 0x8000_0000 as a gigapage, RWX, accessed and dirty; root[1]: the level-1 table
  la t0, root
  li t1, (0x80000000 >> 12) << 10 | 0xcf
  sd t1, 16(t0)
  la t2, level1
  srli t2, t2, 12
  slli t2, t2, 10
  ori t2, t2, 1
  sd t2, 8(t0)
  # level1[0]: VA's 2 MiB page at OLD, RW
  la t0, level1
  li t1, (OLD >> 12) << 10 | 0xc7
  sd t1, 0(t0)
  li a0, 1
  la a1, hart1
  li a2, 0
  sbi EXT_HSM, 0
  la t0, flag1
1: lw t1, 0(t0)
  beqz t1, 1b
  la t0, level1
  li t1, (NEW >> 12) << 10 | 0xc7
  sd t1, 0(t0)
  li a0, 2
  li a1, 0
  li a2, VA
  li a3, 4096
  sbi EXT_RFENCE, 1
  la t0, flag2
  li t1, 1
  sw t1, 0(t0)
  la t0, flag3
2: lw t1, 0(t0)
  beqz t1, 2b
  addi a1, t1, -1
  li a0, 0
  sbi EXT_SRST, 0
3: j 3b

hart1:
  la t0, root
  srli t0, t0, 12
  li t1, 8 << 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li t0, VA
  li s0, 1000
1: lw t1, 0(t0)
  addi s0, s0, -1
  bnez s0, 1b
  li t2, 0x1111
  bne t1, t2, 4f
  la t2, flag1
  li t3, 1
  sw t3, 0(t2)
  la t2, flag2
2: lw t3, 0(t2)
  beqz t3, 2b
  lw t1, 0(t0)
  li t2, 0x2222
  li t3, 1
  beq t1, t2, 3f
4: li t3, 2
3: la t2, flag3
  sw t3, 0(t2)
5: wfi
  j 5b

.data
.align 12
root: .zero 4096
level1: .zero 4096
.align 6
flag1: .word 0
.align 6
flag2: .word 0
.align 6
flag3: .word 0
`;

test('a remote SFENCE.VMA from the built-in SBI on 2 threads empties the other thread\'s TLB before the call returns', { timeout: 120_000 }, async (t) => {
  if (!requireToolchain(t)) return;
  const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: true });
  machine.bus.guestMemory().write(RAM, assemble(SFENCE_PROGRAM).image);
  startUnderSbi(machine, RAM, 0);
  // Reason 0: hart 1 read the new page; 1: it read the old one through a stale TLB entry.
  assert.deepEqual(await runThreaded(machine, { threads: 2 }), { kind: 'poweroff', code: 0 });
});

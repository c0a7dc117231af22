// Harts on worker threads (docs/threads.md): the stress program passes with its harts on real threads
// at once, the main thread gets the harts' final state back, the harts reach the main thread's devices
// (UART, CLINT timer and IPIs, test finisher), and a machine that can never wake says so.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { bootElf } from '../board/boot.js';
import { Machine } from '../board/machine.js';
import { buildStress } from '../bench/programs.js';
import { assemble, requireToolchain } from '../../test/helpers/asm.js';
import { MAIN_COUNTER, ThreadCounters, WORKER_COUNTER } from '../board/thread-counters.js';
import { performance } from 'node:perf_hooks';
import { INSTRUCTIONS_PER_TICK, TIMEBASE_HZ } from '../timing/clock.js';
import { RUN_AHEAD_ROUNDS, runThreaded, THREADED_QUANTUM, ThreadedRunError } from './threaded-runner.js';

const RAM = 0x8000_0000;
const WFI = 0x10500073;
const JUMP_BACK_4 = 0xffdff06f; // jal x0, -4

function stressMachine(t: TestContext, harts: number, iterations: number): Machine | undefined {
  if (!requireToolchain(t)) return undefined;
  const machine = new Machine({ config: { harts, nodes: [{ memoryBytes: 16 << 20, harts: [...Array(harts).keys()] }] }, builtinSbi: false });
  bootElf(machine, readFileSync(buildStress(harts, iterations)));
  return machine;
}

test('the stress program passes with 2 harts on 2 threads, and the harts come back with what they did', async (t) => {
  const machine = stressMachine(t, 2, 3000);
  if (machine === undefined) return;
  const exit = await runThreaded(machine, { threads: 2 });
  assert.deepEqual(exit, { kind: 'htif', code: 0 });
  // Each hart retired its part: 3000 rounds of at least 12 shared-memory operations.
  for (const h of machine.harts) assert.ok(h.instret > 3000n * 12n, `hart ${h.id} retired ${h.instret}`);
  assert.equal(machine.instructions, Number(machine.harts[0]!.instret + machine.harts[1]!.instret));
});

test('the stress program passes with 4 harts on 2 threads, two harts a thread', async (t) => {
  const machine = stressMachine(t, 4, 200);
  if (machine === undefined) return;
  assert.deepEqual(await runThreaded(machine, { threads: 2, quantum: 4096 }), { kind: 'htif', code: 0 });
});

test('harts that all wait with nothing to wake them end the threaded run with one clear error', async () => {
  const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false });
  const memory = machine.bus.guestMemory();
  memory.writeU32(RAM, WFI);
  memory.writeU32(RAM + 4, JUMP_BACK_4);
  machine.resetAll(RAM, true, 0);
  await assert.rejects(runThreaded(machine, { threads: 2 }), (e: unknown) => e instanceof ThreadedRunError && /every hart waits/.test(e.message));
});

test('a limit of instructions stops a threaded run', async () => {
  const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false });
  machine.bus.guestMemory().writeU32(RAM, 0x0000006f); // j . (a hart that spins forever)
  machine.resetAll(RAM, true, 0);
  assert.deepEqual(await runThreaded(machine, { threads: 2, maxInstructions: 1_000_000 }), { kind: 'limit' });
  assert.ok(machine.instructions >= 1_000_000);
});

/**
 * Hart 0 prints A on the UART, sleeps until its CLINT timer fires, sends hart 1 (on the other thread) an IPI
 * through the CLINT, waits for hart 1's answer in memory, prints B and powers off through the test finisher.
 */
const DEVICES_PROGRAM = `
.equ UART, 0x10000000
.equ CLINT, 0x02000000
.equ FINISHER, 0x100000
.globl _start
_start:
  csrr a0, mhartid
  bnez a0, hart1
  li t0, UART
  li t1, 'A'
  sb t1, 0(t0)
  li t0, CLINT + 0xbff8
  ld t1, 0(t0)
  addi t1, t1, 500
  li t2, CLINT + 0x4000
  sd t1, 0(t2)
  li t0, 0x80
  csrw mie, t0
1: wfi
  csrr t0, mip
  andi t0, t0, 0x80
  beqz t0, 1b
  li t0, CLINT + 4
  li t1, 1
  sw t1, 0(t0)
  la t0, answer
2: lw t1, 0(t0)
  beqz t1, 2b
  li t0, UART
  li t1, 'B'
  sb t1, 0(t0)
  li t0, FINISHER
  li t1, 0x5555
  sw t1, 0(t0)
3: j 3b
hart1:
  li t0, 8
  csrw mie, t0
1: wfi
  csrr t0, mip
  andi t0, t0, 8
  beqz t0, 1b
  li t0, CLINT + 4
  sw zero, 0(t0)
  la t0, answer
  li t1, 1
  sw t1, 0(t0)
2: wfi
  j 2b
.data
.align 6
answer: .word 0
`;

// A lost interrupt leaves both harts asleep for good: the timeout turns that into a failure.
test('harts on two threads reach the main thread\'s devices: UART output, a timer interrupt, an IPI across threads, power-off', { timeout: 120_000 }, async (t) => {
  if (!requireToolchain(t)) return;
  const output: number[] = [];
  const machine = new Machine({
    config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false,
    console: (bytes) => output.push(...bytes),
  });
  machine.bus.guestMemory().write(RAM, assemble(DEVICES_PROGRAM).image);
  machine.resetAll(RAM, true, 0);
  let counters: ThreadCounters | undefined;
  assert.deepEqual(await runThreaded(machine, { threads: 2, counted: (c) => { counters = c; } }), { kind: 'poweroff', code: 0 });
  assert.equal(String.fromCharCode(...output), 'AB');
  // Time jumped to the timer while both harts slept, as on one thread.
  assert.ok(machine.clock.now() >= 500);
  // The counters saw what crossed the threads: each worker's accesses to each device, its instructions.
  const c = counters!;
  const mmio = (worker: number, name: string): number => c.slots[c.worker(worker) + WORKER_COUNTER.DEVICES + c.devices.indexOf(name)]!;
  assert.equal(mmio(0, 'ns16550a'), 2, 'hart 0 wrote A and B');
  // A doubleword crosses the mailbox as two words: mtime's load and mtimecmp's store are two requests each.
  assert.equal(mmio(0, 'clint'), 5, 'hart 0 read mtime, set mtimecmp and hart 1\'s msip');
  assert.equal(mmio(1, 'clint'), 1, 'hart 1 cleared its msip');
  assert.equal(mmio(1, 'ns16550a'), 0);
  const instructions = c.slots[c.worker(0) + WORKER_COUNTER.INSTRUCTIONS]! + c.slots[c.worker(1) + WORKER_COUNTER.INSTRUCTIONS]!;
  assert.equal(instructions, machine.instructions);
  assert.ok(c.slots[c.worker(0) + WORKER_COUNTER.MAILBOX_MS]! > 0, 'the waits for the main thread are timed');
  assert.match(c.report().join('\n'), /worker 1: running [0-9.]+ s.*MMIO: clint 1$/m);
});

/**
 * Hart 1 (on the second thread) warms a function up until its thread runs it translated, takes a
 * reservation, and asks a device on the main thread to write by DMA: a new body for the function and the
 * reserved word (with the value it holds). Its SC must fail; after its FENCE.I the function must be the new one. Exit 1 + the failed
 * check through the test finisher, 0 if both hold. Hart 0 sleeps.
 */
const DMA_PROGRAM = `
.equ FINISHER, 0x100000
.equ DMA, 0x20000000
.globl _start
_start:
  csrr a0, mhartid
  bnez a0, hart1
1: wfi
  j 1b
hart1:
  li s0, 20000
0: call code
  addi s0, s0, -1
  bnez s0, 0b
  la t0, resv
  lr.w t1, (t0)
  li t2, DMA
  sw zero, 0(t2)
  li t1, 7
  sc.w t3, t1, (t0)
  li s1, 1
  beqz t3, fail
  fence.i
  call code
  li s1, 2
  li t0, 2
  bne a0, t0, fail
  li t1, 0x5555
  j finish
fail:
  slli t1, s1, 16
  li t0, 0x3333
  or t1, t1, t0
finish:
  li t0, FINISHER
  sw t1, 0(t0)
2: j 2b
.align 12
.option push
.option norvc
code:
  li a0, 1
  ret
.option pop
.align 12
.data
.align 6
resv: .word 0
`;

test('a device\'s DMA from the main thread breaks a reservation on a worker, and the worker\'s translated code sees DMA\'d code after FENCE.I', { timeout: 120_000 }, async (t) => {
  if (!requireToolchain(t)) return;
  const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false });
  const program = assemble(DMA_PROGRAM);
  const memory = machine.bus.guestMemory();
  // A device that writes RAM as virtio devices do (Bus.guestMemory, whose writes break reservations).
  let dmaWrites = 0;
  machine.bus.addDevice(0x2000_0000, 0x1000, {
    name: 'dma-test',
    read: () => 0,
    write: () => {
      dmaWrites++;
      memory.writeU32(program.symbols.get('code')!, 0x00200513); // addi a0, zero, 2
      // The value already there: only the reservation table can make the SC fail, not its compare-and-swap.
      memory.writeU32(program.symbols.get('resv')!, 0);
    },
  });
  memory.write(RAM, program.image);
  machine.resetAll(RAM, true, 0);
  const exit = await runThreaded(machine, { threads: 2 });
  assert.equal(dmaWrites, 1);
  // 0x5555 passes; 0x3333 | check << 16 names the failed check (1: the SC succeeded, 2: the old code ran).
  assert.deepEqual(exit, { kind: 'poweroff', code: 0 });
  assert.equal(memory.readU32(program.symbols.get('resv')!), 0, 'the SC did not store');
});

/**
 * Hart 0 reads the time over and over and publishes each value; hart 1, on the other thread, reads a
 * published value and then the time itself. Each hart's time must never go back, and hart 1's must never be
 * before one hart 0 had already read: guest time is one clock for every worker however far one runs ahead
 * of the other. Exit 0 on success; 1, 2 or 3 for the check that failed.
 */
const TIME_PROGRAM = `
.equ FINISHER, 0x100000
.globl _start
_start:
  csrr a0, mhartid
  la s2, stamp
  la s4, done0
  li s1, 0
  bnez a0, hart1
  li s0, 200000
1: csrr t0, time
  bltu t0, s1, back0
  mv s1, t0
  sd t0, 0(s2)
  addi s0, s0, -1
  bnez s0, 1b
  li t1, 1
  sw t1, 0(s4)
2: j 2b
hart1:
1: lw t1, 0(s4)
  ld t3, 0(s2)
  fence r, r
  csrr t0, time
  bltu t0, t3, behind
  bltu t0, s1, back1
  mv s1, t0
  beqz t1, 1b
  li t1, 0x5555
  j 3f
back0:
  li t1, (1 << 16) | 0x3333
  j 3f
behind:
  li t1, (2 << 16) | 0x3333
  j 3f
back1:
  li t1, (3 << 16) | 0x3333
3: li t0, FINISHER
  sw t1, 0(t0)
4: j 4b
.data
.align 6
stamp: .dword 0
.align 6
done0: .word 0
`;

test('guest time on two threads never goes back on a hart, and no hart reads a time before one another hart already read', { timeout: 120_000 }, async (t) => {
  if (!requireToolchain(t)) return;
  const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false });
  machine.bus.guestMemory().write(RAM, assemble(TIME_PROGRAM).image);
  machine.resetAll(RAM, true, 0);
  // Short rounds: many runs of rounds, the workers ahead of each other by up to the lag.
  assert.deepEqual(await runThreaded(machine, { threads: 2, quantum: 1024 }), { kind: 'poweroff', code: 0 });
  assert.ok(machine.clock.now() > 1000, 'time moved while they ran');
});

/**
 * Hart 0 counts down a while (after the workers' start, so that the pacing starts from a busy round), sets
 * its CLINT timer 0.2 s of guest time ahead and sleeps until it fires, then powers off; hart 1 sleeps.
 */
const PACED_PROGRAM = `
.equ CLINT, 0x02000000
.equ FINISHER, 0x100000
.globl _start
_start:
  csrr a0, mhartid
  bnez a0, 2f
  li t0, 1000000
3: addi t0, t0, -1
  bnez t0, 3b
  li t0, CLINT + 0xbff8
  ld t1, 0(t0)
  li t2, 2000000
  add t1, t1, t2
  li t2, CLINT + 0x4000
  sd t1, 0(t2)
  li t0, 0x80
  csrw mie, t0
1: wfi
  csrr t0, mip
  andi t0, t0, 0x80
  beqz t0, 1b
  li t0, FINISHER
  li t1, 0x5555
  sw t1, 0(t0)
2: wfi
  j 2b
`;

test('a paced threaded run whose harts all wait does not let guest time run ahead of the host\'s', { timeout: 120_000 }, async (t) => {
  if (!requireToolchain(t)) return;
  const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false });
  machine.bus.guestMemory().write(RAM, assemble(PACED_PROGRAM).image);
  machine.resetAll(RAM, true, 0);
  const started = performance.now();
  let counters: ThreadCounters | undefined;
  assert.deepEqual(await runThreaded(machine, { threads: 2, pace: true, counted: (c) => { counters = c; } }), { kind: 'poweroff', code: 0 });
  const hostTicks = (performance.now() - started) * (TIMEBASE_HZ / 1000);
  // A lower bound on the host's time, which a slow host only makes longer: the guest's 0.2 s of waiting
  // took at least as long (the few instructions before it and one round of slack aside).
  assert.ok(machine.clock.now() >= 2_000_000);
  assert.ok(machine.clock.now() <= hostTicks + 2 * THREADED_QUANTUM / INSTRUCTIONS_PER_TICK, `guest ${machine.clock.now()} ticks, host ${Math.round(hostTicks)}`);
  // What keeps it so however fast the host: after a run that ended idle, the next is one round, and the
  // time moves by the paced skips (a run of idle rounds would move it a run's length without looking).
  // The countdown is about 31 rounds, in full runs.
  const slots = counters!.slots;
  assert.ok(slots[MAIN_COUNTER.ROUNDS]! <= slots[MAIN_COUNTER.RUNS]! + 3 * RUN_AHEAD_ROUNDS, `${slots[MAIN_COUNTER.ROUNDS]} rounds in ${slots[MAIN_COUNTER.RUNS]} runs`);
});

// Harts on worker threads (docs/threads.md): the stress program passes with its harts on real threads
// at once, the main thread gets the harts' final state back, and a machine that can never wake says so.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { bootElf } from '../board/boot.js';
import { Machine } from '../board/machine.js';
import { buildStress } from '../bench/programs.js';
import { toolchainAvailable } from '../../test/helpers/asm.js';
import { runThreaded, ThreadedRunError } from './threaded-runner.js';

const RAM = 0x8000_0000;
const WFI = 0x10500073;
const JUMP_BACK_4 = 0xffdff06f; // jal x0, -4

function stressMachine(t: TestContext, harts: number, iterations: number): Machine | undefined {
  if (!toolchainAvailable()) {
    t.skip('the RISC-V cross toolchain is not installed: apt-get install gcc-riscv64-linux-gnu');
    return undefined;
  }
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

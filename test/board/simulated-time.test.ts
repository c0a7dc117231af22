// Simulated time: harts interleave by their own cycles (instructions plus timing mode's stalls), a waiting
// or stopped hart is idle up to the machine's time, and busy cycles split by privilege level.

import assert from 'node:assert/strict';
import { describe, it, test, type TestContext } from 'node:test';
import { RAM_BASE } from '../../src/board/address-map.js';
import { Machine, SLICE } from '../../src/board/machine.js';
import { enableTiming, registerMachineStats } from '../../src/board/timing-mode.js';
import { topologyPreset } from '../../src/board/topology.js';
import { INSTRUCTIONS_PER_TICK } from '../../src/timing/clock.js';
import { StatsRegistry } from '../../src/timing/stats.js';
import { assemble, requireToolchain } from '../helpers/asm.js';
import { runAsm } from '../helpers/bare-machine.js';
import { TRAP_RUNTIME, TRAP_RUNTIME_DATA } from '../helpers/trap-runtime.js';

const MiB = 2 ** 20;
const ROUNDS = 50;

/**
 * numa4x2 with hart 0 streaming loads over node 3's memory (a remote miss every line) and hart 1 either
 * spinning on registers or waiting in WFI; harts 2-7 stay stopped.
 */
function twoHarts(t: TestContext, second: 'spin' | 'wfi', timing: boolean): Machine | undefined {
  if (!requireToolchain(t)) return undefined;
  const { config, latencies } = topologyPreset('numa4x2', 256 * MiB);
  const machine = new Machine({ config, builtinSbi: false });
  const { image } = assemble(`
  csrr t0, mhartid
  bnez t0, second
  mv t1, a1
stream:
  ld t2, 0(t1)
  addi t1, t1, 64
  j stream
second:
  ${second === 'wfi' ? 'wfi' : 'addi t3, t3, 1'}
  j second
`);
  machine.bus.guestMemory().write(RAM_BASE, image);
  machine.resetAll(RAM_BASE, true, machine.layout.nodes[3]!.base);
  for (const h of machine.harts.slice(2)) h.parked = true;
  if (timing) enableTiming(machine, latencies);
  for (let r = 0; r < ROUNDS; r++) machine.runRound();
  return machine;
}

describe('harts interleave by simulated time', () => {
  it('fast mode: every running hart runs a slice of instructions a round', (t) => {
    const machine = twoHarts(t, 'spin', false);
    if (machine === undefined) return;
    assert.equal(machine.cycles, ROUNDS * SLICE);
    assert.equal(machine.harts[0]!.instret, ROUNDS * SLICE);
    assert.equal(machine.harts[1]!.instret, ROUNDS * SLICE);
    assert.equal(machine.clock.now(), Math.floor(ROUNDS * SLICE / INSTRUCTIONS_PER_TICK));
  });

  it('timing mode: a hart that stalls on remote misses runs fewer instructions, both keep the machine\'s time', (t) => {
    const machine = twoHarts(t, 'spin', true);
    if (machine === undefined) return;
    const [streaming, spinning] = [machine.harts[0]!, machine.harts[1]!];
    assert.equal(machine.cycles, ROUNDS * SLICE);
    assert.ok(streaming.stallCycles > 0);
    assert.ok(streaming.instret < spinning.instret / 3, `${streaming.instret} vs ${spinning.instret} instructions`);
    // Each hart ends a round near its end: a little short (under 64 cycles, carried over) or a little past
    // (a chunk of instructions whose stalls ran over), never a slice away.
    for (const h of [streaming, spinning]) {
      assert.ok(Math.abs(h.localCycles - machine.cycles) < SLICE / 4, `hart ${h.id} at ${h.localCycles}, machine at ${machine.cycles}`);
    }
    // Guest time follows the machine's cycles, not one hart's instructions.
    assert.equal(machine.clock.now(), Math.floor(ROUNDS * SLICE / INSTRUCTIONS_PER_TICK));
  });

  it('a hart in WFI and the stopped harts are idle up to the machine\'s time', (t) => {
    const machine = twoHarts(t, 'wfi', true);
    if (machine === undefined) return;
    const waiting = machine.harts[1]!;
    assert.equal(waiting.waiting, true);
    assert.equal(waiting.localCycles, machine.cycles);
    assert.equal(waiting.idleCycles, machine.cycles - waiting.simulatedCycles);
    for (const h of machine.harts.slice(2)) assert.equal(h.idleCycles, machine.cycles);

    const stats = new StatsRegistry();
    registerMachineStats(stats, machine);
    assert.equal(stats.read('system.cycles'), ROUNDS * SLICE);
    assert.equal(stats.read('system.cpu1.idleCycles'), waiting.idleCycles);
    stats.reset();
    machine.runRound();
    assert.equal(stats.read('system.cycles'), SLICE);
    assert.equal(stats.read('system.cpu1.idleCycles'), SLICE);
    assert.equal(stats.read('system.cpu1.cycles'), 0);
  });
});

test('busy cycles split by privilege: U and S loops are counted in full, ecall included', (t) => {
  const run = runAsm(t, `${TRAP_RUNTIME}
main:
  enter_mode 1
  li t1, 500
1:
  addi t1, t1, -1
  bnez t1, 1b
  to_m
  enter_mode 0
  li t1, 1000
2:
  addi t1, t1, -1
  bnez t1, 2b
  to_m
  pass
${TRAP_RUNTIME_DATA}
`, { maxInstructions: 100_000 });
  if (run === undefined) return;
  assert.equal(run.exitCode, 0);
  const hart = run.machine.harts[0]!;
  // li, the loop's two instructions each time round, and the ecall that left the mode.
  assert.equal(hart.cyclesAt(0), 1 + 2 * 1000 + 1);
  assert.equal(hart.cyclesAt(1), 1 + 2 * 500 + 1);
  assert.equal(hart.cyclesAt(0) + hart.cyclesAt(1) + hart.cyclesAt(3), hart.simulatedCycles);
});

// The machine's round loop: idle harts skip guest time ahead to the next timer, up to a limit when paced.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from './machine.js';

const RAM = 0x8000_0000;
const CLINT_BASE = 0x0200_0000;
const CLINT_MTIMECMP = CLINT_BASE + 0x4000;
const WFI = 0x10500073;
const JUMP_BACK_4 = 0xffdff06f; // jal x0, -4
const MIE_MTIE = 1 << 7;

/** One hart that waits in a WFI loop for a machine timer interrupt at `deadline` ticks. */
function waitingMachine(deadline: number): Machine {
  const machine = new Machine({ config: { harts: 1, nodes: [{ memoryBytes: 16 << 20, harts: [0] }] }, builtinSbi: false });
  const memory = machine.bus.guestMemory();
  memory.writeU32(RAM, WFI);
  memory.writeU32(RAM + 4, JUMP_BACK_4);
  machine.resetAll(RAM, true, 0);
  machine.harts[0].mie = MIE_MTIE;
  machine.clint.write(CLINT_MTIMECMP - CLINT_BASE, 4, deadline, 0);
  machine.clint.write(CLINT_MTIMECMP + 4 - CLINT_BASE, 4, 0, 0);
  return machine;
}

describe('Machine rounds', () => {
  it('jump an idle machine to its next timer deadline', () => {
    const machine = waitingMachine(50_000_000);
    machine.runRound(); // the hart reaches WFI; nothing else can run, so time jumps
    assert.equal(machine.clock.now(), 50_000_000);
    assert.equal(machine.harts[0].wakeable, true, 'the timer interrupt is pending at the deadline');
  });

  it('skip no further than idleSkipLimit (a paced runner sets it to host time)', () => {
    const machine = waitingMachine(50_000_000);
    machine.idleSkipLimit = 1_000;
    machine.runRound();
    assert.equal(machine.clock.now(), 1_000);
    assert.equal(machine.idle, true);
    machine.runRound();
    assert.equal(machine.clock.now(), 1_000, 'time stands still until the limit moves');
    machine.idleSkipLimit = Infinity;
    machine.runRound();
    assert.equal(machine.clock.now(), 50_000_000);
  });
});

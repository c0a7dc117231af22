// The machine's round loop: idle harts skip guest time ahead to the next timer, up to a limit when paced.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { INSTRUCTIONS_PER_TICK } from '../timing/clock.js';
import { assemble, requireToolchain } from '../../test/helpers/asm.js';
import { Machine, SLICE } from './machine.js';

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

/**
 * Hart 0 waits in WFI for a software interrupt (its timer far away); hart 1 works a while, then raises
 * hart 0's MSIP and goes to WFI itself, later in the round than hart 0 ran. Both record the time.
 */
const WAKE_SOURCE = `
.globl _start
_start:
  csrr t0, mhartid
  bnez t0, sender
waiter:
  wfi
  csrr t1, mip
  andi t1, t1, 8
  beqz t1, waiter
  rdtime t2
  la t3, woke
  sd t2, 0(t3)
  csrw mie, zero
1: wfi
  j 1b
sender:
  li t1, 3000
2: addi t1, t1, -1
  bnez t1, 2b
  rdtime t2
  la t3, sent
  sd t2, 0(t3)
  li t3, ${CLINT_BASE}
  li t4, 1
  sw t4, 0(t3)
3: wfi
  j 3b
.balign 8
woke: .dword 0
sent: .dword 0
`;

describe('Machine rounds and wake-ups', () => {
  it('a hart woken by one that then waits runs in the next round, not at the next timer', (t) => {
    if (!requireToolchain(t)) return;
    const program = assemble(WAKE_SOURCE);
    const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false });
    machine.bus.guestMemory().write(RAM, program.image);
    machine.resetAll(RAM, true, 0);
    machine.harts[0].mie = MIE_MTIE | 8;
    machine.clint.write(CLINT_MTIMECMP - CLINT_BASE, 4, 50_000_000, 0);
    machine.clint.write(CLINT_MTIMECMP + 4 - CLINT_BASE, 4, 0, 0);
    const memory = machine.bus.guestMemory();
    const read = (name: string): number => memory.readU32(program.symbols.get(name)!);
    for (let round = 0; round < 20 && read('woke') === 0; round++) machine.runRound();
    const sent = read('sent');
    const woke = read('woke');
    assert.ok(sent > 0 && woke > 0, `sent at ${sent}, woke at ${woke}`);
    assert.ok((woke - sent) * INSTRUCTIONS_PER_TICK <= 2 * SLICE, `the IPI sent at tick ${sent} woke hart 0 only at tick ${woke}`);
  });
});

describe('DMA and LR/SC', () => {
  it('a device writing a reserved line breaks every hart\'s reservation on it, and only on it', () => {
    const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: false });
    const base = machine.layout.nodes[0]!.base;
    machine.reservations.reserve(0, base + 0x1000);
    machine.reservations.reserve(1, base + 0x2000);
    machine.bus.guestMemory().writeU32(base + 0x103c, 1); // same 64-byte granule as hart 0's reservation
    assert.equal(machine.reservations.take(0, base + 0x1000), false, 'hart 0 lost its reservation');
    assert.equal(machine.reservations.take(1, base + 0x2000), true, 'hart 1 kept its own');
  });

  it('observers of DMA writes see each write\'s range until they stop watching', () => {
    const machine = new Machine({ config: { harts: 1, nodes: [{ memoryBytes: 16 << 20, harts: [0] }] }, builtinSbi: false });
    const base = machine.layout.nodes[0]!.base;
    const seen: [number, number][] = [];
    const stop = machine.bus.observeDmaWrites((address, length) => seen.push([address, length]));
    const memory = machine.bus.guestMemory();
    memory.write(base, new Uint8Array(10));
    memory.writeU16(base + 16, 1);
    memory.writeU32(base + 32, 1);
    stop();
    memory.writeU32(base + 64, 1);
    assert.deepEqual(seen, [[base, 10], [base + 16, 2], [base + 32, 4]]);
  });
});

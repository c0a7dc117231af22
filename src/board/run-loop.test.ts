import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TIMEBASE_HZ } from '../timing/clock.js';
import { RAM_BASE } from './address-map.js';
import { writeRam } from './elf.js';
import { Machine, SLICE } from './machine.js';
import { runMachineOn, type HostLoop } from './run-loop.js';

/** A one-hart machine in M-mode running `words` from the start of RAM. */
function machineRunning(words: number[]): Machine {
  const machine = new Machine({ config: { harts: 1, nodes: [{ memoryBytes: 16 << 20, harts: [0] }] }, builtinSbi: false });
  const code = new Uint8Array(new Uint32Array(words).buffer);
  writeRam(machine.bus, RAM_BASE, code);
  machine.resetAll(RAM_BASE, true, 0);
  return machine;
}

const JUMP_TO_SELF = 0x0000006f; // jal x0, 0
const WFI = 0x10500073;
const JUMP_BACK_4 = 0xffdff06f; // jal x0, -4

/** A host whose clock is the test's: it moves `perRead` ms each time it is read, and by what a sleep asks. */
function fakeHost(perRead: number): HostLoop & { time: number; yields: number; sleeps: number } {
  const host = {
    time: 0, yields: 0, sleeps: 0,
    now: () => (host.time += perRead),
    yield: async () => { host.yields++; },
    sleep: async (ms: number) => { host.sleeps++; host.time += ms; },
  };
  return host;
}

test('batches are measured on the host clock given: a slow host yields after every round', async () => {
  const machine = machineRunning([JUMP_TO_SELF]);
  // Each read of the clock is 25 ms later, past a batch's 20 ms: one round per batch, then a yield.
  const host = fakeHost(25);
  let batches = 0;
  const exit = await runMachineOn(host, machine, { maxInstructions: 10 * SLICE, onBatch: () => { batches++; } });
  assert.deepEqual(exit, { kind: 'limit' });
  assert.equal(machine.instructions, 10 * SLICE);
  assert.equal(batches, 10);
  assert.equal(host.yields, 10, 'a yield after each batch');
});

test('paced, an idle guest waits in the given host\'s time: its clock follows the host\'s sleeps', async () => {
  const machine = machineRunning([WFI, JUMP_BACK_4]);
  const host = fakeHost(0);
  const sleep = host.sleep;
  host.sleep = async (ms) => {
    await sleep(ms);
    if (host.time >= 100) machine.stopWith({ kind: 'quit' });
  };
  await runMachineOn(host, machine, { pace: true });
  assert.ok(host.sleeps >= 50, `the idle machine slept (${host.sleeps} times)`);
  // 100 ms of host time is a tenth of a second of guest time, within a round's worth.
  const guestMs = (machine.clock.now() / TIMEBASE_HZ) * 1000;
  assert.ok(guestMs >= 98 && guestMs <= 102, `guest time ${guestMs} ms`);
});

// Timing mode on a machine: each fetch, load and store is charged to the model at its node and offset.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemoryTiming } from '../cpu/memory-timing.js';
import { LINE_INVALID } from '../timing/cache.js';
import { StatsRegistry } from '../timing/stats.js';
import { RAM_BASE } from './address-map.js';
import { Machine } from './machine.js';
import { configureTiming, enableTiming, executionMode, registerMachineStats, setExecutionMode } from './timing-mode.js';
import { topologyPreset } from './topology.js';

const MiB = 2 ** 20;
const OP_LOAD = 0x03;
const OP_STORE = 0x23;
const OP_JAL = 0x6f;
const F3_DOUBLE = 3;
const T0 = 5;
const A0 = 10;
const iType = (op: number, rd: number, f3: number, rs1: number, imm: number): number => ((imm << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const sType = (op: number, f3: number, rs1: number, rs2: number, imm: number): number =>
  (((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | op) >>> 0;

/** `ld t0, 0(a0); sd t0, 8(a0); j .` at the start of RAM, with a0 pointing into node 3's memory. */
function machineWithProgram(): { machine: Machine; data: number } {
  const { config } = topologyPreset('numa4x2', 256 * MiB);
  const machine = new Machine({ config, builtinSbi: false });
  const words = [iType(OP_LOAD, T0, F3_DOUBLE, A0, 0), sType(OP_STORE, F3_DOUBLE, A0, T0, 8), OP_JAL];
  const memory = machine.bus.guestMemory();
  words.forEach((w, k) => memory.writeU32(RAM_BASE + 4 * k, w));
  machine.resetAll(RAM_BASE, true, 0);
  const data = machine.layout.nodes[3]!.base + 0x100;
  machine.harts[0]!.setReg(A0, data);
  return { machine, data };
}

describe('timing mode on the hart', () => {
  it('charges each fetch, the load and the store at their node and offset, and adds the cycles to the hart', () => {
    const { machine } = machineWithProgram();
    const calls: string[] = [];
    const CHARGE = 7;
    const fake: MemoryTiming = {
      chargeRamAccess: (cpu, node, offset, isWrite) => { calls.push(`${cpu} ${node} ${offset} ${isWrite ? 'w' : 'r'}`); return CHARGE; },
      chargeAccess: () => assert.fail('no MMIO in this program'),
      chargeTlbRefill: () => assert.fail('no paging in M-mode'),
    };
    const hart = machine.harts[0]!;
    hart.setTranslation(false);
    hart.setMemoryTiming(fake);
    assert.equal(hart.run(3), 3);
    assert.deepEqual(calls, ['0 0 0 r', '0 3 256 r', '0 0 4 r', '0 3 264 w', '0 0 8 r']);
    assert.equal(hart.stallCycles, calls.length * CHARGE);
    assert.equal(hart.simulatedCycles, hart.instret + calls.length * CHARGE);
  });

  it('enableTiming: the model sees the remote accesses and the statistics name them per CPU', () => {
    const { machine } = machineWithProgram();
    const model = enableTiming(machine, topologyPreset('numa4x2', 256 * MiB).latencies);
    assert.equal(machine.harts.every((h) => h.translating), true, 'the block translator stays on: its blocks charge too');
    const stats = new StatsRegistry();
    registerMachineStats(stats, machine, model);
    machine.harts[0]!.run(3);
    const value = (name: string): number => stats.read(name);
    assert.equal(value('system.cpu0.instructions'), 3);
    // Node 0 to node 3 is two hops on the 2x2 mesh (distance 30): 90 cycles for the load's miss; the store hits.
    assert.equal(value('system.cpu0.cache.missesRemote'), 1);
    assert.equal(value('system.cpu0.cache.missesLocal'), 1, 'the fetches share one line');
    assert.equal(value('system.cpu0.cycles'), 3 + 90 + 30);
    stats.reset();
    assert.equal(value('system.cpu0.instructions'), 0);
    assert.equal(value('system.cpu0.cycles'), 0);
  });

  it('a device writing memory by DMA drops the cached copies of those lines (coherent DMA)', () => {
    const { machine, data } = machineWithProgram();
    const model = enableTiming(machine, topologyPreset('numa4x2', 256 * MiB).latencies);
    machine.harts[0]!.run(3);
    assert.notEqual(model.caches.stateOf(0, data), LINE_INVALID, 'the load brought the line in');
    machine.bus.guestMemory().write(data - 4, new Uint8Array(8)); // a virtio buffer over the line
    assert.equal(model.caches.stateOf(0, data), LINE_INVALID);
    assert.notEqual(model.caches.stateOf(0, RAM_BASE), LINE_INVALID, 'the code line was not written');
  });

  it('setExecutionMode switches while running: the model counts only what ran in timing mode', () => {
    const { machine } = machineWithProgram();
    const hart = machine.harts[0]!;
    assert.throws(() => setExecutionMode(machine, 'timing'), /needs a timing configuration/);
    const model = configureTiming(machine, topologyPreset('numa4x2', 256 * MiB).latencies);
    assert.equal(configureTiming(machine, topologyPreset('numa4x2', 256 * MiB).latencies), model, 'configured once');
    assert.equal(executionMode(machine), 'fast');
    hart.run(30);
    assert.equal(model.accesses(0), 0, 'fast mode charges nothing');
    assert.equal(hart.stallCycles, 0);
    setExecutionMode(machine, 'timing');
    assert.equal(executionMode(machine), 'timing');
    hart.run(3); // the fetch of j, then ld and sd again
    const timed = model.accesses(0);
    const stalls = hart.stallCycles;
    assert.ok(timed >= 3, `accesses while timing: ${timed}`);
    assert.ok(stalls > 0);
    setExecutionMode(machine, 'fast');
    hart.run(3000);
    assert.equal(model.accesses(0), timed, 'nothing more is charged after switching back');
    assert.equal(hart.stallCycles, stalls);
    assert.equal(hart.instret, 30 + 3 + 3000);
  });
});

// Snapshots of a bare machine: run N rounds, save, restore into a fresh machine, run M more, and the
// console, the statistics and the machine's whole state are what N + M rounds straight through give.

import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import fc from 'fast-check';
import { RAM_BASE } from '../../src/board/address-map.js';
import { Machine } from '../../src/board/machine.js';
import { Simulation } from '../../src/board/simulation.js';
import { restoreMachine, saveMachine } from '../../src/board/snapshot.js';
import { configureTiming, setExecutionMode } from '../../src/board/timing-mode.js';
import { topologyPreset } from '../../src/board/topology.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/host/snapshot-file.js';
import { comparableState } from '../helpers/snapshot-state.js';
import { formatStatsText } from '../../src/timing/stats.js';
import { assemble, requireToolchain } from '../helpers/asm.js';

const MiB = 2 ** 20;
const TOPOLOGY = topologyPreset('numa4x2', 64 * MiB);

/**
 * Eight harts in S-mode under Sv39: a 1 GiB identity superpage for code, devices and shared words, and a
 * 2 MiB array on node 1 mapped by 4 KiB pages whose A and D bits the walks set. Each hart walks the array
 * at pseudo-random places (loads and stores, so caches and TLBs churn), counts with AMOADD and LR/SC,
 * does some FP, and every 1024 iterations waits in WFI for its M-mode timer (each hart its own period);
 * hart 0 then prints a letter on the UART.
 */
const PROGRAM = `
.equ SHARED, 0x80200000
.equ ROOT, 0x80100000
.equ L1, 0x80101000
.equ L0, 0x80102000
.globl _start
_start:
  csrr s0, mhartid
  la t0, mtrap
  csrw mtvec, t0
  li t0, 0x80201000
  slli t1, s0, 6
  add t0, t0, t1
  csrw mscratch, t0
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  bnez s0, wait_tables
  li t0, ROOT
  li t1, 0xC7
  sd t1, 0(t0)
  li t1, (0x80000 << 10) | 0xCF
  sd t1, 16(t0)
  li t1, (0x80101 << 10) | 1
  sd t1, 24(t0)
  li t2, L1
  li t1, (0x80102 << 10) | 1
  sd t1, 0(t2)
  li t2, L0
  li t3, 0x81000
  li t4, 512
1:
  slli t1, t3, 10
  ori t1, t1, 0x07
  sd t1, 0(t2)
  addi t2, t2, 8
  addi t3, t3, 1
  addi t4, t4, -1
  bnez t4, 1b
  fence
  li t0, SHARED
  li t1, 1
  sd t1, 8(t0)
wait_tables:
  li t0, SHARED
2:
  ld t1, 8(t0)
  beqz t1, 2b
  li t1, 0x80
  csrw mie, t1
  jal ra, set_timer
  li t1, (8 << 60) | 0x80100
  csrw satp, t1
  sfence.vma
  li t1, 0x1800
  csrc mstatus, t1
  li t1, 0x2800
  csrs mstatus, t1
  la t1, s_main
  csrw mepc, t1
  mret
s_main:
  li s1, 12345
  add s1, s1, s0
  li s2, 0xC0000000
  li s3, SHARED
  li s4, 6364136223846793005
  li s5, 1442695040888963407
  li s6, 0
loop:
  mul s1, s1, s4
  add s1, s1, s5
  srli t0, s1, 20
  li t1, 0x1ffff8
  and t0, t0, t1
  add t0, t0, s2
  ld t1, 0(t0)
  add t1, t1, s1
  sd t1, 0(t0)
  li t2, 1
  addi t4, s3, 16
  amoadd.d t3, t2, (t4)
  addi t4, s3, 24
3:
  lr.d t5, (t4)
  addi t5, t5, 1
  sc.d t6, t5, (t4)
  bnez t6, 3b
  fcvt.d.l ft0, s1
  fmadd.d ft1, ft0, ft0, ft1
  addi s6, s6, 1
  andi t0, s6, 1023
  bnez t0, loop
  bnez s0, 4f
  srli t0, s6, 10
  li t1, 26
  remu t0, t0, t1
  addi t0, t0, 'a'
  li t1, 0x10000000
  sb t0, 0(t1)
4:
  wfi
  j loop

set_timer:
  csrr t1, mhartid
  li t2, 0x200bff8
  ld t3, 0(t2)
  li t2, 37
  mul t2, t2, t1
  addi t2, t2, 500
  add t3, t3, t2
  li t2, 0x2004000
  slli t1, t1, 3
  add t2, t2, t1
  sd t3, 0(t2)
  ret

mtrap:
  csrrw t0, mscratch, t0
  sd t1, 0(t0)
  sd t2, 8(t0)
  sd t3, 16(t0)
  sd ra, 32(t0)
  csrr t1, mscratch
  sd t1, 24(t0)
  csrw mscratch, t0
  jal ra, set_timer
  ld t1, 0(t0)
  ld t2, 8(t0)
  ld t3, 16(t0)
  ld ra, 32(t0)
  ld t0, 24(t0)
  mret
`;

interface Run {
  machine: Machine;
  simulation: Simulation;
  console: number[];
}

function build(timing: boolean): Run {
  const console: number[] = [];
  const machine = new Machine({ config: TOPOLOGY.config, builtinSbi: false, console: (bytes) => console.push(...bytes) });
  const model = timing ? configureTiming(machine, TOPOLOGY.latencies, { sizeBytes: 64 * 1024 }) : undefined;
  return { machine, simulation: new Simulation(machine, model), console };
}

function boot(t: TestContext, timing: boolean): Run | undefined {
  if (!requireToolchain(t)) return undefined;
  const run = build(timing);
  run.machine.bus.guestMemory().write(RAM_BASE, assemble(PROGRAM).image);
  run.machine.resetAll(RAM_BASE, true, 0);
  return run;
}

function statsText(run: Run): string {
  return formatStatsText(run.simulation.stats.snapshot());
}

/** The machine's state as bytes, but for what only the translator decides (test/helpers/snapshot-state.ts). */
function stateBytes(run: Run): Buffer {
  return comparableState(saveMachine(run.machine, TOPOLOGY.config, run.simulation));
}

/**
 * Timing mode switches on and off at these rounds (as a guest's regions of interest would), so that a
 * snapshot may be taken in either mode, with caches kept warm across a fast period.
 */
const TIMING_FROM = 20;
const FAST_FROM = 180;
const TIMING_AGAIN_FROM = 300;

/** Round `round` (counted from the boot) of `run`, switching modes first where the schedule says. */
function step(run: Run, round: number, timing: boolean): void {
  if (timing && (round === TIMING_FROM || round === TIMING_AGAIN_FROM)) setExecutionMode(run.machine, 'timing');
  if (timing && round === FAST_FROM) setExecutionMode(run.machine, 'fast');
  run.machine.runRound();
}

/** Checks the property for (N, M) pairs: one straight run, saved at each N and compared at each N + M. */
function checkSeam(t: TestContext, timing: boolean, pairs: [number, number][]): void {
  const straight = boot(t, timing);
  if (straight === undefined) return;
  const saves = new Map<number, { bytes: Uint8Array; console: number }>();
  const checks = new Map<number, { console: string; stats: string; state: Buffer }>();
  const saveAt = new Set(pairs.map(([n]) => n));
  const checkAt = new Set(pairs.map(([n, m]) => n + m));
  const last = Math.max(...checkAt);
  for (let round = 0; round <= last; round++) {
    if (saveAt.has(round)) {
      saves.set(round, { bytes: encodeSnapshot(saveMachine(straight.machine, TOPOLOGY.config, straight.simulation)), console: straight.console.length });
    }
    if (checkAt.has(round)) {
      checks.set(round, { console: Buffer.from(straight.console).toString('latin1'), stats: statsText(straight), state: stateBytes(straight) });
    }
    step(straight, round, timing);
  }
  assert.ok(straight.console.length > 0 && straight.machine.instructions > 0, 'the program ran and printed');
  for (const [n, m] of pairs) {
    const saved = saves.get(n)!;
    const restored = build(timing);
    restoreMachine(restored.machine, decodeSnapshot(saved.bytes), restored.simulation);
    for (let round = n; round < n + m; round++) step(restored, round, timing);
    const expected = checks.get(n + m)!;
    const seen: string = Buffer.from(straight.console.slice(0, saved.console)).toString('latin1') + Buffer.from(restored.console).toString('latin1');
    assert.equal(seen, expected.console, `console after ${n} + ${m} rounds`);
    assert.equal(statsText(restored), expected.stats, `stats after ${n} + ${m} rounds`);
    assert.ok(stateBytes(restored).equals(expected.state), `machine state after ${n} + ${m} rounds`);
  }
}

/** A handful of (N, M) pairs from fast-check; the seed is in the test's name so a failure can be replayed. */
function pairs(seed: number): [number, number][] {
  return fc.sample(fc.tuple(fc.integer({ min: 0, max: 250 }), fc.integer({ min: 1, max: 250 })), { seed, numRuns: 5 });
}

describe('a bare machine saved after N rounds and restored runs M more exactly as N + M straight', () => {
  const seed = Number(process.env.MIRRORBALL_SNAPSHOT_SEED ?? Date.now() % 2 ** 31);
  it(`fast mode (seed ${seed})`, (t) => checkSeam(t, false, pairs(seed)));
  it(`timing mode, on and off: the mode, caches, miss counters and modelled TLB cross the seam (seed ${seed})`, (t) => {
    // At least one save while timing mode is on.
    const chosen = pairs(seed + 1);
    chosen[0]![0] = TIMING_FROM + (chosen[0]![0] % (FAST_FROM - TIMING_FROM));
    checkSeam(t, true, chosen);
  });
});

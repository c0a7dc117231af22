// Issue 28, item 4: a hostile VM next to a canary on one CPU. VM B fills 256 KiB with a pattern, checks it
// PASSES times each period, echoes what arrives on its UART and prints a dot. VM A is hostile every period in two phases:
// random S-mode code (the `monitor` fuzz target's generator) under random satp and PTEs every other period, with
// registers aimed at every device, then a storm (SBI timer and IPI calls, the timer and software interrupts
// they raise, loads and stores of random values at random registers of the CLINT, PLIC, UART, control device
// and virtio windows); its virtio-rng is made to DMA at addresses stepping over the whole 64-bit space and at
// B's machine pages. B must run ≥ 45 % of the time it is runnable, its pattern must stay intact, the host must
// not fail, and A must really have been hostile (counts per period). One simulated minute in CI;
// MIRRORBALL_LONG=1 runs ten.
//
// To fit a simulated minute in CI, the contention is duty-cycled: each period (one simulated second) B wakes on
// its timer and works for about 3 million cycles, and A is runnable for as long as B is (the test parks it once B
// sleeps, or once it has stormed), so every cycle B waits is a cycle A holds the CPU. Host time goes to A's random code
// (a trap every few instructions); the storm's exits each take a few hundred simulated cycles for little host
// time, so the random phase is bounded and the storm fills the rest of the period (docs/fuzzing.md).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MSTATUS_SIE } from '../../src/cpu/hart-state.js';
import { IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER } from '../../src/isa/opcodes.js';
import { VirtioRng, SeededEntropy } from '../../src/devices/virtio/rng.js';
import { MmioRegister } from '../../src/devices/virtio/mock-driver.js';
import { STATUS_ACKNOWLEDGE, STATUS_DEVICE_NEEDS_RESET, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK } from '../../src/devices/virtio/spec.js';
import { accountVm } from '../../src/monitor/accounting.js';
import { CONTROL_DEVICE, PLIC_CONTEXT_BASE, PLIC_CONTEXT_STRIDE } from '../../src/board/address-map.js';
import { EXT_IPI, EXT_TIME } from '../../src/board/sbi.js';
import { Monitor } from '../../src/monitor/monitor.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import { monitorCases, startMonitorCase } from '../../src/fuzz/targets/guest.js';
import { assemble, assembleElf, requireToolchain, TEXT_BASE } from '../helpers/asm.js';

const MiB = 2 ** 20;
const CYCLES_PER_SECOND = 100_000_000; // 10 cycles a tick of the 10 MHz timebase
const SECONDS = Number(process.env.HOSTILE_SECONDS ?? (process.env.MIRRORBALL_LONG === '1' ? 600 : 60));
const PATTERN_OFFSET = MiB;
const PATTERN_DWORDS = MiB / 32;
const PASSES = Number(process.env.HOSTILE_PASSES ?? 8);
const TICKS_PER_PERIOD = 10_000_000; // one simulated second
const RNG_RING = 0x3000;
const DMA_PER_PERIOD = 16;
/**
 * Hostility per period, from below (about a fifth of the least measured): instructions of random code, its
 * traps and exits, and the storm's exits of each kind (SBI calls, interrupts, MMIO).
 */
const MIN_RANDOM_INSTRUCTIONS = 5000;
const MIN_RANDOM_TRAPS = 1000;
const MIN_STORM_EXITS = 25;

/** B, an ELF booted as a VM's \`elf:\` is (VirtualMachine.bootElf: a0 = hartid, a1 = its device tree, the SBI's delegation). */
const CANARY = `
.equ UART, 0x10000000
.globl _start
_start:
  li s0, ${TEXT_BASE + PATTERN_OFFSET}
  li s1, ${PATTERN_DWORDS}
  li s2, ${PASSES}
  li s3, ${TICKS_PER_PERIOD}
  li s4, 0x9E3779B97F4A7C15
  li t0, 32
  csrs sie, t0
  li t0, 0
1:
  bgeu t0, s1, period
  mul t1, t0, s4
  xori t1, t1, 0x5a5
  slli t2, t0, 3
  add t2, t2, s0
  sd t1, 0(t2)
  addi t0, t0, 1
  j 1b
period:
  li t0, UART
  lbu t1, 5(t0)
  andi t1, t1, 1
  beqz t1, check
  lbu t1, 0(t0)
  sb t1, 0(t0)
  j period
check:
  li s5, 0
2:
  li t0, 0
3:
  bgeu t0, s1, 4f
  mul t1, t0, s4
  xori t1, t1, 0x5a5
  slli t2, t0, 3
  add t2, t2, s0
  ld t3, 0(t2)
  bne t3, t1, bad
  addi t0, t0, 1
  j 3b
4:
  addi s5, s5, 1
  blt s5, s2, 2b
  li t0, UART
  li t1, '.'
  sb t1, 0(t0)
  rdtime a0
  add a0, a0, s3
  li a7, 0x54494D45
  li a6, 0
  ecall
5:
  wfi
  csrr t0, sip
  andi t0, t0, 32
  beqz t0, 5b
  j period
bad:
  li t0, UART
  li t1, 'X'
  sb t1, 0(t0)
  li a7, 0x53525354
  li a6, 0
  li a0, 0
  li a1, 1
  ecall
  j bad
`;

/** Random cases A runs each period before its storm: a fresh one each time it has had the CPU or waits (WFI). */
const RANDOM_CASES = Number(process.env.HOSTILE_RANDOM_CASES ?? 16);
/** A's fixed code (its trap handler, then the storm loop), at this offset of its RAM; the storm's table after it. */
const HOSTILE_CODE = 0x1000;
const STORM_TABLE = 0x2000;
const STORM_ENTRIES = 64;
const TIMER_TICKS = 100;
const PLIC_S_CLAIM = 0x0c00_0000 + PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE + 4;

/**
 * A's trap handler and storm, assembled without compressed instructions (the handler skips 4 bytes).
 * The handler counts the faults it skips in sscratch (the test reads and clears it each period); it
 * answers a timer interrupt by setting the next one TIMER_TICKS on (an SBI call: a timer storm in both
 * phases, which also wakes random code's WFI), a software one by clearing SSIP, an
 * external one by a claim and complete at the PLIC, and returns to the interrupted instruction. The storm
 * loops: set_timer(now: 0) (an SBI exit, then a timer interrupt), send_ipi to itself (an SBI exit, then a
 * software interrupt), then a store and a load of a random value at each of two random device registers
 * from the table (s2 walks it from s4 to s3).
 */
const HOSTILE = `
.equ TIME, ${EXT_TIME}
.equ IPI, ${EXT_IPI}
handler:
  csrr t6, scause
  bltz t6, interrupt
  csrr t6, sscratch
  addi t6, t6, 1
  csrw sscratch, t6
  csrr t6, sepc
  addi t6, t6, 4
  csrw sepc, t6
  sret
interrupt:
  slli t6, t6, 1
  srli t6, t6, 1
  addi t6, t6, -5
  beqz t6, timer
  addi t6, t6, 4
  beqz t6, soft
  li t6, ${PLIC_S_CLAIM}
  lw t5, 0(t6)
  sw t5, 0(t6)
  sret
soft:
  csrci sip, 2
  sret
timer:
  mv s5, a0
  mv s6, a6
  mv s7, a7
  li a7, TIME
  li a6, 0
  rdtime a0
  addi a0, a0, ${TIMER_TICKS}
  ecall
  mv a0, s5
  mv a6, s6
  mv a7, s7
  sret
.globl storm
storm:
  li a7, TIME
  li a6, 0
  li a0, 0
  ecall
  li a7, IPI
  li a6, 0
  li a0, 1
  li a1, 0
  ecall
  ld t0, 0(s2)
  ld t1, 8(s2)
  sw t1, 0(t0)
  lw t2, 0(t0)
  ld t0, 16(s2)
  ld t1, 24(s2)
  sw t1, 0(t0)
  lw t2, 0(t0)
  addi s2, s2, 32
  bltu s2, s3, storm
  mv s2, s4
  j storm
/* Where a boot of the ELF (VirtualMachine.bootElf, as a VM's elf: boots) starts the storm: every S interrupt enabled
   through the handler, the table from s4 to s3. */
.globl _start
_start:
  la t0, handler
  csrw stvec, t0
  li t0, ${(1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT)}
  csrs sie, t0
  csrsi sstatus, ${MSTATUS_SIE}
  li s4, ${TEXT_BASE + STORM_TABLE}
  li s3, ${TEXT_BASE + STORM_TABLE + 16 * STORM_ENTRIES}
  mv s2, s4
  j storm
`;

/** jal x0, offset (J-type, ISA §2.5). */
function jal(offset: number): number {
  const imm = offset >>> 0;
  return ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | 0x6f) >>> 0;
}

/** Device windows and RAM for A's registers: its random loads and stores land on every device. */
const DEVICE_ADDRESSES = [0x0200_0000n, 0x0200_4000n, 0x0200_bff8n, 0x0c00_0000n, 0x0c00_2080n, 0x0c20_1000n, 0x1000_0000n, 0x0011_0000n, 0x1000_1000n,
  0x1000_1050n, 0x1000_1070n];

/** The storm's device registers: any offset (and a little past the end) of each device's window, or anywhere. */
const WINDOWS: Array<[number, number]> = [[0x0200_0000, 0x1_0000], [0x0c00_0000, 0x60_0000], [0x1000_0000, 0x100], [CONTROL_DEVICE.base, CONTROL_DEVICE.size], [0x1000_1000, 0x8000]];
const stormEntry = fc.tuple(
  fc.oneof({ weight: 8, arbitrary: fc.tuple(fc.constantFrom(...WINDOWS), fc.nat({ max: 0xffff })).map(([[base, size], o]) => BigInt(base + (o % (size + 16)))) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  fc.oneof(fc.nat({ max: 8 }).map(BigInt), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
);

/** Exits of `vm` by kind and cause so far. */
const causes = (monitor: Monitor, vm: Parameters<typeof accountVm>[1]): Record<string, number> => accountVm(monitor, vm).exitCauses;
const sum = (c: Record<string, number>, prefix: string): number => Object.entries(c).filter(([k]) => k.startsWith(prefix)).reduce((t, [, v]) => t + v, 0);
/** The exits that random code's accesses make (not the handler's timer and interrupts): page faults, TLB refills, MMIO. */
const faults = (c: Record<string, number>): number => sum(c, 'guest-page-fault') + sum(c, 'tlb-refill') + sum(c, 'mmio.');

/** What A did in one period: the test's record, checked against minima (hostility) at the end. */
interface Period {
  randomInstructions: number;
  /** Random code's faults (those A's handler skipped) and the exits its accesses made. */
  randomTraps: number;
  stormSbi: number;
  stormInterrupts: number;
  stormMmio: number;
  dmaAttempts: number;
  dmaRefused: number;
  dmaDone: number;
}

test('a hostile VM next to a canary: the canary keeps its pattern and its CPU share, the host survives', { timeout: 900_000 }, (t) => {
  if (!requireToolchain(t)) return;
  const canaryElf = assembleElf(CANARY);
  const hostile = assemble(HOSTILE, 'rv64g');
  const hostileElf = assembleElf(HOSTILE, 'rv64g', TEXT_BASE + HOSTILE_CODE);
  const monitor = new Monitor({ config: { harts: 1, nodes: [{ memoryBytes: 64 * MiB, harts: [0] }] } });
  let canaryOutput = '';
  /** A virtio device failing for anything but the driver's mistake is a monitor bug (as in the fuzz targets). */
  const deviceFaults: string[] = [];
  const a = monitor.createVm({ name: 'hostile', vcpus: 1, memoryBytes: 16 * MiB, console: () => {}, log: (message) => { if (message.includes('device fault')) deviceFaults.push(message); } });
  const b = monitor.createVm({ name: 'canary', vcpus: 1, memoryBytes: 16 * MiB, console: (bytes) => { canaryOutput += Buffer.from(bytes).toString('latin1'); }, log: () => {} });
  const rng = a.machine.attachVirtio(new VirtioRng(new SeededEntropy(1)));

  // B: the canary program, booted as an elf: VM is; it enables its timer interrupt for WFI.
  const bMemory = b.machine.bus.guestMemory();
  b.bootElf(canaryElf);
  const hb = b.vcpus[0]!;

  // A's phases: RANDOM_CASES fresh random cases (code, tables, registers) and a fresh storm table each period.
  const ha = a.vcpus[0]!;
  const base = a.pmap.base;
  const phases = fc.sample(monitorCases(base), { numRuns: SECONDS * RANDOM_CASES, seed: 28 });
  const storms = fc.sample(fc.array(stormEntry, { minLength: STORM_ENTRIES, maxLength: STORM_ENTRIES }), { numRuns: SECONDS, seed: 28 });
  const aMemory = a.machine.bus.guestMemory();
  /** A's handler takes every exception but the ECALLs the monitor answers (SBI) and every S interrupt; A starts with them enabled. */
  const arm = (): void => {
    aMemory.write(base + HOSTILE_CODE, hostile.image);
    ha.codeWritten();
    ha.stvec = base + HOSTILE_CODE;
    ha.medeleg = 0xffff & ~((1 << 9) | (1 << 11));
    ha.mideleg = (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT);
    ha.mie = (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT);
    ha.mstatus |= MSTATUS_SIE;
    ha.mcounteren = 7;
  };
  /**
   * The storm from its first table entry, translation off: A booted again from its ELF as a VM's elf: is (its code
   * and the table written again: random code may have written over them), vCPU 0 started by the SBI at _start.
   */
  const startStorm = (period: number): void => {
    storms[period % storms.length]!.forEach(([address, value], k) => {
      const at = base + STORM_TABLE + 16 * k;
      aMemory.writeU32(at, Number(address & 0xffff_ffffn));
      aMemory.writeU32(at + 4, Number(address >> 32n));
      aMemory.writeU32(at + 8, Number(value & 0xffff_ffffn));
      aMemory.writeU32(at + 12, Number(value >> 32n));
    });
    a.bootElf(hostileElf);
    ha.codeWritten();
  };
  /**
   * A's driver points its rng at addresses stepping over the whole 64-bit space, and at B's machine pages: one
   * request a device reset, so each is tried. Returns the requests the device refused (DEVICE_NEEDS_RESET) and
   * those it completed (into A's own memory).
   */
  const dmaSweep = (period: number): { refused: number; done: number } => {
    const write = (offset: number, v: number): void => rng.write(offset, 4, v >>> 0, 0);
    let refused = 0;
    let done = 0;
    for (let k = 0; k < DMA_PER_PERIOD; k++) {
      // 2^64 / 2^12 steps in 16 a period, over the periods; every fourth at the machine address of a page of B's pattern.
      const target = k % 4 === 0
        ? BigInt(monitor.memory.addressOf(b.pmap.lookup(PATTERN_OFFSET / PAGE + ((period * 4 + k / 4) % (8 * PATTERN_DWORDS / PAGE)))))
        : (BigInt(period * 16 + k) * 0x1_0000_0000_0000n + BigInt(k) * 0x1000n) & 0xffff_ffff_ffff_ffffn;
      // The ring first: the device takes what is available as soon as the driver is ready.
      aMemory.writeU32(base + RNG_RING, Number(target & 0xffff_ffffn));
      aMemory.writeU32(base + RNG_RING + 4, Number(target >> 32n));
      aMemory.writeU32(base + RNG_RING + 8, 4096);
      aMemory.writeU32(base + RNG_RING + 12, 2); // WRITE
      aMemory.writeU16(base + RNG_RING + 0x100, 0);
      aMemory.writeU16(base + RNG_RING + 0x100 + 2, 1);
      aMemory.writeU16(base + RNG_RING + 0x100 + 4, 0);
      aMemory.writeU16(base + RNG_RING + 0x202, 0);
      write(MmioRegister.status, 0);
      write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
      write(MmioRegister.driverFeaturesSel, 1);
      write(MmioRegister.driverFeatures, 1); // VERSION_1 (bit 32), which the transport requires
      write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
      write(MmioRegister.queueSel, 0);
      write(MmioRegister.queueNum, 16);
      write(MmioRegister.queueDescLow, base + RNG_RING);
      write(MmioRegister.queueDriverLow, base + RNG_RING + 0x100);
      write(MmioRegister.queueDeviceLow, base + RNG_RING + 0x200);
      write(MmioRegister.queueReady, 1);
      write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
      write(MmioRegister.queueNotify, 0);
      if ((rng.read(MmioRegister.status, 4, 0) & STATUS_DEVICE_NEEDS_RESET) !== 0) refused++;
      else if (aMemory.readU16(base + RNG_RING + 0x202) === 1) done++;
    }
    return { refused, done };
  };

  /** A fresh random case: code looping, every trap through A's handler; registers aimed at the devices. */
  const startRandom = (n: number): void => {
    const phase = phases[n % phases.length]!;
    const registers = phase.registers.map((r, k) => (k % 3 === 0 ? DEVICE_ADDRESSES[(k + n) % DEVICE_ADDRESSES.length]! : r));
    registers[16] = BigInt(EXT_TIME); // a7: set_timer(a0) from random code's ECALLs
    startMonitorCase(a, { ...phase, code: [...phase.code, jal(-4 * phase.code.length)], registers, translated: phase.translated && n % 2 === 1 });
    arm();
    ha.sscratch = 0n;
    caseStart = ha.instret;
  };
  let caseStart = 0;
  /**
   * The faults A's handler skipped in the current random case: its count in sscratch, which random code can
   * write too, so at most one per instruction run.
   */
  const skipped = (): number => Math.min(Number(BigInt.asUintN(32, ha.sscratch)), ha.instret - caseStart);

  const end = SECONDS * CYCLES_PER_SECOND;
  const record: Period[] = [];
  let periods = 0;
  let hostileRounds = 0;
  while (monitor.cycles < end && b.state === 'running') {
    // B wakes on its timer; A starts its random phase, its device is aimed, and the input B must answer arrives.
    runUntil(monitor, () => !hb.waiting || b.state !== 'running');
    if (monitor.cycles >= end || b.state !== 'running') break;
    const p: Period = { randomInstructions: 0, randomTraps: 0, stormSbi: 0, stormInterrupts: 0, stormMmio: 0, dmaAttempts: 0, dmaRefused: 0, dmaDone: 0 };
    if (a.state === 'running') {
      startRandom(periods * RANDOM_CASES);
      const dma = dmaSweep(periods);
      p.dmaAttempts = DMA_PER_PERIOD;
      p.dmaRefused = dma.refused;
      p.dmaDone = dma.done;
    }
    b.machine.uart.input(Uint8Array.of(0x61 + (periods % 26)));
    periods++;
    // Hostile while B is runnable: random cases first, then the storm.
    let cases = 1;
    const instret = ha.instret;
    let before = causes(monitor, a);
    let stormed = false;
    let ranLast = false;
    let stormRuns = 0;
    // A runnable while B is, and on until it has had the CPU twice in its storm (a random case can hold the CPU
    // for longer than B's work: an exit's cycles do not shorten the run it happens in).
    while (b.state === 'running' && monitor.cycles < end && (!hb.waiting || (a.state === 'running' && stormRuns < 2))) {
      if (!stormed && a.state === 'running' && (ranLast || ha.waiting)) {
        p.randomTraps += skipped();
        if (cases < RANDOM_CASES) {
          startRandom((periods - 1) * RANDOM_CASES + cases++);
        } else {
          p.randomInstructions = ha.instret - instret;
          p.randomTraps += faults(causes(monitor, a)) - faults(before);
          before = causes(monitor, a);
          startStorm(periods);
          stormed = true;
        }
      }
      const ran = ha.instret;
      monitor.runRound();
      ranLast = ha.instret !== ran;
      if (stormed && ranLast) stormRuns++;
      hostileRounds++;
    }
    if (stormed && a.state === 'running') {
      const after = causes(monitor, a);
      p.stormSbi = sum(after, 'sbi.') - sum(before, 'sbi.');
      p.stormInterrupts = sum(after, 'interrupt') - sum(before, 'interrupt');
      p.stormMmio = sum(after, 'mmio.') - sum(before, 'mmio.');
    } else if (!stormed) {
      p.randomInstructions = ha.instret - instret;
      p.randomTraps += skipped() + faults(causes(monitor, a)) - faults(before);
    }
    record.push(p);
    ha.parked = true;
  }
  const account = accountVm(monitor, b).total;
  const ran = account.guestUserCycles + account.guestKernelCycles + account.monitorCycles;
  const share = ran / (ran + account.readyCycles);
  const total = (key: keyof Period): number => record.reduce((t, p) => t + p[key], 0);
  const least = (key: keyof Period): number => Math.min(...record.map((p) => p[key]));
  const hostileCauses = causes(monitor, a);
  t.diagnostic(`${SECONDS} simulated s, ${periods} periods, ${hostileRounds} contended rounds; canary ran ${(100 * share).toFixed(1)} % of its runnable time; ` +
    `hostile VM: ${a.state} ${a.reason}; per period (least, total): random-code instructions ${least('randomInstructions')}, ${total('randomInstructions')}; ` +
    `its traps and exits ${least('randomTraps')}, ${total('randomTraps')}; storm SBI calls ${least('stormSbi')}, ${total('stormSbi')}; ` +
    `interrupts ${least('stormInterrupts')}, ${total('stormInterrupts')}; MMIO ${least('stormMmio')}, ${total('stormMmio')}; ` +
    `DMA requests ${total('dmaAttempts')}, refused ${total('dmaRefused')}, done ${total('dmaDone')}; exits ${JSON.stringify(hostileCauses)}`);

  assert.equal(b.state, 'running', `the canary ended: ${b.reason}; it printed ${canaryOutput.slice(-40)}`);
  assert.ok(!canaryOutput.includes('X'), 'the canary found its pattern changed');
  assert.notEqual(a.state, 'crashed', `the monitor failed on the hostile VM: ${a.reason}`);
  assert.equal(a.state, 'running', `the hostile VM ended: ${a.reason}`);
  assert.deepEqual(deviceFaults, [], 'a device failed for something other than the driver\'s mistake');
  // The canary answered throughout: a dot per period and every byte sent to it echoed, in order.
  const dots = canaryOutput.split('').filter((c) => c === '.').length;
  assert.ok(dots >= periods - 1, `${dots} dots in ${periods} periods`);
  const echoes = canaryOutput.replace(/\./g, '');
  assert.equal(echoes, Array.from({ length: echoes.length }, (_, p) => String.fromCharCode(0x61 + (p % 26))).join(''));
  assert.ok(echoes.length >= periods - 1, `${echoes.length} echoes in ${periods} periods`);
  // Its pattern, read by the host through its pmap.
  for (let i = 0; i < PATTERN_DWORDS; i += 97) {
    const expected = BigInt.asUintN(64, BigInt(i) * 0x9E3779B97F4A7C15n) ^ 0x5a5n;
    const at = b.pmap.base + PATTERN_OFFSET + 8 * i;
    const value = BigInt(bMemory.readU32(at)) | (BigInt(bMemory.readU32(at + 4)) << 32n);
    assert.equal(value, expected, `pattern word ${i}`);
  }
  assert.ok(share >= 0.45, `the canary ran ${(100 * share).toFixed(1)} % of the time it was runnable`);

  // A was hostile every period: it ran random code, then stormed (SBI calls, the interrupts they raise, device
  // registers), and its device was aimed at every address; over the run its traps and exits were many.
  assert.equal(record.length, periods);
  for (const [k, p] of record.entries()) {
    const at = `period ${k}: ${JSON.stringify(p)}`;
    assert.ok(p.randomInstructions >= MIN_RANDOM_INSTRUCTIONS, `A ran little random code in ${at}`);
    assert.ok(p.randomTraps >= MIN_RANDOM_TRAPS, `A's random code trapped or exited little in ${at}`);
    if (k === record.length - 1 && p.stormSbi === 0) continue; // the minute may end before the last storm
    assert.ok(p.stormSbi >= MIN_STORM_EXITS, `A's storm made few SBI calls in ${at}`);
    assert.ok(p.stormInterrupts >= MIN_STORM_EXITS, `A's storm took few interrupts in ${at}`);
    assert.ok(p.stormMmio >= MIN_STORM_EXITS, `A's storm made few MMIO accesses in ${at}`);
    assert.equal(p.dmaAttempts, DMA_PER_PERIOD, `A's device was not aimed in ${at}`);
    // Each request is refused (its buffer outside A's memory) or done (into A's own memory, whatever machine address it named).
    assert.equal(p.dmaRefused + p.dmaDone, DMA_PER_PERIOD, `A's device neither refused nor did a request in ${at}`);
    assert.ok(p.dmaRefused >= (DMA_PER_PERIOD * 3) / 4 - 1, `A's device was refused too few requests in ${at}`);
  }
  assert.ok(sum(hostileCauses, 'interrupt.timer') >= periods, `A took few timer interrupts: ${JSON.stringify(hostileCauses)}`);
  assert.ok(sum(hostileCauses, 'guest-page-fault') > 0, `A's pages were never filled on demand: ${JSON.stringify(hostileCauses)}`);
  for (const device of ['mmio.clint', 'mmio.plic', 'mmio.ns16550a', 'mmio.mirrorball-control', 'mmio.virtio']) {
    assert.ok(sum(hostileCauses, device) > 0, `A never reached ${device}: ${JSON.stringify(hostileCauses)}`);
  }
});

/** Rounds until `done`: time skips while both VMs wait. */
function runUntil(monitor: Monitor, done: () => boolean): void {
  while (!done() && monitor.running) monitor.runRound();
}

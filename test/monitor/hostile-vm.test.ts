// Issue 28, item 4: a hostile VM next to a canary on one CPU. VM A runs random S-mode code under random satp and
// PTEs with registers aimed at every device (interrupt storms through the CLINT and SBI timers, the control
// device, the UART, the PLIC), and its virtio-rng is made to DMA at every address. VM B fills 256 KiB with a pattern,
// checks it over and over, echoes what arrives on its UART and prints a dot each period. B must run ≥ 45 % of
// the time it is runnable, its pattern must stay intact, and the host must not fail. One simulated minute in CI;
// MIRRORBALL_LONG=1 runs ten.
//
// To fit a simulated minute in CI, the contention is duty-cycled: each period (one simulated second) B wakes on
// its timer and works for a few million cycles, and A is hostile, always runnable, for exactly as long as B is
// runnable (the test parks it once B sleeps), so every cycle B waits is a cycle A holds the CPU.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MSTATUS_SIE } from '../../src/cpu/hart-state.js';
import { IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER, PRIV_S } from '../../src/isa/opcodes.js';
import { VirtioRng, SeededEntropy } from '../../src/devices/virtio/rng.js';
import { MmioRegister } from '../../src/devices/virtio/mock-driver.js';
import { STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK } from '../../src/devices/virtio/spec.js';
import { accountVm } from '../../src/monitor/accounting.js';
import { Monitor } from '../../src/monitor/monitor.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import { monitorCases, startMonitorCase } from '../../src/fuzz/targets/guest.js';
import { assemble, requireToolchain } from '../helpers/asm.js';

const MiB = 2 ** 20;
const CYCLES_PER_SECOND = 100_000_000; // 10 cycles a tick of the 10 MHz timebase
const SECONDS = Number(process.env.HOSTILE_SECONDS ?? (process.env.MIRRORBALL_LONG === '1' ? 600 : 60));
const PATTERN_OFFSET = MiB;
const PATTERN_DWORDS = MiB / 32;
const PASSES = 1;
const TICKS_PER_PERIOD = 10_000_000; // one simulated second
const RNG_RING = 0x3000;

const CANARY = `
.equ UART, 0x10000000
.globl _start
_start:
  mv s0, a0
  mv s1, a1
  mv s2, a2
  mv s3, a3
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

/** A's trap handler: sepc += 4; sret (csrr x31, sepc; addi x31, x31, 4; csrw sepc, x31; sret). */
const SKIP_HANDLER = [(0x141 << 20) | (2 << 12) | (31 << 7) | 0x73, (4 << 20) | (31 << 15) | (31 << 7) | 0x13, (0x141 << 20) | (31 << 15) | (1 << 12) | 0x73, 0x1020_0073];
const HANDLER = 0x800;

/** jal x0, offset (J-type, ISA §2.5). */
function jal(offset: number): number {
  const imm = offset >>> 0;
  return ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) | 0x6f) >>> 0;
}

/** Device windows and RAM for A's registers: its random loads and stores land on every device. */
const DEVICE_ADDRESSES = [0x0200_0000n, 0x0200_4000n, 0x0200_bff8n, 0x0c00_0000n, 0x0c00_2080n, 0x0c20_1000n, 0x1000_0000n, 0x0011_0000n, 0x1000_1000n,
  0x1000_1050n, 0x1000_1070n];

test('a hostile VM next to a canary: the canary keeps its pattern and its CPU share, the host survives', { timeout: 900_000 }, (t) => {
  if (!requireToolchain(t)) return;
  const program = assemble(CANARY);
  const monitor = new Monitor({ config: { harts: 1, nodes: [{ memoryBytes: 64 * MiB, harts: [0] }] } });
  let canaryOutput = '';
  const a = monitor.createVm({ name: 'hostile', vcpus: 1, memoryBytes: 16 * MiB, console: () => {}, log: () => {} });
  const b = monitor.createVm({ name: 'canary', vcpus: 1, memoryBytes: 16 * MiB, console: (bytes) => { canaryOutput += Buffer.from(bytes).toString('latin1'); }, log: () => {} });
  const rng = a.machine.attachVirtio(new VirtioRng(new SeededEntropy(1)));

  // B: the canary program, translation off, its timer interrupt enabled for WFI.
  const bMemory = b.machine.bus.guestMemory();
  bMemory.write(b.pmap.base, program.image);
  const hb = b.vcpus[0]!;
  hb.reset(b.pmap.base);
  hb.priv = PRIV_S;
  hb.mcounteren = 7;
  hb.mideleg = (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT);
  hb.updateTranslation();
  hb.setReg(10, b.pmap.base + PATTERN_OFFSET);
  hb.setReg(11, PATTERN_DWORDS);
  hb.setReg(12, PASSES);
  hb.setReg(13, TICKS_PER_PERIOD);

  // A's phases: fresh random code, tables and registers each period (random code soon sits in a trap loop).
  const ha = a.vcpus[0]!;
  const phases = fc.sample(monitorCases(a.pmap.base), { numRuns: SECONDS, seed: 28 });
  const aMemory = a.machine.bus.guestMemory();
  /** A's driver points its rng's descriptors at addresses stepping over the whole 64-bit space, and at B's machine pages. */
  const dmaSweep = (period: number): void => {
    const write = (offset: number, v: number): void => rng.write(offset, 4, v >>> 0, 0);
    write(MmioRegister.status, 0);
    write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    write(MmioRegister.queueSel, 0);
    write(MmioRegister.queueNum, 16);
    write(MmioRegister.queueDescLow, a.pmap.base + RNG_RING);
    write(MmioRegister.queueDriverLow, a.pmap.base + RNG_RING + 0x100);
    write(MmioRegister.queueDeviceLow, a.pmap.base + RNG_RING + 0x200);
    write(MmioRegister.queueReady, 1);
    write(MmioRegister.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    for (let k = 0; k < 16; k++) {
      // 2^64 / 2^12 steps in 16 a period, over the periods; every fourth at a page of B's (machine address).
      const target = k % 4 === 0
        ? BigInt(monitor.memory.addressOf(b.pmap.lookup((period * 16 + k) % (16 * MiB / PAGE)) >>> 0))
        : (BigInt(period * 16 + k) * 0x1_0000_0000_0000n + BigInt(k) * 0x1000n) & 0xffff_ffff_ffff_ffffn;
      const at = a.pmap.base + RNG_RING + 16 * k;
      aMemory.writeU32(at, Number(target & 0xffff_ffffn));
      aMemory.writeU32(at + 4, Number(target >> 32n));
      aMemory.writeU32(at + 8, 4096);
      aMemory.writeU32(at + 12, 2); // WRITE
      aMemory.writeU16(a.pmap.base + RNG_RING + 0x100 + 4 + 2 * k, k);
    }
    aMemory.writeU16(a.pmap.base + RNG_RING + 0x100 + 2, 16);
    write(MmioRegister.queueNotify, 0);
  };

  const end = SECONDS * CYCLES_PER_SECOND;
  let periods = 0;
  let hostileRounds = 0;
  while (monitor.cycles < end && b.state === 'running') {
    // B wakes on its timer; A gets a fresh hostile phase and the input B must answer arrives.
    if (hb.waiting || periods === 0) {
      runUntil(monitor, () => !hb.waiting || b.state !== 'running');
      if (monitor.cycles >= end) break;
      const phase = phases[periods % phases.length]!;
      // Registers aimed at the devices (storms, the control device) and at ECALLs for the SBI timer and IPIs.
      const registers = phase.registers.map((r, k) => (k % 3 === 0 ? DEVICE_ADDRESSES[(k + periods) % DEVICE_ADDRESSES.length]! : r));
      registers[16] = 0x5449_4d45n; // a7: the timer extension: set_timer(a0) from random code's ECALLs
      if (a.state === 'running') {
        // The random code loops, and every trap (a fault, an interrupt of the storm) skips the instruction and goes on.
        const code = [...phase.code, jal(-4 * phase.code.length)];
        startMonitorCase(a, { ...phase, code, registers, translated: phase.translated && periods % 2 === 1 });
        aMemory.write(a.pmap.base + HANDLER, new Uint8Array(Uint32Array.from(SKIP_HANDLER).buffer));
        ha.stvec = a.pmap.base + HANDLER;
        ha.mideleg = (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT);
        ha.mie = (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT);
        ha.mstatus |= MSTATUS_SIE;
        dmaSweep(periods);
      }
      b.machine.uart.input(Uint8Array.of(0x61 + (periods % 26)));
      periods++;
    }
    // Hostile while B is runnable.
    while (!hb.waiting && b.state === 'running' && monitor.cycles < end) {
      monitor.runRound();
      hostileRounds++;
    }
    ha.parked = true;
  }
  const account = accountVm(monitor, b).total;
  const ran = account.guestUserCycles + account.guestKernelCycles + account.monitorCycles;
  const share = ran / (ran + account.readyCycles);
  t.diagnostic(`${SECONDS} simulated s, ${periods} periods, ${hostileRounds} contended rounds; canary ran ${(100 * share).toFixed(1)} % of its runnable time; ` +
    `hostile VM: ${a.state} ${a.reason}, exits ${JSON.stringify(accountVm(monitor, a).exits)}`);

  assert.equal(b.state, 'running', `the canary ended: ${b.reason}; it printed ${canaryOutput.slice(-40)}`);
  assert.ok(!canaryOutput.includes('X'), 'the canary found its pattern changed');
  assert.notEqual(a.state, 'crashed', `the monitor failed on the hostile VM: ${a.reason}`);
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
});

/** Rounds until `done`: time skips while both VMs wait. */
function runUntil(monitor: Monitor, done: () => boolean): void {
  while (!done() && monitor.running) monitor.runRound();
}

// Test harness: a bus with RAM, a CLINT and an exit device, N harts, a deterministic clock; runs a program.

import type { TestContext } from 'node:test';
import { Hart } from '../../src/cpu/hart.js';
import { Reservations } from '../../src/cpu/reservations.js';
import { Clint } from '../../src/devices/clint.js';
import { Bus } from '../../src/memory/bus.js';
import type { AccessSize, Clock, Device } from '../../src/memory/device.js';
import { RamRegion } from '../../src/memory/ram.js';
import { assemble, requireToolchain, TEXT_BASE, type Program } from './asm.js';

export const RAM_BASE = TEXT_BASE;
/** A 4-byte store of code here ends the run with that exit code (0 conventionally means pass). */
export const EXIT_BASE = 0x0010_0000;
export const CLINT_BASE = 0x0200_0000;
const EXIT_SIZE = 0x1000;
const DEFAULT_RAM = 4 << 20;
const DEFAULT_SLICE = 50;
/** Rounds in which no hart runs an instruction before the harness calls the machine stuck. */
const MAX_IDLE_ROUNDS = 1000;

/**
 * Source text to put before a test program: the device addresses and `pass`/`fail` macros.
 * `fail n` ends the run with exit code n (use n ≥ 1); `pass` with 0.
 */
export const PRELUDE = `
.equ EXIT_BASE, ${EXIT_BASE}
.equ CLINT_BASE, ${CLINT_BASE}
.equ RAM_BASE, ${RAM_BASE}
.macro exit_with reg
  li t6, EXIT_BASE
  sw \\reg, 0(t6)
99: j 99b
.endm
.macro pass
  li t5, 0
  exit_with t5
.endm
.macro fail code
  li t5, \\code
  exit_with t5
.endm
/* In M-mode: let S- and U-mode reach every address, as firmware does (with PMP entries implemented and
   none matching, their accesses fail). One NAPOT entry of all ones, R W X. Uses t0. */
.macro pmp_allow_all
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
.endm
`;

class ExitDevice implements Device {
  readonly name = 'test-exit';
  constructor(private readonly onExit: (code: number) => void) {}
  read(): number {
    return 0;
  }
  write(offset: number, _size: AccessSize, value: number): void {
    if (offset === 0) this.onExit(value | 0);
  }
}

/** Time in ticks, advanced by the harness: one tick per round of slices (deterministic). */
class TestClock implements Clock {
  ticks = 0;
  now(): number {
    return this.ticks;
  }
}

export interface BareMachineOptions {
  harts?: number;
  ramBytes?: number;
  /** Instructions per hart per round. */
  slice?: number;
  /**
   * Address of the riscv-tests HTIF `tohost` word: a non-zero value ends the run with exit code
   * value >> 1 (so 0 is a pass, n is failure of test case n).
   */
  tohost?: number;
}

export class BareMachine {
  readonly bus = new Bus();
  readonly ram: RamRegion;
  readonly clock = new TestClock();
  readonly reservations: Reservations;
  readonly harts: Hart[] = [];
  readonly clint: Clint;
  exitCode: number | undefined;
  instructions = 0;
  private readonly slice: number;
  private readonly tohost: number | undefined;

  constructor(image: Uint8Array, options: BareMachineOptions = {}) {
    const count = options.harts ?? 1;
    this.ram = new RamRegion(0, RAM_BASE, options.ramBytes ?? DEFAULT_RAM);
    if (image.length > this.ram.size) throw new Error('program larger than RAM');
    this.ram.u8.set(image);
    this.bus.addRam(this.ram);
    this.bus.addDevice(EXIT_BASE, EXIT_SIZE, new ExitDevice((code) => this.finish(code)));
    this.reservations = new Reservations(count);
    const env = { bus: this.bus, clock: this.clock, reservations: this.reservations };
    for (let i = 0; i < count; i++) {
      const h = new Hart(i, env);
      // The suite runs with the block translator, compiling every block at once so that short programs
      // exercise the generated code, unless MIRRORBALL_TRANSLATE=0 (to bisect it).
      h.setTranslation(process.env.MIRRORBALL_TRANSLATE !== '0', 0);
      h.reset(RAM_BASE);
      h.setReg(10, i);
      this.harts.push(h);
    }
    this.clint = new Clint(count, this.clock, { setPending: (hart, bit, level) => this.harts[hart].setInterruptLine(bit, level) });
    this.bus.addDevice(CLINT_BASE, Clint.size, this.clint);
    this.slice = options.slice ?? DEFAULT_SLICE;
    this.tohost = options.tohost;
  }

  private finish(code: number): void {
    if (this.exitCode === undefined) this.exitCode = code;
    for (const h of this.harts) h.stop = true;
  }

  /**
   * Runs rounds of slices until the program exits; returns the exit code. Throws if `maxInstructions`
   * pass first or every hart waits with no timer to wake it.
   */
  run(maxInstructions = 1_000_000): number {
    let idleRounds = 0;
    while (this.exitCode === undefined) {
      let runnable = false;
      let ran = 0;
      for (const h of this.harts) {
        if (h.parked) continue;
        ran += h.run(this.slice);
        if (!h.waiting) runnable = true;
        if (this.exitCode !== undefined) break;
      }
      this.instructions += ran;
      idleRounds = ran === 0 ? idleRounds + 1 : 0;
      if (idleRounds > MAX_IDLE_ROUNDS) throw new Error(`harts stuck waiting (no instruction in ${MAX_IDLE_ROUNDS} rounds); pcs ${this.pcs()}`);
      if (this.tohost !== undefined) this.pollTohost(this.tohost);
      if (this.exitCode !== undefined) break;
      if (runnable) this.clock.ticks++;
      else {
        const next = this.clint.nextDeadline();
        if (next >= 2 ** 63) throw new Error(`every hart waits and no timer is set; pcs ${this.pcs()}`);
        this.clock.ticks = Math.max(this.clock.ticks + 1, next);
      }
      this.clint.update();
      if (this.instructions > maxInstructions) throw new Error(`no exit after ${maxInstructions} instructions; pcs ${this.pcs()}`);
    }
    return this.exitCode;
  }

  private pollTohost(address: number): void {
    const o = address - RAM_BASE;
    const lo = this.ram.view.getUint32(o, true);
    const hi = this.ram.view.getUint32(o + 4, true);
    if (lo !== 0 || hi !== 0) this.finish(Number((BigInt(hi) << 32n | BigInt(lo)) >> 1n));
  }

  private pcs(): string {
    return this.harts.map((h) => `0x${BigInt.asUintN(64, BigInt(h.pc)).toString(16)}`).join(', ');
  }

  /** Register x`i` of hart `hart` as a signed 64-bit value. */
  reg(i: number, hart = 0): bigint {
    return this.harts[hart].x64[i];
  }

  read64(address: number): bigint {
    return this.ram.view.getBigUint64(address - RAM_BASE, true);
  }

  read32(address: number): number {
    return this.ram.view.getUint32(address - RAM_BASE, true);
  }

  write64(address: number, value: bigint): void {
    this.ram.view.setBigUint64(address - RAM_BASE, BigInt.asUintN(64, value), true);
  }
}

export interface RunResult {
  machine: BareMachine;
  program: Program;
  exitCode: number;
}

/**
 * Assembles PRELUDE + `source`, runs it on a fresh machine and returns the result; returns undefined
 * (and marks the test skipped) when the toolchain is missing. `setup` may poke RAM or state first.
 */
export function runAsm(
  t: TestContext, source: string,
  options: BareMachineOptions & { maxInstructions?: number; setup?: (m: BareMachine, p: Program) => void } = {},
): RunResult | undefined {
  if (!requireToolchain(t)) return undefined;
  const program = assemble(PRELUDE + source);
  const machine = new BareMachine(program.image, options);
  options.setup?.(machine, program);
  const exitCode = machine.run(options.maxInstructions);
  return { machine, program, exitCode };
}

// Guest time: derived from executed instructions (deterministic, the default) or from the host's clock.

import type { Clock } from '../memory/device.js';

/** The timebase of the device tree: 10 MHz, as on QEMU's virt board. */
export const TIMEBASE_HZ = 10_000_000;
/** Instructions per timebase tick in deterministic mode: a simulated 100 MIPS machine. */
export const INSTRUCTIONS_PER_TICK = 10;

/** Time that moves only when the machine says so: same instructions, same time, same output. */
export class InstructionClock implements Clock {
  /** Guest time in instructions (cycles), an integer: no rounding drifts however long the run. */
  private count = 0;

  now(): number {
    return Math.floor(this.count / INSTRUCTIONS_PER_TICK);
  }

  /** Guest time in instructions (INSTRUCTIONS_PER_TICK a tick). */
  get instructions(): number {
    return this.count;
  }

  /** Advances by `instructions` executed per hart in one round. */
  advanceInstructions(instructions: number): void {
    this.count += instructions;
  }

  /** Jumps forward to `tick` (idle skip-ahead); never backwards. */
  advanceTo(tick: number): void {
    const count = tick * INSTRUCTIONS_PER_TICK;
    if (count > this.count) this.count = count;
  }
}

/** Wall-clock time: the guest sees real seconds, so runs are not reproducible. */
export class HostClock implements Clock {
  private readonly start: number;

  constructor(private readonly read: () => number) {
    this.start = read();
  }

  /** `read` returns milliseconds (e.g. performance.now, passed in so this layer needs no Node API). */
  now(): number {
    return Math.floor((this.read() - this.start) * (TIMEBASE_HZ / 1000));
  }

  advanceInstructions(): void {}

  advanceTo(): void {}
}

export type MachineClock = InstructionClock | HostClock;

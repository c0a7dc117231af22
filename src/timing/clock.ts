// Guest time: derived from executed instructions (deterministic, the default) or from the host's clock.

import type { Clock } from '../memory/device.js';

/** The timebase of the device tree: 10 MHz, as on QEMU's virt board. */
export const TIMEBASE_HZ = 10_000_000;
/** Instructions per timebase tick in deterministic mode: a simulated 100 MIPS machine. */
export const INSTRUCTIONS_PER_TICK = 10;

/** Time that moves only when the machine says so: same instructions, same time, same output. */
export class InstructionClock implements Clock {
  private ticks = 0;

  now(): number {
    return Math.floor(this.ticks);
  }

  /** Advances by `instructions` executed per hart in one round. */
  advanceInstructions(instructions: number): void {
    this.ticks += instructions / INSTRUCTIONS_PER_TICK;
  }

  /** Jumps forward to `tick` (idle skip-ahead); never backwards. */
  advanceTo(tick: number): void {
    if (tick > this.ticks) this.ticks = tick;
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

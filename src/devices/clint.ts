// The core-local interruptor (SiFive CLINT layout, as on QEMU virt): software and timer interrupts per hart.

import type { AccessSize, Clock, Device, HartInterruptSink } from '../memory/device.js';
import { StateReader } from '../memory/state.js';
import { mergeSubword, readSubword } from './subword.js';

/** mip bits driven by the CLINT (RISC-V privileged spec §3.1.9). */
export const MIP_MSIP = 3;
export const MIP_MTIP = 7;

// Register layout (SiFive FU540 manual, chapter "Core-Local Interruptor").
const MSIP_BASE = 0x0000;
const MTIMECMP_BASE = 0x4000;
const MTIME = 0xbff8;
const MSIP_STRIDE = 4;
const MTIMECMP_STRIDE = 8;
/** The layout leaves room for 4095 harts below mtime. */
const MAX_HARTS = (MTIME - MTIMECMP_BASE) / MTIMECMP_STRIDE;
const WORD = 2 ** 32;
/** mtimecmp values from here up are treated as no deadline (29,000 years at 10 MHz). */
const NEVER = 2 ** 63;

export interface ClintState {
  msip: Uint8Array;
  compareLow: Uint32Array;
  compareHigh: Uint32Array;
  timerLevel: Uint8Array;
  timeOffset: number;
}

export class Clint implements Device {
  readonly name = 'clint';
  /** Size of the MMIO window. */
  static readonly size = 0x10000;
  private readonly msip: Uint8Array;
  private readonly compareLow: Uint32Array;
  private readonly compareHigh: Uint32Array;
  /** The MTIP level last sent to each hart, so that the sink hears only changes. */
  private readonly timerLevel: Uint8Array;
  /** mtime = clock.now() + timeOffset; the offset changes only if the guest writes mtime. */
  private timeOffset = 0;

  constructor(readonly harts: number, private readonly clock: Clock, private readonly sink: HartInterruptSink) {
    if (!Number.isInteger(harts) || harts < 1 || harts > MAX_HARTS) throw new Error(`CLINT: bad hart count ${harts}`);
    this.msip = new Uint8Array(harts);
    // mtimecmp has no reset value (privileged spec §3.2.1); all ones keeps the timer quiet until set.
    this.compareLow = new Uint32Array(harts).fill(WORD - 1);
    this.compareHigh = new Uint32Array(harts).fill(WORD - 1);
    this.timerLevel = new Uint8Array(harts);
  }

  /** The current mtime. */
  mtime(): number {
    return this.clock.now() + this.timeOffset;
  }

  /** The mtimecmp of `hart` (values near 2^64 are rounded, but stay far in the future). */
  mtimecmp(hart: number): number {
    return this.compareHigh[hart] * WORD + this.compareLow[hart];
  }

  /**
   * The earliest clock time (not mtime: the guest may have moved mtime) at which a timer interrupt can
   * become pending, or Infinity when no hart has a deadline. A compare value of 2^63 or more (such as the
   * all-ones reset value) means "never": skipping ahead to it would only make guest time absurd.
   */
  nextDeadline(): number {
    let deadline = Infinity;
    for (let hart = 0; hart < this.harts; hart++) {
      const compare = this.mtimecmp(hart);
      if (compare < NEVER) deadline = Math.min(deadline, compare - this.timeOffset);
    }
    return deadline;
  }

  /** The registers as plain data (snapshots, docs/snapshots.md). */
  saveState(): ClintState {
    return {
      msip: this.msip.slice(), compareLow: this.compareLow.slice(), compareHigh: this.compareHigh.slice(),
      timerLevel: this.timerLevel.slice(), timeOffset: this.timeOffset,
    };
  }

  /**
   * Puts saved registers back, checked first. No wire moves: the harts' pending bits are restored with the
   * harts, and `timerLevel` says which levels they already hold.
   */
  restoreState(state: unknown): void {
    const r = new StateReader(state, 'clint');
    const msip = r.typed('msip', Uint8Array, this.harts);
    const compareLow = r.typed('compareLow', Uint32Array, this.harts);
    const compareHigh = r.typed('compareHigh', Uint32Array, this.harts);
    const timerLevel = r.typed('timerLevel', Uint8Array, this.harts);
    const timeOffset = r.number('timeOffset', -Number.MAX_SAFE_INTEGER);
    this.msip.set(msip);
    this.compareLow.set(compareLow);
    this.compareHigh.set(compareHigh);
    this.timerLevel.set(timerLevel);
    this.timeOffset = timeOffset;
  }

  /** Re-evaluates MTIP of every hart against the clock; the board calls it after each time slice. */
  update(): void {
    const now = this.mtime();
    for (let hart = 0; hart < this.harts; hart++) this.updateTimer(hart, now);
  }

  read(offset: number, size: AccessSize, _hart: number): number {
    return readSubword(this.readWord(offset & ~3), offset, size);
  }

  write(offset: number, size: AccessSize, value: number, _hart: number): void {
    const aligned = offset & ~3;
    this.writeWord(aligned, mergeSubword(this.readWord(aligned), offset, size, value));
  }

  private readWord(offset: number): number {
    if (offset >= MTIME && offset < MTIME + MTIMECMP_STRIDE) {
      const now = this.mtime();
      return offset === MTIME ? now % WORD : Math.floor(now / WORD);
    }
    if (offset >= MTIMECMP_BASE) {
      const hart = (offset - MTIMECMP_BASE) >>> 3;
      if (hart >= this.harts) return 0;
      return (offset & 4) === 0 ? this.compareLow[hart] : this.compareHigh[hart];
    }
    const hart = (offset - MSIP_BASE) / MSIP_STRIDE;
    return hart < this.harts ? this.msip[hart] : 0;
  }

  private writeWord(offset: number, value: number): void {
    if (offset >= MTIME && offset < MTIME + MTIMECMP_STRIDE) {
      const now = this.mtime();
      const wanted = offset === MTIME ? now - (now % WORD) + value : (now % WORD) + value * WORD;
      this.timeOffset += wanted - now;
      this.update();
      return;
    }
    if (offset >= MTIMECMP_BASE) {
      const hart = (offset - MTIMECMP_BASE) >>> 3;
      if (hart >= this.harts) return;
      if ((offset & 4) === 0) this.compareLow[hart] = value;
      else this.compareHigh[hart] = value;
      this.updateTimer(hart, this.mtime());
      return;
    }
    const hart = (offset - MSIP_BASE) / MSIP_STRIDE;
    if (hart >= this.harts) return;
    this.msip[hart] = value & 1; // only bit 0 is implemented
    this.sink.setPending(hart, MIP_MSIP, (value & 1) !== 0);
  }

  private updateTimer(hart: number, now: number): void {
    const level = now >= this.mtimecmp(hart) ? 1 : 0;
    if (level !== this.timerLevel[hart]) {
      this.timerLevel[hart] = level;
      this.sink.setPending(hart, MIP_MTIP, level === 1);
    }
  }
}

// Mirrorball's own SBI firmware, in TypeScript: answers S-mode ECALLs with no M-mode code running.
// RISC-V SBI specification v2.0: BASE, TIME, IPI, RFENCE, HSM, SRST, PMU, DBCN and the legacy calls.

import type { HartState } from '../cpu/hart-state.js';
import { MIP_SSIP, MIP_STIP, PRIV_S } from '../isa/opcodes.js';
import { shareableBuffer } from '../memory/ram.js';

export const SBI_SUCCESS = 0;
export const SBI_ERR_FAILED = -1;
export const SBI_ERR_NOT_SUPPORTED = -2;
export const SBI_ERR_INVALID_PARAM = -3;
export const SBI_ERR_INVALID_ADDRESS = -5;
export const SBI_ERR_ALREADY_AVAILABLE = -6;
export const SBI_ERR_ALREADY_STOPPED = -8;

export const EXT_BASE = 0x10;
export const EXT_TIME = 0x54494d45;
export const EXT_IPI = 0x735049;
export const EXT_RFENCE = 0x52464e43;
export const EXT_HSM = 0x48534d;
export const EXT_SRST = 0x53525354;
export const EXT_DBCN = 0x4442434e;
export const EXT_PMU = 0x504d55;
/** Mirrorball's vendor extension ("MBC" in the vendor range): simulation control, as the control device. */
export const EXT_MIRRORBALL = 0x094d4243;
const LEGACY_SET_TIMER = 0;
const LEGACY_PUTCHAR = 1;
const LEGACY_GETCHAR = 2;
const LEGACY_CLEAR_IPI = 3;
const LEGACY_SEND_IPI = 4;
const LEGACY_REMOTE_FENCE_I = 5;
const LEGACY_REMOTE_SFENCE_VMA = 6;
const LEGACY_REMOTE_SFENCE_VMA_ASID = 7;
const LEGACY_SHUTDOWN = 8;

/** SBI spec v2.0 encoded as major << 24 | minor. */
const SPEC_VERSION = 2 << 24;
/** Implementation ID: not one of the registered ones; chosen for Mirrorball ("MB"). */
export const IMPL_ID = 0x4d42;

export const HSM_STARTED = 0;
export const HSM_STOPPED = 1;
/** Asked to start, on another thread, and not yet running (SBI §9: START_PENDING). */
export const HSM_START_PENDING = 2;
const HSM_SUSPEND_RETENTIVE = 0;
const HSM_SUSPEND_NON_RETENTIVE = 0x80000000;

const PMU_NUM_COUNTERS = 0;
const PMU_COUNTER_GET_INFO = 1;
const PMU_COUNTER_STOP = 4;
/** cycle, time and instret. */
const PMU_FIXED_COUNTERS = 3;
const PMU_COUNTER_WIDTH = 64;
const CSR_CYCLE = 0xc00;

const A0 = 10;
const A1 = 11;
const A2 = 12;
const A3 = 13;
const A4 = 14;
const A6 = 16;
const A7 = 17;

/** Pages a remote SFENCE.VMA fences one by one; a larger range fences the whole address space. */
export const FENCE_PAGE_LIMIT = 64;

/** What a remote fence asks of a hart (the `what` of docs/threads.md): bits, since requests merge. */
export const FENCE_I = 1;
export const FENCE_VMA = 2;

/** What the firmware needs from the machine. */
export interface SbiPlatform {
  readonly harts: readonly HartState[];
  /** Current guest time in timebase ticks. */
  now(): number;
  consoleWrite(bytes: Uint8Array): void;
  /** Next input byte, or -1. */
  consoleRead(): number;
  /** SRST: type 0 shutdown, 1 cold reboot, 2 warm reboot. */
  reset(type: number, reason: number): void;
  /** Reads guest-physical memory for DBCN (undefined when the range is not RAM). */
  readPhysical(address: number, length: number): Uint8Array | undefined;
  /** Wakes a parked or waiting hart so the scheduler runs it. */
  wake(hart: number): void;
  /** A simulation request (devices/control.ts numbering): a result ≥ 0 or a negative SBI error. */
  control?(request: number, argument: number): number;
}

/** The firmware's state every hart shares: in SharedArrayBuffers, so that harts on other threads see it. */
export interface SbiShared {
  timerDeadline: SharedArrayBuffer;
  hsmState: SharedArrayBuffer;
}

export class SbiFirmware {
  /** Per hart: the S-mode timer deadline set through TIME or the legacy call (Infinity = none). */
  readonly timerDeadline: Float64Array;
  /** Per hart: HSM state; a stopped hart is parked and not run. */
  readonly hsmState: Int32Array;
  protected readonly hartCount: number;

  /**
   * `shared`: the state of another SbiFirmware of the same machine, on another thread (threaded-sbi.ts);
   * by default new, for `harts` harts (the platform's).
   */
  constructor(protected readonly platform: SbiPlatform, shared?: SbiShared, harts = platform.harts.length) {
    this.hartCount = harts;
    // Shareable where the platform allows; a page that is not cross-origin isolated has no SharedArrayBuffer.
    this.timerDeadline = new Float64Array(shared?.timerDeadline ?? shareableBuffer(harts * 8));
    this.hsmState = new Int32Array(shared?.hsmState ?? shareableBuffer(harts * 4));
    if (shared === undefined) {
      this.timerDeadline.fill(Infinity);
      this.hsmState.fill(HSM_STOPPED);
    }
  }

  /** The buffers of the shared state, for an SbiFirmware on another thread. */
  shared(): SbiShared {
    return { timerDeadline: this.timerDeadline.buffer as SharedArrayBuffer, hsmState: this.hsmState.buffer as SharedArrayBuffer };
  }

  /**
   * The earliest deadline after `now` (Infinity if none): what an idle threaded machine skips to, since
   * the harts' STIP is on their own threads (a deadline at or before `now` has fired there).
   */
  nextDeadlineAfter(now: number): number {
    let next = Infinity;
    for (let i = 0; i < this.timerDeadline.length; i++) {
      const deadline = this.timerDeadline[i]!;
      if (deadline > now && deadline < next) next = deadline;
    }
    return next;
  }

  /** Sets STIP on every hart whose deadline has passed; returns the earliest deadline still ahead. */
  updateTimers(now: number): number {
    let next = Infinity;
    for (let i = 0; i < this.timerDeadline.length; i++) {
      const deadline = this.timerDeadline[i];
      if (deadline <= now) {
        const h = this.platform.harts[i];
        if ((h.mip & MIP_STIP) === 0) {
          h.mip |= MIP_STIP;
          h.stop = true;
          this.platform.wake(i);
        }
      } else if (deadline < next) next = deadline;
    }
    return next;
  }

  /** The earliest timer deadline that has not fired yet (Infinity if none). */
  nextDeadline(): number {
    let next = Infinity;
    for (let i = 0; i < this.timerDeadline.length; i++) {
      if ((this.platform.harts[i].mip & MIP_STIP) === 0 && this.timerDeadline[i] < next) next = this.timerDeadline[i];
    }
    return next;
  }

  /** Handles an ECALL from S-mode on hart `h`; always returns true (unknown calls get NOT_SUPPORTED). */
  handle(h: HartState): boolean {
    const eid = h.x[A7 * 2] >>> 0;
    const fid = h.x[A6 * 2] >>> 0;
    let error = SBI_SUCCESS;
    let value = 0;
    const ret = (e: number, v = 0): void => {
      error = e;
      value = v;
    };
    switch (eid) {
      case EXT_BASE: this.base(h, fid, ret); break;
      case EXT_TIME:
        if (fid === 0) this.setTimer(h, h.reg(A0));
        else ret(SBI_ERR_NOT_SUPPORTED);
        break;
      case EXT_IPI:
        if (fid === 0) ret(this.forHarts(h.reg(A0), h.reg(A1), (t) => this.sendIpi(t)));
        else ret(SBI_ERR_NOT_SUPPORTED);
        break;
      case EXT_RFENCE:
        if (fid === 0) ret(this.fenceHarts(h.reg(A0), h.reg(A1), FENCE_I, () => undefined));
        else if (fid <= 2) {
          const start = h.reg(A2);
          const size = h.reg(A3);
          const asid = fid === 2 ? h.x[A4 * 2]! & 0xffff : undefined;
          ret(this.fenceHarts(h.reg(A0), h.reg(A1), FENCE_VMA, (t) => this.sfence(t, start, size, asid)));
        }
        else ret(SBI_ERR_NOT_SUPPORTED);
        break;
      case EXT_HSM: this.hsm(h, fid, ret); break;
      case EXT_SRST:
        if (fid === 0 && (h.x[A0 * 2] >>> 0) <= 2) this.platform.reset(h.x[A0 * 2] >>> 0, h.x[A1 * 2] >>> 0);
        else ret(SBI_ERR_INVALID_PARAM);
        break;
      case EXT_DBCN: this.debugConsole(h, fid, ret); break;
      case EXT_PMU: this.pmu(h, fid, ret); break;
      case EXT_MIRRORBALL: {
        // FID = request, a0 = its argument; a1 = the result (the mode for QUERY_MODE).
        const result = this.platform.control?.(fid, h.x[A0 * 2] >>> 0) ?? SBI_ERR_NOT_SUPPORTED;
        if (result < 0) ret(result);
        else ret(SBI_SUCCESS, result);
        break;
      }
      case LEGACY_SET_TIMER: this.setTimer(h, h.reg(A0)); h.setReg(A0, 0); return true;
      case LEGACY_PUTCHAR: this.platform.consoleWrite(Uint8Array.of(h.x[A0 * 2] & 0xff)); h.setReg(A0, 0); return true;
      case LEGACY_GETCHAR: h.setReg(A0, this.platform.consoleRead()); return true;
      case LEGACY_CLEAR_IPI: h.mip &= ~MIP_SSIP; h.setReg(A0, 0); return true;
      case LEGACY_SEND_IPI:
      case LEGACY_REMOTE_FENCE_I:
      case LEGACY_REMOTE_SFENCE_VMA:
      case LEGACY_REMOTE_SFENCE_VMA_ASID: {
        // The legacy calls pass a pointer to a hart mask in S-mode virtual memory.
        const mask = this.readLegacyMask(h, h.reg(A0));
        // The legacy fences flush everything (FENCE.I needs nothing, but they are rare enough not to matter).
        if (eid === LEGACY_SEND_IPI) this.forHarts(mask, 0, (t) => this.sendIpi(t));
        else this.fenceHarts(mask, 0, FENCE_I | FENCE_VMA, (t) => this.platform.harts[t]!.flushTlb());
        h.setReg(A0, 0);
        return true;
      }
      case LEGACY_SHUTDOWN: this.platform.reset(0, 0); h.setReg(A0, 0); return true;
      default: ret(SBI_ERR_NOT_SUPPORTED);
    }
    h.setReg(A0, error);
    h.setReg(A1, value);
    return true;
  }

  private base(h: HartState, fid: number, ret: (e: number, v?: number) => void): void {
    switch (fid) {
      case 0: ret(SBI_SUCCESS, SPEC_VERSION); break;
      case 1: ret(SBI_SUCCESS, IMPL_ID); break;
      case 2: ret(SBI_SUCCESS, 1); break;
      case 3: {
        const ext = h.x[A0 * 2] >>> 0;
        const known = [EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE, EXT_HSM, EXT_SRST, EXT_DBCN, EXT_PMU].includes(ext) || ext <= LEGACY_SHUTDOWN ||
          (ext === EXT_MIRRORBALL && this.platform.control !== undefined);
        ret(SBI_SUCCESS, known ? 1 : 0);
        break;
      }
      case 4: case 5: case 6: ret(SBI_SUCCESS, 0); break;
      default: ret(SBI_ERR_NOT_SUPPORTED);
    }
  }

  /**
   * PMU (SBI §11), just the fixed counters: cycle, time and instret, as logical counters 0-2 that S-mode
   * reads directly. Linux's SBI PMU driver is what sets scounteren so that user space may read them (its
   * vDSO reads the time CSR); there are no programmable or firmware counters to configure or start.
   */
  private pmu(h: HartState, fid: number, ret: (e: number, v?: number) => void): void {
    switch (fid) {
      case PMU_NUM_COUNTERS: return ret(SBI_SUCCESS, PMU_FIXED_COUNTERS);
      case PMU_COUNTER_GET_INFO: {
        const counter = h.reg(A0);
        if (counter < 0 || counter >= PMU_FIXED_COUNTERS) return ret(SBI_ERR_INVALID_PARAM);
        // counter_info: CSR number in bits 11:0, width - 1 in bits 17:12, type 0 (hardware) in bit 63.
        return ret(SBI_SUCCESS, (CSR_CYCLE + counter) | (PMU_COUNTER_WIDTH - 1) << 12);
      }
      case PMU_COUNTER_STOP: return ret(SBI_ERR_ALREADY_STOPPED);
      default: return ret(SBI_ERR_NOT_SUPPORTED); // matching, start, firmware counter reads
    }
  }

  private setTimer(h: HartState, deadline: number): void {
    // A value with bit 63 set reads back as negative: it means "never" in practice.
    this.timerDeadline[h.id] = deadline < 0 ? Infinity : deadline;
    h.mip &= ~MIP_STIP;
  }

  /** Sets SSIP on hart `target` (overridden for harts on other threads). */
  protected sendIpi(target: number): void {
    const t = this.platform.harts[target];
    t.mip |= MIP_SSIP;
    t.stop = true;
    this.platform.wake(target);
  }

  /**
   * A remote SFENCE.VMA on hart `target` (SBI §8.2, §8.3), now: the pages of [start, start + size), in
   * address space `asid` or all of them. The whole address space when start and size are both 0 or size is
   * all ones, and past `FENCE_PAGE_LIMIT` pages (a bound as other SBI implementations have): Linux fences a range on
   * the other harts of a process this way, and flushing everything there would empty the second-level TLBs
   * of every address space under the monitor. (FENCE.I needs nothing: fetches read memory directly.)
   */
  protected sfence(target: number, start: number, size: number, asid: number | undefined): void {
    const h = this.platform.harts[target];
    const first = Math.floor(start / 4096);
    const pages = Math.floor((start + size - 1) / 4096) - first + 1;
    if ((start === 0 && size === 0) || size < 0 || !(pages <= FENCE_PAGE_LIMIT)) {
      h.sfenceVma(undefined, asid);
      return;
    }
    for (let page = first; page < first + pages; page++) h.sfenceVma(page * 4096, asid);
  }

  /**
   * A remote fence on the harts selected by (mask, base): `act` on each, here at once.
   * On threads, harts elsewhere get a request (`what`) instead and the call returns once they have all
   * done it (threaded-sbi.ts).
   */
  protected fenceHarts(mask: number, base: number, what: number, act: (hart: number) => void): number {
    void what; // one thread: nothing to ask of anyone
    return this.forHarts(mask, base, act);
  }

  /** Applies `act` to the harts selected by (mask, base), SBI §3.1; base = -1 means all harts. */
  protected forHarts(mask: number, base: number, act: (hart: number) => void): number {
    const n = this.hartCount;
    if (base === -1) {
      for (let i = 0; i < n; i++) act(i);
      return SBI_SUCCESS;
    }
    const targets: number[] = [];
    for (let bit = 0; bit < 64 && mask !== 0; bit++) {
      if (mask % 2 !== 0) {
        const hart = base + bit;
        if (hart < 0 || hart >= n) return SBI_ERR_INVALID_PARAM;
        targets.push(hart);
      }
      mask = Math.floor(mask / 2);
    }
    for (const t of targets) act(t);
    return SBI_SUCCESS;
  }

  private readLegacyMask(h: HartState, pointer: number): number {
    if (pointer === 0) return 2 ** this.hartCount - 1;
    // Linux passes a kernel virtual address; the hart's own MMU resolves it.
    const reader = h as unknown as { load32(va: number): number };
    try {
      return (reader.load32(pointer) >>> 0) + (reader.load32(pointer + 4) >>> 0) * 4294967296;
    } catch {
      return 0;
    }
  }

  private hsm(h: HartState, fid: number, ret: (e: number, v?: number) => void): void {
    const n = this.hartCount;
    switch (fid) {
      case 0: { // hart_start(hartid, start_addr, opaque)
        const target = h.reg(A0);
        if (target < 0 || target >= n) return ret(SBI_ERR_INVALID_PARAM);
        return ret(this.hartStart(target, h.reg(A1), h.x64[A1 + 1]!));
      }
      case 1: // hart_stop
        Atomics.store(this.hsmState, h.id, HSM_STOPPED);
        h.parked = true;
        h.stop = true;
        return ret(SBI_SUCCESS);
      case 2: { // hart_get_status
        const target = h.reg(A0);
        if (target < 0 || target >= n) return ret(SBI_ERR_INVALID_PARAM);
        return ret(SBI_SUCCESS, Atomics.load(this.hsmState, target));
      }
      case 3: { // hart_suspend(type, resume_addr, opaque)
        const type = h.x[A0 * 2] >>> 0;
        if (type === HSM_SUSPEND_RETENTIVE) {
          // Like WFI: the call returns once an interrupt is pending.
          if (!h.wakeable) h.waiting = true;
          h.stop = true;
          return ret(SBI_SUCCESS);
        }
        if (type === HSM_SUSPEND_NON_RETENTIVE) return ret(SBI_ERR_NOT_SUPPORTED);
        return ret(SBI_ERR_INVALID_PARAM);
      }
      default: return ret(SBI_ERR_NOT_SUPPORTED);
    }
  }

  /** HSM hart_start: a stopped hart starts (overridden for harts on other threads). */
  protected hartStart(target: number, entry: number, opaque: bigint): number {
    if (this.hsmState[target] !== HSM_STOPPED) return SBI_ERR_ALREADY_AVAILABLE;
    this.startHart(target, entry, opaque);
    return SBI_SUCCESS;
  }

  /** Brings a hart up in S-mode at `entry` with a0 = hartid, a1 = opaque, satp = 0 (SBI §9.1). */
  startHart(target: number, entry: number, opaque: bigint): void {
    const t = this.platform.harts[target]!;
    t.x.fill(0);
    t.x64[A0] = BigInt(target);
    t.x64[A1] = opaque;
    t.pc = entry;
    t.priv = PRIV_S;
    t.satpMode = 0;
    t.mstatus &= ~0x2; // SIE clear
    t.flushTlb();
    t.updateTranslation();
    t.parked = false;
    t.waiting = false;
    Atomics.store(this.hsmState, target, HSM_STARTED);
    this.platform.wake(target);
  }

  private debugConsole(h: HartState, fid: number, ret: (e: number, v?: number) => void): void {
    switch (fid) {
      case 0: { // console_write(num_bytes, base_lo, base_hi): physical address
        const length = h.reg(A0);
        const address = h.reg(A1) + h.reg(A1 + 1) * 4294967296;
        const bytes = length >= 0 && length <= 1 << 20 ? this.platform.readPhysical(address, length) : undefined;
        if (bytes === undefined) return ret(SBI_ERR_INVALID_PARAM);
        this.platform.consoleWrite(bytes);
        return ret(SBI_SUCCESS, length);
      }
      case 1: return ret(SBI_SUCCESS, 0); // console_read: input goes through the UART
      case 2: this.platform.consoleWrite(Uint8Array.of(h.x[A0 * 2] & 0xff)); return ret(SBI_SUCCESS);
      default: return ret(SBI_ERR_NOT_SUPPORTED);
    }
  }
}

// Mirrorball's control device ("mirrorball,control"): a page of registers through which software in the
// guest asks the machine for simulation services (mode switches around a region of interest, statistics
// dumps and resets). The same requests come through the SBI vendor extension (board/sbi.ts).

import type { AccessSize, Device } from '../memory/device.js';
import { StateReader } from '../memory/state.js';

/** The requests, numbered as the SBI extension's function IDs (docs/timing.md, "Guest control"). */
export const CONTROL_ROI_BEGIN = 0;
export const CONTROL_ROI_END = 1;
export const CONTROL_STATS_DUMP = 2;
export const CONTROL_STATS_RESET = 3;
export const CONTROL_QUERY_MODE = 4;
export const CONTROL_REQUESTS = 5;
/** Results below zero are SBI error codes. */
export const CONTROL_NOT_SUPPORTED = -2;
export const CONTROL_INVALID_PARAM = -3;

/**
 * What the machine does for a request: a result ≥ 0 (0 for done; for QUERY_MODE 0 = fast, 1 = timing) or a
 * negative SBI error code. A machine without a timing configuration answers CONTROL_NOT_SUPPORTED.
 */
export type ControlHandler = (request: number, argument: number) => number;

/** Register offsets (32-bit registers; other widths read 0 and are ignored when written). */
export const CONTROL_MAGIC = 0x00;
export const CONTROL_VERSION = 0x04;
export const CONTROL_ARGUMENT = 0x08;
export const CONTROL_REQUEST = 0x0c;
export const CONTROL_RESULT = 0x10;
/** "MBC1" read as a little-endian word. */
export const CONTROL_MAGIC_VALUE = 0x3143424d;

/**
 * Write the argument to ARGUMENT, then the request number to REQUEST: the request runs at once and its
 * result (a signed 32-bit value) can be read from RESULT. An unknown request number gives INVALID_PARAM.
 */
export class ControlDevice implements Device {
  readonly name = 'mirrorball-control';
  private argument = 0;
  private result = 0;

  constructor(private readonly handle: () => ControlHandler | undefined) {}

  /** The two registers as plain data (snapshots). */
  saveState(): { argument: number; result: number } {
    return { argument: this.argument, result: this.result };
  }

  restoreState(state: unknown): void {
    const r = new StateReader(state, 'control');
    const argument = r.number('argument', 0, 0xffffffff);
    const result = r.number('result', -Number.MAX_SAFE_INTEGER);
    this.argument = argument;
    this.result = result;
  }

  read(offset: number, size: AccessSize, _hart: number): number {
    if (size !== 4) return 0;
    switch (offset) {
      case CONTROL_MAGIC: return CONTROL_MAGIC_VALUE;
      case CONTROL_VERSION: return 1;
      case CONTROL_ARGUMENT: return this.argument;
      case CONTROL_RESULT: return this.result >>> 0;
      default: return 0;
    }
  }

  write(offset: number, size: AccessSize, value: number, _hart: number): void {
    if (size !== 4) return;
    if (offset === CONTROL_ARGUMENT) this.argument = value >>> 0;
    else if (offset === CONTROL_REQUEST) this.result = runControlRequest(this.handle(), value >>> 0, this.argument);
  }
}

/** Runs `request` through `handler` (shared by the device and the SBI extension); always a number. */
export function runControlRequest(handler: ControlHandler | undefined, request: number, argument: number): number {
  if (request >= CONTROL_REQUESTS) return CONTROL_INVALID_PARAM;
  if (handler === undefined) return CONTROL_NOT_SUPPORTED;
  return handler(request, argument);
}

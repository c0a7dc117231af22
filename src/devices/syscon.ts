// The SiFive test finisher (`sifive,test0` at 0x100000 on QEMU virt): the guest powers off, reboots or fails.

import type { AccessSize, Device } from '../memory/device.js';

/** Low 16 bits of a write (QEMU hw/misc/sifive_test.c semantics); the fail code sits in the upper 16. */
export const FINISHER_FAIL = 0x3333;
export const FINISHER_PASS = 0x5555;
export const FINISHER_RESET = 0x7777;
const STATUS_MASK = 0xffff;
const CODE_SHIFT = 16;

export type FinisherKind = 'poweroff' | 'reboot' | 'fail';

/**
 * Writes to offset 0 end the run: 0x5555 powers off (code 0), 0x7777 reboots, 0x3333 fails with the code
 * in bits 31:16. Linux reaches it through syscon-poweroff / syscon-reboot. Other values and offsets are
 * ignored; reads return 0.
 */
export class TestDevice implements Device {
  readonly name = 'sifive-test';

  constructor(private readonly onFinish: (kind: FinisherKind, code: number) => void) {}

  read(_offset: number, _size: AccessSize, _hart: number): number {
    return 0;
  }

  write(offset: number, size: AccessSize, value: number, _hart: number): void {
    if (offset !== 0 || size < 2) return;
    const status = value & STATUS_MASK;
    if (status === FINISHER_PASS) this.onFinish('poweroff', 0);
    else if (status === FINISHER_RESET) this.onFinish('reboot', 0);
    else if (status === FINISHER_FAIL) this.onFinish('fail', size === 4 ? value >>> CODE_SHIFT : 0);
  }
}

// The built-in SBI firmware, called the way S-mode calls it: a7 = extension, a6 = function, a0.. = args.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GLOBAL_ASID, SecondLevelTlbSet } from '../cpu/tlb.js';
import { MIP_SSIP, MIP_STIP, PRIV_S } from '../isa/opcodes.js';
import { Machine, type ExitReason } from './machine.js';
import {
  EXT_BASE, EXT_DBCN, EXT_HSM, EXT_IPI, EXT_MIRRORBALL, EXT_PMU, EXT_RFENCE, EXT_SRST, EXT_TIME, FENCE_PAGE_LIMIT, HSM_STARTED, HSM_STOPPED, IMPL_ID,
  SBI_ERR_ALREADY_AVAILABLE, SBI_ERR_INVALID_PARAM, SBI_ERR_NOT_SUPPORTED, SBI_SUCCESS,
} from './sbi.js';

const MiB = 1024 * 1024;
const RAM = 0x8000_0000;

function setup(harts = 2) {
  const printed: number[] = [];
  const machine = new Machine({
    config: { harts, nodes: [{ memoryBytes: 16 * MiB, harts: Array.from({ length: harts }, (_, i) => i) }] },
    builtinSbi: true,
    console: (bytes) => printed.push(...bytes),
  });
  const sbi = machine.sbi!;
  /** Makes the call on hart `hart` and returns [a0 (error), a1 (value)]. */
  const call = (ext: number, fid: number, args: number[] = [], hart = 0): [number, number] => {
    const h = machine.harts[hart];
    h.setReg(17, ext);
    h.setReg(16, fid);
    args.forEach((v, i) => h.setReg(10 + i, v));
    assert.equal(sbi.handle(h), true);
    return [signed(h.reg(10)), h.reg(11)];
  };
  return { machine, sbi, call, printed };
}

/** a0 holds a negative error as a 64-bit two's complement value. */
function signed(v: number): number {
  return v >= 2 ** 63 ? v - 2 ** 64 : v;
}

describe('SBI firmware', () => {
  it('BASE: spec version 2.0, implementation id, probes known and unknown extensions', () => {
    const { call } = setup();
    assert.deepEqual(call(EXT_BASE, 0), [SBI_SUCCESS, 2 << 24]);
    assert.deepEqual(call(EXT_BASE, 1), [SBI_SUCCESS, IMPL_ID]);
    for (const ext of [EXT_TIME, EXT_IPI, EXT_HSM, EXT_SRST, EXT_DBCN, EXT_PMU]) assert.deepEqual(call(EXT_BASE, 3, [ext]), [SBI_SUCCESS, 1]);
    assert.deepEqual(call(EXT_BASE, 3, [0x12345678]), [SBI_SUCCESS, 0]);
    assert.equal(call(0x12345678, 0)[0], SBI_ERR_NOT_SUPPORTED);
  });

  it('TIME: set_timer clears STIP, and the deadline raises it', () => {
    const { machine, sbi, call } = setup();
    const h = machine.harts[0];
    h.mip |= MIP_STIP;
    assert.equal(call(EXT_TIME, 0, [500])[0], SBI_SUCCESS);
    assert.equal(h.mip & MIP_STIP, 0);
    assert.equal(sbi.nextDeadline(), 500);
    sbi.updateTimers(499);
    assert.equal(h.mip & MIP_STIP, 0);
    sbi.updateTimers(500);
    assert.equal(h.mip & MIP_STIP, MIP_STIP);
  });

  it('IPI: sets SSIP on the harts of the mask; a hart outside the machine is an invalid parameter', () => {
    const { machine, call } = setup(2);
    assert.equal(call(EXT_IPI, 0, [0b10, 0])[0], SBI_SUCCESS);
    assert.equal(machine.harts[1].mip & MIP_SSIP, MIP_SSIP);
    assert.equal(machine.harts[0].mip & MIP_SSIP, 0);
    assert.equal(call(EXT_IPI, 0, [0b1, 5])[0], SBI_ERR_INVALID_PARAM);
  });

  it('RFENCE: a remote SFENCE.VMA fences the pages of its range, in its address space, on the harts of the mask', () => {
    const { machine, call } = setup(2);
    const fenced: [number, number | undefined, number | undefined][] = [];
    for (const h of machine.harts) h.sfenceVma = (va, asid) => fenced.push([h.id, va, asid]);
    const page = 4096;
    const cases: [fid: number, args: number[], expected: [number | undefined, number | undefined][]][] = [
      [0, [0b10, 0], []],
      [1, [0b10, 0, 0x10000, 2 * page], [[0x10000, undefined], [0x11000, undefined]]],
      [2, [0b10, 0, 0x10800, page, 7], [[0x10000, 7], [0x11000, 7]]],
      [2, [0b10, 0, 0, 0, 7], [[undefined, 7]]],
      [1, [0b10, 0, page, -1], [[undefined, undefined]]],
      [2, [0b10, 0, 0, (FENCE_PAGE_LIMIT + 1) * page, 0x10009], [[undefined, 9]]],
      [1, [0b10, 0, -(2 ** 31), page], [[-(2 ** 31), undefined]]],
    ];
    for (const [fid, args, expected] of cases) {
      fenced.length = 0;
      assert.equal(call(EXT_RFENCE, fid, args)[0], SBI_SUCCESS);
      assert.deepEqual(fenced, expected.map(([va, asid]) => [1, va, asid]), `fid ${fid} (${args.join(', ')})`);
    }
    assert.equal(call(EXT_RFENCE, 1, [0b1, 5, 0, 0])[0], SBI_ERR_INVALID_PARAM);
  });

  it('RFENCE: fencing one address space keeps the other address spaces\' and the global second-level TLB entries', () => {
    const { machine, call } = setup(2);
    const h = machine.harts[1];
    h.secondLevel = new SecondLevelTlbSet(64);
    const tlb = h.secondLevel.levels[0]![0]!;
    const region = machine.bus.ram[0]!;
    tlb.insert(0x10, 7, region, region.base, 3);
    tlb.insert(0x11, 9, region, region.base + 4096, 3);
    tlb.insert(0x12, GLOBAL_ASID, region, region.base + 8192, 3);
    assert.equal(call(EXT_RFENCE, 2, [0b10, 0, 0, 0, 7])[0], SBI_SUCCESS);
    assert.deepEqual([tlb.find(0x10, 7), tlb.find(0x11, 9), tlb.find(0x12, 9)], [-1, 0x11, 0x12], 'the whole machine\'s entries were dropped for one address space');
    assert.equal(call(EXT_RFENCE, 1, [0b10, 0, 0x12000, 4096])[0], SBI_SUCCESS);
    assert.deepEqual([tlb.find(0x11, 9), tlb.find(0x12, 9)], [0x11, -1]);
  });

  it('HSM: starts a stopped hart in S-mode at the address with a0 = hartid, a1 = opaque; reports status', () => {
    const { machine, sbi, call } = setup(2);
    sbi.startHart(0, RAM, 0n);
    assert.deepEqual(call(EXT_HSM, 2, [1]), [SBI_SUCCESS, HSM_STOPPED]);
    assert.equal(call(EXT_HSM, 0, [1, RAM + 0x1000, 0x1234])[0], SBI_SUCCESS);
    const t = machine.harts[1];
    assert.equal(t.pc, RAM + 0x1000);
    assert.equal(t.priv, PRIV_S);
    assert.equal(t.reg(10), 1);
    assert.equal(t.reg(11), 0x1234);
    assert.equal(t.parked, false);
    assert.deepEqual(call(EXT_HSM, 2, [1]), [SBI_SUCCESS, HSM_STARTED]);
    assert.equal(call(EXT_HSM, 0, [1, RAM, 0])[0], SBI_ERR_ALREADY_AVAILABLE);
    assert.equal(call(EXT_HSM, 0, [7, RAM, 0])[0], SBI_ERR_INVALID_PARAM);
    assert.equal(call(EXT_HSM, 1, [], 1)[0], SBI_SUCCESS);
    assert.equal(t.parked, true);
    assert.deepEqual(call(EXT_HSM, 2, [1]), [SBI_SUCCESS, HSM_STOPPED]);
  });

  it('SRST: shutdown stops the machine with code 0, reboot as a reboot; bad types are refused', () => {
    const first = setup();
    first.call(EXT_SRST, 0, [0, 0]);
    assert.deepEqual(first.machine.exit, { kind: 'poweroff', code: 0 } satisfies ExitReason);
    const second = setup();
    second.call(EXT_SRST, 0, [1, 0]);
    assert.deepEqual(second.machine.exit, { kind: 'reboot' } satisfies ExitReason);
    const third = setup();
    assert.equal(third.call(EXT_SRST, 0, [9, 0])[0], SBI_ERR_INVALID_PARAM);
    assert.equal(third.machine.exit, undefined);
  });

  it('DBCN: writes a string from RAM and one byte; an address outside RAM is refused', () => {
    const { machine, call, printed } = setup();
    machine.bus.guestMemory().write(RAM + 0x100, new TextEncoder().encode('hello'));
    assert.deepEqual(call(EXT_DBCN, 0, [5, RAM + 0x100, 0]), [SBI_SUCCESS, 5]);
    assert.deepEqual(call(EXT_DBCN, 2, [0x21]), [SBI_SUCCESS, 0]);
    assert.equal(new TextDecoder().decode(Uint8Array.from(printed)), 'hello!');
    assert.equal(call(EXT_DBCN, 0, [5, 0x1000, 0])[0], SBI_ERR_INVALID_PARAM);
  });

  it('PMU: three fixed hardware counters (cycle, time, instret), 64 bits wide; nothing to configure', () => {
    const { call } = setup();
    assert.deepEqual(call(EXT_PMU, 0), [SBI_SUCCESS, 3]);
    for (let i = 0; i < 3; i++) {
      const [error, info] = call(EXT_PMU, 1, [i]);
      assert.equal(error, SBI_SUCCESS);
      assert.equal(info & 0xfff, 0xc00 + i, 'CSR number');
      assert.equal(Math.floor(info / 4096) & 63, 63, 'width - 1');
      assert.ok(info < 2 ** 63, 'hardware counter');
    }
    assert.equal(call(EXT_PMU, 1, [3])[0], SBI_ERR_INVALID_PARAM);
    assert.equal(call(EXT_PMU, 2, [0, 7, 0, 0, 0])[0], SBI_ERR_NOT_SUPPORTED, 'no programmable counters to match');
  });

  it('the Mirrorball vendor extension passes requests to the machine\'s control handler, and errors back', () => {
    const { machine, call } = setup();
    assert.deepEqual(call(EXT_BASE, 3, [EXT_MIRRORBALL]), [SBI_SUCCESS, 1]);
    // No timing configuration: every request is refused, none is lost silently.
    assert.deepEqual(call(EXT_MIRRORBALL, 0), [SBI_ERR_NOT_SUPPORTED, 0]);
    const seen: [number, number][] = [];
    machine.control = (request, argument) => {
      seen.push([request, argument]);
      return request === 4 ? 1 : 0;
    };
    assert.deepEqual(call(EXT_MIRRORBALL, 0, [0]), [SBI_SUCCESS, 0]);
    assert.deepEqual(call(EXT_MIRRORBALL, 2, [7]), [SBI_SUCCESS, 0]);
    assert.deepEqual(call(EXT_MIRRORBALL, 4, [0]), [SBI_SUCCESS, 1]);
    assert.deepEqual(call(EXT_MIRRORBALL, 9), [SBI_ERR_INVALID_PARAM, 0], 'unknown request');
    assert.deepEqual(seen, [[0, 0], [2, 7], [4, 0]]);
  });
});

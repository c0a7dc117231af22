// The A extension: LR/SC with reservations other harts' stores break, and the AMOs (ISA chapter 8).

import { CAUSE_ILLEGAL_INSTRUCTION } from '../isa/opcodes.js';
import type { HartMemory } from './hart-memory.js';
import { ACCESS_READ, ACCESS_WRITE } from './mmu.js';

const AMO_ADD = 0x00;
const AMO_SWAP = 0x01;
const AMO_LR = 0x02;
const AMO_SC = 0x03;
const AMO_XOR = 0x04;
const AMO_OR = 0x08;
const AMO_AND = 0x0c;
const AMO_MIN = 0x10;
const AMO_MAX = 0x14;
const AMO_MINU = 0x18;
const AMO_MAXU = 0x1c;

/**
 * A 32-bit AMO on word `index` of `mem`, atomically (Atomics, so harts on other threads see it whole;
 * docs/threads.md); returns the old value.
 */
function amo32(mem: Int32Array, index: number, op: number, b: number): number {
  switch (op) {
    case AMO_ADD: return Atomics.add(mem, index, b);
    case AMO_SWAP: return Atomics.exchange(mem, index, b);
    case AMO_XOR: return Atomics.xor(mem, index, b);
    case AMO_OR: return Atomics.or(mem, index, b);
    case AMO_AND: return Atomics.and(mem, index, b);
    default: {
      // MIN/MAX have no Atomics operation: compare and swap until no other thread came between.
      for (;;) {
        const a = mem[index]!;
        const v = minMax32(op, a, b);
        if (Atomics.compareExchange(mem, index, a, v) === a) return a;
      }
    }
  }
}

function minMax32(op: number, a: number, b: number): number {
  switch (op) {
    case AMO_MIN: return a < b ? a : b;
    case AMO_MAX: return a > b ? a : b;
    case AMO_MINU: return (a >>> 0) < (b >>> 0) ? a : b;
    default: return (a >>> 0) > (b >>> 0) ? a : b;
  }
}

/** The 64-bit AMO on doubleword `index` of `mem`, atomically; returns the old value. */
function amo64(mem: BigInt64Array, index: number, op: number, b: bigint): bigint {
  switch (op) {
    case AMO_ADD: return Atomics.add(mem, index, b);
    case AMO_SWAP: return Atomics.exchange(mem, index, b);
    case AMO_XOR: return Atomics.xor(mem, index, b);
    case AMO_OR: return Atomics.or(mem, index, b);
    case AMO_AND: return Atomics.and(mem, index, b);
    default: {
      for (;;) {
        const a = mem[index]!;
        const v = minMax64(op, a, b);
        if (Atomics.compareExchange(mem, index, a, v) === a) return a;
      }
    }
  }
}

function minMax64(op: number, a: bigint, b: bigint): bigint {
  switch (op) {
    case AMO_MIN: return a < b ? a : b;
    case AMO_MAX: return a > b ? a : b;
    case AMO_MINU: return BigInt.asUintN(64, a) < BigInt.asUintN(64, b) ? a : b;
    default: return BigInt.asUintN(64, a) > BigInt.asUintN(64, b) ? a : b;
  }
}

const VALID_OPS = new Set([AMO_ADD, AMO_SWAP, AMO_LR, AMO_SC, AMO_XOR, AMO_OR, AMO_AND, AMO_MIN, AMO_MAX, AMO_MINU, AMO_MAXU]);

/** Executes one AMO-major-opcode instruction at virtual address `va` (the value of rs1). */
export function executeAmo(h: HartMemory, insn: number, va: number): void {
  const f3 = (insn >>> 12) & 7;
  const op = insn >>> 27;
  const rd = (insn >>> 7) & 31;
  const rs2 = (insn >>> 20) & 31;
  if ((f3 !== 2 && f3 !== 3) || !VALID_OPS.has(op) || (op === AMO_LR && rs2 !== 0)) {
    h.raise(CAUSE_ILLEGAL_INSTRUCTION, insn >>> 0);
  }
  const size = f3 === 2 ? 4 : 8;
  const resv = h.env.reservations;
  if (op === AMO_LR) {
    const region = h.atomicLocate(va, size, ACCESS_READ);
    const o = h.locOffset;
    // Reserve before loading: a store another thread makes after the load breaks the reservation.
    resv.reserve(h.id, region.base + o);
    if (size === 4) {
      const value = Atomics.load(region.i32, o >>> 2);
      if (resv.threaded) resv.noteLoaded(h.id, BigInt(value));
      h.setReg(rd, value);
    } else {
      const value = Atomics.load(region.i64, o >>> 3);
      if (resv.threaded) resv.noteLoaded(h.id, value);
      if (rd !== 0) h.x64[rd] = value;
    }
    return;
  }
  const region = h.atomicLocate(va, size, ACCESS_WRITE);
  const o = h.locOffset;
  const physical = region.base + o;
  if (op === AMO_SC) {
    let ok = resv.take(h.id, physical);
    if (ok) {
      if (resv.count !== 0) resv.storeBy(h.id, physical, size);
      if (!resv.threaded) {
        if (size === 4) region.i32[o >>> 2] = h.x[rs2 << 1];
        else region.i64[o >>> 3] = h.x64[rs2];
      } else if (size === 4) {
        // Threaded: the store happens only if the word still holds what LR loaded (docs/threads.md, "LR/SC").
        const expected = Number(BigInt.asIntN(32, resv.loadedBy(h.id)));
        ok = Atomics.compareExchange(region.i32, o >>> 2, expected, h.x[rs2 << 1]) === expected;
      } else {
        const expected = resv.loadedBy(h.id);
        ok = Atomics.compareExchange(region.i64, o >>> 3, expected, h.x64[rs2]) === expected;
      }
    }
    h.setReg(rd, ok ? 0 : 1);
    return;
  }
  if (resv.count !== 0) resv.storeBy(h.id, physical, size);
  if (size === 4) {
    h.setReg(rd, amo32(region.i32, o >>> 2, op, h.x[rs2 << 1]));
  } else {
    const old = amo64(region.i64, o >>> 3, op, h.x64[rs2]);
    if (rd !== 0) h.x64[rd] = old;
  }
}

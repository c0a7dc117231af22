// The cold tier (cold-tier.ts) against the interpreter it stands for: random programs of any encoding run on
// two harts without blocks, one stepping every instruction through `step()` and one through the cold tier's
// memo, and must leave identical registers, pc, memory, trap CSRs, counts and timing statistics.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import { Hart } from './hart.js';
import { Reservations } from './reservations.js';
import type { CacheGeometry } from '../timing/cache.js';
import { TimingModel } from '../timing/timing-model.js';
import { StatsRegistry } from '../timing/stats.js';

const RAM_BYTES = 64 * 1024;
const CODE_OFFSET = 0;
const VECTOR_OFFSET = 0x2000;
const DATA_OFFSET = 0x4000;
const POINTERS = [8, 9];
/** x10 holds the code address (JALR, and stores that rewrite the code). */
const CODE_REGISTER = 10;
const LATENCIES = { hitCycles: 1, missCycles: [[30]], uncachedCycles: 20, tlbLevelCycles: 5 };

// Encodings from the base formats (ISA §2.2), written independently of the code under test.
const rType = (op: number, f3: number, f7: number, rd: number, rs1: number, rs2: number): number =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const iType = (op: number, f3: number, rd: number, rs1: number, imm: number): number =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const sType = (f3: number, rs1: number, rs2: number, imm: number): number =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | 0x23) >>> 0;
const bType = (f3: number, rs1: number, rs2: number, imm: number): number =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
const jType = (rd: number, imm: number): number =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) |
    (rd << 7) | 0x6f) >>> 0;
const uType = (op: number, rd: number, imm20: number): number => (((imm20 & 0xfffff) << 12) | (rd << 7) | op) >>> 0;
const addi = (rd: number, rs1: number, imm: number): number => iType(0x13, 0, rd, rs1, imm);

/** Every statistic of timing mode: the model's counters, the miss counters and the hart's stall cycles. */
function timingState(model: TimingModel, hart: Hart): unknown {
  const stats = new StatsRegistry();
  model.registerStats(stats);
  return { stats: stats.snapshot(), pages: model.counters.hottest(1 << 20), stalls: hart.stallCycles };
}

class Rig {
  readonly ram: RamRegion;
  readonly hart: Hart;
  readonly model: TimingModel | undefined;

  constructor(readonly base: number, coldTier: boolean, cache?: Partial<CacheGeometry>) {
    this.ram = new RamRegion(0, base, RAM_BYTES);
    const bus = new Bus();
    bus.addRam(this.ram);
    this.hart = new Hart(0, { bus, clock: { now: () => 0 }, reservations: new Reservations(1) });
    this.hart.setColdTier(coldTier);
    if (cache !== undefined) {
      this.model = new TimingModel({ cpuNode: [0], nodes: [{ base, size: RAM_BYTES }], latencies: LATENCIES, cache });
      this.hart.setMemoryTiming(this.model);
    }
    this.hart.reset(base + CODE_OFFSET);
    this.hart.mtvec = base + VECTOR_OFFSET;
    // The trap handler counts in x31 and returns past the trapping instruction (mepc + 2: a 4-byte one runs
    // its upper half as a new instruction, more encodings for free).
    this.put(VECTOR_OFFSET, [addi(31, 31, 1), 0x341022f3 /* csrr t0, mepc */, addi(5, 5, 2), 0x34129073 /* csrw mepc, t0 */, 0x30200073 /* mret */]);
  }

  put(offset: number, parcels: number[]): void {
    let o = offset;
    for (const p of parcels) {
      if ((p & 3) === 3) {
        this.ram.view.setUint32(o, p >>> 0, true);
        o += 4;
      } else {
        this.ram.view.setUint16(o, p, true);
        o += 2;
      }
    }
  }

  snapshot(): unknown {
    const h = this.hart;
    return {
      x: Array.from(h.x64.subarray(1)), pc: h.pc - this.base, instret: h.instret, mcause: h.mcause, mepc: h.mepc - this.base,
      mtval: h.mtval, mstatus: h.mstatus,
      memory: Buffer.from(this.ram.u8.subarray(0, DATA_OFFSET + 4096)).toString('hex'),
      timing: this.model === undefined ? undefined : timingState(this.model, h),
    };
  }
}

/** Runs the program on a stepping and a cold-tier hart, slice by slice, comparing everything after each. */
function differential(parcels: number[], registers: bigint[], slices: number[], cache?: Partial<CacheGeometry>): void {
  const base = 0x8000_0000;
  const rigs = [new Rig(base, false, cache), new Rig(base, true, cache)];
  for (const rig of rigs) {
    rig.put(CODE_OFFSET, parcels);
    for (let i = 1; i < 32; i++) rig.hart.x64[i] = registers[i]!;
    for (const [k, p] of POINTERS.entries()) rig.hart.x64[p] = BigInt(base + DATA_OFFSET + 64 + k * 512);
    rig.hart.x64[CODE_REGISTER] = BigInt(base + CODE_OFFSET);
    for (let i = 0; i < 4096; i += 4) rig.ram.view.setUint32(DATA_OFFSET + i, Math.imul(i, 0x9e3779b1) >>> 0, true);
  }
  for (const budget of slices) {
    const ran = rigs.map((r) => r.hart.run(budget));
    assert.equal(ran[1], ran[0], 'instructions run in the slice');
    assert.deepEqual(rigs[1].snapshot(), rigs[0].snapshot());
  }
}

const reg = fc.integer({ min: 0, max: 31 });
const dest = reg.map((r) => (POINTERS.includes(r) || r === CODE_REGISTER ? r + 3 : r));
const value64 = fc.oneof(
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
  fc.constantFrom(0n, 1n, -1n, 31n, 32n, 63n, 64n, -(1n << 63n), (1n << 63n) - 1n, 0x7fffffffn, -0x80000000n),
);
const imm12 = fc.integer({ min: -2048, max: 2047 });

/** Any encoding: the memo must decode every one as the interpreter does, reserved ones included. */
const instruction: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), dest, reg, imm12).map(([f3, rd, rs1, imm]) => [iType(0x13, f3, rd, rs1, imm)]) },
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), fc.constantFrom(0, 0x20, 1, 0x04), dest, reg, reg).map(([f3, f7, rd, a, b]) =>
    [rType(0x33, f3, f7, rd, a, b)]) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), dest, reg, imm12).map(([f3, rd, rs1, imm]) => [iType(0x1b, f3, rd, rs1, imm)]) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), fc.constantFrom(0, 0x20, 1), dest, reg, reg).map(([f3, f7, rd, a, b]) =>
    [rType(0x3b, f3, f7, rd, a, b)]) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(0x37, 0x17), dest, fc.integer({ min: 0, max: 0xfffff })).map(([op, rd, imm]) => [uType(op, rd, imm)]) },
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), dest, fc.constantFrom(...POINTERS), fc.integer({ min: -64, max: 400 })).map(([f3, rd, b, imm]) =>
    [iType(0x03, f3, rd, b, imm)]) },
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: 4 }), fc.constantFrom(...POINTERS), reg, fc.integer({ min: -64, max: 400 })).map(([f3, b, rs2, imm]) =>
    [sType(f3, b, rs2, imm)]) },
  // Stores into the code itself: the memo must see the new instructions.
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), reg, fc.integer({ min: 0, max: 60 })).map(([f3, rs2, k]) =>
    [sType(f3, CODE_REGISTER, rs2, k * 2)]) },
  { weight: 2, arbitrary: fc.tuple(fc.integer({ min: 0, max: 7 }), reg, reg, fc.integer({ min: -6, max: 12 })).map(([f3, a, b, k]) =>
    [bType(f3, a, b, k * 2)]) },
  { weight: 1, arbitrary: fc.tuple(dest, fc.integer({ min: -4, max: 12 })).map(([rd, k]) => [jType(rd, k * 2)]) },
  { weight: 1, arbitrary: fc.tuple(dest, fc.integer({ min: 0, max: 40 })).map(([rd, k]) => [iType(0x67, 0, rd, CODE_REGISTER, k * 2 + 1)]) },
  // Every halfword that is not a 32-bit parcel, reserved encodings and F/D ones included.
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 0xffff }).filter((h) => (h & 3) !== 3).map((h) => [h]) },
  // Any 32-bit word: SYSTEM, AMO, F/D, FENCE, reserved encodings.
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffffffff }).map((w) => [(w | 3) >>> 0]) },
  { weight: 1, arbitrary: fc.constantFrom(0x00000073, 0x0ff0000f, 0x0000100f, 0x340027f3, 0xc0002773, 0xb0202773, 0x10500073).map((w) => [w]) },
);

test('random programs: the cold tier and step() agree after every slice', () => {
  fc.assert(
    fc.property(
      fc.array(instruction, { minLength: 1, maxLength: 60 }),
      fc.array(value64, { minLength: 32, maxLength: 32 }),
      fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 6 }),
      (program, registers, slices) => differential(program.flat(), registers, slices),
    ),
    { numRuns: 500 },
  );
});

test('random programs in timing mode: the cold tier charges what step() charges', () => {
  fc.assert(
    fc.property(
      fc.array(instruction, { minLength: 1, maxLength: 60 }),
      fc.array(value64, { minLength: 32, maxLength: 32 }),
      fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 6 }),
      fc.record({ sets: fc.constantFrom(4, 16), ways: fc.constantFrom(1, 2), lineBytes: fc.constantFrom(8, 64) })
        .map(({ sets, ways, lineBytes }) => ({ sizeBytes: sets * ways * lineBytes, ways, lineBytes })),
      (program, registers, slices, cache) => differential(program.flat(), registers, slices, cache),
    ),
    { numRuns: 200 },
  );
});

test('the memo serves the same code at another address: AUIPC is computed where it runs', () => {
  // auipc x5, 0x12; addi x6, x0, 1; j . — at offset 0 of RAM at two different bases (one memo entry each).
  const program = [uType(0x17, 5, 0x12), addi(6, 0, 1), jType(0, 0)];
  for (const base of [0x8000_0000, 0x9000_0000, 0x8000_0000]) {
    const rig = new Rig(base, true);
    rig.put(CODE_OFFSET, program);
    assert.equal(rig.hart.run(3), 3);
    assert.equal(rig.hart.x64[5], BigInt(base + 0x12000));
  }
});

test('code rewritten between runs is decoded again (the memo checks the bits it was decoded from)', () => {
  const rig = new Rig(0x8000_0000, true);
  rig.put(CODE_OFFSET, [addi(5, 5, 1), jType(0, -4)]);
  assert.equal(rig.hart.run(10), 10);
  assert.equal(rig.hart.x64[5], 5n);
  // The same address now holds a 16-bit c.addi x5, 3 and a c.nop, then the jump back.
  rig.put(CODE_OFFSET, [0x028d, 0x0001]);
  assert.equal(rig.hart.run(6), 6);
  assert.equal(rig.hart.x64[5], 5n + 2n * 3n);
  // And a reserved halfword (C.ADDI4SPN with a zero immediate): an illegal-instruction trap, the halfword in mtval.
  rig.put(CODE_OFFSET, [0x0004]);
  rig.hart.pc = 0x8000_0000;
  // The trap, then the handler's first instruction.
  assert.equal(rig.hart.run(2), 2);
  assert.equal(rig.hart.mcause, 2n);
  assert.equal(rig.hart.mtval, 4);
  assert.equal(rig.hart.x64[31], 1n);
});

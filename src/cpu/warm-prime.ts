// Priming the warm and cold tiers' runners once per class of hart in each thread: V8 optimizes `runWarm` early (it runs millions of times)
// and deoptimizes it whenever an operation it has not yet seen runs, which in a Linux boot happened 22 times
// as rare operations (SRAW, MULHU, ...) turned up one by one, each time falling back to V8's bytecode
// interpreter until it was optimized again. Running every operation once on a throwaway hart first gives
// the runner its type feedback before it is optimized. The throwaway hart has its own bus and RAM; nothing
// of the machine is touched. It is of the class of the hart that asked (once per class): primed with a
// plain Hart, a worker thread's runner saw two classes of hart, and its loads and stores were no longer
// inlined (docs/threads.md, "Measured": the warm tier took 2.8 times as long on a worker).

import { Bus } from '../memory/bus.js';
import { RamRegion } from '../memory/ram.js';
import type { Hart } from './hart.js';
import type { HartEnvironment } from './hart-state.js';
import { Reservations } from './reservations.js';
import { decodeBlock } from './warm-tier.js';

const BASE = 0x8000_0000;
const DATA = 0x800;

const r = (f7: number, rs2: number, rs1: number, f3: number, rd: number, op: number): number =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const i = (imm: number, rs1: number, f3: number, rd: number, op: number): number =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op) >>> 0;
const s = (imm: number, rs2: number, rs1: number, f3: number): number =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 31) << 7) | 0x23) >>> 0;
/** A branch of funct3 f3 comparing x5 and x6, to 8 bytes ahead. */
const branch = (f3: number): number => ((f3 << 12) | (6 << 20) | (5 << 15) | (8 << 7) | 0x63) >>> 0;

/** Straight-line code using every operation but the jumps: x8 points at the data, x5..x7 hold operands. */
function straightLine(): number[] {
  const words: number[] = [0x37 | (5 << 7) | (0x12345 << 12), 0x17 | (6 << 7) | (1 << 12)]; // lui x5; auipc x6
  for (let f3 = 0; f3 < 8; f3++) words.push(i(f3 === 1 || f3 === 5 ? 3 : 5, 5, f3, 7, 0x13)); // OP-IMM
  words.push(i(0x403, 5, 5, 7, 0x13)); // srai
  for (let f3 = 0; f3 < 8; f3++) {
    words.push(r(0, 6, 5, f3, 7, 0x33), r(1, 6, 5, f3, 7, 0x33)); // OP, M
    if (f3 === 0 || f3 === 5) words.push(r(0x20, 6, 5, f3, 7, 0x33));
  }
  words.push(i(1, 5, 0, 7, 0x1b), i(1, 5, 1, 7, 0x1b), i(1, 5, 5, 7, 0x1b), i(0x401, 5, 5, 7, 0x1b)); // OP-IMM-32
  for (const [f7, f3] of [[0, 0], [0x20, 0], [0, 1], [0, 5], [0x20, 5], [1, 0], [1, 4], [1, 5], [1, 6], [1, 7]]) {
    words.push(r(f7!, 6, 5, f3!, 7, 0x3b)); // OP-32
  }
  for (let f3 = 0; f3 < 7; f3++) words.push(i(8 * f3, 8, f3, 7, 0x03)); // loads
  for (let f3 = 0; f3 < 4; f3++) words.push(s(64 + 8 * f3, 7, 8, f3)); // stores
  return words;
}

/** The classes of hart the warm tier was primed with in this thread. */
const primed = new Set<HartClass>();

/** A class of hart: Hart, or a subclass with the same constructor (ThreadedHart). */
export type HartClass = new (id: number, env: HartEnvironment) => Hart;

/** True once the warm tier was primed with harts of class `kind` in this thread. */
export function warmTierPrimed(kind: HartClass): boolean {
  return primed.has(kind);
}

/**
 * Runs every operation of the warm and cold tiers once on a throwaway hart of `asker`'s class (once per
 * class and thread), so that the runners' feedback holds the one class of hart a thread runs.
 */
export function primeWarmTier(asker: Hart): void {
  const kind = asker.constructor as HartClass;
  if (primed.has(kind)) return;
  primed.add(kind);
  const ram = new RamRegion(0, BASE, 0x1000);
  const bus = new Bus();
  bus.addRam(ram);
  const hart = new kind(0, { bus, clock: { now: () => 0 }, reservations: new Reservations(1) });
  const trap = { done: 0 };
  /** Runs `words` in the warm tier (unless `coldOnly`: not all of them are block instructions) and in the cold tier. */
  const run = (words: number[], coldOnly = false): void => {
    for (const [k, w] of words.entries()) ram.view.setUint32(4 * k, w >>> 0, true);
    hart.x64[8] = BigInt(BASE + DATA);
    if (!coldOnly) {
      const pcs = words.map((_, k) => BASE + 4 * k);
      const ops = decodeBlock(ram.u16, 0, pcs, words.length);
      hart.runWarm(ops, pcs, words.length, trap, ram, 0);
    }
    // The cold tier (cold-tier.ts) runs the same code from its memo, and its path out of a trap.
    hart.pc = BASE;
    try {
      hart.runCold(2 * words.length, false);
    } catch {
      // A trap of a primed instruction (the load from address 0 below): what is primed is the way out.
    }
  };
  const jal = 0x6f | (1 << 7) | (4 << 21); // jal x1, +8
  const jalr = i(0, 8, 0, 1, 0x67); // jalr x1, 0(x8)
  for (let round = 0; round < 4; round++) {
    run(straightLine());
    // Branches taken (x5 == x6, x5 < x6 both ways) and not, then the jumps.
    for (const [a, b] of [[1n, 1n], [1n, 2n], [-1n, 1n]]) {
      hart.x64[5] = a!;
      hart.x64[6] = b!;
      for (const f3 of [0, 1, 4, 5, 6, 7]) run([branch(f3), i(1, 5, 0, 5, 0x13)]);
    }
    run([jal]);
    run([jalr]);
    // Cold tier only: RVC parcels (c.addi x5, 1; c.li x6, 2; c.mv x7, x5, then c.nop), a CSR read and a
    // FENCE (interpreted), and a load from address 0, where no RAM is (an access fault).
    run([0x0285 | (0x4309 << 16), 0x8396 | (0x0001 << 16), 0x340027f3, 0x0ff0000f], true);
    run([i(0, 0, 3, 7, 0x03)], true);
  }
}

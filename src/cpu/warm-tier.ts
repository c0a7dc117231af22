// The warm tier (docs/translator.md, "Tiers"): a measured block that is not yet hot enough to compile runs
// from a decoded form, made once when it is measured, instead of being fetched and decoded instruction by
// instruction. Each instruction is three int32 words: an operation number with its registers and length,
// and an immediate (or a 64-bit constant's two words). The operations are the ones blocks hold (codegen.ts
// `translatable`), with the semantics of Hart.execute, computed on the same helpers.

import { expandCompressed } from '../isa/compressed.js';
import { lt, ltu, mul, mulDiv32, mulDiv64, sll, sra, srl } from './alu.js';
import { Op, decodedWord, operation } from './decoded-ops.js';
import type { RamRegion } from '../memory/ram.js';
import { HartMemory } from './hart-memory.js';

const PAGE_BYTES = 4096;
/** Words per decoded instruction. */
export const DECODED_WORDS = 3;

/**
 * The decoded form of the `count` instructions at `pcs` (a block measured by measureBlock), read from the
 * page whose halfwords start at `mem[base]`.
 */
export function decodeBlock(mem: Uint16Array, base: number, pcs: readonly number[], count: number): Int32Array {
  const ops = new Int32Array(count * DECODED_WORDS);
  for (let k = 0; k < count; k++) {
    const pc = pcs[k]!;
    const at = base + ((pc & (PAGE_BYTES - 1)) >>> 1);
    const half = mem[at]!;
    const compressed = (half & 3) !== 3;
    const insn = compressed ? expandCompressed(half) : half | (mem[at + 1]! << 16);
    const [op, imm, hi] = operation(insn, pc);
    ops[k * DECODED_WORDS] = decodedWord(op, insn, compressed ? 2 : 4);
    ops[k * DECODED_WORDS + 1] = imm;
    ops[k * DECODED_WORDS + 2] = hi;
  }
  return ops;
}

/** What the warm tier tells the run loop when an instruction in it traps: how many came before it. */
export interface WarmTrap {
  done: number;
}

export class WarmHart extends HartMemory {
  // Loads and stores at the address rs1 + imm, given as rs1's two int32 words and the immediate. An address
  // is a double, and a double passed to a function V8 does not inline is boxed, a heap allocation per access;
  // int32 arguments are not. These are small enough for V8 to inline the access into them.
  protected loadB(lo: number, hi: number, imm: number): number { return this.load8(hi * 4294967296 + (lo >>> 0) + imm); }
  protected loadH(lo: number, hi: number, imm: number): number { return this.load16(hi * 4294967296 + (lo >>> 0) + imm); }
  protected loadW(lo: number, hi: number, imm: number): number { return this.load32(hi * 4294967296 + (lo >>> 0) + imm); }
  /** The low word; the high word is left in `loadHi`. */
  protected loadD(lo: number, hi: number, imm: number): number { return this.load64(hi * 4294967296 + (lo >>> 0) + imm); }
  protected storeB(lo: number, hi: number, imm: number, v: number): void { this.store8(hi * 4294967296 + (lo >>> 0) + imm, v); }
  protected storeH(lo: number, hi: number, imm: number, v: number): void { this.store16(hi * 4294967296 + (lo >>> 0) + imm, v); }
  protected storeW(lo: number, hi: number, imm: number, v: number): void { this.store32(hi * 4294967296 + (lo >>> 0) + imm, v); }
  protected storeD(lo: number, hi: number, imm: number, vl: number, vh: number): void {
    this.store64(hi * 4294967296 + (lo >>> 0) + imm, vl, vh);
  }

  /**
   * Runs the decoded block `ops` (pcs: its instructions' addresses) from its first instruction while the
   * path follows it: up to a taken branch or jump, a load or store that set `stop`, or its end. Returns how
   * many instructions ran and leaves `pc` at the next one. A trap leaves `pc` on the trapping instruction and
   * `trap.done` at the instructions completed before it, as a compiled block does. In timing mode each
   * fetch is charged right before its instruction, as `Hart.step` charges it: `region` is the RAM region
   * the block's page is in and `base` the page's first halfword in it.
   */
  runWarm(ops: Int32Array, pcs: readonly number[], count: number, trap: WarmTrap, region: RamRegion, base: number): number {
    const x = this.x;
    const timing = this.timing;
    let k = 0;
    try {
      for (; k < count; k++) {
        const w = ops[k * DECODED_WORDS]!;
        const imm = ops[k * DECODED_WORDS + 1]!;
        const d = ((w >>> 8) & 31) << 1;
        const s1 = ((w >>> 13) & 31) << 1;
        const s2 = ((w >>> 18) & 31) << 1;
        const al = x[s1]!;
        const ah = x[s1 + 1]!;
        const pc = pcs[k]!;
        if (timing !== undefined) this.chargeRam(timing, region, (base + ((pc & (PAGE_BYTES - 1)) >>> 1)) * 2, false);
        // cold-tier.ts's runner has the same ALU cases, inline in its own loop (see there).
        switch (w & 0xff) {
          case Op.ADDI: {
            const lo = (al + imm) | 0;
            x[d] = lo;
            x[d + 1] = (ah + (imm >> 31) + ((lo >>> 0) < (al >>> 0) ? 1 : 0)) | 0;
            break;
          }
          case Op.SLTI: x[d] = lt(al, ah, imm, imm >> 31) ? 1 : 0; x[d + 1] = 0; break;
          case Op.SLTIU: x[d] = ltu(al, ah, imm, imm >> 31) ? 1 : 0; x[d + 1] = 0; break;
          case Op.XORI: x[d] = al ^ imm; x[d + 1] = ah ^ (imm >> 31); break;
          case Op.ORI: x[d] = al | imm; x[d + 1] = ah | (imm >> 31); break;
          case Op.ANDI: x[d] = al & imm; x[d + 1] = ah & (imm >> 31); break;
          case Op.SLLI: sll(x, d, al, ah, imm); break;
          case Op.SRLI: srl(x, d, al, ah, imm); break;
          case Op.SRAI: sra(x, d, al, ah, imm); break;
          case Op.ADD: {
            const lo = (al + x[s2]!) | 0;
            x[d + 1] = (ah + x[s2 + 1]! + ((lo >>> 0) < (al >>> 0) ? 1 : 0)) | 0;
            x[d] = lo;
            break;
          }
          case Op.SUB: {
            const bl = x[s2]!;
            const borrow = (al >>> 0) < (bl >>> 0) ? 1 : 0;
            x[d + 1] = (ah - x[s2 + 1]! - borrow) | 0;
            x[d] = (al - bl) | 0;
            break;
          }
          case Op.SLL: sll(x, d, al, ah, x[s2]! & 63); break;
          case Op.SLT: { const v = lt(al, ah, x[s2]!, x[s2 + 1]!) ? 1 : 0; x[d] = v; x[d + 1] = 0; break; }
          case Op.SLTU: { const v = ltu(al, ah, x[s2]!, x[s2 + 1]!) ? 1 : 0; x[d] = v; x[d + 1] = 0; break; }
          case Op.XOR: x[d + 1] = ah ^ x[s2 + 1]!; x[d] = al ^ x[s2]!; break;
          case Op.SRL: srl(x, d, al, ah, x[s2]! & 63); break;
          case Op.SRA: sra(x, d, al, ah, x[s2]! & 63); break;
          case Op.OR: x[d + 1] = ah | x[s2 + 1]!; x[d] = al | x[s2]!; break;
          case Op.AND: x[d + 1] = ah & x[s2 + 1]!; x[d] = al & x[s2]!; break;
          case Op.MUL: mul(x, d, al, ah, x[s2]!, x[s2 + 1]!); break;
          case Op.MULDIV: if (d !== 0) mulDiv64(x, d, imm, al, ah, x[s2]!, x[s2 + 1]!); break;
          case Op.ADDIW: { const v = (al + imm) | 0; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.SLLIW: { const v = al << imm; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.SRLIW: { const v = (al >>> imm) | 0; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.SRAIW: { const v = al >> imm; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.ADDW: { const v = (al + x[s2]!) | 0; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.SUBW: { const v = (al - x[s2]!) | 0; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.SLLW: { const v = al << (x[s2]! & 31); x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.SRLW: { const v = (al >>> (x[s2]! & 31)) | 0; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.SRAW: { const v = al >> (x[s2]! & 31); x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.MULDIVW: { const v = mulDiv32(imm, al, x[s2]!); x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.CONST: x[d] = imm; x[d + 1] = ops[k * DECODED_WORDS + 2]!; break;
          case Op.BEQ: case Op.BNE: case Op.BLT: case Op.BGE: case Op.BLTU: case Op.BGEU: {
            const bl = x[s2]!;
            const bh = x[s2 + 1]!;
            const op = w & 0xff;
            const taken = op === Op.BEQ ? al === bl && ah === bh : op === Op.BNE ? al !== bl || ah !== bh
              : op === Op.BLT ? lt(al, ah, bl, bh) : op === Op.BGE ? !lt(al, ah, bl, bh)
                : op === Op.BLTU ? ltu(al, ah, bl, bh) : !ltu(al, ah, bl, bh);
            if (taken) {
              this.pc = pc + imm;
              x[0] = 0;
              x[1] = 0;
              return k + 1;
            }
            break;
          }
          case Op.JAL: {
            const link = pc + ((w >>> 23) & 7);
            this.pc = pc + imm;
            x[d] = link | 0;
            x[d + 1] = Math.floor(link / 4294967296) | 0;
            x[0] = 0;
            x[1] = 0;
            return k + 1;
          }
          case Op.JALR: {
            // Bit 0 of the sum is cleared, not of rs1 (ISA §2.5); the target is read before rd is written.
            const target = ah * 4294967296 + (al >>> 0) + imm;
            const link = pc + ((w >>> 23) & 7);
            this.pc = target - (target & 1);
            x[d] = link | 0;
            x[d + 1] = Math.floor(link / 4294967296) | 0;
            x[0] = 0;
            x[1] = 0;
            return k + 1;
          }
          default: {
            // Loads and stores: the pc is on the instruction while it accesses memory (traps, exits).
            this.pc = pc;
            let v: number;
            switch (w & 0xff) {
              case Op.LB: v = (this.loadB(al, ah, imm) << 24) >> 24; x[d] = v; x[d + 1] = v >> 31; break;
              case Op.LH: v = (this.loadH(al, ah, imm) << 16) >> 16; x[d] = v; x[d + 1] = v >> 31; break;
              case Op.LW: v = this.loadW(al, ah, imm); x[d] = v; x[d + 1] = v >> 31; break;
              case Op.LD: v = this.loadD(al, ah, imm); x[d] = v; x[d + 1] = this.loadHi; break;
              case Op.LBU: x[d] = this.loadB(al, ah, imm); x[d + 1] = 0; break;
              case Op.LHU: x[d] = this.loadH(al, ah, imm); x[d + 1] = 0; break;
              case Op.LWU: x[d] = this.loadW(al, ah, imm); x[d + 1] = 0; break;
              case Op.SB: this.storeB(al, ah, imm, x[s2]! & 0xff); break;
              case Op.SH: this.storeH(al, ah, imm, x[s2]! & 0xffff); break;
              case Op.SW: this.storeW(al, ah, imm, x[s2]!); break;
              default: this.storeD(al, ah, imm, x[s2]!, x[s2 + 1]!); break;
            }
            if (this.stop) {
              this.pc = pc + ((w >>> 23) & 7);
              x[0] = 0;
              x[1] = 0;
              return k + 1;
            }
          }
        }
        x[0] = 0;
        x[1] = 0;
      }
    } catch (e) {
      x[0] = 0;
      x[1] = 0;
      trap.done = k;
      throw e;
    }
    const last = ops[(count - 1) * DECODED_WORDS]!;
    this.pc = pcs[count - 1]! + ((last >>> 23) & 7);
    return count;
  }
}

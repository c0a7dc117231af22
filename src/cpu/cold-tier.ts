// The cold tier (docs/translator.md, "Tiers"): the interpreter's loop over code that has not yet run often
// enough to be measured into a block. Each instruction is fetched as before, but decoded once: a memo,
// direct-mapped by the instruction's halfword index in its RAM region, keeps every decoded instruction
// with the raw bits it was decoded from. An entry is used only if those bits are what memory holds now, so
// the memo needs no invalidation (stores, DMA, FENCE.I, the monitor replacing a page, another VM's code at
// the same index all simply miss), and a decoded form is a function of the bits alone (AUIPC's value is
// computed from the pc when it runs), so one memo serves every hart, page mapping and machine of a thread.

import { expandCompressed } from '../isa/compressed.js';
import { CAUSE_ILLEGAL_INSTRUCTION, OP_AUIPC } from '../isa/opcodes.js';
import { lt, ltu, mul, mulDiv32, mulDiv64, sll, sra, srl } from './alu.js';
import { translatable } from './codegen.js';
import { Op, decodedWord, operation } from './decoded-ops.js';
import type { RamRegion } from '../memory/ram.js';
import { WarmHart } from './warm-tier.js';

/** Memo entries (halfword slots): 2^17 cover 256 KiB of code at a time; 16 bytes each, 2 MiB per thread. */
const MEMO_BITS = 17;
const MEMO_MASK = (1 << MEMO_BITS) - 1;
/** Raw bits no instruction has: an RVC halfword is below 2^16, a 32-bit word ends in binary 11. */
const NO_INSTRUCTION = -4;

/** Per entry: the raw bits (a halfword, or the 32-bit word), the decoded word, the immediate, the constant's high word. */
let memo: Int32Array | undefined;

function theMemo(): Int32Array {
  if (memo === undefined) {
    memo = new Int32Array((MEMO_MASK + 1) * 4);
    for (let j = 0; j < memo.length; j += 4) memo[j] = NO_INSTRUCTION;
  }
  return memo;
}

/** Decodes `raw` (an RVC halfword or a 32-bit word) into entry `j` of `m`. */
function decodeInto(m: Int32Array, j: number, raw: number): void {
  let insn = raw;
  let len = 4;
  let op: number;
  let imm = 0;
  let hi = 0;
  if ((raw & 3) !== 3) {
    insn = expandCompressed(raw);
    len = 2;
  }
  if (len === 2 && insn === 0) op = Op.ILLEGAL_C;
  else if (!translatable(insn)) {
    op = Op.SLOW;
    imm = insn;
  } else if ((insn & 0x7f) === OP_AUIPC) {
    op = Op.AUIPC;
    imm = insn & 0xfffff000;
  } else [op, imm, hi] = operation(insn, 0);
  m[j] = raw;
  m[j + 1] = decodedWord(op, insn, len);
  m[j + 2] = imm;
  m[j + 3] = hi;
}

export abstract class ColdHart extends WarmHart {
  /** Virtual address of the page instructions are fetched from, its halfword index and memory. */
  protected fetchPage = 2 ** 60;
  protected fetchBase = 0;
  protected fetchMem: Uint16Array = new Uint16Array(0);
  /** The RAM region fetches come from (timing mode charges each fetch to its node). */
  protected fetchRegion: RamRegion | undefined = undefined;
  /** Set once run() has brought instret up to date for the counter access about to execute. */
  protected countersSynced = false;
  /** Instructions `runCold` completed before the one that threw (read and reset by run). */
  protected coldDone = 0;

  override fetchInvalidate(): void {
    this.fetchPage = 2 ** 60;
  }

  /** Points the fetch page at `pc`'s page; false for a page PMP rules split (fetched one instruction at a time). */
  protected abstract fetchRefill(pc: number): boolean;
  /** The halfword at `va` (the second half of a page-crossing instruction). */
  protected abstract fetchHalf(va: number): number;
  /** Runs one instruction at `pc`, fetching it on its own (Hart.step). */
  abstract step(): void;
  /** Runs the (expanded) instruction `insn` of length `len` at `pc` (Hart.execute). */
  abstract execute(insn: number, pc: number, len: number): void;

  /**
   * Interprets up to `limit` instructions from `pc`, as that many `step()`s would: stops early after one
   * that set `stop`, and with `toJump` after one that moved the pc by other than 2 or 4 bytes (a jump, a
   * taken branch, an xRET), where the run loop looks up blocks. Returns how many ran; if one throws, the
   * ones before it are left in `coldDone` and the pc is on it.
   */
  runCold(limit: number, toJump: boolean): number {
    const x = this.x;
    const m = theMemo();
    const timing = this.timing;
    let pc = this.pc;
    let k = 0;
    x[0] = 0;
    x[1] = 0;
    let go = true;
    try {
      // One store of the pc, at the top: a store on a path that runs rarely (the slice's end) would be
      // compiled by V8 without type feedback and deoptimize the whole function each time it runs.
      for (;;) {
        this.pc = pc;
        if (!go || k >= limit) break;
        let off = pc - this.fetchPage;
        if (off < 0 || off >= 4096) {
          if (!this.fetchRefill(pc)) {
            // A page PMP rules split: no fetch pointer, one instruction at a time.
            this.step();
            k++;
            x[0] = 0;
            x[1] = 0;
            const next = this.pc;
            const step = next - pc;
            go = !this.stop && (!toJump || step === 2 || step === 4);
            pc = next;
            continue;
          }
          off = pc - this.fetchPage;
        }
        const index = (this.fetchBase + (off >>> 1)) | 0;
        // Timing mode charges every fetch, as step() does (not again for a counter access run a second time).
        if (timing !== undefined && !this.countersSynced) this.chargeRam(timing, this.fetchRegion!, index * 2, false);
        const mem = this.fetchMem;
        let raw = mem[index]!;
        if ((raw & 3) === 3) raw |= (off === 4094 ? this.fetchHalf(pc + 2) : mem[index + 1]!) << 16;
        const j = (index & MEMO_MASK) << 2;
        if (m[j] !== raw) decodeInto(m, j, raw);
        const w = m[j + 1]!;
        const imm = m[j + 2]!;
        const d = ((w >>> 8) & 31) << 1;
        const s1 = ((w >>> 13) & 31) << 1;
        const s2 = ((w >>> 18) & 31) << 1;
        const len = (w >>> 23) & 7;
        const al = x[s1]!;
        const ah = x[s1 + 1]!;
        let next = pc + len;
        // The ALU cases are warm-tier.ts's runner's, written out again so that each hot loop has its switch
        // inline (one shared function with the switch is too large for V8 to inline into both). A change to
        // one is a change to both: the random-program tests run each against the interpreter.
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
          case Op.CONST: x[d] = imm; x[d + 1] = m[j + 3]!; break;
          case Op.AUIPC: {
            const v = pc + imm;
            x[d] = v | 0;
            x[d + 1] = Math.floor(v / 4294967296) | 0;
            break;
          }
          case Op.BEQ: case Op.BNE: case Op.BLT: case Op.BGE: case Op.BLTU: case Op.BGEU: {
            const bl = x[s2]!;
            const bh = x[s2 + 1]!;
            const op = w & 0xff;
            const taken = op === Op.BEQ ? al === bl && ah === bh : op === Op.BNE ? al !== bl || ah !== bh
              : op === Op.BLT ? lt(al, ah, bl, bh) : op === Op.BGE ? !lt(al, ah, bl, bh)
                : op === Op.BLTU ? ltu(al, ah, bl, bh) : !ltu(al, ah, bl, bh);
            if (taken) next = pc + imm;
            break;
          }
          case Op.JAL: {
            next = pc + imm;
            const link = pc + len;
            x[d] = link | 0;
            x[d + 1] = Math.floor(link / 4294967296) | 0;
            break;
          }
          case Op.JALR: {
            // Bit 0 of the sum is cleared, not of rs1 (ISA §2.5); the target is read before rd is written.
            const target = ah * 4294967296 + (al >>> 0) + imm;
            next = target - (target & 1);
            const link = pc + len;
            x[d] = link | 0;
            x[d + 1] = Math.floor(link / 4294967296) | 0;
            break;
          }
          case Op.LB: { const v = (this.loadB(al, ah, imm) << 24) >> 24; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.LH: { const v = (this.loadH(al, ah, imm) << 16) >> 16; x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.LW: { const v = this.loadW(al, ah, imm); x[d] = v; x[d + 1] = v >> 31; break; }
          case Op.LD: { const v = this.loadD(al, ah, imm); x[d] = v; x[d + 1] = this.loadHi; break; }
          case Op.LBU: x[d] = this.loadB(al, ah, imm); x[d + 1] = 0; break;
          case Op.LHU: x[d] = this.loadH(al, ah, imm); x[d + 1] = 0; break;
          case Op.LWU: x[d] = this.loadW(al, ah, imm); x[d + 1] = 0; break;
          case Op.SB: this.storeB(al, ah, imm, x[s2]! & 0xff); break;
          case Op.SH: this.storeH(al, ah, imm, x[s2]! & 0xffff); break;
          case Op.SW: this.storeW(al, ah, imm, x[s2]!); break;
          case Op.SD: this.storeD(al, ah, imm, x[s2]!, x[s2 + 1]!); break;
          case Op.ILLEGAL_C: this.raise(CAUSE_ILLEGAL_INSTRUCTION, raw); break;
          default:
            // SLOW: everything blocks do not hold (SYSTEM, AMO, F/D, FENCE, reserved 32-bit encodings).
            this.execute(imm, pc, len);
            next = this.pc;
            break;
        }
        x[0] = 0;
        x[1] = 0;
        k++;
        const step = next - pc;
        pc = next;
        go = !this.stop && (!toJump || step === 2 || step === 4);
      }
    } catch (e) {
      x[0] = 0;
      x[1] = 0;
      this.coldDone = k;
      throw e;
    }
    return k;
  }
}

// The interpreter: fetch (through a cached page pointer), decode and execute RV64IMAFDC + Zicsr + Zifencei.

import { expandCompressed } from '../isa/compressed.js';
import { CSR_CYCLE, CSR_INSTRET, CSR_MCOUNTINHIBIT, CSR_MCYCLE, CSR_MINSTRET, CSR_MIP } from '../isa/csr-numbers.js';
import { executeFp } from '../isa/fp/execute.js';
import {
  CAUSE_BREAKPOINT, CAUSE_FETCH_ACCESS, CAUSE_ILLEGAL_INSTRUCTION, CAUSE_USER_ECALL,
  OP_AMO, OP_AUIPC, OP_BRANCH, OP_IMM, OP_IMM_32, OP_JAL, OP_JALR, OP_LOAD, OP_LOAD_FP, OP_LUI, OP_MADD,
  OP_MISC_MEM, OP_MSUB, OP_NMADD, OP_NMSUB, OP_OP, OP_OP_32, OP_OP_FP, OP_STORE, OP_STORE_FP, OP_SYSTEM,
  PRIV_M, PRIV_S,
} from '../isa/opcodes.js';
import { lt, ltu, mul, mulDiv32, mulDiv64, sll, sra, srl, sub } from './alu.js';
import { executeAmo } from './amo.js';
import { csrRead, csrWrite, trappedInstruction } from './csr.js';
import { EXIT, TRAP, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW, MSTATUS_MPP, MSTATUS_MPP_SHIFT, MSTATUS_MPIE,
  MSTATUS_MIE, MSTATUS_SPP, MSTATUS_SPIE, MSTATUS_SIE, MSTATUS_MPRV } from './hart-state.js';
import { ColdHart } from './cold-tier.js';
import { primeWarmTier } from './warm-prime.js';
import type { MemoryTiming } from './memory-timing.js';
import { ACCESS_EXEC, ACCESS_WRITE, type Access } from './mmu.js';
import { TLB_MASK } from './tlb.js';
import { Translator } from './translator.js';
import type { RegionLimits } from './block-source.js';

/** Expansions of all 65536 halfwords, filled on first use; ILLEGAL_C marks a reserved encoding. */
const rvcTable = new Int32Array(65536);
const ILLEGAL_C = 1;

const INSN_ECALL = 0x00000073;
const INSN_EBREAK = 0x00100073;
const INSN_SRET = 0x10200073;
const INSN_MRET = 0x30200073;
const INSN_WFI = 0x10500073;
const FUNCT7_SFENCE_VMA = 0x09;

/** Thrown (outside the hot path) by an access to cycle/instret so that run() can count what ran so far. */
const COUNTER_SYNC = new Error('counter sync');

/** CSRs whose access reads or sets the counters (mcountinhibit freezes their values). */
function isCounter(csr: number): boolean {
  return csr === CSR_CYCLE || csr === CSR_INSTRET || csr === CSR_MCYCLE || csr === CSR_MINSTRET || csr === CSR_MCOUNTINHIBIT;
}

/** See `Hart.runState`. */
export interface HartRunState {
  privCycles: Float64Array;
  privMark: number;
  privRunning: number;
  countersSynced: boolean;
}

export class Hart extends ColdHart {
  /** What FENCE does beyond nothing: a host barrier when harts share memory across threads (threaded-hart.ts). */
  protected onFence: (() => void) | undefined = undefined;

  /** The block translator, or undefined to interpret every instruction (MIRRORBALL_TRANSLATE=0). */
  private translator: Translator | undefined = undefined;

  /**
   * Turns the block translator on or off (the board turns it on). `hotBlock` is how many times a block is
   * interpreted before it is compiled (tests pass 0); `region` what a compiled block takes in with it;
   * `warmBlock` how many look-ups of a pc measure its block (and start the warm tier).
   */
  setTranslation(on: boolean, hotBlock?: number, region?: RegionLimits, warmBlock?: number): void {
    if (on) primeWarmTier(this);
    this.translator = on ? new Translator(this, hotBlock, warmBlock, region) : undefined;
    this.translator?.setTiming(this.timing);
  }

  /** Timing mode on or off: the translator also recompiles its blocks, with or without the charges. */
  override setMemoryTiming(timing: MemoryTiming | undefined): void {
    super.setMemoryTiming(timing);
    this.translator?.setTiming(timing);
  }

  /** The hart will not run again (its VM ended): the translator lets go of what the machine shares. */
  releaseTranslation(): void {
    this.translator?.release();
    this.translator = undefined;
  }

  /** What run() keeps between calls beyond the fields of HartState and HartMemory (snapshots, hart-snapshot.ts). */
  runState(): HartRunState {
    return { privCycles: this.privCycles.slice(), privMark: this.privMark, privRunning: this.privRunning, countersSynced: this.countersSynced };
  }

  restoreRunState(s: HartRunState): void {
    this.privCycles.set(s.privCycles);
    this.privMark = s.privMark;
    this.privRunning = s.privRunning;
    this.countersSynced = s.countersSynced;
    this.fetchInvalidate();
  }

  get translating(): boolean {
    return this.translator !== undefined;
  }

  /** RAM holding code was written behind the harts' back (a loader): recheck every hart's blocks, as FENCE.I does. */
  codeWritten(): void {
    this.translator?.fenceI();
  }

  /** A store found a write translation: if its page holds translated code, that code is stale (ends the block). */
  protected override locate(va: number, access: Access, size = 1): void {
    super.locate(va, access, size);
    if (access === ACCESS_WRITE && this.translator !== undefined && this.locRegion !== undefined &&
      this.translator.written(this.locRegion, this.locOffset)) this.stop = true;
  }

  /** Runs up to `budget` instructions; returns how many ran (fewer if the hart waits in WFI or at an exit). */
  run(budget: number): number {
    if (this.suspended) return 0;
    let n = 0;
    /** Instructions of this run already added to instret (by a counter access mid-run). */
    let counted = 0;
    const x = this.x;
    while (n < budget) {
      this.stop = false;
      const irq = this.pendingInterrupt();
      if (irq >= 0) {
        this.waiting = false;
        this.countersSynced = false; // the counter access that asked for it now runs after the handler
        // Under the monitor the interrupt is one it delivers to the guest: an exit, counted and charged. It only
        // reports (outside the instruction loop, nothing can be abandoned here): the answer is not awaited.
        this.env.exit?.(this.id, { kind: 'interrupt', irq });
        this.enterTrap(irq, 0, true);
      }
      // A trap or xRET since the last pass ended with stop set or a throw, so every change is seen here.
      if (this.priv !== this.privRunning) this.accountPrivilege(this.instret + (n - counted) + this.stallCycles);
      if (this.waiting) {
        // WFI resumes once an interrupt is pending and enabled in mie, whatever mstatus.MIE/SIE say (§3.3.3).
        if (!this.wakeable) break;
        this.waiting = false;
      }
      // The try sits outside the hot loop; a trap abandons one instruction and the loop resumes.
      try {
        // Translated blocks (docs/translator.md): one runs only if it fits the budget, so slices end where
        // the interpreter's would; a block returns early after a load or store that set this.stop.
        const tr = this.translator;
        if (tr !== undefined) {
          while (n < budget && !this.stop) {
            x[0] = 0;
            x[1] = 0;
            const pc = this.pc;
            const off = pc - this.fetchPage;
            if ((off < 0 || off >= 4096) && !this.fetchRefill(pc)) {
              // A page PMP rules split has no fetch pointer and no blocks: one instruction at a time.
              this.step();
              n++;
              continue;
            }
            const b = tr.lookup(pc, this.fetchMem, this.fetchBase);
            if (b !== undefined && b.count !== 0 && b.count <= budget - n) {
              if (b.run !== undefined) n += b.run(this, x, tr, budget - n);
              else if (b.ops !== undefined && !this.countersSynced) {
                // Warm: run from its decoded form until it has run often enough to be worth compiling.
                n += this.runWarm(b.ops, b.pcs, b.count, tr, this.fetchRegion!, this.fetchBase);
                tr.warm(b);
              } else {
                // A counter access run again after COUNTER_SYNC (never in a block): interpreted.
                const pcs = b.pcs;
                let k = 0;
                do {
                  x[0] = 0;
                  x[1] = 0;
                  this.step();
                  n++;
                } while (++k < b.count && !this.stop && this.pc === pcs[k]);
                tr.warm(b);
              }
            } else if (b !== undefined && b.count !== 0) {
              // The block does not fit in what is left of the slice (under 48 instructions): interpret that.
              n += this.interpret(budget - n, false);
            } else {
              // Cold, or an instruction a block cannot start with: interpreted up to the next jump (or that
              // one instruction), where the next look-up happens.
              n += this.interpret(b !== undefined ? 1 : budget - n, true);
            }
          }
        }
        if (n < budget && !this.stop) n += this.interpret(budget - n, false);
      } catch (e) {
        // Instructions the cold tier completed before the one that threw.
        n += this.coldDone;
        this.coldDone = 0;
        if (e === COUNTER_SYNC) {
          // A counter CSR is about to be accessed: bring instret up to date, then run that instruction again.
          this.instret += n - counted;
          counted = n;
          this.countersSynced = true;
          continue;
        }
        if (e !== TRAP && e !== EXIT) throw e;
        if (this.translator !== undefined) {
          // Instructions a block completed before the trapping one (0 outside blocks).
          n += this.translator.done;
          this.translator.done = 0;
        }
        // The monitor keeps the vCPU at an exit: the instruction has not happened, and runs again on resume.
        if (e === EXIT) break;
        this.enterTrap(this.pendingCause, this.pendingTval, false);
        // It took a slice's step and a cycle, but the guest's minstret does not count it.
        trappedInstruction(this);
        n++;
      }
    }
    x[0] = 0;
    x[1] = 0;
    this.instret += n - counted;
    return n;
  }

  /** False: instructions outside blocks run through `step()` one by one, the reference the cold tier is tested against. */
  private coldTier = true;

  /** Tests: `false` makes the run loop interpret with `step()` instead of the cold tier's memo (cold-tier.ts). */
  setColdTier(on: boolean): void {
    this.coldTier = on;
  }

  /** Interprets up to `limit` instructions as `runCold` does (its contract), by the cold tier or by `step()`. */
  private interpret(limit: number, toJump: boolean): number {
    if (this.coldTier) return this.runCold(limit, toJump);
    const x = this.x;
    let k = 0;
    try {
      do {
        x[0] = 0;
        x[1] = 0;
        const from = this.pc;
        this.step();
        k++;
        const step = this.pc - from;
        if (toJump && step !== 2 && step !== 4) break;
      } while (k < limit && !this.stop);
    } catch (e) {
      this.coldDone = k;
      throw e;
    }
    return k;
  }

  /**
   * Points the fetch page at `pc`'s page. Returns false, leaving the pointer invalid, for a page PMP rules
   * split (pmp.ts), which stays out of the TLB: its instructions are fetched one by one (`stepUncached`).
   */
  protected fetchRefill(pc: number): boolean {
    const vpn = Math.floor(pc / 4096);
    const t = this.execTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] !== vpn) {
      this.locate(pc, ACCESS_EXEC, 2);
      if (this.locRegion === undefined) this.raise(CAUSE_FETCH_ACCESS, pc);
      if (!this.locCached) return false;
    }
    const region = t.mem[i];
    this.fetchPage = vpn * 4096;
    this.fetchBase = ((vpn * 4096 + t.delta[i]) / 2) | 0;
    this.fetchMem = region.u16;
    this.fetchRegion = region;
    return true;
  }

  /** Fetches the halfword at `va` (the second half of a page-crossing insn, or any on a page PMP splits). */
  protected fetchHalf(va: number): number {
    const vpn = Math.floor(va / 4096);
    const t = this.execTlb;
    const i = vpn & TLB_MASK;
    if (t.tag[i] === vpn) return t.mem[i].u16[(va + t.delta[i]) / 2];
    this.locate(va, ACCESS_EXEC, 2);
    const region = this.locRegion;
    if (region === undefined) return this.raise(CAUSE_FETCH_ACCESS, va);
    return region.u16[this.locOffset / 2];
  }

  /** One instruction from a page PMP rules split: fetchRefill checked its first parcel, fetchHalf checks the second. */
  private stepUncached(pc: number): void {
    const region = this.locRegion!;
    const offset = this.locOffset;
    if (this.timing !== undefined && !this.countersSynced) this.chargeRam(this.timing, region, offset, false);
    const half = region.u16[offset / 2];
    if ((half & 3) === 3) this.execute(half | (this.fetchHalf(pc + 2) << 16), pc, 4);
    else this.executeCompressed(half, pc);
  }

  step(): void {
    const pc = this.pc;
    let off = pc - this.fetchPage;
    if (off < 0 || off >= 4096) {
      if (!this.fetchRefill(pc)) return this.stepUncached(pc);
      off = pc - this.fetchPage;
    }
    const index = (this.fetchBase + (off >>> 1)) | 0;
    // Timing mode: every fetch is an access to the (unified) cache; index is a halfword in the region. A
    // counter access run again after COUNTER_SYNC (countersSynced) was charged its fetch the first time.
    if (this.timing !== undefined && !this.countersSynced) this.chargeRam(this.timing, this.fetchRegion!, index * 2, false);
    const half = this.fetchMem[index];
    if ((half & 3) === 3) {
      const upper = off === 4094 ? this.fetchHalf(pc + 2) : this.fetchMem[index + 1];
      this.execute(half | (upper << 16), pc, 4);
    } else {
      this.executeCompressed(half, pc);
    }
  }

  private executeCompressed(half: number, pc: number): void {
    let insn = rvcTable[half];
    if (insn === 0) {
      insn = expandCompressed(half) || ILLEGAL_C;
      rvcTable[half] = insn;
    }
    if (insn === ILLEGAL_C) this.raise(CAUSE_ILLEGAL_INSTRUCTION, half);
    this.execute(insn, pc, 2);
  }

  private illegal(insn: number, len: number): never {
    return this.raise(CAUSE_ILLEGAL_INSTRUCTION, len === 4 ? insn >>> 0 : 0);
  }

  execute(insn: number, pc: number, len: number): void {
    const x = this.x;
    const rd = (insn >>> 7) & 31;
    const rs1 = (insn >>> 15) & 31;
    const rs2 = (insn >>> 20) & 31;
    const f3 = (insn >>> 12) & 7;
    const d = rd << 1;
    const al = x[rs1 << 1];
    const ah = x[(rs1 << 1) + 1];
    switch (insn & 0x7f) {
      case OP_IMM: {
        const imm = insn >> 20;
        switch (f3) {
          case 0: {
            // ADDI, the most frequent instruction: add() inlined by hand (V8 does not inline it in this function).
            const lo = (al + imm) | 0;
            x[d] = lo;
            x[d + 1] = (ah + (imm >> 31) + ((lo >>> 0) < (al >>> 0) ? 1 : 0)) | 0;
            break;
          }
          case 1: if (imm & 0xfc0) this.illegal(insn, len); sll(x, d, al, ah, imm & 63); break;
          case 2: x[d] = lt(al, ah, imm, imm >> 31) ? 1 : 0; x[d + 1] = 0; break;
          case 3: x[d] = ltu(al, ah, imm, imm >> 31) ? 1 : 0; x[d + 1] = 0; break;
          case 4: x[d] = al ^ imm; x[d + 1] = ah ^ (imm >> 31); break;
          case 5:
            if ((imm & 0xbc0) !== 0) this.illegal(insn, len);
            if (imm & 0x400) sra(x, d, al, ah, imm & 63); else srl(x, d, al, ah, imm & 63);
            break;
          case 6: x[d] = al | imm; x[d + 1] = ah | (imm >> 31); break;
          default: x[d] = al & imm; x[d + 1] = ah & (imm >> 31); break;
        }
        this.pc = pc + len;
        return;
      }
      case OP_LUI: {
        const v = insn & 0xfffff000;
        x[d] = v; x[d + 1] = v >> 31;
        this.pc = pc + len;
        return;
      }
      case OP_AUIPC:
        this.setReg(rd, pc + (insn & 0xfffff000));
        this.pc = pc + len;
        return;
      case OP_OP: {
        const bl = x[rs2 << 1];
        const bh = x[(rs2 << 1) + 1];
        const f7 = insn >>> 25;
        if (f7 === 0) {
          switch (f3) {
            case 0: {
              const lo = (al + bl) | 0;
              x[d] = lo;
              x[d + 1] = (ah + bh + ((lo >>> 0) < (al >>> 0) ? 1 : 0)) | 0;
              break;
            }
            case 1: sll(x, d, al, ah, bl & 63); break;
            case 2: x[d] = lt(al, ah, bl, bh) ? 1 : 0; x[d + 1] = 0; break;
            case 3: x[d] = ltu(al, ah, bl, bh) ? 1 : 0; x[d + 1] = 0; break;
            case 4: x[d] = al ^ bl; x[d + 1] = ah ^ bh; break;
            case 5: srl(x, d, al, ah, bl & 63); break;
            case 6: x[d] = al | bl; x[d + 1] = ah | bh; break;
            default: x[d] = al & bl; x[d + 1] = ah & bh; break;
          }
        } else if (f7 === 0x20 && (f3 === 0 || f3 === 5)) {
          if (f3 === 0) sub(x, d, al, ah, bl, bh); else sra(x, d, al, ah, bl & 63);
        } else if (f7 === 1) {
          if (f3 === 0) mul(x, d, al, ah, bl, bh);
          else if (rd !== 0) mulDiv64(x, d, f3, al, ah, bl, bh);
        } else this.illegal(insn, len);
        this.pc = pc + len;
        return;
      }
      case OP_IMM_32: {
        const imm = insn >> 20;
        let v: number;
        if (f3 === 0) v = (al + imm) | 0;
        else if (f3 === 1 && (imm & 0xfe0) === 0) v = al << (imm & 31);
        else if (f3 === 5 && (imm & 0xfe0) === 0) v = (al >>> (imm & 31)) | 0;
        else if (f3 === 5 && (imm & 0xfe0) === 0x400) v = al >> (imm & 31);
        else return this.illegal(insn, len);
        x[d] = v; x[d + 1] = v >> 31;
        this.pc = pc + len;
        return;
      }
      case OP_OP_32: {
        const b = x[rs2 << 1];
        const f7 = insn >>> 25;
        let v: number;
        if (f7 === 0 && f3 === 0) v = (al + b) | 0;
        else if (f7 === 0x20 && f3 === 0) v = (al - b) | 0;
        else if (f7 === 0 && f3 === 1) v = al << (b & 31);
        else if (f7 === 0 && f3 === 5) v = (al >>> (b & 31)) | 0;
        else if (f7 === 0x20 && f3 === 5) v = al >> (b & 31);
        else if (f7 === 1 && (f3 === 0 || f3 >= 4)) v = mulDiv32(f3, al, b);
        else return this.illegal(insn, len);
        x[d] = v; x[d + 1] = v >> 31;
        this.pc = pc + len;
        return;
      }
      case OP_LOAD: {
        // The address goes as rs1's words and the offset (int32s): a double would be boxed (warm-tier.ts).
        const imm = insn >> 20;
        let v: number;
        switch (f3) {
          case 0: v = (this.loadB(al, ah, imm) << 24) >> 24; x[d] = v; x[d + 1] = v >> 31; break;
          case 1: v = (this.loadH(al, ah, imm) << 16) >> 16; x[d] = v; x[d + 1] = v >> 31; break;
          case 2: v = this.loadW(al, ah, imm); x[d] = v; x[d + 1] = v >> 31; break;
          case 3: v = this.loadD(al, ah, imm); x[d] = v; x[d + 1] = this.loadHi; break;
          case 4: x[d] = this.loadB(al, ah, imm); x[d + 1] = 0; break;
          case 5: x[d] = this.loadH(al, ah, imm); x[d + 1] = 0; break;
          case 6: x[d] = this.loadW(al, ah, imm); x[d + 1] = 0; break;
          default: this.illegal(insn, len);
        }
        this.pc = pc + len;
        return;
      }
      case OP_STORE: {
        const imm = ((insn >> 25) << 5) | rd;
        const s = rs2 << 1;
        switch (f3) {
          case 0: this.storeB(al, ah, imm, x[s] & 0xff); break;
          case 1: this.storeH(al, ah, imm, x[s] & 0xffff); break;
          case 2: this.storeW(al, ah, imm, x[s]); break;
          case 3: this.storeD(al, ah, imm, x[s], x[s + 1]); break;
          default: this.illegal(insn, len);
        }
        this.pc = pc + len;
        return;
      }
      case OP_BRANCH: {
        const bl = x[rs2 << 1];
        const bh = x[(rs2 << 1) + 1];
        let taken: boolean;
        switch (f3) {
          case 0: taken = al === bl && ah === bh; break;
          case 1: taken = al !== bl || ah !== bh; break;
          case 4: taken = lt(al, ah, bl, bh); break;
          case 5: taken = !lt(al, ah, bl, bh); break;
          case 6: taken = ltu(al, ah, bl, bh); break;
          case 7: taken = !ltu(al, ah, bl, bh); break;
          default: return this.illegal(insn, len);
        }
        if (taken) {
          this.pc = pc + (((insn >> 31) << 12) | (((insn >>> 7) & 1) << 11) | (((insn >>> 25) & 0x3f) << 5) | (((insn >>> 8) & 0xf) << 1));
        } else this.pc = pc + len;
        return;
      }
      case OP_JAL:
        this.setReg(rd, pc + len);
        this.pc = pc + (((insn >> 31) << 20) | (((insn >>> 12) & 0xff) << 12) | (((insn >>> 20) & 1) << 11) | (((insn >>> 21) & 0x3ff) << 1));
        return;
      case OP_JALR: {
        if (f3 !== 0) this.illegal(insn, len);
        // Bit 0 of the sum is cleared, not of rs1 (ISA §2.5): odd rs1 + odd imm is even and kept.
        const target = ah * 4294967296 + (al >>> 0) + (insn >> 20);
        this.setReg(rd, pc + len);
        this.pc = target - (target & 1);
        return;
      }
      case OP_MISC_MEM:
        // FENCE and FENCE.I: on one thread, with fetches reading memory directly, there is nothing to order
        // (across threads FENCE is a barrier: onFence, docs/threads.md); translated blocks are rechecked
        // against memory after FENCE.I (docs/translator.md).
        if (f3 > 1) this.illegal(insn, len);
        if (f3 === 1) this.translator?.fenceI();
        else this.onFence?.();
        this.pc = pc + len;
        return;
      case OP_AMO:
        executeAmo(this, insn, ah * 4294967296 + (al >>> 0));
        this.pc = pc + len;
        return;
      case OP_SYSTEM:
        this.system(insn, pc, len);
        return;
      case OP_LOAD_FP: {
        if (!this.fsEnabled || (f3 !== 2 && f3 !== 3)) this.illegal(insn, len);
        const va = ah * 4294967296 + (al >>> 0) + (insn >> 20);
        const f = this.f;
        if (f3 === 2) { f[d] = this.load32(va); f[d + 1] = -1; }
        else { const lo = this.load64(va); f[d] = lo; f[d + 1] = this.loadHi; }
        this.markFpDirty();
        this.pc = pc + len;
        return;
      }
      case OP_STORE_FP: {
        if (!this.fsEnabled || (f3 !== 2 && f3 !== 3)) this.illegal(insn, len);
        const va = ah * 4294967296 + (al >>> 0) + (((insn >> 25) << 5) | rd);
        const s = rs2 << 1;
        if (f3 === 2) this.store32(va, this.f[s]); else this.store64(va, this.f[s], this.f[s + 1]);
        this.pc = pc + len;
        return;
      }
      case OP_MADD: case OP_MSUB: case OP_NMSUB: case OP_NMADD: case OP_OP_FP:
        if (!this.fsEnabled || !executeFp(this, insn)) this.illegal(insn, len);
        this.markFpDirty();
        this.pc = pc + len;
        return;
      default:
        this.illegal(insn, len);
    }
  }

  private system(insn: number, pc: number, len: number): void {
    const f3 = (insn >>> 12) & 7;
    if (f3 === 0) {
      this.privileged(insn, pc, len);
      return;
    }
    if (f3 === 4) this.illegal(insn, len);
    const csr = insn >>> 20;
    if (isCounter(csr)) {
      // instret is added up per run, not per instruction; the run brings it up to date first (see run()).
      if (!this.countersSynced) throw COUNTER_SYNC;
      this.countersSynced = false;
    }
    const rd = (insn >>> 7) & 31;
    const rs1 = (insn >>> 15) & 31;
    // Privilege needed is in bits 9..8; bits 11..10 == 3 means read-only (§2.1).
    if (((csr >>> 8) & 3) > this.priv) this.illegal(insn, len);
    const operand = f3 >= 5 ? BigInt(rs1) : this.x64[rs1];
    const op = f3 & 3;
    const writes = op === 1 || rs1 !== 0;
    if (writes && (csr >>> 10) === 3) this.illegal(insn, len);
    const old = csrRead(this, csr);
    if (old === undefined) return this.illegal(insn, len);
    if (writes) {
      // CSRRS/CSRRC on mip start from the software-writable bits only: the external SEIP signal shows in
      // what is read but must not be latched into the writable SEIP bit (privileged spec §3.1.9).
      const base = csr === CSR_MIP ? BigInt(this.mip) : old;
      const value = op === 1 ? operand : op === 2 ? base | operand : base & ~operand;
      if (!csrWrite(this, csr, BigInt.asUintN(64, value))) this.illegal(insn, len);
    }
    if (rd !== 0) this.x64[rd] = BigInt.asIntN(64, old);
    this.pc = pc + len;
  }

  private privileged(insn: number, pc: number, len: number): void {
    const f7 = insn >>> 25;
    if (f7 === FUNCT7_SFENCE_VMA && ((insn >>> 7) & 31) === 0) {
      if (this.priv < PRIV_S || (this.priv === PRIV_S && (this.mstatus & MSTATUS_TVM))) this.illegal(insn, len);
      const rs1 = (insn >>> 15) & 31;
      const rs2 = (insn >>> 20) & 31;
      this.sfenceVma(rs1 === 0 ? undefined : this.reg(rs1), rs2 === 0 ? undefined : this.x[2 * rs2]! & 0xffff);
      this.pc = pc + len;
      return;
    }
    switch (insn) {
      case INSN_ECALL:
        if (this.priv === PRIV_S && this.env.ecallFromSupervisor?.(this)) {
          this.pc = pc + len;
          return;
        }
        this.raise(CAUSE_USER_ECALL + this.priv, 0);
      // falls through: raise never returns
      case INSN_EBREAK:
        this.raise(CAUSE_BREAKPOINT, pc);
      // falls through
      case INSN_SRET: {
        if (this.priv < PRIV_S || (this.priv === PRIV_S && (this.mstatus & MSTATUS_TSR))) this.illegal(insn, len);
        const s = this.mstatus;
        this.priv = s & MSTATUS_SPP ? PRIV_S : 0;
        let next = (s & ~(MSTATUS_SPP | MSTATUS_SIE)) | MSTATUS_SPIE;
        if (s & MSTATUS_SPIE) next |= MSTATUS_SIE;
        next &= ~MSTATUS_MPRV; // returning below M clears MPRV (§3.1.6.3)
        this.mstatus = next;
        this.pc = this.sepc;
        this.updateTranslation();
        this.stop = true;
        return;
      }
      case INSN_MRET: {
        if (this.priv !== PRIV_M) this.illegal(insn, len);
        const s = this.mstatus;
        this.priv = (s & MSTATUS_MPP) >>> MSTATUS_MPP_SHIFT;
        let next = (s & ~(MSTATUS_MPP | MSTATUS_MIE)) | MSTATUS_MPIE;
        if (s & MSTATUS_MPIE) next |= MSTATUS_MIE;
        if (this.priv !== PRIV_M) next &= ~MSTATUS_MPRV;
        this.mstatus = next;
        this.pc = this.mepc;
        this.updateTranslation();
        this.stop = true;
        return;
      }
      case INSN_WFI:
        if (this.priv === 0 || (this.priv === PRIV_S && (this.mstatus & MSTATUS_TW))) this.illegal(insn, len);
        if (!this.wakeable && this.env.exit !== undefined) this.exitTo({ kind: 'wfi' });
        this.pc = pc + len;
        if (!this.wakeable) {
          this.waiting = true;
          this.stop = true;
        }
        return;
      default:
        this.illegal(insn, len);
    }
  }
}


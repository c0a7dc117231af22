// Reading and writing the CSRs: each CSR's contract (WARL fields, views such as sstatus/sip) in one place.
// Privileged spec v1.12 chapters 2–4. The caller checks privilege and read-only-ness (§2.1).

import * as C from '../isa/csr-numbers.js';
import { MIP_MEIP, MIP_MSIP, MIP_MTIP, MIP_SEIP, MIP_SSIP, MIP_STIP, PRIV_M, PRIV_S } from '../isa/opcodes.js';
import {
  MSTATUS_FS, MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP, MSTATUS_MPRV, MSTATUS_MXR, MSTATUS_SIE, MSTATUS_SPIE,
  MSTATUS_SPP, MSTATUS_SUM, MSTATUS_TSR, MSTATUS_TVM, MSTATUS_TW, SATP_MODE_BARE, SATP_MODE_SV39,
  SATP_MODE_SV48, type HartState,
} from './hart-state.js';

/** misa: RV64 with A, C, D, F, I, M, S, U (§3.1.1). */
const MISA = (2n << 62n) | BigInt((1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20));
/** UXL = SXL = 2 (64-bit), fixed; sstatus shows only UXL (§4.1.1). */
const UXL_BITS = 2n << 32n;
const XL_BITS = UXL_BITS | (2n << 34n);
const MSTATUS_WRITABLE = MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | MSTATUS_SPP | MSTATUS_MPP |
  MSTATUS_FS | MSTATUS_MPRV | MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR;
const SSTATUS_MASK = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR;
/** Interrupts M-mode may delegate, and the bits of mip software may write (§3.1.9). */
const S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP;
const ALL_INTERRUPTS = S_INTERRUPTS | MIP_MSIP | MIP_MTIP | MIP_MEIP;
/** Exceptions that may be delegated: all but ECALL from M (11) and the reserved ones (§3.1.8). */
const MEDELEG_WRITABLE = 0xb3ff;
const SD_FS_DIRTY = 3 << 13;

/**
 * Sdtrig trigger CSRs (debug spec 1.0 §5.7). No triggers are implemented: tselect reads 0, tdata1
 * reads type 0 ("no trigger here") and tinfo reads 1 (only type 0), so software probing them — as
 * Linux and the riscv-tests do — finds none instead of taking an illegal-instruction trap.
 */
const CSR_TSELECT = 0x7a0;
const CSR_TDATA1 = 0x7a1;
const CSR_TDATA3 = 0x7a3;
const CSR_TINFO = 0x7a4;
const TINFO_NONE = 1n;

const u64 = (v: number): bigint => BigInt.asUintN(64, BigInt(v));
const toAddress = (v: bigint): number => Number(BigInt.asIntN(64, v));

function readMstatus(h: HartState, mask: number, xl: bigint): bigint {
  const s = h.mstatus & mask;
  const sd = (h.mstatus & MSTATUS_FS) === SD_FS_DIRTY ? 1n << 63n : 0n;
  return BigInt(s >>> 0) | xl | sd;
}

function writeMstatus(h: HartState, value: bigint, mask: number): void {
  const v = Number(value & 0xffffffffn);
  let next = (h.mstatus & ~mask) | (v & mask);
  // MPP is WARL: the reserved value 2 (H-mode) is not kept.
  if (((next & MSTATUS_MPP) >>> 11) === 2) next = (next & ~MSTATUS_MPP) | (h.mstatus & MSTATUS_MPP);
  const changed = h.mstatus ^ next;
  h.mstatus = next;
  // MXR widens what a read may do: entries made without it would refuse too much, with it allow too much.
  if (changed & MSTATUS_MXR) h.flushTlb();
  // SUM has its own TLBs (VIEW_S_SUM): switching to them is enough.
  if (changed & (MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_SUM)) h.updateTranslation();
  if (changed & (MSTATUS_MIE | MSTATUS_SIE)) h.stop = true;
}

/** mcountinhibit's bits: CY stops mcycle, IR minstret (§3.1.13); the hpm counters are read-only zero. */
const INHIBIT_CY = 1;
const INHIBIT_IR = 4;

/**
 * mcycle: the hart's simulated cycles (in fast mode equal to instret) plus what the guest's writes moved
 * them by; while mcountinhibit.CY is set, cycleAdjust holds the frozen value itself. minstret likewise.
 * The CSR instruction that accesses them has not retired yet (run() adds it afterwards).
 */
function cycles(h: HartState): bigint {
  return (h.mcountinhibit & INHIBIT_CY) !== 0 ? h.cycleAdjust : BigInt.asUintN(64, BigInt(h.simulatedCycles) + h.cycleAdjust);
}

function instructions(h: HartState): bigint {
  return (h.mcountinhibit & INHIBIT_IR) !== 0 ? h.instretAdjust : BigInt.asUintN(64, BigInt(h.instret) + h.instretAdjust);
}

/**
 * The offset that makes a counter at `now` read `value` after the writing instruction retires: the write
 * happens instead of that instruction's increment (unprivileged spec, Zicsr chapter: a value written to instret
 * by one instruction is the value the following instruction reads). A stopped counter holds `value` itself.
 */
function counterAdjust(value: bigint, now: number, inhibited: boolean): bigint {
  return inhibited ? value : value - BigInt(now + 1);
}

/**
 * An instruction that raised an exception took its cycle but did not retire (privileged spec §3.3.1: ECALL
 * and EBREAK "are not considered to retire"; likewise every trapping instruction): minstret leaves it out.
 */
export function trappedInstruction(h: HartState): void {
  if ((h.mcountinhibit & INHIBIT_IR) === 0) h.instretAdjust -= 1n;
}

/**
 * mcountinhibit: a counter that stops keeps its value (the writing instruction is not counted); one that
 * starts again goes on from it (the writing instruction is), as Spike counts after each instruction.
 */
function writeCountInhibit(h: HartState, next: number): void {
  const changed = h.mcountinhibit ^ next;
  if (changed & INHIBIT_CY) {
    h.cycleAdjust = next & INHIBIT_CY ? cycles(h) : h.cycleAdjust - BigInt(h.simulatedCycles);
  }
  if (changed & INHIBIT_IR) {
    h.instretAdjust = next & INHIBIT_IR ? instructions(h) : h.instretAdjust - BigInt(h.instret);
  }
  h.mcountinhibit = next;
}

/** Counter access from S or U (§3.1.11, §4.1.4): mcounteren, then scounteren for U. */
function counterAllowed(h: HartState, bit: number): boolean {
  if (h.priv === PRIV_M) return true;
  if (((h.mcounteren >>> bit) & 1) === 0) return false;
  return h.priv === PRIV_S || ((h.scounteren >>> bit) & 1) !== 0;
}

/** The value of a CSR, or undefined if it does not exist or may not be read here (illegal instruction). */
export function csrRead(h: HartState, csr: number): bigint | undefined {
  switch (csr) {
    case C.CSR_FFLAGS: return h.fsEnabled ? BigInt(h.fflags) : undefined;
    case C.CSR_FRM: return h.fsEnabled ? BigInt(h.frm) : undefined;
    case C.CSR_FCSR: return h.fsEnabled ? BigInt((h.frm << 5) | h.fflags) : undefined;
    case C.CSR_CYCLE: return counterAllowed(h, 0) ? cycles(h) : undefined;
    case C.CSR_INSTRET: return counterAllowed(h, 2) ? instructions(h) : undefined;
    case C.CSR_TIME: return counterAllowed(h, 1) ? u64(h.env.clock.now()) : undefined;
    case C.CSR_SSTATUS: return readMstatus(h, SSTATUS_MASK, UXL_BITS);
    case C.CSR_SIE: return BigInt(h.mie & h.mideleg);
    case C.CSR_STVEC: return u64(h.stvec);
    case C.CSR_SCOUNTEREN: return BigInt(h.scounteren);
    case C.CSR_SENVCFG: return h.senvcfg;
    case C.CSR_SSCRATCH: return h.sscratch;
    case C.CSR_SEPC: return u64(h.sepc);
    case C.CSR_SCAUSE: return h.scause;
    case C.CSR_STVAL: return u64(h.stval);
    case C.CSR_SIP: return BigInt((h.mip | h.mipLines) & h.mideleg);
    case C.CSR_SATP:
      if (h.priv === PRIV_S && (h.mstatus & MSTATUS_TVM)) return undefined;
      return (BigInt(h.satpMode) << 60n) | (BigInt(h.satpAsid) << 44n) | BigInt(h.satpPpn);
    case C.CSR_MSTATUS: return readMstatus(h, -1, XL_BITS);
    case C.CSR_MISA: return MISA;
    case C.CSR_MEDELEG: return BigInt(h.medeleg);
    case C.CSR_MIDELEG: return BigInt(h.mideleg);
    case C.CSR_MIE: return BigInt(h.mie);
    case C.CSR_MTVEC: return u64(h.mtvec);
    case C.CSR_MCOUNTEREN: return BigInt(h.mcounteren);
    case C.CSR_MENVCFG: return h.menvcfg;
    case C.CSR_MCOUNTINHIBIT: return BigInt(h.mcountinhibit);
    case C.CSR_MSCRATCH: return h.mscratch;
    case C.CSR_MEPC: return u64(h.mepc);
    case C.CSR_MCAUSE: return h.mcause;
    case C.CSR_MTVAL: return u64(h.mtval);
    case C.CSR_MIP: return BigInt(h.mip | h.mipLines);
    case C.CSR_MCYCLE: return cycles(h);
    case C.CSR_MINSTRET: return instructions(h);
    case C.CSR_MVENDORID: case C.CSR_MARCHID: case C.CSR_MIMPID: case C.CSR_MCONFIGPTR: return 0n;
    case C.CSR_MHARTID: return BigInt(h.id);
    case CSR_TINFO: return TINFO_NONE;
  }
  if (csr >= CSR_TSELECT && csr <= CSR_TDATA3) return 0n;
  // RV64 has only the even pmpcfg CSRs (§3.7.1).
  if (csr >= C.CSR_PMPCFG0 && csr <= C.CSR_PMPCFG15) return (csr & 1) === 0 ? h.pmp.readCfg(csr - C.CSR_PMPCFG0) : undefined;
  if (csr >= C.CSR_PMPADDR0 && csr <= C.CSR_PMPADDR63) return h.pmp.readAddr(csr - C.CSR_PMPADDR0);
  if (csr >= C.CSR_MHPMCOUNTER3 && csr <= C.CSR_MHPMCOUNTER31) return 0n;
  if (csr >= C.CSR_MHPMEVENT3 && csr <= C.CSR_MHPMEVENT31) return 0n;
  if (csr >= C.CSR_HPMCOUNTER3 && csr <= C.CSR_HPMCOUNTER31) return counterAllowed(h, csr - C.CSR_CYCLE) ? 0n : undefined;
  return undefined;
}

/** Writes a CSR; returns false if the write is illegal here. The CSR must exist (csrRead succeeded). */
export function csrWrite(h: HartState, csr: number, value: bigint): boolean {
  const low = Number(value & 0xffffffffn);
  switch (csr) {
    case C.CSR_FFLAGS: h.fflags = low & 0x1f; h.markFpDirty(); return true;
    case C.CSR_FRM: h.frm = low & 7; h.markFpDirty(); return true;
    case C.CSR_FCSR: h.fflags = low & 0x1f; h.frm = (low >>> 5) & 7; h.markFpDirty(); return true;
    case C.CSR_SSTATUS: writeMstatus(h, value, SSTATUS_MASK); return true;
    case C.CSR_SIE: h.mie = (h.mie & ~h.mideleg) | (low & h.mideleg); h.stop = true; return true;
    case C.CSR_STVEC: h.stvec = toAddress(value) - (low & 2); return true;
    case C.CSR_SCOUNTEREN: h.scounteren = low & 7; return true;
    case C.CSR_SENVCFG: h.senvcfg = value & 1n; return true;
    case C.CSR_SSCRATCH: h.sscratch = value; return true;
    case C.CSR_SEPC: h.sepc = toAddress(value & ~1n); return true;
    case C.CSR_SCAUSE: h.scause = value; return true;
    case C.CSR_STVAL: h.stval = toAddress(value); return true;
    case C.CSR_SIP: {
      const mask = MIP_SSIP & h.mideleg;
      h.mip = (h.mip & ~mask) | (low & mask);
      h.stop = true;
      return true;
    }
    case C.CSR_SATP: {
      const mode = Number(value >> 60n);
      // WARL: an unsupported mode leaves satp unchanged (§4.1.11).
      if (mode !== SATP_MODE_BARE && mode !== SATP_MODE_SV39 && mode !== SATP_MODE_SV48) return true;
      h.satpMode = mode;
      h.satpAsid = Number((value >> 44n) & 0xffffn);
      h.satpPpn = Number(value & 0xfffffffffffn);
      h.satpChanged();
      return true;
    }
    case C.CSR_MSTATUS: writeMstatus(h, value, MSTATUS_WRITABLE); return true;
    case C.CSR_MISA: return true;
    case C.CSR_MEDELEG: h.medeleg = low & MEDELEG_WRITABLE; return true;
    case C.CSR_MIDELEG: h.mideleg = low & S_INTERRUPTS; h.stop = true; return true;
    case C.CSR_MIE: h.mie = low & ALL_INTERRUPTS; h.stop = true; return true;
    case C.CSR_MTVEC: h.mtvec = toAddress(value) - (low & 2); return true;
    case C.CSR_MCOUNTEREN: h.mcounteren = low & 7; return true;
    case C.CSR_MENVCFG: h.menvcfg = value & 1n; return true;
    case C.CSR_MCOUNTINHIBIT: writeCountInhibit(h, low & (INHIBIT_CY | INHIBIT_IR)); return true;
    case C.CSR_MSCRATCH: h.mscratch = value; return true;
    case C.CSR_MEPC: h.mepc = toAddress(value & ~1n); return true;
    case C.CSR_MCAUSE: h.mcause = value; return true;
    case C.CSR_MTVAL: h.mtval = toAddress(value); return true;
    case C.CSR_MIP: h.mip = (h.mip & ~S_INTERRUPTS) | (low & S_INTERRUPTS); h.stop = true; return true;
    case C.CSR_MCYCLE: h.cycleAdjust = counterAdjust(value, h.simulatedCycles, (h.mcountinhibit & INHIBIT_CY) !== 0); return true;
    case C.CSR_MINSTRET: h.instretAdjust = counterAdjust(value, h.instret, (h.mcountinhibit & INHIBIT_IR) !== 0); return true;
  }
  // A change of the PMP rules empties the TLBs, whose entries were checked against the old ones.
  if (csr >= C.CSR_PMPCFG0 && csr <= C.CSR_PMPCFG15) {
    if (h.pmp.writeCfg(csr - C.CSR_PMPCFG0, value)) h.pmpChanged();
    return true;
  }
  if (csr >= C.CSR_PMPADDR0 && csr <= C.CSR_PMPADDR63) {
    if (h.pmp.writeAddr(csr - C.CSR_PMPADDR0, value)) h.pmpChanged();
    return true;
  }
  if (csr >= C.CSR_MHPMCOUNTER3 && csr <= C.CSR_MHPMCOUNTER31) return true;
  if (csr >= C.CSR_MHPMEVENT3 && csr <= C.CSR_MHPMEVENT31) return true;
  if (csr >= CSR_TSELECT && csr <= CSR_TINFO) return true; // WARL, nothing to select or arm
  return false;
}


// Test helper: a tiny M/S-mode runtime for privileged tests that logs every trap into memory, plus Sv39/Sv48 page-table building.

import type { TestContext } from 'node:test';
import type { Program } from './asm.js';
import { RAM_BASE, runAsm, type BareMachine, type BareMachineOptions } from './bare-machine.js';

/** Bytes per trap-log entry: cause, tval, epc, status, handler privilege (one dword each). */
const ENTRY = 40;

/**
 * Source placed before a privileged test's `main:` (which runs in M-mode). All code is 32-bit
 * (.option norvc) so handlers can skip an instruction by adding 4.
 *
 * Both handlers log (cause, tval, epc, status, 3 or 1) at s11 and then:
 * - interrupt: clear its enable bit (in mie / sie) and return to the same instruction;
 * - ECALL (causes 8, 9, 11) taken in M: continue in M-mode after the ECALL (`to_m` uses this);
 * - fetch access or page fault (1, 12): return to `ra` (tests reach code with `jalr ra, ...`);
 * - anything else: skip the faulting instruction.
 * Registers t5, t6 and s11 belong to the runtime.
 */
export const TRAP_RUNTIME = `
.option norvc
.equ MSTATUS_SIE, 0x2
.equ MSTATUS_MIE, 0x8
.equ MSTATUS_SPIE, 0x20
.equ MSTATUS_MPIE, 0x80
.equ MSTATUS_SPP, 0x100
.equ MSTATUS_MPP, 0x1800
.equ MSTATUS_MPP_S, 0x800
.equ MSTATUS_MPRV, 0x20000
.equ MSTATUS_SUM, 0x40000
.equ MSTATUS_MXR, 0x80000
.equ MSTATUS_TVM, 0x100000
.equ MSTATUS_TW, 0x200000
.equ MSTATUS_TSR, 0x400000
.equ MSTATUS_FS, 0x6000

.macro log_trap cause, tval, epc, status, by
  csrr t5, \\cause
  sd t5, 0(s11)
  csrr t5, \\tval
  sd t5, 8(s11)
  csrr t5, \\epc
  sd t5, 16(s11)
  csrr t5, \\status
  sd t5, 24(s11)
  li t5, \\by
  sd t5, 32(s11)
  addi s11, s11, ${ENTRY}
.endm

/* Drop from M to mode (0 = U, 1 = S) and continue with the next instruction there. */
.macro enter_mode mode
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, (\\mode << 11)
  csrs mstatus, t0
  la t0, 1001f
  csrw mepc, t0
  mret
1001:
.endm

/* Back to M-mode from any mode (through the M handler's ECALL rule; logs the ECALL). */
.macro to_m
  ecall
.endm

/* In M-mode: make the data accesses of insn act as privilege mode (0 = U, 1 = S) through MPRV. */
.macro as_mode mode, insn:vararg
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPRV | (\\mode << 11)
  csrs mstatus, t0
  \\insn
  li t0, MSTATUS_MPRV
  csrc mstatus, t0
.endm

.globl _start
_start:
  la t0, m_trap
  csrw mtvec, t0
  la t0, s_trap
  csrw stvec, t0
  la s11, trap_log
  pmp_allow_all
  j main

.align 6
m_trap:
  log_trap mcause, mtval, mepc, mstatus, 3
  csrr t5, mcause
  bgez t5, 1f
  li t6, 1
  sll t6, t6, t5
  csrc mie, t6
  mret
1:
  li t6, 8
  bltu t5, t6, 2f
  li t6, 11
  bgtu t5, t6, 2f
  li t6, MSTATUS_MPP
  csrs mstatus, t6
  j 4f
2:
  li t6, 1
  beq t5, t6, 3f
  li t6, 12
  beq t5, t6, 3f
  j 4f
3:
  csrw mepc, ra
  mret
4:
  csrr t5, mepc
  addi t5, t5, 4
  csrw mepc, t5
  mret

.align 6
s_trap:
  log_trap scause, stval, sepc, sstatus, 1
  csrr t5, scause
  bgez t5, 1f
  li t6, 1
  sll t6, t6, t5
  csrc sie, t6
  sret
1:
  li t6, 1
  beq t5, t6, 3f
  li t6, 12
  beq t5, t6, 3f
  csrr t5, sepc
  addi t5, t5, 4
  csrw sepc, t5
  sret
3:
  csrw sepc, ra
  sret
`;

/** Goes after the test's code: the log area, 64 entries. */
export const TRAP_RUNTIME_DATA = `
.data
.align 12
trap_log: .zero ${ENTRY * 64}
`;

export interface TrapRecord {
  interrupt: boolean;
  cause: number;
  tval: bigint;
  epc: bigint;
  status: bigint;
  /** 3 when M-mode handled it, 1 for S-mode. */
  by: number;
}

/** The traps the runtime logged, oldest first (s11 of hart 0 marks the end). */
export function trapLog(machine: BareMachine, program: Program): TrapRecord[] {
  const start = program.symbols.get('trap_log')!;
  const end = Number(BigInt.asUintN(64, machine.reg(27)));
  const out: TrapRecord[] = [];
  for (let a = start; a < end; a += ENTRY) {
    const cause = machine.read64(a);
    out.push({
      interrupt: cause >> 63n === 1n,
      cause: Number(cause & 0xffffn),
      tval: machine.read64(a + 8),
      epc: machine.read64(a + 16),
      status: machine.read64(a + 24),
      by: Number(machine.read64(a + 32)),
    });
  }
  return out;
}

/** Compact "cause@by" list for assertions, ECALLs included (e.g. ['2@3', '9@3']). */
export function causes(log: readonly TrapRecord[]): string[] {
  return log.map((r) => `${r.interrupt ? 'irq' : ''}${r.cause}@${r.by}`);
}

/** Runs TRAP_RUNTIME + `body` (which must define `main:` and end with `pass`/`fail`). */
export function runPrivileged(
  t: TestContext, body: string,
  options: BareMachineOptions & { maxInstructions?: number; setup?: (m: BareMachine, p: Program) => void } = {},
): { machine: BareMachine; program: Program; exitCode: number; log: TrapRecord[] } | undefined {
  const run = runAsm(t, TRAP_RUNTIME + body + TRAP_RUNTIME_DATA, options);
  if (run === undefined) return undefined;
  return { ...run, log: trapLog(run.machine, run.program) };
}

// ---- page tables (privileged spec §4.3–4.5) ----

export const PTE_V = 1n;
export const PTE_R = 2n;
export const PTE_W = 4n;
export const PTE_X = 8n;
export const PTE_U = 16n;
export const PTE_G = 32n;
export const PTE_A = 64n;
export const PTE_D = 128n;
const PAGE = 4096;

/** Builds page tables in the machine's RAM from a bump allocator of page-table pages. */
export class PageTables {
  readonly root: number;
  private next: number;

  /** `levels` is 3 for Sv39, 4 for Sv48; tables are allocated from `poolBase` upward. */
  constructor(private readonly machine: BareMachine, readonly levels: 3 | 4, poolBase = RAM_BASE + (2 << 20)) {
    this.next = poolBase;
    this.root = this.allocate();
  }

  private allocate(): number {
    const page = this.next;
    this.next += PAGE;
    for (let o = 0; o < PAGE; o += 8) this.machine.write64(page + o, 0n);
    return page;
  }

  /** satp for this table: MODE (8 = Sv39, 9 = Sv48), ASID 0, root PPN. */
  get satp(): bigint {
    return (BigInt(this.levels === 3 ? 8 : 9) << 60n) | BigInt(this.root / PAGE);
  }

  /** Physical address of the PTE for `va` at `level` (0 = 4 KiB leaf), creating tables above it. */
  pteAddress(va: bigint, level: number): number {
    let table = this.root;
    for (let l = this.levels - 1; l > level; l--) {
      const at = table + Number((va >> BigInt(12 + 9 * l)) & 511n) * 8;
      let pte = this.machine.read64(at);
      if ((pte & PTE_V) === 0n) {
        const child = this.allocate();
        pte = (BigInt(child / PAGE) << 10n) | PTE_V;
        this.machine.write64(at, pte);
      }
      table = Number(pte >> 10n) * PAGE;
    }
    return table + Number((va >> BigInt(12 + 9 * level)) & 511n) * 8;
  }

  /** Maps `va` to `pa` with a leaf at `level` (0: 4 KiB, 1: 2 MiB, 2: 1 GiB, 3: 512 GiB). Returns the PTE address. */
  map(va: bigint, pa: number, flags: bigint, level = 0): number {
    const at = this.pteAddress(va, level);
    this.machine.write64(at, (BigInt(Math.floor(pa / PAGE)) << 10n) | flags | PTE_V);
    return at;
  }

  /** Writes a raw PTE value (for malformed entries). */
  setRaw(va: bigint, level: number, pte: bigint): number {
    const at = this.pteAddress(va, level);
    this.machine.write64(at, pte);
    return at;
  }
}

// Test helper: a monitor with VMs running a small S-mode program that exercises every kind of exit, and the
// monitor's state as bytes to compare (snapshot tests).

import type { MachineConfig } from '../../src/board/address-map.js';
import { IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER, PRIV_S } from '../../src/isa/opcodes.js';
import { encodeSnapshot } from '../../src/host/snapshot-file.js';
import type { MonitorSnapshot } from '../../src/monitor/monitor-snapshot.js';
import type { VirtualMachine } from '../../src/monitor/vm.js';
import { assemble, TEXT_BASE, type Program } from './asm.js';
import { comparableState } from './snapshot-state.js';
import { GuestPageTables, PTE_RW } from './vm-program.js';
import { PTE_R, PTE_W, PTE_X } from './trap-runtime.js';

const PAGE = 4096;
const ARRAY_VA = 0x4000_0000;
export const ARRAY_PA = TEXT_BASE + 0x20_0000;
const TABLES_PA = TEXT_BASE + 0x1_0000;

/**
 * Every vCPU in S-mode under Sv39: code and devices through 1 GiB identity pages, a 2 MiB array through 4 KiB pages (half
 * of them without A and D, which walks set). Each vCPU updates the array at pseudo-random places (so pages
 * fill, the TLBs of both levels churn), counts with AMOADD and LR/SC, does some FP; every 512 iterations
 * vCPU 0 prints a letter through the SBI console, the others a digit through the UART, and each waits in WFI
 * for an SBI timer (its period in a3), whose interrupt handler puts the timer off again.
 */
const SOURCE = `
.equ ARRAY, 0x40000000
.globl _start
_start:
  la t0, strap
  csrw stvec, t0
  csrw satp, a1
  sfence.vma
  li t0, 0x2000
  csrs sstatus, t0
  li t0, 0x20
  csrs sie, t0
  csrsi sstatus, 2
  mv s0, a0
  li s1, 12345
  add s1, s1, a2
  add s1, s1, s0
  li s2, ARRAY
  li s4, 6364136223846793005
  li s5, 1442695040888963407
  li s6, 0
  mv s7, a3
  li s8, 0
loop:
  mul s1, s1, s4
  add s1, s1, s5
  srli t0, s1, 20
  li t1, 0x1ffff8
  and t0, t0, t1
  add t0, t0, s2
  ld t1, 0(t0)
  add t1, t1, s1
  sd t1, 0(t0)
  li t2, 1
  amoadd.d t3, t2, (s2)
  addi t4, s2, 8
3:
  lr.d t5, (t4)
  addi t5, t5, 1
  sc.d t6, t5, (t4)
  bnez t6, 3b
  fcvt.d.l ft0, s1
  fmadd.d ft1, ft0, ft0, ft1
  addi s6, s6, 1
  andi t0, s6, 511
  bnez t0, loop
  bnez s0, 4f
  srli t0, s6, 9
  li t1, 26
  remu t0, t0, t1
  addi a0, t0, 'a'
  li a7, 1
  ecall
  j 5f
4:
  li t0, 0x10000000
  srli t1, s6, 9
  andi t1, t1, 7
  addi t1, t1, '0'
  sb t1, 0(t0)
5:
  rdtime a0
  add a0, a0, s7
  slli t0, s0, 4
  add a0, a0, t0
  li a7, 0x54494D45
  li a6, 0
  ecall
6:
  wfi
  beqz s8, 6b
  li s8, 0
  j loop
.align 2
strap:
  li a7, 0x54494D45
  li a6, 0
  li a0, -1
  ecall
  li s8, 1
  sret
`;

let program: Program | undefined;

/** Two nodes of 32 MiB, one CPU each: fewer CPUs than vCPUs, so vCPUs take turns (world switches). */
export const SEAM_MACHINE: MachineConfig = {
  harts: 2,
  nodes: [{ memoryBytes: 32 * 2 ** 20, harts: [0] }, { memoryBytes: 32 * 2 ** 20, harts: [1] }],
  distances: [[10, 20], [20, 10]],
};

/** Loads the program into `vm` (created, not run) and starts every vCPU in S-mode; `seed` varies the VMs' data. */
export function startSeamProgram(vm: VirtualMachine, seed: number, period = 500): void {
  program ??= assemble(SOURCE);
  const memory = vm.machine.bus.guestMemory();
  memory.write(TEXT_BASE, program.image);
  const tables = new GuestPageTables(memory, TABLES_PA);
  tables.map(TEXT_BASE, TEXT_BASE, PTE_RW | PTE_X, 2);
  // The devices (the UART) through a 1 GiB identity page too.
  tables.map(0, 0, PTE_RW, 2);
  for (let k = 0; k < 512; k++) tables.map(ARRAY_VA + k * PAGE, ARRAY_PA + k * PAGE, k % 2 === 0 ? PTE_RW : PTE_R | PTE_W);
  for (const h of vm.vcpus) {
    h.reset(TEXT_BASE);
    h.priv = PRIV_S;
    h.mcounteren = 7;
    h.mideleg = (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT);
    h.updateTranslation();
    h.setReg(10, h.id);
    h.x64[11] = BigInt.asIntN(64, tables.satp);
    h.setReg(12, seed);
    h.setReg(13, period + 37 * h.id);
  }
}

/**
 * A whole monitor's saved state as bytes, but for what only the translator decides in each VM's harts
 * (snapshot-state.ts): two monitors with the same bytes are the same machine.
 */
export function comparableMonitorState(snapshot: MonitorSnapshot): Buffer {
  for (const vm of snapshot.vms) comparableState(vm.machine);
  return Buffer.from(encodeSnapshot(snapshot));
}

// Test helper: bare S-mode programs run by a monitor's vCPUs, with Sv39 page tables poked into guest memory.

import assert from 'node:assert/strict';
import type { MachineConfig } from '../../src/board/address-map.js';
import { SATP_MODE_SV39, type HartState } from '../../src/cpu/hart-state.js';
import { PRIV_S } from '../../src/isa/opcodes.js';
import { PMP_ADDR_ALL, PMP_NAPOT, PMP_R, PMP_W, PMP_X } from '../../src/cpu/pmp.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import type { MachineMemory } from '../../src/monitor/machine-memory.js';
import type { Monitor } from '../../src/monitor/monitor.js';
import type { VirtualMachine } from '../../src/monitor/vm.js';
import { assemble, TEXT_BASE, type Program } from './asm.js';
import { PTE_A, PTE_D, PTE_R, PTE_V, PTE_W, PTE_X } from './trap-runtime.js';

export { PTE_A, PTE_D, PTE_R, PTE_V, PTE_W, PTE_X };
export const PTE_RW = PTE_R | PTE_W | PTE_A | PTE_D;
const PAGE = 4096;

/** A physical machine of `nodes` nodes of `nodeMiB` MiB with `cpusPerNode` CPUs each. */
export function monitorMachine(nodes: number, nodeMiB: number, cpusPerNode: number): MachineConfig {
  return {
    harts: nodes * cpusPerNode,
    nodes: Array.from({ length: nodes }, (_, n) => ({
      memoryBytes: nodeMiB * 2 ** 20,
      harts: Array.from({ length: cpusPerNode }, (_, k) => n * cpusPerNode + k),
    })),
  };
}

/** Four nodes of one CPU and 32 MiB on a 2x2 mesh (links 0-1, 0-2, 1-3, 2-3): distance 10 + 10 per hop. */
export function meshMachine(): MachineConfig {
  const config = monitorMachine(4, 32, 1);
  const hops = (i: number, j: number): number => Math.abs((i % 2) - (j % 2)) + Math.abs((i >> 1) - (j >> 1));
  return { ...config, distances: [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => 10 + 10 * hops(i, j))) };
}

/** Runs the monitor's rounds until `done` (or `max` rounds); returns the rounds run. */
export function runRoundsUntil(monitor: Monitor, done: () => boolean, max: number): number {
  let rounds = 0;
  while (!done() && rounds < max) {
    monitor.runRound();
    rounds++;
  }
  return rounds;
}

/**
 * Puts hart `h` in S-mode under Sv39 with its root table at physical `root`, ASID `asid`, its TLBs empty,
 * and PMP letting S-mode reach every address (as firmware would; a vCPU has no PMP).
 */
export function enterSv39(h: HartState, root: number, asid = 0): void {
  h.pmp.writeAddr(0, PMP_ADDR_ALL);
  h.pmp.writeCfg(0, BigInt(PMP_NAPOT | PMP_R | PMP_W | PMP_X));
  h.priv = PRIV_S;
  h.satpMode = SATP_MODE_SV39;
  h.satpAsid = asid;
  h.satpPpn = root / PAGE;
  h.updateTranslation();
  h.flushTlb();
}

/** The words of machine page `mpn`, in place. */
export function machinePageWords(memory: MachineMemory, mpn: number): Int32Array {
  const region = memory.regionOf(mpn);
  return region.i32.subarray(memory.offsetOf(mpn) / 4, memory.offsetOf(mpn) / 4 + PAGE / 4);
}

export function writeU64(memory: GuestMemory, address: number, value: bigint): void {
  memory.writeU32(address, Number(value & 0xffff_ffffn));
  memory.writeU32(address + 4, Number((value >> 32n) & 0xffff_ffffn));
}

export function readU64(memory: GuestMemory, address: number): bigint {
  return BigInt(memory.readU32(address)) | (BigInt(memory.readU32(address + 4)) << 32n);
}

/** Sv39 page tables in guest-physical memory, allocated a page at a time from `poolBase` upward. */
export class GuestPageTables {
  readonly root: number;
  /** Guest-physical addresses of every table page, root first. */
  readonly tables: number[] = [];
  private next: number;

  constructor(private readonly memory: GuestMemory, poolBase: number) {
    this.next = poolBase;
    this.root = this.allocate();
  }

  private allocate(): number {
    const page = this.next;
    this.next += PAGE;
    this.memory.write(page, new Uint8Array(PAGE));
    this.tables.push(page);
    return page;
  }

  /** satp: Sv39, ASID 0, the root's page number. */
  get satp(): bigint {
    return (8n << 60n) | BigInt(this.root / PAGE);
  }

  /** The guest-physical address of the PTE for `va` at `level` (0: a 4 KiB leaf), making tables above it. */
  pteAddress(va: number, level: number): number {
    let table = this.root;
    for (let l = 2; l > level; l--) {
      const at = table + Math.floor(va / 2 ** (12 + 9 * l)) % 512 * 8;
      let pte = readU64(this.memory, at);
      if ((pte & PTE_V) === 0n) {
        pte = (BigInt(this.allocate() / PAGE) << 10n) | PTE_V;
        writeU64(this.memory, at, pte);
      }
      table = Number(pte >> 10n) * PAGE;
    }
    return table + Math.floor(va / 2 ** (12 + 9 * level)) % 512 * 8;
  }

  /** Maps `va` to guest-physical `pa` with a leaf at `level` (0: 4 KiB, 2: 1 GiB). Returns the PTE's address. */
  map(va: number, pa: number, flags: bigint, level = 0): number {
    const at = this.pteAddress(va, level);
    writeU64(this.memory, at, (BigInt(Math.floor(pa / PAGE)) << 10n) | flags | PTE_V);
    return at;
  }
}

/**
 * The counter program, run by every vCPU of a VM in S-mode. Each vCPU (a0 = its index) switches to the page
 * table in a1, stores to a5 pages of its own at FILL_VA (pages the host never touched, so the vCPU fills them),
 * then a2 times: increments the counter at word 0 of its private page, adds the iteration number to word 1,
 * and adds 1 to the shared counter with AMOADD. Then it sets word 2 of its page. vCPU 0 waits until the shared
 * counter reaches a3 and, if a4 is not zero, powers the VM off (SBI SRST); the others (and vCPU 0 if a4 is
 * zero) wait in WFI for ever. Any exception goes to M-mode
 * (`trap`), which fails the run through the test finisher with code 0x100 + mcause.
 */
const COUNTER_SOURCE = `
.globl _start
_start:
  csrw satp, a1
  sfence.vma
  li s1, 0x40000000
  addi t0, a0, 1
  slli t0, t0, 12
  add s2, s1, t0
  li t0, 0x40200000
  slli t1, a0, 18
  add t0, t0, t1
  li t2, 0
fill:
  bge t2, a5, filled
  addi t3, a0, 1
  sd t3, 0(t0)
  li t3, 4096
  add t0, t0, t3
  addi t2, t2, 1
  j fill
filled:
  li s3, 0
loop:
  ld t1, 0(s2)
  addi t1, t1, 1
  sd t1, 0(s2)
  ld t1, 8(s2)
  add t1, t1, s3
  sd t1, 8(s2)
  li t2, 1
  amoadd.d zero, t2, (s1)
  addi s3, s3, 1
  blt s3, a2, loop
  li t1, 1
  sd t1, 16(s2)
  bnez a0, park
wait:
  ld t1, 0(s1)
  blt t1, a3, wait
  beqz a4, park
  li a7, 0x53525354
  li a6, 0
  li a0, 0
  li a1, 0
  ecall
park:
  wfi
  j park
.align 4
.globl trap
trap:
  csrr t1, mcause
  addi t1, t1, 0x100
  slli t1, t1, 16
  li t2, 0x3333
  or t1, t1, t2
  li t0, 0x100000
  sw t1, 0(t0)
  j trap
`;

/** Virtual addresses of the counter program's data: the shared page, then vCPU i's private page at +(i+1) pages. */
export const DATA_VA = 0x4000_0000;
export const FILL_VA = 0x4020_0000;
/** Guest-physical places: code at the start of RAM, tables, data pages, fill pages. */
export const CODE_PA = TEXT_BASE;
export const TABLES_PA = TEXT_BASE + 0x1_0000;
export const DATA_PA = TEXT_BASE + 0x10_0000;
export const FILL_PA = TEXT_BASE + 0x20_0000;
/** At most this many fill pages per vCPU (FILL_VA gives each vCPU 64 pages). */
export const MAX_FILL_PAGES = 64;

let program: Program | undefined;

export function counterProgram(): Program {
  program ??= assemble(COUNTER_SOURCE);
  return program;
}

export interface CounterRun {
  tables: GuestPageTables;
  vcpus: number;
  iterations: number;
  fillPages: number;
}

export interface CounterOptions {
  /** vCPUs that run it (default all); the others stay parked. */
  vcpus?: number;
  iterations: number;
  /** Pages each vCPU stores to once before the loop (at most MAX_FILL_PAGES). */
  fillPages?: number;
  /** vCPU 0 powers the VM off at the end (default); false: it waits in WFI, and the results stay readable. */
  poweroff?: boolean;
}

/**
 * Loads the counter program into `vm` and starts its first `vcpus` vCPUs in S-mode at its entry (the others
 * stay parked). The data and fill pages are mapped but not touched by the host.
 */
export function startCounter(vm: VirtualMachine, options: CounterOptions): CounterRun {
  const vcpus = options.vcpus ?? vm.vcpus.length;
  const fillPages = options.fillPages ?? 0;
  if (fillPages > MAX_FILL_PAGES) throw new Error(`at most ${MAX_FILL_PAGES} fill pages`);
  const p = counterProgram();
  const memory = vm.machine.bus.guestMemory();
  memory.write(CODE_PA, p.image);
  const tables = new GuestPageTables(memory, TABLES_PA);
  // The code (and all of RAM) identity-mapped by one 1 GiB leaf; the data through 4 KiB pages.
  tables.map(CODE_PA, CODE_PA, PTE_RW | PTE_X, 2);
  for (let n = 0; n <= vcpus; n++) tables.map(DATA_VA + n * PAGE, DATA_PA + n * PAGE, PTE_RW);
  for (let i = 0; i < vcpus; i++) {
    for (let k = 0; k < fillPages; k++) tables.map(FILL_VA + (i * MAX_FILL_PAGES + k) * PAGE, FILL_PA + (i * MAX_FILL_PAGES + k) * PAGE, PTE_RW);
  }
  const trap = p.symbols.get('trap')!;
  vm.vcpus.forEach((h, i) => {
    h.reset(CODE_PA);
    h.parked = i >= vcpus;
    h.mtvec = trap;
    h.priv = PRIV_S;
    h.updateTranslation();
    h.setReg(10, i);
    h.x64[11] = BigInt.asIntN(64, tables.satp);
    h.setReg(12, options.iterations);
    h.setReg(13, options.iterations * vcpus);
    h.setReg(14, options.poweroff === false ? 0 : 1);
    h.setReg(15, fillPages);
  });
  return { tables, vcpus, iterations: options.iterations, fillPages };
}

/** True when every vCPU running the program has finished it (set its done flag). */
export function counterDone(vm: VirtualMachine, run: CounterRun): boolean {
  return counterResults(vm, run).done.every((d) => d === 1n);
}

/** What the counter program left in memory: per vCPU its counter, its sum and its done flag; the shared counter. */
export function counterResults(vm: VirtualMachine, run: CounterRun): { shared: bigint; counters: bigint[]; sums: bigint[]; done: bigint[] } {
  const memory = vm.machine.bus.guestMemory();
  const page = (i: number): number => DATA_PA + (i + 1) * PAGE;
  const ids = Array.from({ length: run.vcpus }, (_, i) => i);
  return {
    shared: readU64(memory, DATA_PA),
    counters: ids.map((i) => readU64(memory, page(i))),
    sums: ids.map((i) => readU64(memory, page(i) + 8)),
    done: ids.map((i) => readU64(memory, page(i) + 16)),
  };
}

/** The counter program finished with the right results: the shared counter, and each vCPU's counter and sum. */
export function assertCounted(vm: VirtualMachine, run: CounterRun): void {
  const r = counterResults(vm, run);
  const n = BigInt(run.iterations);
  const each = Array.from({ length: run.vcpus }, () => n);
  assert.equal(r.shared, n * BigInt(run.vcpus), 'shared counter');
  assert.deepEqual(r.counters, each, 'private counters');
  assert.deepEqual(r.sums, each.map(() => (n * (n - 1n)) / 2n), 'private sums');
}

/** Guest-physical page numbers (counted from the VM's RAM base) of what the counter program uses. */
export function counterPages(run: CounterRun): { code: number[]; tables: number[]; data: number[]; fill: number[] } {
  const gppn = (pa: number): number => (pa - TEXT_BASE) / PAGE;
  const fill: number[] = [];
  for (let i = 0; i < run.vcpus; i++) for (let k = 0; k < run.fillPages; k++) fill.push(gppn(FILL_PA) + i * MAX_FILL_PAGES + k);
  return {
    code: [gppn(CODE_PA)],
    tables: run.tables.tables.map(gppn),
    data: Array.from({ length: run.vcpus + 1 }, (_, n) => gppn(DATA_PA) + n),
    fill,
  };
}

/**
 * Runs the monitor until every VM of `runs` still running has finished the counter program (at most `max`
 * rounds); each must have counted exactly.
 */
export function finishCounting(monitor: Monitor, runs: ReadonlyMap<VirtualMachine, CounterRun>, max: number): void {
  const vms = [...runs.keys()];
  runRoundsUntil(monitor, () => vms.every((vm) => vm.state !== 'running' || counterDone(vm, runs.get(vm)!)), max);
  for (const vm of vms) if (vm.state === 'running') assertCounted(vm, runs.get(vm)!);
}

/** Runs the monitor (at most `max` rounds) until a cells' recovery that begins after now has ended (cell-recovery.ts). */
export function recoverCells(monitor: Monitor, max: number): void {
  const cellular = monitor.recovery.cellular!;
  const before = cellular.episodes.length;
  runRoundsUntil(monitor, () => cellular.episodes.length > before && !monitor.recovery.paused, max);
}

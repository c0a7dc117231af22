// Tests of the monitor standing between guest and machine: guest-page fault exits as H reports them (the
// walker's own accesses included), a vCPU waiting alone on a page, copy-on-write sharing between VMs (DMA
// included), reservations lost with a mapping, and a VM stopped alone when machine memory runs out.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_LOCAL_MISS_CYCLES, DEFAULT_TLB_LEVEL_CYCLES, latenciesFromDistances } from '../board/topology.js';
import type { VcpuExit } from '../cpu/exits.js';
import { G_STAGE_TLB_ENTRIES } from '../cpu/g-stage-tlb.js';
import {
  CAUSE_LOAD_GUEST_PAGE_FAULT, CAUSE_STORE_GUEST_PAGE_FAULT, IRQ_S_EXT, IRQ_S_SOFT, IRQ_S_TIMER, PRIV_S,
} from '../isa/opcodes.js';
import { ACCESS_READ, ACCESS_WRITE, PERM_NONE, PERM_R, PERM_RWX } from '../memory/bus.js';
import { DmaError } from '../memory/guest-memory.js';
import { FREE, PAGE } from './machine-memory.js';
import { accountVm } from './accounting.js';
import { DEFAULT_COSTS } from './costs.js';
import { Monitor } from './monitor.js';
import { WAIT } from '../cpu/exits.js';
import type { VirtualMachine } from './vm.js';
import { assemble, requireToolchain, TEXT_BASE } from '../../test/helpers/asm.js';
import {
  counterDone, counterPages, counterResults, DATA_PA, DATA_VA, FILL_PA, FILL_VA, MAX_FILL_PAGES, startCounter,
  readU64, writeU64,
  monitorMachine, runRoundsUntil,
} from '../../test/helpers/vm-program.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

const machine = monitorMachine;
const runUntil = runRoundsUntil;

/** Records every exit of `vm`'s vCPUs (and still lets the monitor answer it). */
function recordExits(vm: VirtualMachine): { vcpu: number; exit: VcpuExit }[] {
  const seen: { vcpu: number; exit: VcpuExit }[] = [];
  const handle = vm.handleExit.bind(vm);
  vm.handleExit = (vcpu, exit) => {
    seen.push({ vcpu, exit });
    return handle(vcpu, exit);
  };
  return seen;
}

const gpf = (e: { exit: VcpuExit }): boolean => e.exit.kind === 'guest-page-fault';

test('a first touch is a guest-page fault exit as H reports it; the walker\'s own reads and A/D writes are implicit ones', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({ config: machine(1, 64, 1) });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(vm, { iterations: 50, fillPages: 3, poweroff: false });
  const exits = recordExits(vm);
  runUntil(monitor, () => counterDone(vm, run), 50);
  assert.ok(counterDone(vm, run));
  // The fill pages: the host never touched them, so each first store exits with its guest-physical address.
  const fills = exits.filter((e) => gpf(e) && e.exit.kind === 'guest-page-fault' && e.exit.gpa >= FILL_PA);
  assert.deepEqual(fills.map((e) => e.exit), [0, 1, 2].map((k) => ({
    kind: 'guest-page-fault', cause: CAUSE_STORE_GUEST_PAGE_FAULT, gpa: FILL_PA + k * PAGE, va: FILL_VA + k * PAGE,
    access: ACCESS_WRITE, needs: ACCESS_WRITE, implicit: false,
  })));
  assert.equal(vm.exits.get('guest-page-fault.fill'), exits.filter(gpf).length);

  // The monitor takes the leaf table away: the walk's read of the PTE exits, marked implicit, for a load.
  const h = vm.vcpus[0]!;
  const leafTable = run.tables.pteAddress(DATA_VA, 0) - (run.tables.pteAddress(DATA_VA, 0) % PAGE);
  const tablePage = (leafTable - TEXT_BASE) / PAGE;
  vm.pmap.protect(tablePage, PERM_NONE);
  h.flushTlb();
  exits.length = 0;
  const value = h.load32(DATA_VA);
  assert.equal(value, Number(counterResults(vm, run).shared & 0xffffffffn));
  const walk = exits.filter(gpf).map((e) => e.exit);
  assert.equal(walk.length, 1);
  assert.deepEqual(walk[0], {
    kind: 'guest-page-fault', cause: CAUSE_LOAD_GUEST_PAGE_FAULT, gpa: run.tables.pteAddress(DATA_VA, 0), va: DATA_VA,
    access: ACCESS_READ, needs: ACCESS_READ, implicit: true,
  });
  assert.equal(vm.pmap.permission(tablePage), PERM_RWX, 'the fault gave the table page back');

  // Read-only table, leaf without A: the walker's A/D write is the implicit access that exits (a store's fault).
  const pte = run.tables.pteAddress(DATA_VA + PAGE, 0);
  const memory = vm.machine.bus.guestMemory();
  writeU64(memory, pte, readU64(memory, pte) & ~0xc0n);
  vm.pmap.protect(tablePage, PERM_R);
  h.flushTlb();
  exits.length = 0;
  h.store32(DATA_VA + PAGE + 24, 7);
  assert.deepEqual(exits.filter(gpf).map((e) => e.exit), [{
    kind: 'guest-page-fault', cause: CAUSE_STORE_GUEST_PAGE_FAULT, gpa: pte, va: DATA_VA + PAGE + 24,
    access: ACCESS_WRITE, needs: ACCESS_WRITE, implicit: true,
  }]);
  assert.equal(readU64(memory, pte) & 0xc0n, 0xc0n, 'the walk did not set A and D once the table was writable');
  assert.equal(memory.readU32(DATA_PA + PAGE + 24), 7);
  // Every exit reached the one handler: the SBI calls and the WFI the program ends in are counted there too.
  assert.ok((vm.exits.get('wfi') ?? 0) > 0, JSON.stringify([...vm.exits]));
});

test('a vCPU that touches a held page waits alone, the other runs on, and it resumes at the same instruction', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({ config: machine(1, 64, 2) });
  const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(vm, { iterations: 20000, poweroff: false });
  runUntil(monitor, () => counterResults(vm, run).counters.every((c) => c > 100n), 50);
  // vCPU 1's private page is held (on its way somewhere, as a migration or a DSM fetch would hold it).
  const page = counterPages(run).data[2]!;
  vm.pmap.hold(page);
  runUntil(monitor, () => vm.vcpus[1]!.suspended, 10);
  const [a, b] = [vm.vcpus[0]!, vm.vcpus[1]!];
  assert.ok(b.suspended, 'vCPU 1 did not stop at the held page');
  const exit = b.exited;
  assert.ok(exit?.kind === 'guest-page-fault' && Math.floor((exit.gpa - TEXT_BASE) / PAGE) === page, JSON.stringify(exit));
  const pc = b.pc;
  const instret = b.instret;
  // (vCPU 0's counter is read alone: a read of the held page, as any DMA, is refused while it is held.)
  const counter0 = (): bigint => readU64(vm.machine.bus.guestMemory(), DATA_PA + PAGE);
  assert.throws(() => counterResults(vm, run), /DMA/);
  const before = counter0();
  runUntil(monitor, () => false, 20);
  assert.equal(b.pc, pc, 'the waiting vCPU moved');
  assert.equal(b.instret, instret, 'the waiting vCPU retired instructions');
  assert.ok(counter0() > before, 'vCPU 0 stopped too');
  assert.ok(!a.suspended);
  assert.equal(vm.exits.get('guest-page-fault.wait'), 1);
  vm.pmap.unhold(page);
  vm.wakeWaiters(page);
  runUntil(monitor, () => counterDone(vm, run), 2000);
  assert.ok(counterDone(vm, run));
  const results = counterResults(vm, run);
  assert.equal(results.shared, 40000n);
  assert.deepEqual(results.counters, [20000n, 20000n]);
});

test('pages shared between VMs are copy-on-write: a store or a DMA write gets a private copy first, the memmap counts users', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({ config: machine(1, 64, 1) });
  const a = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const b = monitor.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const memoryA = a.machine.bus.guestMemory();
  const memoryB = b.machine.bus.guestMemory();
  const bytes = new Uint8Array(PAGE).map((_, k) => (k * 7) & 0xff);
  const gppn = (DATA_PA - TEXT_BASE) / PAGE;
  memoryA.write(DATA_PA, bytes);
  memoryB.write(DATA_PA, bytes);
  memoryB.write(DATA_PA + PAGE, bytes);
  const shootDowns: number[] = [];
  const shoot = b.vcpus[0]!.shootDown.bind(b.vcpus[0]!);
  b.vcpus[0]!.shootDown = (address) => { shootDowns.push(address); return shoot(address); };
  const pagesBefore = monitor.memory.pagesInUse();
  b.pmap.shareFrom(gppn, a.pmap, gppn);
  b.pmap.shareFrom(gppn + 1, a.pmap, gppn);
  const shared = a.pmap.lookup(gppn);
  assert.equal(b.pmap.lookup(gppn), shared);
  assert.equal(b.pmap.lookup(gppn + 1), shared);
  assert.equal(monitor.memory.pagesInUse(), pagesBefore - 2, 'the copies did not go back');
  assert.deepEqual(monitor.memory.usersOf(shared), [{ vm: a.id, gppn }, { vm: b.id, gppn }, { vm: b.id, gppn: gppn + 1 }]);
  assert.equal(monitor.memory.pagesShared, 1);
  assert.deepEqual([a.pmap.pagesShared, b.pmap.pagesShared], [1, 2]);
  assert.ok(shootDowns.length >= 2, 'b\'s old pages were not shot down');
  assert.throws(() => b.pmap.shareFrom(gppn + 2, a.pmap, gppn), /only pages with machine pages/);
  memoryB.writeU32(DATA_PA + 2 * PAGE, 1);
  assert.throws(() => b.pmap.shareFrom(gppn + 2, a.pmap, gppn), /differ/);

  // A vCPU's store to the shared page: an exit, a private copy, and the other users see nothing of it.
  const h = b.vcpus[0]!;
  h.priv = PRIV_S;
  h.updateTranslation();
  h.store32(DATA_PA + 8, 0x12345678);
  assert.notEqual(b.pmap.lookup(gppn), shared);
  assert.equal(memoryB.readU32(DATA_PA + 8), 0x12345678);
  assert.deepEqual(memoryA.read(DATA_PA, PAGE), bytes, 'a\'s page changed under b\'s store');
  assert.deepEqual(memoryB.read(DATA_PA + PAGE, PAGE), bytes, 'b\'s other page changed');
  assert.equal(b.exits.get('guest-page-fault.copy-on-write'), 1);
  assert.deepEqual(monitor.memory.usersOf(shared), [{ vm: a.id, gppn }, { vm: b.id, gppn: gppn + 1 }]);

  // A device's DMA into the shared page: the copy is made before a byte lands.
  memoryB.writeU32(DATA_PA + PAGE + 4, 0xdeadbeef);
  assert.notEqual(b.pmap.lookup(gppn + 1), shared);
  assert.deepEqual(memoryA.read(DATA_PA, PAGE), bytes, 'the DMA wrote into a\'s page');
  assert.equal(memoryB.readU32(DATA_PA + PAGE + 4), 0xdeadbeef);
  assert.deepEqual(monitor.memory.usersOf(shared), [{ vm: a.id, gppn }]);

  // The last user's write needs no copy; a VM ending lets go of shared pages without freeing others' pages.
  a.vcpus[0]!.priv = PRIV_S;
  a.vcpus[0]!.updateTranslation();
  memoryB.write(DATA_PA + PAGE, bytes);
  b.pmap.shareFrom(gppn + 1, a.pmap, gppn);
  b.pmap.unmap(gppn + 1);
  a.vcpus[0]!.store32(DATA_PA, 1);
  assert.equal(a.pmap.lookup(gppn), shared, 'the last user was copied');
  memoryB.write(DATA_PA + PAGE, memoryA.read(DATA_PA, PAGE));
  b.pmap.shareFrom(gppn + 1, a.pmap, gppn);
  monitor.stopVm(b);
  assert.deepEqual(monitor.memory.usersOf(shared), [{ vm: a.id, gppn }]);
  assert.equal(a.pmap.lookup(gppn), shared);
  // Letting go of a page nobody maps is a bug the memmap refuses.
  assert.throws(() => monitor.memory.removeUser(shared, b.id, gppn), /not mapped/);
});

test('an LR reservation is lost when the monitor changes its page\'s mapping', (t) => {
  if (!requireToolchain(t)) return;
  const program = assemble(`
.globl _start
_start:
  lr.d t1, (a0)
  sc.d t2, a1, (a0)
  lr.d t1, (a0)
  sc.d t3, a1, (a0)
  j .
`);
  const monitor = new Monitor({ config: machine(1, 16, 1) });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  vm.machine.bus.guestMemory().write(TEXT_BASE, program.image);
  vm.machine.bus.guestMemory().writeU32(DATA_PA, 1);
  const h = vm.vcpus[0]!;
  h.reset(TEXT_BASE);
  h.priv = PRIV_S;
  h.updateTranslation();
  h.setReg(10, DATA_PA);
  h.setReg(11, 5);
  const page = (DATA_PA - TEXT_BASE) / PAGE;
  // LR, then the monitor takes the page away (same machine page, new permission), then SC: it must fail
  // (t2 = 1) and write nothing.
  assert.equal(h.run(1), 1);
  vm.pmap.protect(page, PERM_NONE);
  assert.equal(h.run(1), 1);
  assert.equal(h.reg(7), 1, 'SC succeeded on a page whose mapping changed after the LR');
  assert.equal(vm.machine.bus.guestMemory().readU32(DATA_PA), 1);
  // Without a change in between, the same pair succeeds.
  assert.equal(h.run(2), 2);
  assert.equal(h.reg(28), 0);
  assert.equal(vm.machine.bus.guestMemory().readU32(DATA_PA), 5);
});

test('machine memory running out stops only the VM that asked, after large-page reservations gave way', (t) => {
  if (!requireToolchain(t)) return;
  // S-mode with no paging: stores to every page of the VM's RAM after its code, for ever.
  const hog = assemble(`
.globl _start
_start:
  li t0, 0x80001000
  li t1, 4096
loop:
  sd t0, 0(t0)
  add t0, t0, t1
  blt t0, a0, loop
  wfi
  j loop
`);
  const monitor = new Monitor({ config: machine(2, 16, 1) });
  const greedy = monitor.createVm({ name: 'greedy', vcpus: 1, memoryBytes: 32 * MiB, console: quiet });
  const calm = monitor.createVm({ name: 'calm', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(calm, { iterations: 30000, fillPages: MAX_FILL_PAGES, poweroff: false });
  greedy.machine.bus.guestMemory().write(TEXT_BASE, hog.image);
  const h = greedy.vcpus[0]!;
  h.reset(TEXT_BASE);
  h.priv = PRIV_S;
  h.updateTranslation();
  h.setReg(10, TEXT_BASE + 32 * MiB);
  runUntil(monitor, () => greedy.state !== 'running', 4000);
  assert.equal(greedy.state, 'stopped');
  assert.match(greedy.reason, /^machine memory exhausted \(\d+ MiB in use\)$/);
  const inUse = Number(/\((\d+) MiB/.exec(greedy.reason)![1]);
  assert.ok(inUse >= 28 && inUse <= 32, `greedy had ${inUse} MiB`);
  // The calm VM's untouched large-page reservations went back before anyone was refused.
  assert.equal(calm.pmap.pagesReserved, 0);
  assert.equal(greedy.pmap.pagesInUse, 0);
  runUntil(monitor, () => counterDone(calm, run), 4000);
  assert.equal(calm.state, 'running');
  const results = counterResults(calm, run);
  assert.equal(results.shared, 30000n);
  assert.deepEqual(results.sums, [(30000n * 29999n) / 2n]);
  for (let k = 0; k < MAX_FILL_PAGES; k++) assert.notEqual(calm.pmap.lookup((FILL_PA - TEXT_BASE) / PAGE + k), FREE);
});

test('a shared page that moves is shot down in every VM that maps it, and each follows it', () => {
  const monitor = new Monitor({ config: machine(2, 16, 1) });
  const vms = ['a', 'b', 'c'].map((name) => monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: quiet }));
  const gppn = (DATA_PA - TEXT_BASE) / PAGE;
  const bytes = new Uint8Array(PAGE).fill(0x5a);
  for (const vm of vms) vm.machine.bus.guestMemory().write(DATA_PA, bytes);
  const shot = vms.map(() => [] as number[]);
  vms.forEach((vm, i) => {
    const h = vm.vcpus[0]!;
    const shoot = h.shootDown.bind(h);
    h.shootDown = (address) => { shot[i]!.push(address); return shoot(address); };
  });
  // a and b share the page; c keeps its own.
  vms[1]!.pmap.shareFrom(gppn, vms[0]!.pmap, gppn);
  const old = vms[0]!.pmap.lookup(gppn);
  for (const s of shot) s.length = 0;
  const node = monitor.memory.nodeOf(old) === 0 ? 1 : 0;
  const moved = vms[1]!.pmap.migrate(gppn, node);
  assert.equal(monitor.memory.nodeOf(moved), node);
  assert.equal(vms[0]!.pmap.lookup(gppn), moved);
  assert.equal(vms[1]!.pmap.lookup(gppn), moved);
  assert.deepEqual(shot, [[monitor.memory.addressOf(old)], [monitor.memory.addressOf(old)], []]);
  assert.deepEqual(monitor.memory.usersOf(moved), [{ vm: vms[0]!.id, gppn }, { vm: vms[1]!.id, gppn }]);
  assert.equal(monitor.memory.users[old], 0, 'the old page was not freed');
  for (const vm of vms) assert.deepEqual(vm.machine.bus.guestMemory().read(DATA_PA, PAGE), bytes);
  // Still copy-on-write after the move.
  vms[0]!.machine.bus.guestMemory().writeU32(DATA_PA, 1);
  assert.notEqual(vms[0]!.pmap.lookup(gppn), moved);
  assert.equal(vms[1]!.machine.bus.guestMemory().readU32(DATA_PA), 0x5a5a5a5a);
});

/**
 * S-mode, no paging: a byte to the UART, a timer 100 ticks ahead through SBI, WFI until its interrupt, whose
 * handler powers the VM off through SBI.
 */
const TIMER_PROGRAM = `
.globl _start
_start:
  la t0, handler
  csrw stvec, t0
  li t0, 0x10000000
  li t1, 65
  sb t1, 0(t0)
  rdtime a0
  addi a0, a0, 100
  li a7, 0x54494D45
  li a6, 0
  ecall
  li t0, 0x20
  csrs sie, t0
  csrsi sstatus, 2
wait:
  wfi
  j wait
.align 2
handler:
  li a7, 0x53525354
  li a6, 0
  li a0, 0
  li a1, 0
  ecall
`;

/** Loads TIMER_PROGRAM into `vm` and starts its vCPU 0 as the boot loader leaves a Linux vCPU. */
function startTimerProgram(vm: VirtualMachine): void {
  vm.machine.bus.guestMemory().write(TEXT_BASE, assemble(TIMER_PROGRAM).image);
  const h = vm.vcpus[0]!;
  h.reset(TEXT_BASE);
  h.priv = PRIV_S;
  // The time CSR readable, supervisor interrupts delegated.
  h.mcounteren = 7;
  h.mideleg = (1 << IRQ_S_SOFT) | (1 << IRQ_S_TIMER) | (1 << IRQ_S_EXT);
  h.updateTranslation();
}

test('a device access, a timer programmed, WFI and the timer interrupt are exits, each counted and charged from the cost table', (t) => {
  if (!requireToolchain(t)) return;
  // Distinct costs, so that an exit charged under the wrong heading shows.
  const costs = {
    secondLevelHit: 3, walk: 7, monitorCall: 11, pageFill: 13, pageCopy: 19, protectionFault: 23, worldSwitch: 17,
    timer: 29, ipi: 31, remoteFence: 37, mmio: 41, wfi: 43, interrupt: 47,
  };
  const output: number[] = [];
  const monitor = new Monitor({ config: machine(1, 16, 1), costs });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: (bytes) => output.push(...bytes) });
  startTimerProgram(vm);
  const h = vm.vcpus[0]!;
  runUntil(monitor, () => vm.state !== 'running', 100);
  assert.equal(vm.reason, 'powered off (code 0)');
  assert.deepEqual(output, [65]);
  const exits = Object.fromEntries(vm.exits);
  // (the program's page was filled when the host loaded it: a DMA fill, charged to no vCPU)
  assert.deepEqual(Object.keys(exits).sort(), ['guest-page-fault.dma.fill', 'interrupt.timer', 'mmio.ns16550a', 'sbi.srst', 'sbi.time', 'wfi']);
  assert.deepEqual([exits['interrupt.timer'], exits['mmio.ns16550a'], exits['sbi.srst'], exits['sbi.time']], [1, 1, 1, 1]);
  const switches = monitor.vcpuRecord(vm, 0).worldSwitches;
  const monitorCycles = h.monitorCycles.reduce((a, b) => a + b, 0);
  assert.equal(monitorCycles, costs.mmio + costs.timer + costs.monitorCall + exits.wfi! * costs.wfi + costs.interrupt + switches * costs.worldSwitch);
});

test('mmu: nested takes no exit on a TLB miss but pays the two-stage walk; software refills through the monitor', (t) => {
  if (!requireToolchain(t)) return;
  const run = (mmu: 'software' | 'nested', gStageTlbEntries?: number): { vm: VirtualMachine; monitor: Monitor; results: ReturnType<typeof counterResults> } => {
    // Two vCPUs on one CPU: world switches empty the first level, which the second refills in software mode.
    const monitor = new Monitor({ config: machine(1, 64, 1), mmu, gStageTlbEntries, quantumRounds: 1, timing: { latencies: latenciesFromDistances([[10]]) } });
    monitor.setExecutionMode('timing');
    const vm = monitor.createVm({ name: mmu, vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
    const counter = startCounter(vm, { iterations: 2000, fillPages: 8, poweroff: false });
    runUntil(monitor, () => counterDone(vm, counter), 400);
    return { vm, monitor, results: counterResults(vm, counter) };
  };
  const software = run('software');
  const nested = run('nested', 0);
  assert.deepEqual(nested.results, software.results, 'the mode changed what the program computed');
  const [s, n] = [software.vm.vcpus[0]!, nested.vm.vcpus[0]!];
  assert.ok(s.tlbMisses > 0 && n.tlbMisses > 0);
  assert.ok(s.secondLevelHits > 0, 'software mode never refilled from the second-level TLB');
  assert.equal(n.secondLevelHits, 0, 'nested mode has no second-level TLB');
  // A miss is an exit of software mode's only.
  assert.equal(accountVm(nested.monitor, nested.vm).exits['tlb-refill'], undefined);
  assert.ok((accountVm(software.monitor, software.vm).exits['tlb-refill'] ?? 0) > 0);
  // Nested: what the monitor charged is only its exits (fills, the world switch), no refills: the cost table's
  // cycles, and its references through the cache. A fill zeroes a page never touched (32 line misses at
  // least); nothing the monitor does per exit reads more than 32 + 16 lines, each at most a local miss.
  const monitorCycles = (h: typeof s): number => h.monitorCycles.reduce((a, b) => a + b, 0);
  const fills = nested.vm.exits.get('guest-page-fault.fill') ?? 0;
  const switches = [0, 1].map((i) => nested.monitor.vcpuRecord(nested.vm, i).worldSwitches).reduce((a, b) => a + b, 0);
  const wfis = nested.vm.exits.get('wfi') ?? 0;
  const exitCount = [...nested.vm.exits.values()].reduce((a, b) => a + b, 0);
  const all = nested.vm.vcpus.reduce((sum, h) => sum + monitorCycles(h), 0);
  const table = fills * DEFAULT_COSTS.pageFill + switches * DEFAULT_COSTS.worldSwitch + wfis * DEFAULT_COSTS.wfi;
  assert.ok(all >= table + fills * 32 * DEFAULT_LOCAL_MISS_CYCLES, `nested: the monitor charged ${all} cycles, its table ${table}`);
  assert.ok(all <= table + (exitCount + switches) * 48 * DEFAULT_LOCAL_MISS_CYCLES, `nested: the monitor charged ${all} cycles, its table ${table}`);
  assert.ok(monitorCycles(s) > monitorCycles(n) + s.secondLevelHits * DEFAULT_COSTS.secondLevelHit - 1);
  // Every nested refill is a two-dimensional walk: each of the guest's levels (2 or 3) and the leaf's address
  // go through a G-stage walk (3 levels, 2 over a large page): 8 to 15 walker steps, where the bare walk takes
  // at most 3. Software mode's refills are the monitor's work, not the walker's.
  const model = nested.monitor.timingModel!;
  const steps = model.tlbCycles[0]! / model.tlbRefills[0]! / DEFAULT_TLB_LEVEL_CYCLES;
  assert.ok(steps >= 8 && steps <= 15, `a nested refill took ${steps} steps`);
  assert.equal(software.monitor.timingModel!.tlbCycles[0], 0);
  assert.ok(software.monitor.timingModel!.tlbRefills[0]! > 0);

  // With the walker's G-stage TLB, the G-stage walks of the guest's page-table pages mostly hit it: the guest's
  // levels and the leaf's G-stage walk remain, 2 + 2 steps at least; the program's results stay the same.
  const cached = run('nested');
  assert.deepEqual(cached.results, software.results, 'the G-stage TLB changed what the program computed');
  const g = cached.vm.vcpus.map((h) => h.gStageTlb!);
  assert.ok(g.every((x) => x.entries === G_STAGE_TLB_ENTRIES));
  const [hits, misses] = [g.reduce((s, x) => s + x.hits, 0), g.reduce((s, x) => s + x.misses, 0)];
  assert.ok(hits > misses, `G-stage TLB: ${hits} hits, ${misses} misses`);
  const cachedModel = cached.monitor.timingModel!;
  const cachedSteps = cachedModel.tlbCycles[0]! / cachedModel.tlbRefills[0]! / DEFAULT_TLB_LEVEL_CYCLES;
  assert.ok(cachedSteps >= 4 && cachedSteps < steps - 2, `with the G-stage TLB a nested refill took ${cachedSteps} steps, without ${steps}`);
});

test('an interrupt exit only reports: a monitor that answers it WAIT neither stops the vCPU nor crashes the VM', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({ config: machine(1, 16, 1) });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  startTimerProgram(vm);
  const handle = vm.handleExit.bind(vm);
  let interrupts = 0;
  vm.handleExit = (vcpu, exit) => {
    if (exit.kind !== 'interrupt') return handle(vcpu, exit);
    interrupts++;
    return WAIT;
  };
  runUntil(monitor, () => vm.state !== 'running', 100);
  assert.equal(vm.reason, 'powered off (code 0)');
  assert.equal(interrupts, 1);
});

test('a DMA write the monitor refuses on one page lands on none: every page is allowed before a byte is written', () => {
  const monitor = new Monitor({ config: machine(1, 16, 1) });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const memory = vm.machine.bus.guestMemory();
  memory.write(DATA_PA, new Uint8Array(2 * PAGE).fill(1));
  vm.pmap.hold((DATA_PA + PAGE - TEXT_BASE) / PAGE);
  assert.throws(() => memory.write(DATA_PA + PAGE - 8, new Uint8Array(16).fill(9)), DmaError);
  vm.pmap.unhold((DATA_PA + PAGE - TEXT_BASE) / PAGE);
  assert.deepEqual(memory.read(DATA_PA + PAGE - 8, 16), new Uint8Array(16).fill(1), 'part of a refused write landed');
});

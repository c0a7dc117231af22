// Tests of the monitor without Linux: bare S-mode programs in VMs (test/helpers/vm-program.ts). Memory is
// reserved and given back, names are unique among running VMs, CPUs switch between vCPUs (and the second-level
// TLB refills them), a VM whose run throws ends alone, the accounts add up, and pages move under running code.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { SLICE } from '../board/machine.js';
import { latenciesFromDistances } from '../board/topology.js';
import type { Hart } from '../cpu/hart.js';
import { TLB_INVALID } from '../cpu/tlb.js';
import { accountVcpu, accountVm } from './accounting.js';
import { FREE, MONITOR, PAGE } from './machine-memory.js';
import { Monitor, MonitorError } from './monitor.js';
import type { VirtualMachine } from './vm.js';
import { assemble, requireToolchain, TEXT_BASE } from '../../test/helpers/asm.js';
import { PRIV_S } from '../isa/opcodes.js';
import { INSTRUCTIONS_PER_TICK } from '../timing/clock.js';
import {
  counterDone, counterPages, counterResults, monitorMachine, runRoundsUntil, startCounter, type CounterRun,
} from '../../test/helpers/vm-program.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

const machine = monitorMachine;
const runUntil = runRoundsUntil;

/** The counter program's results are exact: every iteration of every vCPU counted once. */
function assertCounted(vm: VirtualMachine, run: CounterRun): void {
  const r = counterResults(vm, run);
  const n = BigInt(run.iterations);
  assert.equal(r.shared, n * BigInt(run.vcpus), `${vm.name}: shared counter`);
  assert.deepEqual(r.counters, r.counters.map(() => n), `${vm.name}: private counters`);
  assert.deepEqual(r.sums, r.sums.map(() => (n * (n - 1n)) / 2n), `${vm.name}: private sums`);
  assert.deepEqual(r.done, r.done.map(() => 1n), `${vm.name}: done flags`);
}

/** The memmap holds exactly the pages the running VMs' pmaps map, and ended VMs hold none. */
function assertMemmap(monitor: Monitor): void {
  const memory = monitor.memory;
  let mapped = 0;
  for (const vm of monitor.vms) {
    let count = 0;
    for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
      const mpn = vm.pmap.lookup(gppn);
      if (mpn === FREE) continue;
      count++;
      assert.equal(memory.owner[mpn], vm.id, `${vm.name} page ${gppn}: memmap owner`);
      assert.equal(memory.guestPage[mpn], gppn, `${vm.name} page ${gppn}: memmap guest page`);
    }
    assert.equal(vm.pmap.pagesInUse, count);
    if (vm.state !== 'running') assert.equal(count, 0, `${vm.name} ended (${vm.state}) but holds pages`);
    mapped += count;
  }
  assert.equal(memory.pagesInUse(), mapped, 'machine pages in use that no pmap maps');
  assert.equal(memory.owner.filter((o) => o !== FREE && o !== MONITOR).length, mapped);
  // The monitor's own pages: the memmap, and the tables of the VMs still running (an ended VM's go back).
  const tables = monitor.vms.filter((vm) => vm.state === 'running').reduce((n, vm) => n + vm.tables.pages, 0);
  assert.equal(memory.monitorPages(), monitor.memmap.pages + tables, 'monitor pages that no table holds');
  assert.equal(memory.owner.filter((o) => o === MONITOR).length, memory.monitorPages());
}

test('VMs may add up to more than the machine (overcommit) but one larger than it is refused; stopping a VM gives back its pages', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({ config: machine(2, 32, 1) });
  assert.equal(monitor.memoryFree, 64 * MiB - monitor.memmap.pages * 4096);
  const a = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 32 * MiB, console: quiet });
  const b = monitor.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  assert.equal(monitor.memoryFree, 64 * MiB - monitor.memory.monitorPages() * 4096, 'creating a VM took guest memory it has not touched');
  // Its own tables only: the G-stage root (4 pages), a middle table, a leaf table per 2 MiB, a state page and an 8-page second-level TLB per vCPU.
  assert.deepEqual([a.tables.pages, b.tables.pages], [4 + 1 + 16 + 1 + 8, 4 + 1 + 8 + 1 + 8]);
  assert.throws(() => monitor.createVm({ name: 'c', vcpus: 1, memoryBytes: 128 * MiB, console: quiet }),
    (e: unknown) => e instanceof MonitorError && e.message === 'VM c: 128 MiB is more than the machine\'s 64 MiB');
  for (const bad of [0, -4096, 1000, 16 * MiB + 1]) {
    assert.throws(() => monitor.createVm({ name: 'd', vcpus: 1, memoryBytes: bad, console: quiet }), (e: unknown) => e instanceof MonitorError && /4 KiB pages/.test(e.message));
  }
  assert.equal(monitor.vms.length, 2, 'a refused VM was added');

  const runA = startCounter(a, { iterations: 1e9, fillPages: 20 });
  startCounter(b, { iterations: 3000, fillPages: 5 });
  runUntil(monitor, () => counterResults(a, runA).shared > 100n, 50);
  assert.ok(a.pmap.pagesInUse >= 20 && b.pmap.pagesInUse > 5, `the programs filled ${a.pmap.pagesInUse} and ${b.pmap.pagesInUse} pages`);
  assertMemmap(monitor);
  const aPages = a.pmap.pagesInUse;
  const inUse = monitor.memory.pagesInUse();

  monitor.stopVm(a);
  assert.equal(a.state, 'stopped');
  assert.equal(a.reason, 'stopped by the monitor');
  assert.equal(a.pmap.pagesInUse, 0);
  assert.equal(monitor.memory.pagesInUse(), inUse - aPages);
  assert.ok(!monitor.memory.owner.includes(a.id), 'the memmap still names the stopped VM');
  const free = (): number => 64 * MiB - (monitor.memory.pagesInUse() + monitor.memory.pagesReserved() + monitor.memory.monitorPages()) * 4096;
  assert.equal(monitor.memoryFree, free());
  assertMemmap(monitor);
  // b goes on to finish, untouched, beside a new VM.
  const c = monitor.createVm({ name: 'c', vcpus: 1, memoryBytes: 32 * MiB, console: quiet });
  runUntil(monitor, () => b.state !== 'running', 200);
  assert.equal(b.state, 'off');
  assert.equal(b.reason, 'powered off (code 0)');
  assert.equal(c.state, 'running');
  assertMemmap(monitor);
  assert.equal(b.pmap.pagesInUse, 0, 'a VM that powered off still holds pages');
  assert.equal(monitor.memoryFree, free());
});

test('a running VM\'s name cannot be taken; an ended VM\'s can', () => {
  const monitor = new Monitor({ config: machine(1, 64, 1) });
  const first = monitor.createVm({ name: 'web', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  assert.throws(() => monitor.createVm({ name: 'web', vcpus: 1, memoryBytes: 16 * MiB, console: quiet }),
    (e: unknown) => e instanceof MonitorError && e.message === 'a VM named \'web\' is already running');
  assert.equal(monitor.vms.length, 1, 'the refused VM was added');
  monitor.stopVm(first);
  const second = monitor.createVm({ name: 'web', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  assert.notEqual(second.id, first.id);
  assert.equal(monitor.vm('web'), second);
  assert.equal(monitor.vm('nobody'), undefined);
});

test('a VM\'s home node is the node with the most memory not promised to other VMs, also after VMs end', () => {
  // Four nodes of 64 MiB.
  const monitor = new Monitor({ config: machine(4, 64, 1) });
  const create = (name: string, mib: number): VirtualMachine => monitor.createVm({ name, vcpus: 1, memoryBytes: mib * MiB, console: quiet });
  const home = (vm: VirtualMachine): number => vm.pmap.homeNode;
  assert.equal(home(create('a', 64)), 0);
  assert.equal(home(create('b', 64)), 1);
  assert.equal(home(create('c', 40)), 2); // node 2: 24 MiB left
  const d1 = create('d1', 16);
  assert.equal(home(d1), 3); // node 3: 48 left
  assert.equal(home(create('d2', 32)), 3); // 16 left
  const e = create('e', 40); // 24 of it on node 2, the rest spills elsewhere
  assert.equal(home(e), 2);
  monitor.stopVm(d1); // node 3: 32 MiB not promised
  monitor.stopVm(e); // node 2: 24 MiB not promised (c keeps 40)
  assert.equal(home(create('g', 16)), 3);
});

/** Both levels of `h`'s TLB are empty of entries mapping anything but the pmap's current pages. */
function assertNoStaleEntries(h: Hart, machineAddress: number, what: string): void {
  const check = (tag: Float64Array, delta: Float64Array, mem: readonly ({ base: number } | undefined)[]): void => {
    for (let i = 0; i < tag.length; i++) {
      const region = mem[i];
      if (tag[i] === TLB_INVALID || region === undefined) continue;
      assert.notEqual(tag[i]! * PAGE + delta[i]! + region.base, machineAddress, `${what}: vCPU ${h.id} still maps machine page 0x${machineAddress.toString(16)}`);
    }
  };
  for (const set of h.tlbSets) for (const t of [set.read, set.write, set.exec]) check(t.tag, t.delta, t.mem);
  for (const level of h.secondLevel!.levels) for (const t of level) check(t.tag, t.delta, t.mem);
}

test('more runnable vCPUs than CPUs: world switches are counted and charged, and the second-level TLB refills after each', (t) => {
  if (!requireToolchain(t)) return;
  const busy = (cpus: number): { monitor: Monitor; vms: VirtualMachine[] } => {
    const monitor = new Monitor({ config: machine(1, 64, cpus), quantumRounds: 1 });
    const vms = ['x', 'y'].map((name) => monitor.createVm({ name, vcpus: 2, memoryBytes: 16 * MiB, console: quiet }));
    for (const vm of vms) startCounter(vm, { iterations: 1e9 });
    return { monitor, vms };
  };
  // Four CPUs for four vCPUs: each CPU keeps its vCPU, so each vCPU switches in once.
  const calm = busy(4);
  runUntil(calm.monitor, () => false, 40);
  assert.equal(calm.monitor.worldSwitches, 4);

  // Two CPUs for four vCPUs.
  const { monitor, vms } = busy(2);
  runUntil(monitor, () => false, 40);
  assert.ok(monitor.worldSwitches >= 40, `only ${monitor.worldSwitches} world switches in 40 rounds of 4 vCPUs on 2 CPUs`);
  let sum = 0;
  for (const vm of vms) {
    for (const [i, h] of vm.vcpus.entries()) {
      const record = monitor.vcpuRecord(vm, i);
      sum += record.worldSwitches;
      assert.ok(record.worldSwitches >= 5 && h.instret > 0, `${vm.name} vCPU ${i}: ${record.worldSwitches} switches`);
      assert.ok(record.readyCycles > 0, `${vm.name} vCPU ${i} never waited for a CPU`);
      // Each switch emptied the first level; the second refilled it, so walks do not grow with switches.
      const walks = h.tlbMisses - h.secondLevelHits;
      assert.ok(h.secondLevelHits >= record.worldSwitches - 1, `${vm.name} vCPU ${i}: ${h.secondLevelHits} second-level hits for ${record.worldSwitches} switches`);
      assert.ok(walks <= 8, `${vm.name} vCPU ${i} walked its page table ${walks} times`);
      assert.ok(h.monitorCycles.reduce((a, b) => a + b, 0) >= record.worldSwitches * monitor.costs.worldSwitch, 'world switches were not charged');
    }
  }
  assert.equal(sum, monitor.worldSwitches);
});

test('a VM whose run throws ends as crashed, gives its memory back, and the other VM runs on to the end', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({ config: machine(2, 32, 1) });
  const bad = monitor.createVm({ name: 'bad', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const good = monitor.createVm({ name: 'good', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const badRun = startCounter(bad, { iterations: 1e9, fillPages: 8 });
  const goodRun = startCounter(good, { iterations: 4000, fillPages: 4, poweroff: false });
  // The monitor fails to fill bad's fifth fill page (as a monitor bug would).
  const poisoned = counterPages(badRun).fill[4]!;
  const resolve = bad.pmap.resolveFault.bind(bad.pmap);
  bad.pmap.resolveFault = (index, needs) => {
    if (index === poisoned) throw new Error('injected fill failure');
    return resolve(index, needs);
  };
  runUntil(monitor, () => bad.state !== 'running', 20);
  assert.equal(bad.state, 'crashed');
  assert.equal(bad.reason, 'monitor error: injected fill failure');
  assert.equal(bad.pmap.lookup(poisoned), FREE);
  assert.equal(good.state, 'running');
  assert.equal(bad.pmap.pagesInUse, 0);
  assert.equal(monitor.memory.pagesReserved() + monitor.memory.pagesInUse(), good.pmap.pagesInUse + good.pmap.pagesReserved, 'the crashed VM\'s pages were not all given back');
  assertMemmap(monitor);
  const instret = bad.vcpus[0]!.instret;
  runUntil(monitor, () => counterDone(good, goodRun), 300);
  assertCounted(good, goodRun);
  assert.equal(good.state, 'running');
  assert.equal(bad.vcpus[0]!.instret, instret, 'the crashed VM ran again');
  assertMemmap(monitor);
});

test('the accounts add up: totals are the sums over vCPUs, and each vCPU\'s monitor cycles are its refills, fills, calls and switches', (t) => {
  if (!requireToolchain(t)) return;
  // Distinct prime costs, so that a charge counted under the wrong heading shows.
  const costs = {
    secondLevelHit: 3, walk: 7, monitorCall: 11, pageFill: 13, pageCopy: 19, protectionFault: 23, worldSwitch: 17,
    timer: 29, ipi: 31, remoteFence: 37, mmio: 41, wfi: 43, interrupt: 47,
  };
  const monitor = new Monitor({ config: machine(1, 64, 1), costs, quantumRounds: 1 });
  const small = monitor.createVm({ name: 'small', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const big = monitor.createVm({ name: 'big', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  startCounter(small, { iterations: 3000, fillPages: 6 });
  startCounter(big, { iterations: 1e9, fillPages: 3 });
  // Pages the host filled while loading (not charged to any vCPU).
  const hostPages = new Map([small, big].map((vm) => [vm, vm.pmap.pagesInUse]));
  const mostPages = new Map(hostPages);
  let smallAccount: ReturnType<typeof accountVm> | undefined;
  runUntil(monitor, () => {
    for (const vm of [small, big]) mostPages.set(vm, Math.max(mostPages.get(vm)!, vm.pmap.pagesInUse));
    if (small.state === 'running') smallAccount = accountVm(monitor, small);
    return small.state !== 'running';
  }, 400);
  assert.equal(small.state, 'off');
  assert.equal(small.reason, 'powered off (code 0)');
  runUntil(monitor, () => false, 10);

  let instructions = 0;
  let switches = 0;
  for (const vm of [small, big]) {
    const account = accountVm(monitor, vm);
    assert.equal(account.perVcpu.length, vm.vcpus.length);
    const summed = Object.keys(account.perVcpu[0]!).filter((k) => k !== 'index' && k !== 'lastCpu' && k !== 'monitorByKind') as Exclude<keyof typeof account.total, 'monitorByKind'>[];
    assert.deepEqual(Object.keys(account.total).sort(), [...summed, 'monitorByKind'].sort(), 'the totals are not over the per-vCPU figures');
    for (const key of summed) {
      assert.equal(account.total[key], account.perVcpu.reduce((s, v) => s + v[key], 0), `${vm.name}: total ${key}`);
    }
    // The monitor's cycles by kind: each vCPU's add up to its monitor cycles, and the VM's are the vCPUs' summed.
    const kindSum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
    for (const v of account.perVcpu) assert.equal(kindSum(v.monitorByKind), v.monitorCycles, `${vm.name} vCPU ${v.index}: kinds add up`);
    const byKind = new Map<string, number>();
    for (const v of account.perVcpu) for (const [k, n] of Object.entries(v.monitorByKind)) byKind.set(k, (byKind.get(k) ?? 0) + n);
    assert.deepEqual(account.total.monitorByKind, Object.fromEntries(byKind), `${vm.name}: kinds summed over vCPUs`);
    let monitorCycles = 0;
    for (const [i, v] of account.perVcpu.entries()) {
      const h = vm.vcpus[i]!;
      assert.deepEqual(v, accountVcpu(monitor, vm, i));
      assert.equal(v.instructions, h.instret);
      assert.equal(v.guestUserCycles + v.guestKernelCycles + v.monitorCycles, h.simulatedCycles, `${vm.name} vCPU ${i}: busy cycles split`);
      assert.ok(v.guestKernelCycles > 0, 'the program runs in S-mode');
      assert.equal(v.guestUserCycles, 0, 'nothing runs in U-mode');
      monitorCycles += v.monitorCycles;
      instructions += v.instructions;
      switches += v.worldSwitches;
      assert.ok(v.worldSwitches > 1 && v.readyCycles > 0, `${vm.name} vCPU ${i} shared its CPU`);
    }
    const fills = mostPages.get(vm)! - hostPages.get(vm)!;
    const exits = (prefix: string): number => [...vm.exits].filter(([k]) => k.startsWith(prefix)).reduce((a, [, n]) => a + n, 0);
    assert.equal(exits('guest-page-fault.fill'), fills, `${vm.name}: fill exits`);
    assert.equal(exits('sbi.'), [...vm.monitorCalls.values()].reduce((a, b) => a + b, 0));
    const t = account.total;
    // The counter program makes no timer, IPI or fence calls and touches no device: those would show here.
    assert.equal(exits('sbi.') - exits('sbi.srst'), 0);
    assert.equal(monitorCycles,
      t.worldSwitches * costs.worldSwitch + t.secondLevelHits * costs.secondLevelHit + (t.tlbMisses - t.secondLevelHits) * costs.walk +
      fills * costs.pageFill + exits('sbi.') * costs.monitorCall + exits('wfi') * costs.wfi + exits('interrupt.') * costs.interrupt +
      exits('mmio.') * costs.mmio, `${vm.name}: monitor cycles`);
    // Each kind holds its own charges (prime costs: one charged under the wrong kind would not divide).
    const kinds = t.monitorByKind;
    assert.equal(kinds['world-switch'], t.worldSwitches * costs.worldSwitch, `${vm.name}: world-switch cycles`);
    assert.equal(kinds['tlb-refill.l2'] ?? 0, t.secondLevelHits * costs.secondLevelHit, `${vm.name}: l2 refill cycles`);
    assert.equal(kinds['tlb-refill.walk'] ?? 0, (t.tlbMisses - t.secondLevelHits) * costs.walk, `${vm.name}: walk cycles`);
    assert.equal(kinds['guest-page-fault.fill'], fills * costs.pageFill, `${vm.name}: fill cycles`);
    assert.equal(kinds['sbi.other'] ?? 0, exits('sbi.') * costs.monitorCall, `${vm.name}: SBI cycles`);
    assert.equal(kinds.wfi ?? 0, exits('wfi') * costs.wfi, `${vm.name}: WFI cycles`);
    assert.equal(kinds.interrupt ?? 0, exits('interrupt.') * costs.interrupt, `${vm.name}: interrupt cycles`);

    assert.deepEqual(account.monitorCalls, vm === small ? { srst: 1 } : {});
    assert.equal(account.state, vm.state);
    assert.equal(account.pagesInUse, vm.pmap.pagesInUse);
    assert.equal(account.bytesInUse, vm.pmap.pagesInUse * PAGE);
  }
  assert.equal(instructions, monitor.instructions, 'instructions the monitor ran vs the vCPUs\' instret');
  assert.equal(switches, monitor.worldSwitches);
  assert.ok(smallAccount !== undefined && smallAccount.pagesInUse === mostPages.get(small), 'the account\'s pages in use are not the pmap\'s');
  assert.equal(big.machine.cycles, monitor.cycles, 'a running VM\'s time is the machine\'s');
  for (const h of big.vcpus) assert.ok(Math.abs(h.localCycles - monitor.cycles) <= 2 * SLICE, `vCPU ${h.id} is ${h.localCycles - monitor.cycles} cycles off the machine's time`);
});

test('property: pages of running programs (code, page tables, data) migrate between nodes without losing a write or leaving a TLB entry', (t) => {
  if (!requireToolchain(t)) return;
  const move = fc.record({ rounds: fc.integer({ min: 0, max: 3 }), vm: fc.nat(1), kind: fc.constantFrom('code', 'tables', 'data', 'fill'), which: fc.nat(20), node: fc.nat(2) });
  fc.assert(
    fc.property(fc.array(move, { minLength: 1, maxLength: 25 }), (moves) => {
      const monitor = new Monitor({ config: { ...machine(3, 16, 1), distances: [[10, 20, 30], [20, 10, 20], [30, 20, 10]] } });
      const vms = ['p', 'q'].map((name) => monitor.createVm({ name, vcpus: 2, memoryBytes: 16 * MiB, console: quiet }));
      const runs = vms.map((vm) => startCounter(vm, { iterations: 2500, fillPages: 3, poweroff: false }));
      for (const m of moves) {
        runUntil(monitor, () => false, m.rounds);
        const vm = vms[m.vm]!;
        const pages = counterPages(runs[m.vm]!)[m.kind as 'code' | 'tables' | 'data' | 'fill'];
        const gppn = pages[m.which % pages.length]!;
        if (vm.pmap.lookup(gppn) === FREE) continue;
        const old = monitor.memory.addressOf(vm.pmap.lookup(gppn));
        vm.pmap.migrate(gppn, m.node);
        for (const h of vm.vcpus) assertNoStaleEntries(h, old, `${vm.name} ${m.kind} page ${gppn} moved`);
      }
      runUntil(monitor, () => vms.every((vm, i) => counterDone(vm, runs[i]!)), 2000);
      for (const [i, vm] of vms.entries()) {
        assert.equal(vm.state, 'running', `${vm.name} ended: ${vm.reason}`);
        assertCounted(vm, runs[i]!);
      }
      assertMemmap(monitor);
      for (const vm of vms) monitor.stopVm(vm);
      assert.equal(monitor.memory.pagesInUse(), 0);
    }),
    { numRuns: 25 },
  );
});

test('timing mode: each vCPU charges the cache of the physical CPU it runs on, the monitor\'s data included, and every first-level miss is a refill', (t) => {
  if (!requireToolchain(t)) return;
  const timing = { latencies: latenciesFromDistances([[10, 20], [20, 10]]) };
  // Two nodes of one CPU each; a VM of one vCPU per node: each runs on its home node's CPU, so every miss is
  // local, the monitor's references to its tables (on the VM's home node) and to the memmap included.
  const placed = new Monitor({ config: machine(2, 32, 1), timing });
  assert.throws(() => new Monitor({ config: machine(1, 32, 1) }).setExecutionMode('timing'), /timing configuration/);
  const homes = ['a', 'b'].map((name) => placed.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: quiet }));
  assert.deepEqual(homes.map((vm) => vm.pmap.homeNode), [0, 1]);
  placed.setExecutionMode('timing');
  assert.equal(placed.executionMode, 'timing');
  const runs = homes.map((vm) => startCounter(vm, { iterations: 3000, fillPages: 4, poweroff: false }));
  runUntil(placed, () => homes.every((vm, i) => counterDone(vm, runs[i]!)), 4000);
  homes.forEach((vm, i) => assertCounted(vm, runs[i]!));
  const model = placed.timingModel!;
  for (const cpu of [0, 1]) {
    assert.ok(model.missesLocal[cpu]! > 0, `CPU ${cpu} missed nothing: its vCPU charged another CPU's cache`);
    assert.equal(model.missesRemote[cpu], 0, `CPU ${cpu}: remote misses, so a vCPU charged a CPU off its VM's node`);
  }

  // Four vCPUs on two CPUs, switching every round: after each switch the first level refills from the second,
  // and the model counts every first-level miss as a refill (the monitor's handler reads its tables, no walker steps).
  const busy = new Monitor({ config: machine(1, 64, 2), quantumRounds: 1, timing: { latencies: latenciesFromDistances([[10]]) } });
  const vms = ['x', 'y'].map((name) => busy.createVm({ name, vcpus: 2, memoryBytes: 16 * MiB, console: quiet }));
  const counted = vms.map((vm) => startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false }));
  // A while in fast mode first (nothing charged), then timing mode switched on under the running programs.
  runUntil(busy, () => false, 4);
  assert.equal(busy.timingModel!.accesses(0) + busy.timingModel!.accesses(1), 0, 'fast mode charged the caches');
  assert.ok(!vms.some((vm, i) => counterDone(vm, counted[i]!)), 'the programs ended in fast mode');
  const missesBefore = vms.flatMap((vm) => [...vm.vcpus]).reduce((s, h) => s + h.tlbMisses, 0);
  const hitsBefore = vms.flatMap((vm) => [...vm.vcpus]).reduce((s, h) => s + h.secondLevelHits, 0);
  busy.setExecutionMode('timing');
  runUntil(busy, () => vms.every((vm, i) => counterDone(vm, counted[i]!)), 40_000);
  vms.forEach((vm, i) => assertCounted(vm, counted[i]!));
  const harts = vms.flatMap((vm) => [...vm.vcpus]);
  const misses = harts.reduce((s, h) => s + h.tlbMisses, 0) - missesBefore;
  const hits = harts.reduce((s, h) => s + h.secondLevelHits, 0) - hitsBefore;
  assert.ok(hits > 0 && busy.worldSwitches > 8, `${hits} second-level hits, ${busy.worldSwitches} world switches`);
  assert.equal(busy.timingModel!.tlbRefills.reduce((a, b) => a + b, 0), misses, 'TLB refills charged by the model vs first-level misses');

});

/** vCPU 0 sets a far timer and waits for an IPI; vCPU 1 works a while, sends it, and waits itself. Both record the time. */
const WAKE_SOURCE = `
.globl _start
_start:
  bnez a0, sender
  li a7, 0x54494D45
  li a6, 0
  li a0, 50000000
  ecall
  li t0, 2
  csrs sie, t0
waiter:
  wfi
  csrr t1, sip
  andi t1, t1, 2
  beqz t1, waiter
  rdtime t2
  la t3, woke
  sd t2, 0(t3)
  csrw sie, zero
1: wfi
  j 1b
sender:
  li t1, 3000
2: addi t1, t1, -1
  bnez t1, 2b
  rdtime t2
  la t3, sent
  sd t2, 0(t3)
  li a7, 0x735049
  li a6, 0
  li a0, 1
  li a1, 0
  ecall
3: wfi
  j 3b
.balign 8
woke: .dword 0
sent: .dword 0
`;

test('a vCPU woken by an IPI from one that then waits runs in the next round, not at the next timer', (t) => {
  if (!requireToolchain(t)) return;
  const program = assemble(WAKE_SOURCE);
  const monitor = new Monitor({ config: machine(1, 32, 2) });
  const vm = monitor.createVm({ name: 'wake', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const memory = vm.machine.bus.guestMemory();
  memory.write(TEXT_BASE, program.image);
  vm.vcpus.forEach((h, i) => {
    h.reset(TEXT_BASE);
    h.parked = false;
    h.mideleg = 0x222; // what boot sets up: supervisor interrupts delegated, counters readable
    h.mcounteren = 7;
    h.priv = PRIV_S;
    h.updateTranslation();
    h.setReg(10, i);
  });
  const read = (name: string): number => memory.readU32(program.symbols.get(name)!);
  runUntil(monitor, () => read('woke') !== 0, 20);
  const sent = read('sent');
  const woke = read('woke');
  assert.ok(sent > 0 && woke > 0, `sent at ${sent}, woke at ${woke}`);
  assert.ok((woke - sent) * INSTRUCTIONS_PER_TICK <= 2 * SLICE, `the IPI sent at tick ${sent} woke vCPU 0 only at tick ${woke}`);
});

test('a vCPU\'s moves to another CPU are counted by kind: within its node, and to another node', (t) => {
  if (!requireToolchain(t)) return;
  // Three vCPUs take turns on two CPUs: on one node of two CPUs they move within it; on two nodes of one, between them.
  for (const [nodes, perNode, kind] of [[1, 2, 'cpuMoves'], [2, 1, 'nodeMoves']] as const) {
    const monitor = new Monitor({ config: monitorMachine(nodes, 64, perNode), quantumRounds: 2 });
    const vm = monitor.createVm({ name: 'a', vcpus: 3, memoryBytes: 16 * MiB, console: () => {} });
    const run = startCounter(vm, { iterations: 5_000, fillPages: 1, poweroff: false });
    runRoundsUntil(monitor, () => counterDone(vm, run), 20_000);
    assertCounted(vm, run);
    const a = accountVm(monitor, vm).total;
    const other = kind === 'cpuMoves' ? 'nodeMoves' : 'cpuMoves';
    assert.ok(a[kind] > 0, `${nodes} node(s): no ${kind}`);
    assert.equal(a[other], 0, `${nodes} node(s): ${other}`);
    assert.equal(a.cellMigrations, 0);
    // In fast mode each move costs its world switch, and nothing else.
    const cycles = kind === 'cpuMoves' ? 'cpuMoveCycles' : 'nodeMoveCycles';
    assert.equal(a[cycles], a[kind] * monitor.costs.worldSwitch);
    assert.equal(a.cellMoveCycles, 0);
  }
});

test('gang scheduling under the monitor: a VM\'s runnable vCPUs are picked all together or not at all, round by round, and every VM counts exactly', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({ config: monitorMachine(1, 128, 3), quantumRounds: 3, gang: true });
  const vms = [3, 2, 1].map((vcpus, i) => monitor.createVm({ name: `g${i}`, vcpus, memoryBytes: 16 * MiB, console: () => {} }));
  const runs = vms.map((vm) => startCounter(vm, { iterations: 3_000, fillPages: 1, poweroff: false }));
  const pick = monitor.scheduler.pick.bind(monitor.scheduler);
  let rounds = 0;
  let together = 0;
  monitor.scheduler.pick = () => {
    const picks = pick();
    rounds++;
    for (const vm of vms) {
      const runnable = vm.vcpus.map((_, i) => monitor.vcpuRecord(vm, i) as unknown as { runnable(): boolean }).filter((r) => r.runnable());
      const picked = runnable.filter((r) => picks.includes(r as never));
      assert.ok(picked.length === 0 || picked.length === runnable.length, `round ${rounds}: ${vm.name} runs ${picked.length} of ${runnable.length}`);
      if (runnable.length > 1 && picked.length === runnable.length) together++;
    }
    return picks;
  };
  runRoundsUntil(monitor, () => vms.every((vm, i) => counterDone(vm, runs[i]!)), 20_000);
  vms.forEach((vm, i) => assertCounted(vm, runs[i]!));
  assert.ok(together > 0, 'a gang of several ran');
});

// Disco's NUMA policy: hot pages migrate, at round boundaries, to the node that misses on them; write-shared
// pages and frozen ones stay; the running program never notices.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KIND_NUMA_POLICY } from '../cpu/monitor-kinds.js';
import { latenciesFromDistances } from '../board/topology.js';
import { Monitor } from './monitor.js';
import { saveMonitor } from './monitor-snapshot.js';
import { DEFAULT_POLICY, policyProblems, type NumaPolicyParameters } from './numa-policy.js';
import type { VirtualMachine } from './vm.js';
import { registerMonitorStats } from './accounting.js';
import { StatsRegistry, type StatSample } from '../timing/stats.js';
import type { MissCounters } from '../timing/miss-counters.js';
import { requireToolchain } from '../../test/helpers/asm.js';
import { blocksAdopted } from '../cpu/translator.js';
import { assertCounted, counterDone, counterPages, counterResults, monitorMachine, runRoundsUntil, startCounter, type CounterRun } from '../../test/helpers/vm-program.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

/**
 * The policy's defaults with the all-nodes trigger off: these tests make pages hot from one node (the shared
 * trigger has its own test).
 */
const PER_NODE: NumaPolicyParameters = { ...DEFAULT_POLICY, sharedHotMisses: 0 };

/** Two nodes of one CPU each, a remote miss 3 × a local one; a VM of 2 vCPUs at home on node 0 running the counter program. */
function setUp(policy: Partial<NumaPolicyParameters>, rounds = 3): { monitor: Monitor; vm: VirtualMachine; run: CounterRun } {
  const monitor = new Monitor({
    config: { ...monitorMachine(2, 32, 1), distances: [[10, 30], [30, 10]] },
    timing: { latencies: latenciesFromDistances([[10, 30], [30, 10]]) },
    policy: { ...PER_NODE, ...policy },
  });
  const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false });
  monitor.setExecutionMode('timing');
  runRoundsUntil(monitor, () => false, rounds);
  return { monitor, vm, run };
}

/** Machine page `mpn`'s counts start again from `misses` misses from each of nodes 0 and 1, none a write (as both CPUs reading it would make them). */
function readFromBoth(counters: MissCounters, mpn: number, misses = 4): void {
  counters.resetPage(mpn);
  for (let k = 0; k < misses; k++) {
    counters.recordPage(mpn, 0);
    counters.recordPage(mpn, 1);
  }
}

test('pages only another node misses on move there at the round\'s end, charged to the vCPU there; the program computes the same', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 4 }, 0);
  const policy = monitor.policy!;
  const pages = counterPages(run);
  // vCPU 1 runs on node 1's CPU; the VM's pages come from its home, node 0. vCPU 1's private data page and its
  // fill pages are missed on from node 1 alone (the monitor zeroing a fill page counts too: it is memory traffic).
  const mine = [pages.data[2]!, ...pages.fill.slice(2)];
  const theirs = [pages.data[1]!, ...pages.fill.slice(0, 2)];
  assert.deepEqual([0, 1].map((i) => monitor.vcpuRecord(vm, i).lastPcpu), [-1, -1]);
  runRoundsUntil(monitor, () => false, 1);
  assert.deepEqual([0, 1].map((i) => monitor.vcpuRecord(vm, i).lastPcpu), [0, 1]);
  assert.deepEqual(mine.map((g) => monitor.memory.nodeOf(vm.pmap.lookup(g))), mine.map(() => 1), 'vCPU 1\'s pages did not all move to node 1');
  assert.deepEqual(theirs.map((g) => monitor.memory.nodeOf(vm.pmap.lookup(g))), theirs.map(() => 0), 'vCPU 0\'s pages left node 0');
  assert.equal(policy.counts.migratedTo[0], 0);
  assert.ok(policy.counts.migratedTo[1]! >= mine.length, `moved to node 1: ${policy.counts.migratedTo[1]}`);
  assert.deepEqual(policy.perVm.get(vm.id)!.migratedTo, policy.counts.migratedTo);
  // Every move went to node 1 and was charged to vCPU 1: at least the table's copy each, and the copy's lines
  // through CPU 1's cache on top (an IPI only where vCPU 0's TLB held the page).
  const moves = policy.counts.migratedTo[1]!;
  assert.ok(policy.counts.cycles > moves * monitor.costs.pageCopy + moves * 32 * 10, `policy cycles ${policy.counts.cycles} for ${moves} moves`);
  assert.ok(vm.vcpus[1]!.monitorCycles.reduce((a, b) => a + b, 0) >= policy.counts.cycles);
  // The monitor's time by kind has the policy's work as its own kind, all of it and nothing else.
  assert.equal(vm.vcpus[1]!.monitorKindCycles[KIND_NUMA_POLICY], policy.counts.cycles);
  assert.equal(vm.vcpus[0]!.monitorKindCycles[KIND_NUMA_POLICY], 0);
  // A page the counters say node 1 misses on mostly (as its CPU would make them), node 0 a little, moves as well.
  const code = vm.pmap.lookup(pages.code[0]!);
  const counters = monitor.timingModel!.counters;
  // Each CPU missed on the code once (it stays in their caches); three more from node 1 make 4 of 5 from there.
  assert.deepEqual(counters.countsOf(code), [1, 1]);
  assert.equal(monitor.memory.nodeOf(code), 0);
  for (let k = 0; k < 3; k++) counters.recordPage(code, 1);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(pages.code[0]!)), 1);
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
});

test('the statistics show local misses over time: their share rises as vCPU 1\'s pages move to its node', (t) => {
  if (!requireToolchain(t)) return;
  // A small cache, so that the counter program misses all along; the policy eager (hotMisses 4) or idle.
  const series = (hotMisses: number) => {
    const monitor = new Monitor({
      config: { ...monitorMachine(2, 32, 1), distances: [[10, 30], [30, 10]] },
      timing: { latencies: latenciesFromDistances([[10, 30], [30, 10]]), cache: { sizeBytes: 4096 } },
      policy: { ...PER_NODE, hotMisses, intervalRounds: 2 },
    });
    const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
    const run = startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false });
    monitor.setExecutionMode('timing');
    runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
    assertCounted(vm, run);
    return monitor;
  };
  const moved = series(4);
  const still = series(1_000_000);
  assert.deepEqual(still.policy!.counts.migratedTo, [0, 0]);
  const lastHalf = (m: Monitor): number => {
    const s = m.policy!.locality.series.slice(-Math.floor(m.policy!.locality.series.length / 2));
    const local = s.reduce((n, x) => n + x.local, 0);
    return (100 * local) / s.reduce((n, x) => n + x.local + x.remote, 0);
  };
  // vCPU 1's pages start on node 0, the VM's home; once they move, its misses are local too.
  assert.ok(lastHalf(moved) > lastHalf(still) + 20, `local % over the run's second half: ${lastHalf(moved)} with moves, ${lastHalf(still)} without`);
  const locality = moved.policy!.locality;
  assert.ok(locality.series.length >= 4, `${locality.series.length} samples`);
  assert.ok(locality.series.every((s, i) => i === 0 || s.endCycles > locality.series[i - 1]!.endCycles));
  // The samples hold the timing model's misses up to the last interval's end, no more.
  const model = moved.timingModel!;
  const sum = (a: ArrayLike<number>): number => Array.from(a).reduce((x, y) => x + y, 0);
  const local = locality.series.reduce((n, s) => n + s.local, 0);
  assert.ok(local > 0 && local <= sum(model.missesLocal));
  assert.ok(locality.series.reduce((n, s) => n + s.remote, 0) <= sum(model.missesRemote));
  const stats = new StatsRegistry();
  registerMonitorStats(stats, moved);
  const sample = stats.snapshot().find((s) => s.name === 'monitor.policy.local_percent');
  assert.ok(sample?.kind === 'vector');
  assert.deepEqual(sample.labels, locality.series.map((_, i) => `s${i}`));
  assert.deepEqual(sample.values, locality.localPercent());
});

test('a page both nodes read a little, each under the trigger, is replicated once their misses together reach sharedHotMisses', (t) => {
  if (!requireToolchain(t)) return;
  for (const shared of [0, 8]) {
    const { monitor, vm, run } = setUp({ hotMisses: 16, sharedHotMisses: shared });
    const code = counterPages(run).code[0]!;
    const master = vm.pmap.lookup(code);
    const counters = monitor.timingModel!.counters;
    readFromBoth(counters, master);
    runRoundsUntil(monitor, () => false, 1);
    assert.equal(vm.pmap.replicasOf(code) !== undefined, shared > 0, `sharedHotMisses ${shared}: 4 misses from each node`);
    runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
    assertCounted(vm, run);
  }
});

test('code replicated after it was compiled is not warmed up again: the vCPU on the copy\'s node takes over its hot blocks', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({
    config: { ...monitorMachine(2, 32, 1), distances: [[10, 30], [30, 10]] },
    timing: { latencies: latenciesFromDistances([[10, 30], [30, 10]]) },
    policy: { ...PER_NODE, hotMisses: 4 },
  });
  const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(vm, { iterations: 40_000, poweroff: false });
  monitor.setExecutionMode('timing');
  // Past the 10 000 runs after which the loop's blocks are compiled.
  runRoundsUntil(monitor, () => counterResults(vm, run).counters[1]! >= 15_000n, 4000);
  const domain = vm.machine.bus.codeDomain;
  assert.equal(blocksAdopted(domain), 0);
  const code = counterPages(run).code[0]!;
  const master = vm.pmap.lookup(code);
  const counters = monitor.timingModel!.counters;
  readFromBoth(counters, master);
  runRoundsUntil(monitor, () => false, 1);
  assert.ok(vm.pmap.replicasOf(code) !== undefined, 'the code page was not replicated');
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
  // vCPU 1 now fetches from node 1's copy: the same instructions at the same pcs, so its hot blocks are
  // compiled for the copy at once.
  assert.ok(blocksAdopted(domain) > 0, 'no block was taken over from the master page');
});

test('a hot page written from both nodes stays where it is: the shared counter, as the program itself makes it hot', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 8, writeSharedWrites: 4 });
  const shared = counterPages(run).data[0]!;
  const mpn = vm.pmap.lookup(shared);
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
  const policy = monitor.policy!;
  // Both vCPUs add to it with AMOs: upgrades and write misses from nodes 0 and 1, never one node's page.
  assert.ok(policy.counts.leftWriteShared > 0, `left write-shared: ${policy.counts.leftWriteShared}`);
  assert.equal(vm.pmap.lookup(shared), mpn, 'the write-shared page moved');
});

test('a page moved moveLimit times is frozen for freezeIntervals intervals, then may move again', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 2, moveLimit: 1, freezeIntervals: 1, intervalRounds: 4 });
  const policy = monitor.policy!;
  const counters = monitor.timingModel!.counters;
  // vCPU 0's first fill page: on node 0, where it runs, so the program itself never makes it hot from node 1.
  const gppn = counterPages(run).fill[0]!;
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(gppn)), 0);
  const heat = (node: number): void => {
    const mpn = vm.pmap.lookup(gppn);
    counters.resetPage(mpn);
    counters.recordPage(mpn, node);
    counters.recordPage(mpn, node);
  };
  heat(1);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(gppn)), 1);
  heat(0);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(gppn)), 1, 'a frozen page moved');
  assert.ok(policy.counts.leftFrozen >= 1);
  // Two intervals later (8 rounds) the freeze is over.
  runRoundsUntil(monitor, () => false, 8);
  heat(0);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(gppn)), 0, 'the freeze did not end');
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
});

test('a hot page left alone is looked at again at every interval\'s end while it stays hot: frozen, it moves once thawed', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 2, moveLimit: 1, freezeIntervals: 1, intervalRounds: 4 });
  const counters = monitor.timingModel!.counters;
  const gppn = counterPages(run).fill[0]!;
  const record = (node: number, times: number): void => {
    for (let k = 0; k < times; k++) counters.recordPage(vm.pmap.lookup(gppn), node);
  };
  counters.resetPage(vm.pmap.lookup(gppn));
  record(1, 10);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(gppn)), 1);
  // The counts came along (10 from node 1, and the copy's own writes from there); 300 from node 0 make it node
  // 0's, but the page is frozen.
  const [zero, one] = counters.countsOf(vm.pmap.lookup(gppn));
  assert.ok(zero === 0 && one! >= 10, `counts after the move: ${zero}, ${one}`);
  record(0, 300);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(gppn)), 1, 'a frozen page moved');
  // No count crosses the trigger again (they only halve), yet once the freeze is over the page moves.
  runRoundsUntil(monitor, () => false, 12);
  assert.equal(monitor.memory.nodeOf(vm.pmap.lookup(gppn)), 0, 'the page was never looked at again');
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
});

test('a move interrupts only the vCPUs whose TLB held the page', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 1_000_000 }, 2);
  // The code page: both vCPUs ran it, so both TLBs hold it; vCPU 1's private data page: only vCPU 1's.
  const pages = counterPages(run);
  const mark = vm.tlbShootdowns.slice();
  vm.pmap.migrate(pages.code[0]!, 1);
  assert.equal(vm.shootdownIpis(mark, 1), 1, 'moving the code from vCPU 1 interrupts vCPU 0');
  assert.equal(vm.shootdownIpis(mark, 0), 1);
  const second = vm.tlbShootdowns.slice();
  vm.pmap.migrate(pages.data[2]!, 1);
  assert.equal(vm.shootdownIpis(second, 1), 0, 'only vCPU 1 mapped its own data');
  assert.equal(vm.shootdownIpis(second, 0), 1);
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
});

test('on the TLB-miss signal the policy needs no timing model and acts in fast mode: vCPU 1\'s pages move to its node', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({
    config: { ...monitorMachine(2, 32, 1), distances: [[10, 30], [30, 10]] },
    policy: { ...DEFAULT_POLICY, tlbHotMisses: 1 }, policySignal: 'tlb-misses',
  });
  assert.equal(monitor.timingModel, undefined);
  const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false });
  const pages = counterPages(run);
  // vCPU 1's private data page and fill pages: their TLB misses come from node 1 only.
  const mine = [pages.data[2]!, ...pages.fill.slice(2)];
  runRoundsUntil(monitor, () => mine.every((g) => monitor.memory.nodeOf(vm.pmap.lookup(g)) === 1), 400);
  assert.deepEqual(mine.map((g) => monitor.memory.nodeOf(vm.pmap.lookup(g))), mine.map(() => 1), 'vCPU 1\'s pages did not move to node 1');
  assert.equal(monitor.executionMode, 'fast');
  assert.equal(monitor.policy!.counts.migratedTo[0], 0, 'a page moved to node 0, where nothing but vCPU 0 runs');
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
  assert.throws(() => saveMonitor(monitor), /TLB-miss signal cannot be saved/);
});

test('the policy\'s parameters are checked, and it needs timing mode\'s counters', () => {
  assert.deepEqual(policyProblems(DEFAULT_POLICY), []);
  assert.deepEqual(policyProblems({ ...DEFAULT_POLICY, hotMisses: 0, migrateShare: 0.5, intervalRounds: 1.5 }), [
    'hotMisses must be a whole number of at least 1, not 0',
    'intervalRounds must be a whole number of at least 1, not 1.5',
    'migrateShare must be above 0.5 and at most 1, not 0.5',
  ]);
  assert.throws(() => new Monitor({ config: monitorMachine(2, 32, 1), policy: DEFAULT_POLICY }), /needs a timing configuration/);
});

test('round-robin placement spreads guest pages over the nodes page by page; the statistics show what the policy did', (t) => {
  if (!requireToolchain(t)) return;
  const monitor = new Monitor({
    config: { ...monitorMachine(2, 32, 1), distances: [[10, 30], [30, 10]] },
    timing: { latencies: latenciesFromDistances([[10, 30], [30, 10]]) },
    policy: { ...PER_NODE, hotMisses: 4 },
    placement: 'round-robin',
  });
  const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(vm, { iterations: 5000, fillPages: 4, poweroff: false });
  // Before any policy runs (fast mode): every page on node gppn mod 2, and no 2 MiB group is one block.
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
  const mapped = Array.from({ length: vm.pmap.pages }, (_, g) => g).filter((g) => vm.pmap.lookup(g) >= 0);
  assert.ok(mapped.length >= 10, `${mapped.length} pages mapped`);
  assert.deepEqual(mapped.map((g) => monitor.memory.nodeOf(vm.pmap.lookup(g))), mapped.map((g) => g % 2));
  assert.deepEqual(Array.from({ length: vm.pmap.pages / 512 }, (_, group) => vm.pmap.largeBlock(group)).filter((b) => b >= 0), []);
  assert.deepEqual(monitor.policy!.counts.migratedTo, [0, 0], 'the policy acted in fast mode');

  const stats = new StatsRegistry();
  registerMonitorStats(stats, monitor);
  const sample = (name: string): StatSample | undefined => stats.snapshot().find((s) => s.name === name);
  assert.ok(sample('monitor.policy.migrated') !== undefined && sample(`monitor.vm${vm.id}.policy_migrated`) !== undefined);
  assert.equal(stats.read('monitor.policy.cycles'), 0);
  const monitorPages = sample('monitor.pages_monitor');
  assert.ok(monitorPages?.kind === 'vector' && monitorPages.total === monitor.memory.monitorPages() && monitorPages.total > 0);
});

test('a page read from both nodes is replicated: each node reads its own copy, a write collapses them, and the program computes the same', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 4 });
  const policy = monitor.policy!;
  const counters = monitor.timingModel!.counters;
  const pages = counterPages(run);
  const code = pages.code[0]!;
  const master = vm.pmap.lookup(code);
  assert.equal(monitor.memory.nodeOf(master), 0);
  const migratedBefore = policy.counts.migratedTo.slice();
  // Both vCPUs fetch the code: as their CPUs would count it, half the misses from each node, none a write.
  readFromBoth(counters, master);
  runRoundsUntil(monitor, () => false, 1);
  const copies = vm.pmap.replicasOf(code);
  assert.ok(copies !== undefined, 'the code page was not replicated');
  assert.equal(copies[0], -1, 'a copy on the master\'s own node');
  assert.equal(monitor.memory.nodeOf(copies[1]!), 1);
  assert.deepEqual(policy.counts.replicatedTo, [0, 1]);
  assert.equal(vm.pmap.lookup(code), master, 'the master moved');
  assert.equal(monitor.memory.replicaPages(1), 1);
  // Misses on the master from node 1, which has a copy, do not move it: that would throw the copy away.
  for (let k = 0; k < 8; k++) counters.recordPage(master, 1);
  runRoundsUntil(monitor, () => false, 1);
  assert.ok(vm.pmap.replicasOf(code) !== undefined, 'the replicated page was migrated, its copies dropped');
  assert.equal(vm.pmap.lookup(code), master);
  assert.deepEqual(policy.counts.migratedTo.slice(), migratedBefore);
  // A read from node 1 gets the copy, from node 0 the master; the page is read-only.
  vm.pmap.readerNode = 1;
  assert.equal(vm.pmap.page(code, 0 /* read */)?.node, 1);
  vm.pmap.readerNode = 0;
  assert.equal(vm.pmap.page(code, 0)?.node, 0);
  assert.equal(vm.pmap.page(code, 1 /* write */), undefined, 'a replicated page is writable');
  // vCPU 1 keeps running from its node's copy, and the program's results are right.
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);

  // vCPU 0's private page, replicated the same way, collapses at the program's next write to it.
  const data = pages.data[1]!;
  const { monitor: m2, vm: vm2, run: run2 } = setUp({ hotMisses: 4 });
  const page = vm2.pmap.lookup(data);
  const c2 = m2.timingModel!.counters;
  readFromBoth(c2, page);
  runRoundsUntil(m2, () => false, 1);
  // It was replicated at the round's end and written in the next round (the program adds to it in a loop).
  assert.deepEqual(m2.policy!.counts.replicatedTo, [0, 1]);
  runRoundsUntil(m2, () => false, 1);
  assert.equal(vm2.pmap.replicasOf(data), undefined, 'a write left the copies');
  assert.ok(vm2.pmap.collapses >= 1);
  assert.equal(m2.memory.replicaPages(), 0, 'the copy was not given back');
  assert.ok((vm2.exits.get('guest-page-fault.collapse') ?? 0) >= 1, 'no collapse exit');
  // Read from both nodes again: a page a write collapsed is not copied again until its freeze is over.
  const frozenBefore = m2.policy!.counts.leftFrozen;
  const again = vm2.pmap.lookup(data);
  readFromBoth(c2, again);
  runRoundsUntil(m2, () => false, 1);
  assert.equal(vm2.pmap.replicasOf(data), undefined, 'replicated again right after a write collapsed it');
  assert.equal(m2.policy!.counts.leftFrozen, frozenBefore + 1);
  runRoundsUntil(m2, () => counterDone(vm2, run2), 4000);
  assertCounted(vm2, run2);
});

test('replicas are the first memory given back when the machine runs short', (t) => {
  if (!requireToolchain(t)) return;
  // A trigger never reached: nothing moves by itself (a move would scatter the program's partly touched large pages).
  const { monitor, vm, run } = setUp({ hotMisses: 1_000_000 });
  const code = counterPages(run).code[0]!;
  vm.pmap.replicate(code, [0, 1]);
  assert.equal(monitor.memory.replicaPages(), 1);
  // Memory runs out: the monitor's reclaim drops the replicas before it breaks any large page.
  const reserved = monitor.memory.pagesReserved();
  assert.ok(reserved > 0, 'no large page partly touched: nothing to tell the order by');
  assert.equal(monitor.memory.reclaim!(), 1);
  assert.equal(monitor.memory.replicaPages(), 0);
  assert.equal(vm.pmap.replicasOf(code), undefined);
  assert.equal(monitor.memory.pagesReserved(), reserved, 'large pages broke while replicas were left');
  // With no replica left, the partly touched large pages give their reserved pages back.
  assert.equal(monitor.memory.reclaim!(), reserved);
  assert.equal(monitor.memory.pagesReserved(), 0);
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
});

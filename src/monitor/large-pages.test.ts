// The NUMA policy's large pages: a 2 MiB group hot from one other node moves there as one block and stays one
// large page; a scattered group whose pages are all on one node again is made one block; the program never notices.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { latenciesFromDistances } from '../board/topology.js';
import { Monitor } from './monitor.js';
import { DEFAULT_POLICY, type NumaPolicyParameters } from './numa-policy.js';
import type { VirtualMachine } from './vm.js';
import { registerMonitorStats } from './accounting.js';
import { BLOCK_PAGES, PAGE } from './machine-memory.js';
import { StatsRegistry } from '../timing/stats.js';
import { requireToolchain, TEXT_BASE } from '../../test/helpers/asm.js';
import { assertCounted, counterDone, machinePageWords, monitorMachine, runRoundsUntil, startCounter, type CounterRun } from '../../test/helpers/vm-program.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
/** A group the counter program never touches (guest-physical 6–8 MiB): the test fills it, and it is one block on node 0. */
const GROUP = 3;

/** Two nodes of one CPU each; a VM of 2 vCPUs at home on node 0 running the counter program, its group GROUP filled whole. */
function setUp(policy: Partial<NumaPolicyParameters>): { monitor: Monitor; vm: VirtualMachine; run: CounterRun } {
  const monitor = new Monitor({
    config: { ...monitorMachine(2, 32, 1), distances: [[10, 30], [30, 10]] },
    timing: { latencies: latenciesFromDistances([[10, 30], [30, 10]]) },
    policy: { ...DEFAULT_POLICY, ...policy },
  });
  const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet });
  const run = startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false });
  // Every page of the group written through the pmap (a first touch each, as a loader's): page k holds k + 1.
  const memory = vm.machine.bus.guestMemory();
  for (let k = 0; k < BLOCK_PAGES; k++) memory.writeU32(TEXT_BASE + (GROUP * BLOCK_PAGES + k) * PAGE + 8, k + 1);
  monitor.setExecutionMode('timing');
  runRoundsUntil(monitor, () => false, 3);
  return { monitor, vm, run };
}

/** The group's pages still hold what `setUp` wrote. */
function assertContents(vm: VirtualMachine): void {
  const memory = vm.machine.bus.guestMemory();
  for (let k = 0; k < BLOCK_PAGES; k++) assert.equal(memory.readU32(TEXT_BASE + (GROUP * BLOCK_PAGES + k) * PAGE + 8), k + 1, `page ${k} of the group`);
}

/** As node `node`'s CPU would count them: `pages` of the group's pages missed on `times` times each from `node`. */
function heat(monitor: Monitor, vm: VirtualMachine, node: number, pages: number, times: number): void {
  const counters = monitor.timingModel!.counters;
  for (let k = 0; k < pages; k++) {
    const mpn = vm.pmap.lookup(GROUP * BLOCK_PAGES + k * Math.floor(BLOCK_PAGES / pages));
    for (let i = 0; i < times; i++) counters.recordPage(mpn, node);
  }
}

function stat(monitor: Monitor, name: string): number {
  const stats = new StatsRegistry();
  registerMonitorStats(stats, monitor);
  return stats.read(name);
}

test('a group hot from one other node moves there as one block, charged, and stays one large page; the program computes the same', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 4, blockPages: 32 });
  const policy = monitor.policy!;
  const before = vm.pmap.largeBlock(GROUP);
  assert.ok(before >= 0, 'the filled group is no large page');
  assert.equal(monitor.memory.nodeOf(vm.pmap.blockOf(GROUP)), 0);
  const large = stat(monitor, 'monitor.large_groups');
  const cycles = policy.counts.cycles;
  heat(monitor, vm, 1, 64, 4);
  runRoundsUntil(monitor, () => false, 1);
  const block = vm.pmap.blockOf(GROUP);
  assert.equal(monitor.memory.nodeOf(block), 1, 'the group did not move to node 1');
  assert.ok(vm.pmap.largeBlock(GROUP) >= 0, 'the group is no large page after its move');
  assert.deepEqual(policy.large.counts.blocksMovedTo, [0, 1]);
  assert.equal(policy.large.counts.pagesCopied, BLOCK_PAGES);
  // Each page charged a copy, with its lines through the cache on top; the counts went with the contents.
  const spent = policy.counts.cycles - cycles;
  assert.ok(spent > BLOCK_PAGES * (monitor.costs.pageCopy + 32 * 10), `${spent} cycles for the block`);
  assert.equal(policy.large.counts.moveCycles, spent);
  const counters = monitor.timingModel!.counters;
  assert.ok(counters.count(vm.pmap.lookup(GROUP * BLOCK_PAGES), 1) >= 4 && counters.count(vm.pmap.lookup(GROUP * BLOCK_PAGES), 0) === 0);
  assert.equal(counters.total((before - monitor.memory.addressOf(0)) / PAGE), 0, 'the old block kept counts');
  assertContents(vm);
  assert.equal(stat(monitor, 'monitor.large_groups'), large);
  assert.equal(stat(monitor, 'monitor.policy.block_pages_copied'), BLOCK_PAGES);
  assert.deepEqual(stat(monitor, 'monitor.policy.blocks_broken'), 0);
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assert.ok(vm.pmap.largeBlock(GROUP) >= 0 && vm.pmap.blockOf(GROUP) === block, 'the group did not stay one block');
  assertCounted(vm, run);
  assertContents(vm);
});

test('without block moves the same heat moves 4 KiB pages, which breaks the large page: counted with its cost', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 4, blockPages: 0 });
  const policy = monitor.policy!;
  heat(monitor, vm, 1, 64, 4);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(vm.pmap.largeBlock(GROUP), -1, 'the group is still one large page');
  assert.deepEqual(policy.large.counts.blocksMovedTo, [0, 0]);
  assert.ok(policy.counts.migratedTo[1]! >= 64);
  assert.equal(policy.large.counts.broken, 1);
  assert.ok(policy.large.counts.breakCycles > monitor.costs.pageCopy, `break cycles ${policy.large.counts.breakCycles}`);
  assert.equal(stat(monitor, 'monitor.large_groups_broken'), 1);
  assert.equal(stat(monitor, 'monitor.policy.break_cycles'), policy.large.counts.breakCycles);
  // Too few pages hot from node 1 for a block move (blockPages 128): 4 KiB moves then too.
  const other = setUp({ hotMisses: 4, blockPages: 128 });
  heat(other.monitor, other.vm, 1, 64, 4);
  runRoundsUntil(other.monitor, () => false, 1);
  assert.equal(other.vm.pmap.largeBlock(GROUP), -1);
  assert.deepEqual(other.monitor.policy!.large.counts.blocksMovedTo, [0, 0]);
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
  assertContents(vm);
});

test('a scattered group whose pages are all on one node again is made one block there at the interval\'s end, charged', (t) => {
  if (!requireToolchain(t)) return;
  for (const coalescePages of [0, 16]) {
    const { monitor, vm, run } = setUp({ hotMisses: 1_000_000, coalescePages, intervalRounds: 4 });
    const policy = monitor.policy!;
    // One page goes to node 1 and comes back: the group is scattered, every page on node 0.
    const gppn = GROUP * BLOCK_PAGES + 17;
    vm.pmap.migrate(gppn, 1);
    vm.pmap.migrate(gppn, 0);
    assert.equal(vm.pmap.largeBlock(GROUP), -1);
    assert.ok(vm.pmap.scatteredOnOneNode(GROUP));
    assert.equal(vm.pmap.groupsBroken, 1);
    // Pages of the group in use lately (twice each: the interval's end halves the counts before the sweep).
    heat(monitor, vm, 0, 32, 2);
    const cycles = policy.counts.cycles;
    runRoundsUntil(monitor, () => false, 4);
    if (coalescePages === 0) {
      assert.equal(vm.pmap.largeBlock(GROUP), -1, 'coalesced with coalescePages 0');
      assert.deepEqual(policy.large.counts.coalescedOn, [0, 0]);
    } else {
      assert.ok(vm.pmap.largeBlock(GROUP) >= 0, 'the group was not made one block again');
      assert.equal(monitor.memory.nodeOf(vm.pmap.blockOf(GROUP)), 0);
      assert.deepEqual(policy.large.counts.coalescedOn, [1, 0]);
      assert.ok(policy.large.counts.coalesceCycles > BLOCK_PAGES * monitor.costs.pageCopy);
      assert.equal(policy.counts.cycles - cycles, policy.large.counts.coalesceCycles);
      assert.equal(stat(monitor, 'monitor.policy.coalesce_cycles'), policy.large.counts.coalesceCycles);
    }
    assertContents(vm);
    runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
    assertCounted(vm, run);
    assertContents(vm);
    assert.ok(machinePageWords(monitor.memory, vm.pmap.lookup(gppn))[2] === 18);
  }
});

test('a large group both nodes read and nobody writes is replicated whole, charged; a write collapses it and freezes it; the program computes the same', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, vm, run } = setUp({ hotMisses: 4, replicateGroupPages: 32 });
  const policy = monitor.policy!;
  const master = vm.pmap.largeBlock(GROUP);
  assert.ok(master >= 0, 'the filled group is no large page');
  const cycles = policy.counts.cycles;
  heat(monitor, vm, 0, 64, 2);
  heat(monitor, vm, 1, 64, 4);
  runRoundsUntil(monitor, () => false, 1);
  const copies = vm.pmap.groupCopiesOf(GROUP);
  assert.ok(copies !== undefined, 'the group was not replicated whole');
  assert.equal(copies[0], -1, 'a copy on the master\'s own node');
  assert.equal(monitor.memory.nodeOf(copies[1]!), 1);
  assert.equal(vm.pmap.blockOf(GROUP), (master - monitor.memory.addressOf(0)) / PAGE, 'the master moved');
  assert.deepEqual(policy.large.counts.groupsReplicatedOn, [0, 1]);
  assert.deepEqual(policy.counts.replicatedTo, [0, 0], 'pages of the group were replicated alone');
  assert.equal(vm.pmap.groupsBroken, 0);
  // Each page charged a copy, its lines through the cache on top.
  const spent = policy.counts.cycles - cycles;
  assert.ok(spent > BLOCK_PAGES * (monitor.costs.pageCopy + 32 * 10), `${spent} cycles for the copy block`);
  assert.equal(policy.large.counts.replicateCycles, spent);
  assert.equal(stat(monitor, 'monitor.policy.group_replicate_cycles'), spent);
  assert.equal(stat(monitor, 'monitor.groups_replicated'), 1);
  assert.equal(monitor.memory.replicaPages(1), BLOCK_PAGES);
  vm.pmap.readerNode = 1;
  assert.equal(vm.pmap.largeBlock(GROUP), monitor.memory.addressOf(copies[1]!));
  assertContents(vm);
  for (let k = 0; k < BLOCK_PAGES; k += 37) assert.deepEqual(machinePageWords(monitor.memory, copies[1]! + k), machinePageWords(monitor.memory, vm.pmap.lookup(GROUP * BLOCK_PAGES + k)));

  // A write (a device's, here) collapses the copies; the next round counts it and freezes the group.
  const memory = vm.machine.bus.guestMemory();
  memory.writeU32(TEXT_BASE + (GROUP * BLOCK_PAGES + 5) * PAGE + 8, 6);
  assert.equal(vm.pmap.groupCopiesOf(GROUP), undefined);
  assert.equal(vm.pmap.largeBlock(GROUP), master);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(policy.large.counts.groupsCollapsed, 1);
  assert.equal(policy.large.counts.groupsCollapsedByWrites, 1);
  assert.equal(stat(monitor, 'monitor.policy.groups_collapsed'), 1);
  heat(monitor, vm, 0, 64, 2);
  heat(monitor, vm, 1, 64, 4);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(vm.pmap.groupCopiesOf(GROUP), undefined, 'a group a write collapsed was copied again at once');
  assert.deepEqual(policy.large.counts.groupsReplicatedOn, [0, 1]);
  runRoundsUntil(monitor, () => counterDone(vm, run), 4000);
  assertCounted(vm, run);
  assertContents(vm);
});

test('a group written lately, read from too few pages by two nodes, or with group replication off is not replicated whole', (t) => {
  if (!requireToolchain(t)) return;
  // Off: the 4 KiB policy copies pages alone, which breaks the group.
  const off = setUp({ hotMisses: 4, replicateGroupPages: 0 });
  heat(off.monitor, off.vm, 0, 64, 2);
  heat(off.monitor, off.vm, 1, 64, 4);
  runRoundsUntil(off.monitor, () => false, 1);
  assert.equal(off.vm.pmap.groupCopiesOf(GROUP), undefined);
  assert.ok(off.monitor.policy!.counts.replicatedTo[1]! > 0 && off.vm.pmap.largeBlock(GROUP) === -1, 'the 4 KiB policy did not replicate pages alone');
  // 64 pages read from both nodes, fewer than 128.
  const few = setUp({ hotMisses: 4, replicateGroupPages: 128 });
  heat(few.monitor, few.vm, 0, 64, 2);
  heat(few.monitor, few.vm, 1, 64, 4);
  runRoundsUntil(few.monitor, () => false, 1);
  assert.equal(few.vm.pmap.groupCopiesOf(GROUP), undefined, 'replicated with too few pages read from two nodes');
  // One page written from node 0 in this interval.
  const written = setUp({ hotMisses: 4, replicateGroupPages: 32 });
  written.monitor.timingModel!.counters.recordPage(written.vm.pmap.lookup(GROUP * BLOCK_PAGES + 300), 0, true);
  heat(written.monitor, written.vm, 0, 64, 2);
  heat(written.monitor, written.vm, 1, 64, 4);
  runRoundsUntil(written.monitor, () => false, 1);
  assert.equal(written.vm.pmap.groupCopiesOf(GROUP), undefined, 'a group written lately was replicated');
  assert.deepEqual(written.monitor.policy!.large.counts.groupsReplicatedOn, [0, 0]);
});

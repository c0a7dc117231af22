// Disco's NUMA policy with several cells (cell-policy.ts, docs/numa-policy.md "Cells"): each cell decides for
// the hot pages on its own nodes and keeps their records; a spanning VM's page moved to another cell takes its
// record along; a cell that fails takes its policy state with it, and the other cells go on migrating.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { latenciesFromDistances } from '../board/topology.js';
import { requireToolchain, TEXT_BASE } from '../../test/helpers/asm.js';
import { assertCounted, counterDone, counterPages, meshMachine, runRoundsUntil, startCounter, type CounterRun } from '../../test/helpers/vm-program.js';
import { BLOCK_PAGES, PAGE } from './machine-memory.js';
import { Monitor } from './monitor.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, restoreWhole } from '../host/monitor-snapshot.js';
import { DEFAULT_POLICY, type NumaPolicyParameters } from './numa-policy.js';
import { DeadCellError } from './revocable.js';
import type { VirtualMachine } from './vm.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });
/** A trigger the counter program's own misses stay far below (its pages stay in the 1 MiB cache): only `heat` makes pages hot. */
const HOT = 64;

/**
 * The 2x2 mesh (nodes 0 to 3, one CPU each) in cells [0, 1] and [2, 3], in timing mode, with the policy on
 * (`policy` over per-node triggers only): `vms` made in order, each running the counter program.
 */
function scene(policy: Partial<NumaPolicyParameters>, ...vms: { name: string; memoryBytes: number; cell?: number; homeNode?: number }[]) {
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const monitor = new Monitor({
    config, hardware, cells: [[0, 1], [2, 3]], timing: { latencies: latenciesFromDistances(config.distances!) },
    policy: { ...DEFAULT_POLICY, hotMisses: HOT, sharedHotMisses: 0, replicateGroupPages: 0, ...policy },
  });
  const made = vms.map((spec) => monitor.createVm({ vcpus: 2, console: quiet, ...spec }));
  const runs = new Map<VirtualMachine, CounterRun>(made.map((vm) => [vm, startCounter(vm, { iterations: 30_000, fillPages: 4, poweroff: false })]));
  monitor.setExecutionMode('timing');
  runRoundsUntil(monitor, () => false, 20);
  return { monitor, hardware, vms: made, runs };
}

/** Guest page `gppn` of `vm` is made hot from `node` alone (its counts start again), as that node's CPU missing on it would. */
function heat(monitor: Monitor, vm: VirtualMachine, gppn: number, node: number): void {
  const counters = monitor.timingModel!.counters;
  const mpn = vm.pmap.lookup(gppn);
  counters.resetPage(mpn);
  for (let k = 0; k < HOT; k++) counters.recordPage(mpn, node);
}

function nodeOf(monitor: Monitor, vm: VirtualMachine, gppn: number): number {
  return monitor.memory.nodeOf(vm.pmap.lookup(gppn));
}

test('each cell decides for the hot pages on its own nodes and keeps their records; after a cell fails its policy state throws, and the other cell goes on migrating', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, hardware, vms: [a, b], runs } = scene({}, { name: 'a', memoryBytes: 16 * MiB, cell: 0, homeNode: 0 }, { name: 'b', memoryBytes: 16 * MiB, cell: 1, homeNode: 2 });
  const policy = monitor.policy!;
  const fill = (vm: VirtualMachine): number[] => counterPages(runs.get(vm)!).fill;
  const code = counterPages(runs.get(b!)!).code[0]!;
  // a's first fill page (on node 0) hot from node 1 moves there, within cell 0; b's code (on node 2), read as
  // much from node 3, is copied there, within cell 1, and stays.
  heat(monitor, a!, fill(a!)[0]!, 1);
  heat(monitor, b!, code, 2);
  for (let k = 0; k < HOT; k++) monitor.timingModel!.counters.recordPage(b!.pmap.lookup(code), 3);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(nodeOf(monitor, a!, fill(a!)[0]!), 1);
  assert.deepEqual([nodeOf(monitor, b!, code), monitor.memory.nodeOf(b!.pmap.replicasOf(code)![3]!)], [2, 3]);
  // Each cell's state holds the records of its own VM's pages, and only those.
  assert.deepEqual([policy.cell(0).vmsRecorded(), policy.cell(1).vmsRecorded()], [[a!.id], [b!.id]]);
  const lostPage = b!.pmap.lookup(code);

  // Cell 1's monitor node fails: cell 1 fails with b, and its policy state with it.
  hardware.injector.inject({ kind: 'node', node: 2 });
  // While the cells recover no cell acts (cell 1's state is not revoked until the survivors decide): a page
  // made hot meanwhile waits in the queue.
  runRoundsUntil(monitor, () => monitor.recovery.paused, 10);
  heat(monitor, a!, fill(a!)[2]!, 1);
  runRoundsUntil(monitor, () => false, 2);
  assert.ok(monitor.recovery.paused, 'the recovery ended too soon to tell');
  assert.equal(nodeOf(monitor, a!, fill(a!)[2]!), 0, 'a page moved while the cells recovered');
  const cellular = monitor.recovery.cellular!;
  runRoundsUntil(monitor, () => cellular.episodes.length > 0 && !monitor.recovery.paused, 200);
  assert.equal(nodeOf(monitor, a!, fill(a!)[2]!), 1, 'the page made hot during the recovery was dropped');
  assert.deepEqual([a!.state, b!.state], ['running', 'stopped']);
  assert.throws(() => policy.cell(1).vmsRecorded(), DeadCellError);
  assert.throws(() => policy.cell(1).saveState(), DeadCellError);
  assert.deepEqual(policy.cell(0).vmsRecorded(), [a!.id]);

  // A page on the failed cell's nodes that still gets hot is left (no cell to decide, and nothing throws); cell 0
  // goes on migrating a's pages.
  const migrated = policy.counts.migratedTo.slice();
  const left = policy.counts.leftOther;
  monitor.timingModel!.counters.resetPage(lostPage);
  for (let k = 0; k < HOT; k++) monitor.timingModel!.counters.recordPage(lostPage, 3);
  heat(monitor, a!, fill(a!)[1]!, 1);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(nodeOf(monitor, a!, fill(a!)[1]!), 1, 'cell 0 stopped migrating once cell 1 failed');
  assert.equal(policy.counts.migratedTo[1], migrated[1]! + 1);
  assert.equal(policy.counts.leftOther, left + 1, 'the hot page on the failed cell\'s node');
  runRoundsUntil(monitor, () => counterDone(a!, runs.get(a!)!), 20_000);
  assertCounted(a!, runs.get(a!)!);
});

test('a spanning VM\'s page moved to another cell\'s node takes its record along: frozen there, it stays, after a whole restore too', (t) => {
  if (!requireToolchain(t)) return;
  // w, 80 MiB, fits in neither cell's 64: it spans both, at home on node 0.
  const { monitor, vms: [w], runs } = scene({ moveLimit: 1, freezeIntervals: 1000 }, { name: 'w', memoryBytes: 80 * MiB, homeNode: 0 });
  assert.deepEqual(w!.cells, [0, 1]);
  const policy = monitor.policy!;
  const gppn = counterPages(runs.get(w!)!).fill[0]!;
  assert.equal(nodeOf(monitor, w!, gppn), 0);
  const asked = monitor.recovery.cellular!.lends.asked;
  // Hot from node 2: cell 0 moves it there, on memory cell 1 lends (memory.lend over the bus).
  heat(monitor, w!, gppn, 2);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(nodeOf(monitor, w!, gppn), 2);
  assert.ok(monitor.recovery.cellular!.lends.asked > asked, 'no memory lent by cell 1');
  // Its one move (moveLimit 1) froze it; the record is cell 1's now, which holds the page.
  assert.deepEqual([policy.cell(0).vmsRecorded(), policy.cell(1).vmsRecorded()], [[], [w!.id]]);
  // A whole snapshot keeps each cell's records where they are.
  const copy = restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(monitor, noBuild)), {}, () => ({ console: quiet })).monitor;
  assert.deepEqual(copy.policy!.saveState(), policy.saveState());
  // Hot from node 0 now, here and in the copy: cell 1 decides, and the page is frozen.
  for (const m of [monitor, copy]) {
    const v = m.vm('w')!;
    const frozen = m.policy!.counts.leftFrozen;
    heat(m, v, gppn, 0);
    runRoundsUntil(m, () => false, 1);
    assert.equal(nodeOf(m, v, gppn), 2, 'the frozen page moved back: its record stayed in cell 0');
    assert.equal(m.policy!.counts.leftFrozen, frozen + 1);
  }
  runRoundsUntil(monitor, () => counterDone(w!, runs.get(w!)!), 20_000);
  assertCounted(w!, runs.get(w!)!);
});

test('a spanning VM\'s group scattered on a node of cell 1 is made one block again by cell 1, which keeps its record', (t) => {
  if (!requireToolchain(t)) return;
  // w spans both cells from its home, node 2, where its 2 MiB group 3 (which the counter program never touches)
  // is one block once written whole.
  const { monitor, vms: [w], runs } = scene({ coalescePages: 16, intervalRounds: 4 }, { name: 'w', memoryBytes: 80 * MiB, homeNode: 2 });
  assert.deepEqual(w!.cells, [0, 1]);
  const group = 3;
  const memory = w!.machine.bus.guestMemory();
  for (let k = 0; k < BLOCK_PAGES; k++) memory.writeU32(TEXT_BASE + (group * BLOCK_PAGES + k) * PAGE + 8, k + 1);
  assert.ok(w!.pmap.largeBlock(group) >= 0);
  assert.equal(monitor.memory.nodeOf(w!.pmap.blockOf(group)), 2);
  // One page goes to node 3 and comes back: the group is scattered, every page on node 2.
  w!.pmap.migrate(group * BLOCK_PAGES + 17, 3);
  w!.pmap.migrate(group * BLOCK_PAGES + 17, 2);
  assert.ok(w!.pmap.largeBlock(group) < 0 && w!.pmap.scatteredOnOneNode(group));
  // Pages of the group in use lately (twice each: the interval's end halves the counts before the sweep).
  const counters = monitor.timingModel!.counters;
  for (let k = 0; k < 32; k++) for (let i = 0; i < 2; i++) counters.recordPage(w!.pmap.lookup(group * BLOCK_PAGES + k * 16), 2);
  runRoundsUntil(monitor, () => false, 4);
  assert.ok(w!.pmap.largeBlock(group) >= 0, 'the group was not made one block again');
  assert.equal(monitor.memory.nodeOf(w!.pmap.blockOf(group)), 2);
  assert.deepEqual(monitor.policy!.large.counts.coalescedOn, [0, 0, 1, 0]);
  // Cell 1 swept it: the group's record is its own, none of cell 0's.
  assert.deepEqual([monitor.policy!.cell(0).vmsRecorded(), monitor.policy!.cell(1).vmsRecorded()], [[], [w!.id]]);
  for (let k = 0; k < BLOCK_PAGES; k++) assert.equal(memory.readU32(TEXT_BASE + (group * BLOCK_PAGES + k) * PAGE + 8), k + 1);
  runRoundsUntil(monitor, () => counterDone(w!, runs.get(w!)!), 20_000);
  assertCounted(w!, runs.get(w!)!);
});

test('a policy turned on after a cell failed acts in the cells that live; the failed cell has no policy state', (t) => {
  if (!requireToolchain(t)) return;
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const monitor = new Monitor({ config, hardware, cells: [[0, 1], [2, 3]], timing: { latencies: latenciesFromDistances(config.distances!) } });
  const a = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet, cell: 0, homeNode: 0 });
  const run = startCounter(a, { iterations: 30_000, fillPages: 4, poweroff: false });
  monitor.setExecutionMode('timing');
  runRoundsUntil(monitor, () => false, 20);
  hardware.injector.inject({ kind: 'node', node: 2 });
  runRoundsUntil(monitor, () => monitor.recovery.cellular!.episodes.length > 0 && !monitor.recovery.paused, 200);
  monitor.setPolicy({ ...DEFAULT_POLICY, hotMisses: HOT, sharedHotMisses: 0, replicateGroupPages: 0 });
  const gppn = counterPages(run).fill[0]!;
  heat(monitor, a, gppn, 1);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(nodeOf(monitor, a, gppn), 1);
  assert.deepEqual(monitor.policy!.cell(0).vmsRecorded(), [a.id]);
  assert.throws(() => monitor.policy!.cell(1).vmsRecorded(), DeadCellError);
  runRoundsUntil(monitor, () => counterDone(a, run), 20_000);
  assertCounted(a, run);
});

test('a cell that rejoins after a repair gets its policy state afresh: the policy decides there again, its old state still throws', (t) => {
  if (!requireToolchain(t)) return;
  const { monitor, hardware, vms: [a, b], runs } = scene({}, { name: 'a', memoryBytes: 16 * MiB, cell: 0, homeNode: 0 }, { name: 'b', memoryBytes: 16 * MiB, cell: 1, homeNode: 2 });
  const policy = monitor.policy!;
  const cellular = monitor.recovery.cellular!;
  const old = policy.cell(1);
  hardware.injector.inject({ kind: 'node', node: 2 });
  runRoundsUntil(monitor, () => cellular.episodes.length > 0 && !monitor.recovery.paused, 200);
  assert.equal(b!.state, 'stopped');
  hardware.state.repair();
  runRoundsUntil(monitor, () => cellular.episodes.length > 1 && !monitor.recovery.paused, 200);
  assert.equal(monitor.cells.cells[1]!.failure, undefined, 'cell 1 rejoined');
  assert.throws(() => old.vmsRecorded(), DeadCellError);
  assert.deepEqual(policy.cell(1).vmsRecorded(), [], 'a new, empty state');
  // A new VM in cell 1: its first fill page (on node 2), hot from node 3, moves there within cell 1.
  const c = monitor.createVm({ name: 'c', vcpus: 2, console: quiet, memoryBytes: 16 * MiB, cell: 1, homeNode: 2 });
  runs.set(c, startCounter(c, { iterations: 30_000, fillPages: 4, poweroff: false }));
  runRoundsUntil(monitor, () => false, 20);
  const page = counterPages(runs.get(c)!).fill[0]!;
  assert.equal(nodeOf(monitor, c, page), 2);
  heat(monitor, c, page, 3);
  runRoundsUntil(monitor, () => false, 1);
  assert.equal(nodeOf(monitor, c, page), 3);
  assert.deepEqual(policy.cell(1).vmsRecorded(), [c.id]);
  runRoundsUntil(monitor, () => counterDone(c, runs.get(c)!) && counterDone(a!, runs.get(a!)!), 40_000);
  assertCounted(c, runs.get(c)!);
  assertCounted(a!, runs.get(a!)!);
});

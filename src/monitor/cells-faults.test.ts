// Fault containment by cell (docs/cells.md), with bare S-mode programs in VMs (test/helpers/vm-program.ts): a
// VM confined to one cell counts on exactly through any fault confined to the other; a cell whose monitor node
// is lost fails whole, with every VM that depended on it, a spanning VM included; node 0's cell failing leaves
// the others, with the next cell primary; the machine fails only when every cell has. The NUMA policy keeps a
// confined VM's pages in its cell.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import type { Fault } from '../board/faults.js';
import { MachineHardware } from '../board/hardware.js';
import { latenciesFromDistances } from '../board/topology.js';
import { requireToolchain } from '../../test/helpers/asm.js';
import {
  assertCounted, meshMachine, monitorMachine, counterDone, counterPages, runRoundsUntil, startCounter, type CounterRun, finishCounting, recoverCells,
} from '../../test/helpers/vm-program.js';
import { FREE } from './machine-memory.js';
import { Monitor, MonitorError } from './monitor.js';
import { cellMigrationCycles } from './cell-scheduler.js';
import { DEFAULT_HANDLER_CYCLES, DEFAULT_LATENCY } from './cell-bus.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, restoreWhole } from '../host/monitor-snapshot.js';
import { DEFAULT_POLICY } from './numa-policy.js';
import type { VirtualMachine } from './vm.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });
const ITERATIONS = 60_000;

interface Scene {
  monitor: Monitor;
  hardware: MachineHardware;
  /** a: confined to cell 0, at home on node 1; b: confined to cell 1, at home on node 3; w: spans both. */
  a: VirtualMachine;
  b: VirtualMachine;
  w: VirtualMachine;
  runs: Map<VirtualMachine, CounterRun>;
  log: string[];
}

function scene(rounds: number): Scene {
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const log: string[] = [];
  const monitor = new Monitor({ config, hardware, cells: [[0, 1], [2, 3]], log: (m) => log.push(m) });
  const a = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, homeNode: 1 });
  const b = monitor.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, homeNode: 3 });
  // 56 MiB fits in neither cell's 48 MiB left: it spans, at home on node 0.
  const w = monitor.createVm({ name: 'w', vcpus: 1, memoryBytes: 56 * MiB, console: quiet });
  assert.deepEqual([a.cells, b.cells, w.cells, w.pmap.homeNode], [[0], [1], [0, 1], 0]);
  const runs = new Map([a, b, w].map((vm) => [vm, startCounter(vm, { iterations: ITERATIONS, fillPages: 4, poweroff: false })]));
  runRoundsUntil(monitor, () => false, rounds);
  assert.ok([a, b, w].every((vm) => vm.state === 'running' && !counterDone(vm, runs.get(vm)!)), 'the VMs are mid-count when the fault comes');
  return { monitor, hardware, a, b, w, runs, log };
}

/** Runs rounds until the cells' recovery that began after now has ended (it takes simulated time: cell-recovery.ts). */
function recover(s: Scene): void {
  recoverCells(s.monitor, 200);
}

/** Runs until every running VM has finished counting; each must have counted exactly. */
function finish(s: Scene): void {
  finishCounting(s.monitor, s.runs, 20_000);
}

test('cell 1\'s monitor node fails: cell 1 fails whole, its VM and the spanning VM end saying why; cell 0\'s VM counts on exactly', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  recover(s);
  const why = 'hardware fault: cell 1 failed: node 2, which held its monitor state, failed';
  assert.deepEqual([s.b.state, s.b.reason], ['stopped', why]);
  assert.deepEqual([s.w.state, s.w.reason], ['stopped', why]);
  assert.equal(s.a.state, 'running');
  assert.equal(s.monitor.machineFailure, undefined);
  assert.ok(s.log.includes('hardware: cell 1 failed: node 2, which held its monitor state, failed'), s.log.join('\n'));
  assert.ok(s.log.includes('hardware: cell 1 failed; the monitor goes on with nodes 0, 1 (cell 0)'), s.log.join('\n'));
  // The whole cell is given up: node 3 too, which did not fail, and both CPUs.
  assert.deepEqual([...s.monitor.recovery.lostNodes].sort(), [2, 3]);
  assert.deepEqual([...s.monitor.recovery.lostCpus].sort(), [2, 3]);
  assert.equal(s.monitor.memory.pagesFree(3), 0);
  finish(s);
  assert.equal(s.a.state, 'running');
  assert.throws(() => s.monitor.createVm({ name: 'd', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 1 }),
    (e: unknown) => e instanceof MonitorError && e.message === 'VM d: cell 1 has failed (node 2, which held its monitor state, failed)');
  assert.deepEqual(s.monitor.createVm({ name: 'd', vcpus: 1, memoryBytes: 16 * MiB, console: quiet }).cells, [0]);
});

test('any fault confined to cell 1 leaves the VM confined to cell 0 counting exactly', (t) => {
  if (!requireToolchain(t)) return;
  const faults: { fault: (s: Scene) => Fault; b: RegExp; w: RegExp | 'running' }[] = [
    { fault: () => ({ kind: 'node', node: 2 }), b: /cell 1 failed/, w: /cell 1 failed/ },
    // A node of cell 1 that is not its monitor node: as before cells, only what depended on that node ends.
    { fault: () => ({ kind: 'node', node: 3 }), b: /^hardware fault: node 3 failed: .*its home node 3 held/, w: 'running' },
    { fault: () => ({ kind: 'router', node: 3 }), b: /^hardware fault: node 3 cut off from node 0 by a partition: /, w: 'running' },
    // Cut off from the primary cell's monitor node (0), cell 1's monitor node takes the cell with it.
    { fault: () => ({ kind: 'router', node: 2 }), b: /^hardware fault: cell 1 failed: node 2, which held its monitor state, was cut off from node 0 by a partition$/, w: /cell 1 failed/ },
    { fault: (s) => ({ kind: 'page', address: s.monitor.memory.addressOf(s.b.pmap.lookup(counterPages(s.runs.get(s.b)!).data[1]!)) }), b: /poisoned/, w: 'running' },
  ];
  for (const f of faults) {
    const s = scene(40);
    const fault = f.fault(s);
    s.hardware.injector.inject(fault);
    recover(s);
    const what = JSON.stringify(fault);
    assert.equal(s.b.state, 'stopped', what);
    assert.match(s.b.reason, f.b, what);
    if (f.w === 'running') assert.equal(s.w.state, 'running', `${what}: ${s.w.reason}`);
    else assert.match(s.w.reason, f.w, what);
    finish(s);
    assert.equal(s.a.state, 'running', `${what}: ${s.a.reason}`);
    assert.equal(s.monitor.machineFailure, undefined);
  }
});

test('a cell whose CPUs have all stopped fails: its VMs cannot run anywhere else', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  // With no CPU left, cell 1 answers no message: the survivors' decision leaves it out, and its state (its run
  // queues among it) is revoked before any cleanup, so by the time its VMs leave the scheduler it is unreachable.
  const objects = s.monitor.recovery.cellular!.objects;
  const revokedAtRemoval: boolean[] = [];
  const removeVm = s.monitor.scheduler.removeVm.bind(s.monitor.scheduler);
  s.monitor.scheduler.removeVm = (vm) => {
    revokedAtRemoval.push(objects.isRevoked(1));
    removeVm(vm);
  };
  s.hardware.injector.inject({ kind: 'cpu', cpu: 2 });
  s.hardware.injector.inject({ kind: 'cpu', cpu: 3 });
  recover(s);
  assert.equal(s.b.state, 'stopped');
  assert.equal(s.monitor.cells.cells[1]!.failure, 'no CPU is left in it');
  assert.deepEqual(revokedAtRemoval, [true, true], 'b and the spanning w left the scheduler after cell 1 was revoked');
  finish(s);
  assert.equal(s.a.state, 'running');
});

test('node 0 fails: cell 0 fails, the spanning VM with it; cell 1 goes on as the primary, and judges partitions from node 2', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  s.hardware.injector.inject({ kind: 'node', node: 0 });
  recover(s);
  const why = 'hardware fault: cell 0 failed: node 0, which held its monitor state, failed';
  assert.deepEqual([s.a.reason, s.w.reason], [why, why]);
  assert.equal(s.b.state, 'running');
  assert.equal(s.monitor.machineFailure, undefined);
  assert.equal(s.monitor.cells.primary?.id, 1);
  runRoundsUntil(s.monitor, () => false, 20);
  // Node 3's router fails: node 3 is cut off from node 2, cell 1's monitor node, and b (at home there) ends.
  s.hardware.injector.inject({ kind: 'router', node: 3 });
  recover(s);
  assert.match(s.b.reason, /^hardware fault: node 3 cut off from node 2 by a partition: /);
});

test('the machine fails only when every cell has failed', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(10);
  s.hardware.injector.inject({ kind: 'node', node: 0 });
  recover(s);
  assert.equal(s.monitor.machineFailure, undefined);
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  recover(s);
  assert.equal(s.monitor.machineFailure, 'cell 1 failed (node 2, which held its monitor state, failed): every cell has failed');
  assert.equal(s.b.reason, 'hardware fault: cell 1 failed: node 2, which held its monitor state, failed');
  assert.equal(s.monitor.running, false);
  assert.throws(() => s.monitor.createVm({ name: 'd', vcpus: 1, memoryBytes: 16 * MiB, console: quiet }), /the machine failed/);
});

test('the NUMA policy keeps a confined VM in its cell: its vCPUs\' pages move within it, and misses from another cell move nothing out', (t) => {
  if (!requireToolchain(t)) return;
  const config = meshMachine();
  const monitor = new Monitor({
    config, cells: 2, timing: { latencies: latenciesFromDistances(config.distances!) },
    policy: { ...DEFAULT_POLICY, sharedHotMisses: 0, hotMisses: 4, replicateGroupPages: 0 },
  });
  const vm = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet, cell: 1 });
  assert.equal(vm.pmap.homeNode, 2);
  const run = startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false });
  monitor.setExecutionMode('timing');
  const counters = monitor.timingModel!.counters;
  const pages = counterPages(run);
  let rounds = 0;
  runRoundsUntil(monitor, () => {
    // Node 0, of the other cell, misses on the VM's code and data, more than enough to move them there.
    if (rounds++ % 8 === 0) for (const g of [...pages.code, ...pages.data]) for (let k = 0; k < 8; k++) counters.recordPage(vm.pmap.lookup(g), 0);
    return counterDone(vm, run);
  }, 4000);
  assertCounted(vm, run);
  const policy = monitor.policy!;
  assert.equal(policy.counts.migratedTo[0]! + policy.counts.migratedTo[1]!, 0, 'nothing moved to cell 0');
  assert.ok(policy.counts.migratedTo[3]! > 0, `the vCPU on node 3 drew its pages there: ${policy.counts.migratedTo.join(', ')}`);
  for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
    const mpn = vm.pmap.lookup(gppn);
    if (mpn !== FREE) assert.ok(monitor.memory.nodeOf(mpn) >= 2, `guest page ${gppn} on node ${monitor.memory.nodeOf(mpn)}`);
    for (const [node, r] of (vm.pmap.replicasOf(gppn) ?? []).entries()) assert.ok(r === FREE || node >= 2, `a replica of ${gppn} on node ${node}`);
  }
});

test('each cell schedules its own CPUs: a confined VM\'s vCPUs run only there, a spanning VM\'s dealt over its cells from its home\'s; all count exactly', (t) => {
  if (!requireToolchain(t)) return;
  const config = meshMachine();
  const layout = layoutMachine(config);
  const monitor = new Monitor({ config, cells: [[0, 1], [2, 3]] });
  const a = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet, homeNode: 1 });
  const w = monitor.createVm({ name: 'w', vcpus: 4, memoryBytes: 56 * MiB, console: quiet, homeNode: 2 });
  assert.deepEqual([a.cells, w.cells], [[0], [0, 1]]);
  const runs = new Map([a, w].map((vm) => [vm, startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false })]));
  const cellOfCpu = (cpu: number): number => (layout.hartNode[cpu]! < 2 ? 0 : 1);
  const seen = new Set<string>();
  runRoundsUntil(monitor, () => {
    for (let cpu = 0; cpu < layout.harts; cpu++) {
      const v = monitor.scheduler.lastOn(cpu);
      if (v === undefined) continue;
      const vm = v.vm === a.id ? a : w;
      // w is at home on node 2, in cell 1: its vCPUs 0 and 2 there, 1 and 3 in cell 0.
      assert.equal(cellOfCpu(cpu), vm === a ? 0 : (1 + v.index) % 2, `${vm.name}'s vCPU ${v.index} on CPU ${cpu}`);
      seen.add(`${vm.name}.${v.index}`);
    }
    return [a, w].every((vm) => counterDone(vm, runs.get(vm)!));
  }, 20_000);
  for (const vm of [a, w]) assertCounted(vm, runs.get(vm)!);
  assert.equal(seen.size, 6, 'every vCPU ran');
});

test('the idle balancer: vCPUs waiting in cell 0 move to idle cell 1, their VMs depend on it (and end with it), the moves are paid, a whole snapshot keeps it all, and the counts are exact', (t) => {
  if (!requireToolchain(t)) return;
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const monitor = new Monitor({ config, hardware, cells: [[0, 1], [2, 3]], idleBalance: true });
  // Four vCPUs confined to cell 0's two CPUs; cell 1 has nothing to run.
  const a = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: quiet, cell: 0 });
  const b = monitor.createVm({ name: 'b', vcpus: 2, memoryBytes: 16 * MiB, console: quiet, cell: 0 });
  const runs = new Map([a, b].map((vm) => [vm, startCounter(vm, { iterations: 20_000, fillPages: 2, poweroff: false })]));
  runRoundsUntil(monitor, () => false, 3);
  const moved = [a, b].flatMap((vm) => vm.vcpus.map((_, i) => ({ vm, i, n: monitor.vcpuRecord(vm, i).cellMigrations }))).filter((x) => x.n > 0);
  assert.equal(moved.length, 2, 'two vCPUs moved');
  for (const { vm } of moved) assert.deepEqual(vm.cells, [0, 1], `${vm.name} depends on cell 1 now`);
  assert.equal(monitor.scheduler.migrated, 2);
  // Paid as the vCPU's monitor work: at least the move's cost each.
  for (const { vm, i } of moved) assert.ok(vm.vcpus[i]!.monitorCycles.reduce((x, y) => x + y, 0) >= cellMigrationCycles(vm.tables.secondLevelEntries));
  // A whole snapshot keeps where each vCPU is scheduled and what each VM depends on: the copy goes on the same.
  const copy = restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(monitor, noBuild)), {}, () => ({ console: quiet })).monitor;
  assert.deepEqual(copy.vms.map((vm) => [...vm.cells]), [a, b].map((vm) => [...vm.cells]));
  runRoundsUntil(monitor, () => false, 300);
  runRoundsUntil(copy, () => false, 300);
  const trace = (m: Monitor): number[] => m.vms.flatMap((vm) => vm.vcpus.flatMap((h, i) => [h.instret, h.localCycles, m.vcpuRecord(vm, i).worldSwitches]));
  assert.deepEqual(trace(copy), trace(monitor));
  runRoundsUntil(monitor, () => [a, b].every((vm) => counterDone(vm, runs.get(vm)!)), 20_000);
  for (const vm of [a, b]) assertCounted(vm, runs.get(vm)!);
  // Cell 1's monitor node fails: every VM that moved a vCPU there ends with it.
  hardware.injector.inject({ kind: 'node', node: 2 });
  runRoundsUntil(monitor, () => monitor.recovery.cellular!.episodes.length > 0 && !monitor.recovery.paused, 200);
  for (const vm of [a, b]) assert.equal(vm.state, moved.some((x) => x.vm === vm) ? 'stopped' : 'running', vm.name);
});

test('a vCPU a balancer moved to another cell counts that move once, as a move to a cell, not also as a move to a node', (t) => {
  if (!requireToolchain(t)) return;
  // Two cells of one node of two CPUs each: within a cell every move stays in its node. Four VMs of one vCPU
  // take turns on cell 0's CPUs (a quantum of 2 rounds), so by the periodic balancer's first run every one
  // has run there; it then moves two of them to cell 1, one a period.
  const monitor = new Monitor({ config: monitorMachine(2, 96, 2), cells: 2, quantumRounds: 2, balancePeriodRounds: 8 });
  const vms = ['a', 'b', 'c', 'd'].map((name) => monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 0 }));
  const runs = vms.map((vm) => startCounter(vm, { iterations: 5_000, fillPages: 1, poweroff: false }));
  runRoundsUntil(monitor, () => vms.every((vm, i) => counterDone(vm, runs[i]!)), 20_000);
  vms.forEach((vm, i) => assertCounted(vm, runs[i]!));
  const records = vms.map((vm) => monitor.vcpuRecord(vm, 0));
  assert.equal(monitor.scheduler.migrated, 2);
  assert.equal(records.reduce((n, r) => n + r.cellMigrations, 0), 2);
  // Each paid its handoff (the bus's round trip) and its copies.
  assert.equal(records.reduce((n, r) => n + r.cellMoveCycles, 0), 2 * cellMigrationCycles(2048, 2 * DEFAULT_LATENCY + DEFAULT_HANDLER_CYCLES));
  assert.equal(records.reduce((n, r) => n + r.nodeMoves, 0), 0);
});

// Repair (docs/cells.md, "Repair"): after a fault and its recovery, the hardware's failed parts are replaced
// and the monitor takes them back. A failed cell rejoins through the survivors' agreement, with its state made
// afresh (its old state, its nodes' page allocators included, stays unreachable); the nodes and CPUs given up
// come back, their free pages zeroed (a node given up with its cell but not replaced keeps what was written);
// new VMs run there and count exactly while the VMs that lived through it all count on; and a second fault is
// contained as the first was.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { requireToolchain } from '../../test/helpers/asm.js';
import {
  meshMachine, counterDone, runRoundsUntil, startCounter, type CounterRun, finishCounting, recoverCells,
} from '../../test/helpers/vm-program.js';
import { runMonitor } from '../host/monitor-runner.js';
import type { NodePool } from './machine-memory.js';
import { Monitor } from './monitor.js';
import { DeadCellError } from './revocable.js';
import type { VirtualMachine } from './vm.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
const ITERATIONS = 60_000;

interface Scene {
  monitor: Monitor;
  hardware: MachineHardware;
  runs: Map<VirtualMachine, CounterRun>;
  log: string[];
}

/** The 2×2 mesh, in `cells` (or one cell), with nothing running yet. */
function machine(cells?: number[][]): Scene {
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const log: string[] = [];
  const monitor = new Monitor({ config, hardware, cells, log: (m) => log.push(m) });
  return { monitor, hardware, runs: new Map(), log };
}

/** A VM counting (poweroff: false, so it runs on until ended). */
function counting(s: Scene, name: string, options: { homeNode?: number; memoryBytes?: number } = {}): VirtualMachine {
  const vm = s.monitor.createVm({ name, vcpus: 1, memoryBytes: options.memoryBytes ?? 16 * MiB, console: quiet, homeNode: options.homeNode });
  s.runs.set(vm, startCounter(vm, { iterations: ITERATIONS, fillPages: 4, poweroff: false }));
  return vm;
}

/** Runs rounds until the cells' recovery that began after now has ended (it takes simulated time: cell-recovery.ts). */
function recover(s: Scene): void {
  recoverCells(s.monitor, 400);
}

/** Runs until every running VM has finished counting; each must have counted exactly. */
function finish(s: Scene): void {
  finishCounting(s.monitor, s.runs, 40_000);
}

test('a failed cell is repaired and rejoins: its nodes and CPUs come back, a new VM counts there, the survivor never stopped', (t) => {
  if (!requireToolchain(t)) return;
  const s = machine([[0, 1], [2, 3]]);
  const a = counting(s, 'a', { homeNode: 1 });
  const b = counting(s, 'b', { homeNode: 3 });
  runRoundsUntil(s.monitor, () => false, 40);
  const cellular = s.monitor.recovery.cellular!;
  const oldState = cellular.stateOf(1);
  // Each node's page allocator is its cell's state (reached inside here on purpose, as careless code would).
  const pools = (s.monitor.memory as unknown as { pools: NodePool[] }).pools;
  const oldPool = pools[3]!;
  assert.ok(oldPool.used > 0, 'b\'s pages are counted in node 3\'s pool');
  // Each cell translates its VMs' code into a registry of its own.
  const oldDomain = b.pmap.domain;
  const bPage = b.pmap.lookup(0);
  assert.deepEqual([s.monitor.memory.nodeOf(bPage), s.monitor.memory.usersOf(bPage)], [3, [{ vm: b.id, gppn: 0 }]]);
  assert.notEqual(a.pmap.domain, oldDomain);
  assert.notEqual(a.pmap.domain, s.monitor.memory.domain);
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  recover(s);
  assert.equal(b.state, 'stopped');
  assert.deepEqual([...s.monitor.recovery.lostNodes].sort(), [2, 3]);
  assert.throws(() => oldState.vms.size, DeadCellError);
  assert.throws(() => pools[3]!.used, DeadCellError, 'node 3\'s allocator died with cell 1');
  assert.throws(() => s.monitor.memory.usersOf(bPage), DeadCellError, 'and so did its part of the memmap');
  assert.deepEqual([s.monitor.memory.pagesInUse(3), s.monitor.memory.pagesFree(3), s.monitor.memory.pagesLost(3)], [0, 0, s.monitor.memory.nodeSpan(3).pages]);

  s.hardware.state.repair();
  recover(s);
  const episode = cellular.episodes[cellular.episodes.length - 1]!;
  assert.deepEqual(episode.live, [0, 1], 'the agreement took cell 1 in');
  assert.deepEqual(episode.vmsEnded, [], 'a repair ends no VM');
  assert.deepEqual([episode.joined, episode.cleanup], [[1], 0], 'a rejoin checks nothing: nothing failed');
  assert.ok(s.log.some((l) => l.startsWith('hardware: cell 1 rejoined in ')), s.log.join('\n'));
  assert.equal(s.monitor.cells.cells[1]!.failure, undefined);
  assert.deepEqual([...s.monitor.recovery.lostNodes], []);
  assert.deepEqual([...s.monitor.recovery.lostCpus], []);
  assert.ok(s.monitor.memory.pagesFree(2) > 0 && s.monitor.memory.pagesFree(3) > 0, 'its memory is free again');
  assert.ok(s.log.includes('hardware: cell 1 rejoins (it had failed: node 2, which held its monitor state, failed)'), s.log.join('\n'));
  assert.ok(s.log.some((l) => l.startsWith('hardware: repaired nodes 2, 3, CPUs 2, 3 taken back; the monitor goes on with nodes 0, 1, 2, 3 (cells 0, 1)')), s.log.join('\n'));
  assert.throws(() => oldState.vms.size, DeadCellError, 'the old generation of its state stays unreachable');
  assert.throws(() => oldPool.used, DeadCellError);
  assert.equal(pools[3]!.used, 0, 'a new allocator, made from the memmap');
  assert.deepEqual(s.monitor.memory.usersOf(bPage), [], 'a new part of the memmap: b\'s page is free');
  assert.equal(cellular.stateOf(1).vms.size, 0, 'its new state starts empty');

  // A replacement placed in the rejoined cell runs on its CPUs and counts exactly, beside the survivor.
  const c = counting(s, 'c', { homeNode: 3 });
  assert.deepEqual(c.cells, [1]);
  assert.notEqual(c.pmap.domain, oldDomain, 'the rejoined cell has a new registry of translated code');
  assert.ok(cellular.stateOf(1).vms.has(c.id));
  const cpus = new Set<number>();
  runRoundsUntil(s.monitor, () => {
    for (const cpu of [2, 3]) if (s.monitor.scheduler.lastOn(cpu)?.vm === c.id) cpus.add(cpu);
    return counterDone(c, s.runs.get(c)!);
  }, 40_000);
  assert.ok(cpus.size > 0, 'c ran on cell 1\'s CPUs');
  finish(s);
  assert.equal(a.state, 'running', a.reason);
  assert.equal(c.state, 'running', c.reason);

  // The same fault again is contained as the first was: c ends with cell 1, a counts on.
  const d = counting(s, 'd', { homeNode: 1 });
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  recover(s);
  assert.match(c.reason, /cell 1 failed: node 2/);
  finish(s);
  assert.equal(d.state, 'running', d.reason);
  assert.equal(a.state, 'running', a.reason);
});

test('cell 0 fails, the next cell is primary; repaired, cell 0 rejoins and partitions are judged from node 0 again', (t) => {
  if (!requireToolchain(t)) return;
  const s = machine([[0, 1], [2, 3]]);
  const b = counting(s, 'b', { homeNode: 3 });
  runRoundsUntil(s.monitor, () => false, 40);
  s.hardware.injector.inject({ kind: 'node', node: 0 });
  recover(s);
  assert.equal(s.monitor.cells.primary!.id, 1);
  s.hardware.state.repair();
  recover(s);
  assert.equal(s.monitor.cells.primary!.id, 0);
  const a = counting(s, 'a', { homeNode: 1 });
  runRoundsUntil(s.monitor, () => false, 40);
  // Node 3 cut off: the side with node 0 goes on, so only what depended on node 3 ends (b, at home there).
  s.hardware.injector.inject({ kind: 'router', node: 3 });
  recover(s);
  assert.match(b.reason, /node 3 cut off from node 0 by a partition/);
  assert.equal(s.monitor.cells.cells[1]!.failure, undefined, 'cell 1 (monitor node 2) goes on');
  finish(s);
  assert.equal(a.state, 'running', a.reason);
});

test('a repair read in the same recovery as its fault: the cell fails, then rejoins in an agreement of its own', (t) => {
  if (!requireToolchain(t)) return;
  const s = machine([[0, 1], [2, 3]]);
  const a = counting(s, 'a', { homeNode: 1 });
  const b = counting(s, 'b', { homeNode: 3 });
  runRoundsUntil(s.monitor, () => false, 40);
  const cellular = s.monitor.recovery.cellular!;
  const before = cellular.episodes.length;
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  runRoundsUntil(s.monitor, () => s.monitor.recovery.paused, 10);
  s.hardware.state.repair();
  runRoundsUntil(s.monitor, () => cellular.episodes.length >= before + 2 && !s.monitor.recovery.paused, 400);
  assert.equal(b.state, 'stopped', 'b lost its node\'s memory all the same');
  // The repaired cell answers the agreement, but its monitor state went with node 2's old memory: it fails in
  // the cleanup, and rejoins in the next episode.
  assert.deepEqual(cellular.episodes.slice(before).map((e) => [e.live, e.failedCells]), [[[0, 1], [1]], [[0, 1], []]]);
  assert.equal(s.monitor.cells.cells[1]!.failure, undefined);
  assert.deepEqual([...s.monitor.recovery.lostNodes], []);
  finish(s);
  assert.equal(a.state, 'running', a.reason);
});

test('one cell: a failed node and a stopped CPU are repaired and taken back; a VM at home there counts exactly', (t) => {
  if (!requireToolchain(t)) return;
  const s = machine();
  const a = counting(s, 'a', { homeNode: 0 });
  const b = counting(s, 'b', { homeNode: 2 });
  runRoundsUntil(s.monitor, () => false, 40);
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  s.hardware.injector.inject({ kind: 'cpu', cpu: 1 });
  runRoundsUntil(s.monitor, () => false, 2);
  assert.equal(b.state, 'stopped');
  assert.equal(s.monitor.memory.nodeLost(2), true);
  assert.ok(s.monitor.recovery.lostCpus.has(1));
  s.hardware.state.repair();
  runRoundsUntil(s.monitor, () => false, 2);
  assert.equal(s.monitor.memory.nodeLost(2), false);
  assert.deepEqual([...s.monitor.recovery.lostCpus], []);
  assert.ok(s.log.includes('hardware: repaired node 2, CPUs 1, 2 taken back; the monitor goes on with nodes 0, 1, 2, 3'), s.log.join('\n'));
  const c = counting(s, 'c', { homeNode: 2 });
  assert.equal(c.pmap.homeNode, 2);
  assert.ok([a, c].every((vm) => vm.pmap.domain === s.monitor.memory.domain), 'one cell: one registry, as before cells');
  finish(s);
  assert.equal(a.state, 'running', a.reason);
  assert.equal(c.state, 'running', c.reason);
  // Its pages are on node 2 again.
  let onNode2 = 0;
  for (let gppn = 0; gppn < c.pmap.pages; gppn++) {
    const mpn = c.pmap.lookup(gppn);
    if (mpn >= 0 && s.monitor.memory.nodeOf(mpn) === 2) onNode2++;
  }
  assert.ok(onNode2 > 0);
});

test('a machine that failed stays failed after a repair', (t) => {
  if (!requireToolchain(t)) return;
  const s = machine();
  counting(s, 'a', { homeNode: 1 });
  runRoundsUntil(s.monitor, () => false, 10);
  s.hardware.injector.inject({ kind: 'node', node: 0 });
  runRoundsUntil(s.monitor, () => false, 2);
  assert.ok(s.monitor.machineFailure !== undefined);
  s.hardware.state.repair();
  runRoundsUntil(s.monitor, () => false, 2);
  assert.ok(s.monitor.machineFailure !== undefined);
  assert.throws(() => s.monitor.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet }), /the machine failed/);
});

test('while the cells recover, or a repair is unread, the machine is not idle: a runner held at idle lets time flow for them', async (t) => {
  if (!requireToolchain(t)) return;
  const s = machine([[0, 1], [2, 3]]);
  const a = counting(s, 'a', { homeNode: 1 });
  counting(s, 'b', { homeNode: 3 });
  finish(s);
  assert.equal(s.monitor.idle, true, 'both VMs wait in WFI');
  const cellular = s.monitor.recovery.cellular!;
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  s.monitor.runRound();
  assert.equal(s.monitor.recovery.paused, true, 'the fault applied and the recovery began');
  assert.equal(s.monitor.idle, false);
  let heldWhileRecovering = 0;
  let held = 0;
  await runMonitor(s.monitor, {
    pace: false,
    done: () => held > 0 && cellular.episodes.length > 0,
    idleHold: {
      waitingForHost: () => true,
      atIdle: () => {
        held++;
        if (s.monitor.recovery.paused) heldWhileRecovering++;
        return true;
      },
      whenReleased: () => Promise.resolve(),
    },
  });
  assert.equal(heldWhileRecovering, 0);
  assert.equal(cellular.episodes.length, 1, 'the recovery ran to its end with every VM idle');
  assert.equal(a.state, 'running');
  // A repair made between rounds, while every VM waits: its records are work the monitor has not done.
  assert.equal(s.monitor.idle, true);
  s.hardware.state.repair();
  assert.equal(s.monitor.idle, false, 'the repair\'s records are unread');
  held = 0;
  await runMonitor(s.monitor, {
    pace: false,
    done: () => held > 0 && cellular.episodes.length > 1,
    idleHold: {
      waitingForHost: () => true,
      atIdle: () => {
        held++;
        if (s.monitor.recovery.paused || s.monitor.recovery.unread) heldWhileRecovering++;
        return true;
      },
      whenReleased: () => Promise.resolve(),
    },
  });
  assert.equal(heldWhileRecovering, 0);
  assert.equal(s.monitor.cells.cells[1]!.failure, undefined, 'cell 1 rejoined with every VM idle');
});

test('three cells lost at once (node 0 cut off by its router): the VMs ending with one let go of pages in the others, and all come back', (t) => {
  if (!requireToolchain(t)) return;
  const s = machine([[0], [1], [2], [3]]);
  const a = counting(s, 'a', { homeNode: 0 });
  // 56 MiB fits in no 32 MiB cell: it spans every cell, with pages on several nodes.
  const w = counting(s, 'w', { homeNode: 1, memoryBytes: 56 * MiB });
  runRoundsUntil(s.monitor, () => false, 40);
  // Its pages spread over every node, as the faults campaign spreads its spanning VMs'.
  const nodes = new Set<number>();
  for (let gppn = 0; gppn < w.pmap.pages; gppn++) {
    if (w.pmap.lookup(gppn) < 0) continue;
    if (s.monitor.memory.nodeOf(w.pmap.lookup(gppn)) !== gppn % 4) w.pmap.migrate(gppn, gppn % 4);
    nodes.add(s.monitor.memory.nodeOf(w.pmap.lookup(gppn)));
  }
  assert.deepEqual([...nodes].sort(), [0, 1, 2, 3]);
  s.hardware.injector.inject({ kind: 'router', node: 0 });
  recover(s);
  // Cut off from node 0 (the primary's side), nodes 1 to 3 go: cells 1, 2 and 3 fail together.
  assert.deepEqual(s.monitor.cells.cells.map((c) => c.failure === undefined), [true, false, false, false]);
  assert.equal(w.state, 'stopped');
  s.hardware.state.repair();
  recover(s);
  assert.deepEqual(s.monitor.cells.cells.map((c) => c.failure), [undefined, undefined, undefined, undefined]);
  assert.deepEqual([...s.monitor.recovery.lostNodes], []);
  const w2 = counting(s, 'w', { homeNode: 1, memoryBytes: 56 * MiB });
  assert.equal(w2.pmap.domain, s.monitor.memory.domain, 'a spanning VM\'s code goes in the machine\'s registry');
  finish(s);
  assert.equal(a.state, 'running', a.reason);
  assert.equal(w2.state, 'running', w2.reason);
});

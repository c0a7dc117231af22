// The cells' recovery in simulated time (cell-recovery.ts), with bare S-mode counting programs in a VM per cell
// (test/helpers/vm-program.ts) on four one-CPU nodes in four cells: its time splits into detection,
// agreement and cleanup, the VMs pause meanwhile and count on exactly after; a second fault in the middle of a
// recovery is survived; and a failed cell's state is unreachable, to recovery as to anyone.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { requireToolchain } from '../../test/helpers/asm.js';
import {
  meshMachine, counterDone, runRoundsUntil, startCounter, type CounterRun, finishCounting,
} from '../../test/helpers/vm-program.js';
import { DEFAULT_RECOVERY_COSTS, type RecoveryEpisode } from './cell-recovery.js';
import { DEFAULT_TIMEOUT } from './cell-bus.js';
import { Monitor } from './monitor.js';
import { DeadCellError } from './revocable.js';
import type { VirtualMachine } from './vm.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

interface Scene {
  monitor: Monitor;
  hardware: MachineHardware;
  /** vms[c] is confined to cell c. */
  vms: VirtualMachine[];
  runs: Map<VirtualMachine, CounterRun>;
  log: string[];
}

function scene(): Scene {
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const log: string[] = [];
  const monitor = new Monitor({ config, hardware, cells: 4, log: (m) => log.push(m) });
  const vms = [0, 1, 2, 3].map((c) => monitor.createVm({ name: `v${c}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: c }));
  assert.deepEqual(vms.map((vm) => vm.cells), [[0], [1], [2], [3]]);
  const runs = new Map(vms.map((vm) => [vm, startCounter(vm, { iterations: 60_000, fillPages: 4, poweroff: false })]));
  runRoundsUntil(monitor, () => false, 30);
  assert.ok(vms.every((vm) => vm.state === 'running' && !counterDone(vm, runs.get(vm)!)), 'the VMs are mid-count when the fault comes');
  return { monitor, hardware, vms, runs, log };
}

/** Rounds until the running recovery has ended; its episode. */
function recover(s: Scene, max = 400): RecoveryEpisode {
  const cellular = s.monitor.recovery.cellular!;
  const before = cellular.episodes.length;
  runRoundsUntil(s.monitor, () => cellular.episodes.length > before && !s.monitor.recovery.paused, max);
  assert.equal(cellular.episodes.length, before + 1, 'one recovery ended');
  return cellular.episodes[before]!;
}

function finish(s: Scene): void {
  finishCounting(s.monitor, s.runs, 20_000);
}

test('a cell\'s failure: detection, agreement and cleanup in simulated time, the VMs paused meanwhile, then counting on exactly', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene();
  const v0 = s.vms[0]!;
  s.hardware.injector.inject({ kind: 'node', node: 3 });
  s.monitor.runRound();
  assert.equal(s.monitor.recovery.paused, true, 'the failure report started a recovery');
  const instret = v0.vcpus[0]!.instret;
  runRoundsUntil(s.monitor, () => false, 5);
  assert.equal(v0.vcpus[0]!.instret, instret, 'no vCPU runs while the cells recover');
  const e = recover(s);
  assert.deepEqual([e.live, e.failedCells, e.vmsEnded], [[0, 1, 2], [3], ['v3']]);
  assert.equal(e.detection, DEFAULT_RECOVERY_COSTS.notice);
  // The dead cell answers no probe: the coordinator waits a whole timeout before it decides without it.
  assert.ok(e.agreement >= DEFAULT_TIMEOUT && e.agreement < 2 * DEFAULT_TIMEOUT, `agreement ${e.agreement}`);
  // Each live cell checks the pages of its own VM (16 MiB: 4096 pages), in parallel; none ended a VM.
  assert.equal(e.cleanup, 4096 * DEFAULT_RECOVERY_COSTS.pageCheck);
  assert.equal(e.total, e.detection + e.agreement + e.cleanup);
  assert.equal(s.vms[3]!.reason, 'hardware fault: cell 3 failed: node 3, which held its monitor state, failed');
  assert.ok(s.log.some((line) => line.startsWith('hardware: recovery took ') && line.endsWith('cells 0, 1, 2 go on')), s.log.join('\n'));
  assert.ok(v0.vcpus[0]!.instret > instret || !s.monitor.recovery.paused);
  finish(s);
  assert.deepEqual(s.vms.map((vm) => vm.state), ['running', 'running', 'running', 'stopped']);
});

test('a second fault in the middle of recovery is survived: during the agreement, and during the cleanup', (t) => {
  if (!requireToolchain(t)) return;
  for (const when of ['agreement', 'cleanup'] as const) {
    const s = scene();
    s.hardware.injector.inject({ kind: 'node', node: 3 });
    s.monitor.runRound();
    const cellular = s.monitor.recovery.cellular!;
    // Into the agreement: a few rounds in, well before the timeout that ends it. Into the cleanup: once the
    // first decision is carried out (cell 3 failed) and before the cells resume.
    if (when === 'agreement') runRoundsUntil(s.monitor, () => false, 4);
    else runRoundsUntil(s.monitor, () => s.monitor.cells.cells[3]!.failure !== undefined, 200);
    assert.equal(s.monitor.recovery.paused, true, `${when}: still recovering`);
    assert.equal(cellular.episodes.length, 0);
    s.hardware.injector.inject({ kind: 'node', node: 2 });
    const e = recover(s);
    assert.deepEqual([e.live, [...e.failedCells].sort(), [...e.vmsEnded].sort()], [[0, 1], [2, 3], ['v2', 'v3']], when);
    assert.equal(e.reports, 2, `${when}: the second report restarted the agreement`);
    assert.equal(e.records, 2, `${when}: both failures' records count in the one recovery`);
    assert.equal(e.total, e.detection + e.agreement + e.cleanup);
    assert.equal(cellular.episodes.length, 1, `${when}: one recovery, not two`);
    finish(s);
    assert.deepEqual(s.vms.map((vm) => vm.state), ['running', 'running', 'stopped', 'stopped'], when);
    assert.equal(s.monitor.machineFailure, undefined);
  }
});

test('a failed cell\'s state is unreachable: recovery that reaches into it fails, and the monitor\'s own never does', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene();
  const cellular = s.monitor.recovery.cellular!;
  assert.deepEqual([...cellular.stateOf(3).vms.keys()], [s.vms[3]!.id]);
  s.hardware.injector.inject({ kind: 'node', node: 3 });
  recover(s);
  assert.throws(() => cellular.stateOf(3).vms, DeadCellError);
  assert.throws(() => [...cellular.stateOf(3).vms.keys()], DeadCellError);
  assert.deepEqual([...cellular.stateOf(0).vms.keys()], [s.vms[0]!.id], 'a live cell\'s state answers');
  // A recovery that looks at every cell's state, the dead one's too, as a careless one would, fails the
  // next time it runs: here a second fault's recovery, carried out with that look added.
  const recovery = s.monitor.recovery as unknown as { carryOut: (work: unknown) => unknown };
  const careful = recovery.carryOut.bind(recovery);
  recovery.carryOut = (work) => {
    for (let c = 0; c < 4; c++) void cellular.stateOf(c).vms.size;
    return careful(work);
  };
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  assert.throws(() => runRoundsUntil(s.monitor, () => false, 400), DeadCellError);
  // The monitor's own recovery, given the same second fault on a fresh scene, reads only live cells' state.
  const fresh = scene();
  fresh.hardware.injector.inject({ kind: 'node', node: 3 });
  recover(fresh);
  fresh.hardware.injector.inject({ kind: 'node', node: 2 });
  const e = recover(fresh);
  assert.deepEqual(e.failedCells, [2]);
});

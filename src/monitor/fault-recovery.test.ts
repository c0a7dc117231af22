// The monitor's reaction to hardware faults, with bare S-mode programs in VMs (test/helpers/vm-program.ts): a
// failed node, CPU, partition or poisoned page ends exactly the VMs that depended on it, each with its reason,
// and the others finish their counting exactly; node 0's failure fails the machine.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRecord } from '../board/failure-report.js';
import { MachineHardware } from '../board/hardware.js';
import { layoutMachine } from '../board/address-map.js';
import { requireToolchain } from '../../test/helpers/asm.js';
import {
  assertCounted, meshMachine, counterDone, counterPages, monitorMachine, runRoundsUntil, startCounter, type CounterRun,
} from '../../test/helpers/vm-program.js';
import { FREE } from './machine-memory.js';
import { Monitor, MonitorError } from './monitor.js';
import type { VirtualMachine } from './vm.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
const ITERATIONS = 60_000;

interface Scene {
  monitor: Monitor;
  hardware: MachineHardware;
  vms: VirtualMachine[];
  runs: CounterRun[];
  log: string[];
}

/** VMs a, b and c at home on nodes 1, 2 and 3, each counting on its one vCPU, run for `rounds` rounds. */
function scene(rounds: number): Scene {
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const log: string[] = [];
  const monitor = new Monitor({ config, hardware, log: (m) => log.push(m) });
  const vms = ['a', 'b', 'c'].map((name, i) => monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, homeNode: i + 1 }));
  const runs = vms.map((vm) => startCounter(vm, { iterations: ITERATIONS, fillPages: 4, poweroff: false }));
  runRoundsUntil(monitor, () => false, rounds);
  assert.ok(vms.every((vm, i) => vm.state === 'running' && !counterDone(vm, runs[i]!)), 'the VMs are mid-count when the fault comes');
  return { monitor, hardware, vms, runs, log };
}

/** Runs until every running VM of the scene has finished counting; each must have counted exactly. */
function finish(s: Scene): void {
  runRoundsUntil(s.monitor, () => s.vms.every((vm, i) => vm.state !== 'running' || counterDone(vm, s.runs[i]!)), 20_000);
  s.vms.forEach((vm, i) => {
    if (vm.state === 'running') assertCounted(vm, s.runs[i]!);
  });
}

/** No running VM maps a page on `node`. */
function noneOn(monitor: Monitor, node: number): boolean {
  return monitor.vms.filter((vm) => vm.state === 'running').every((vm) => {
    for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
      const mpn = vm.pmap.lookup(gppn);
      if (mpn !== FREE && monitor.memory.nodeOf(mpn) === node) return false;
    }
    return true;
  });
}

test('a node fails: a surviving VM keeps its replicas and its large pages on the nodes that still work', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  const a = s.vms[0]!;
  const code = counterPages(s.runs[0]!).code[0]!;
  assert.equal(a.pmap.replicate(code, [3]).length, 1, 'a copy of a\'s code on node 3');
  const blocks = Array.from({ length: a.pmap.groups }, (_, g) => a.pmap.blockOf(g)).filter((b) => b >= 0);
  assert.ok(blocks.length > 0 && s.monitor.memory.pagesReserved() > 0, 'a has large pages, partly touched');
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  s.monitor.runRound();
  assert.equal(a.state, 'running');
  // Only what lay on node 2 goes: before, every replica and every large page's reservation of every VM went.
  assert.notEqual(a.pmap.replicasOf(code), undefined, 'the replica on node 3 stayed');
  assert.deepEqual(Array.from({ length: a.pmap.groups }, (_, g) => a.pmap.blockOf(g)).filter((b) => b >= 0), blocks);
  finish(s);
});

test('a node fails: the VM at home there and a VM with one page there end, each saying why; the third counts on exactly', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  const [a, b, c] = s.vms as [VirtualMachine, VirtualMachine, VirtualMachine];
  // One of c's data pages moves to node 2: c now depends on node 2 as well.
  const data = counterPages(s.runs[2]!).data[1]!;
  c.pmap.migrate(data, 2);
  assert.equal(s.monitor.memory.nodeOf(c.pmap.lookup(data)), 2);
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  s.monitor.runRound();
  assert.equal(b.state, 'stopped');
  assert.match(b.reason, /^hardware fault: node 2 failed: vCPU 0's state was on CPU 2; its home node 2 held its devices and the monitor's data for it; \d+ of its pages were there; \d+ pages of the monitor's data for it were there$/);
  assert.equal(c.state, 'stopped');
  assert.equal(c.reason, 'hardware fault: node 2 failed: 1 of its pages were there');
  assert.equal(a.state, 'running');
  assert.ok(s.log.includes('hardware: node 2 failed (CPUs 2)'), s.log.join('\n'));
  assert.ok(s.log.includes('hardware: node 2 failed; the monitor goes on with nodes 0, 1, 3'));
  // Read and handled at the boundary the fault took effect at (no recovery cost is modelled yet), ending b and c.
  const [handled] = s.monitor.recovery.handled;
  assert.equal(s.monitor.recovery.handled.length, 1);
  assert.equal(handled!.record.kind, 'node-failed');
  assert.equal(handled!.detectedAt, handled!.record.time);
  assert.equal(handled!.doneAt, handled!.detectedAt);
  assert.deepEqual(handled!.ended, ['b', 'c']);
  finish(s);
  assert.equal(a.state, 'running');
  assert.equal(s.monitor.memory.pagesFree(2), 0);
  assert.ok(noneOn(s.monitor, 2));
  assert.throws(() => s.monitor.createVm({ name: 'd', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, homeNode: 2 }),
    (e: unknown) => e instanceof MonitorError && e.message === 'VM d: node 2 has failed');
  const d = s.monitor.createVm({ name: 'd', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  assert.notEqual(d.pmap.homeNode, 2);
});

test('a CPU stops: the VM whose vCPU was on it ends, and nothing runs there again', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  const [a, b, c] = s.vms as [VirtualMachine, VirtualMachine, VirtualMachine];
  assert.equal(s.monitor.vcpuRecord(c, 0).lastPcpu, 3);
  s.hardware.injector.inject({ kind: 'cpu', cpu: 3 });
  s.monitor.runRound();
  assert.equal(c.state, 'stopped');
  assert.equal(c.reason, 'hardware fault: CPU 3 stopped: vCPU 0\'s state was on CPU 3');
  const switches = s.monitor.scheduler.switches(3);
  finish(s);
  assert.deepEqual([a.state, b.state], ['running', 'running']);
  assert.equal(s.monitor.scheduler.switches(3), switches);
  assert.equal(s.monitor.scheduler.lastOn(3), s.monitor.vcpuRecord(c, 0) as unknown, 'CPU 3 still holds c\'s vCPU, and no other');
});

test('a CPU stops: of two vCPUs that last ran on it, only the one whose registers it holds ends; the other was saved by a world switch', (t) => {
  if (!requireToolchain(t)) return;
  const config = monitorMachine(2, 32, 1);
  const hardware = new MachineHardware(layoutMachine(config));
  const monitor = new Monitor({ config, hardware, quantumRounds: 4 });
  const vms = ['x', 'y', 'z'].map((name, i) => monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, homeNode: i < 2 ? 1 : 0 }));
  const runs = vms.map((vm) => startCounter(vm, { iterations: ITERATIONS, poweroff: false }));
  const [x, y] = vms as [VirtualMachine, VirtualMachine];
  // Three vCPUs take turns on two CPUs: wait until x and y have both run on CPU 1 last.
  runRoundsUntil(monitor, () => monitor.vcpuRecord(x, 0).lastPcpu === 1 && monitor.vcpuRecord(y, 0).lastPcpu === 1, 2000);
  assert.deepEqual([monitor.vcpuRecord(x, 0).lastPcpu, monitor.vcpuRecord(y, 0).lastPcpu], [1, 1]);
  const holder = monitor.scheduler.lastOn(1)!;
  const [gone, kept] = holder.vm === x.id ? [x, y] : [y, x];
  hardware.injector.inject({ kind: 'cpu', cpu: 1 });
  monitor.runRound();
  assert.equal(gone.reason, 'hardware fault: CPU 1 stopped: vCPU 0\'s state was on CPU 1');
  assert.equal(kept.state, 'running');
  runRoundsUntil(monitor, () => vms.every((vm, i) => vm.state !== 'running' || counterDone(vm, runs[i]!)), 40_000);
  vms.forEach((vm, i) => {
    if (vm !== gone) assertCounted(vm, runs[i]!);
  });
});

test('a partition: the side without node 0 stops, and its VMs with it', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  const [a, b, c] = s.vms as [VirtualMachine, VirtualMachine, VirtualMachine];
  s.hardware.injector.inject({ kind: 'link', a: 1, b: 3 });
  s.monitor.runRound();
  assert.ok(s.vms.every((vm) => vm.state === 'running'), 'one link down: node 3 is reached through node 2');
  s.hardware.injector.inject({ kind: 'link', a: 2, b: 3 });
  s.monitor.runRound();
  assert.equal(c.state, 'stopped');
  assert.match(c.reason, /^hardware fault: node 3 cut off from node 0 by a partition: /);
  finish(s);
  assert.deepEqual([a.state, b.state], ['running', 'running']);
  assert.deepEqual(s.hardware.report.since(0).map(describeRecord), ['link 1-3 failed', 'link 2-3 failed', 'the interconnect is partitioned: {0,1,2} {3}']);
});

test('a poisoned page: the VM that reads it takes a bus error and ends; the page is never handed out again', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  const [a, b, c] = s.vms as [VirtualMachine, VirtualMachine, VirtualMachine];
  const mpn = a.pmap.lookup(counterPages(s.runs[0]!).data[1]!);
  const address = s.monitor.memory.addressOf(mpn);
  s.hardware.injector.inject({ kind: 'page', address });
  runRoundsUntil(s.monitor, () => a.state !== 'running', 100);
  assert.equal(a.state, 'stopped');
  assert.equal(a.reason, `hardware fault: vCPU 0 took a bus error (poisoned) at machine address 0x${address.toString(16)}`);
  assert.equal(a.exits.get('bus-error.poisoned'), 1);
  finish(s);
  assert.deepEqual([b.state, c.state], ['running', 'running']);
  assert.equal(s.monitor.memory.pagesLost(1), 1, 'the poisoned page is lost, not free');
  const d = s.monitor.createVm({ name: 'd', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, homeNode: 1 });
  const run = startCounter(d, { iterations: 1000, fillPages: 64, poweroff: false });
  runRoundsUntil(s.monitor, () => counterDone(d, run), 5000);
  assertCounted(d, run);
  for (let gppn = 0; gppn < d.pmap.pages; gppn++) assert.notEqual(d.pmap.lookup(gppn), mpn);
});

test('a device reads a poisoned page two VMs share: the DMA is refused, the report tells, and both VMs end; the third counts on', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(40);
  const [a, b, c] = s.vms as [VirtualMachine, VirtualMachine, VirtualMachine];
  // A page neither program touches, zero in both VMs, shared copy-on-write (content sharing's way).
  const gppn = a.pmap.pages - 1;
  const address = a.pmap.base + gppn * 4096;
  for (const vm of [a, b]) vm.machine.bus.guestMemory().write(address, new Uint8Array(4096));
  b.pmap.shareFrom(gppn, a.pmap, gppn);
  const mpn = a.pmap.lookup(gppn);
  assert.equal(b.pmap.lookup(gppn), mpn);
  s.hardware.injector.inject({ kind: 'line', address: s.monitor.memory.addressOf(mpn) + 128 });
  s.monitor.runRound();
  assert.ok(s.vms.every((vm) => vm.state === 'running'), 'poison is silent until something reads it');
  assert.throws(() => a.machine.bus.guestMemory().read(address + 64, 128), /0x/);
  assert.deepEqual(a.machine.bus.guestMemory().read(address, 64), new Uint8Array(64), 'the line before the poisoned one reads');
  s.monitor.runRound();
  const why = `hardware fault: machine page 0x${s.monitor.memory.addressOf(mpn).toString(16)} is poisoned and the VM mapped it`;
  assert.deepEqual([a.state, a.reason, b.state, b.reason], ['stopped', why, 'stopped', why]);
  assert.equal(describeRecord(s.hardware.report.since(0)[0]!), `bus error (poisoned) at 0x${(s.monitor.memory.addressOf(mpn) + 64).toString(16)} by a device`);
  finish(s);
  assert.equal(c.state, 'running');
});

test('node 0 fails: the monitor cannot go on without it, and says so', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene(10);
  s.hardware.injector.inject({ kind: 'node', node: 0 });
  s.monitor.runRound();
  const why = "node 0 failed: node 0 held the monitor's code and global state, so the machine stops";
  assert.equal(s.monitor.machineFailure, why);
  assert.ok(s.vms.every((vm) => vm.state === 'stopped' && vm.reason === `hardware fault: the machine failed: ${why}`));
  assert.equal(s.monitor.running, false);
});

test('a scheduled campaign gives the same run twice: the same VMs end at the same cycles, with the same report', (t) => {
  if (!requireToolchain(t)) return;
  const run = (): unknown => {
    const s = scene(5);
    s.hardware.injector.schedule(100_000, { kind: 'cpu', cpu: 1 });
    s.hardware.injector.schedule(150_000, { kind: 'page', address: s.monitor.memory.addressOf(s.vms[2]!.pmap.lookup(counterPages(s.runs[2]!).data[1]!)) });
    const ended: [string, number, string][] = [];
    runRoundsUntil(s.monitor, () => {
      for (const vm of s.vms) if (vm.state !== 'running' && !ended.some((e) => e[0] === vm.name)) ended.push([vm.name, s.monitor.cycles, vm.reason]);
      return ended.length === 2;
    }, 5000);
    return { ended, report: s.hardware.report.since(0), log: s.log };
  };
  const first = run() as { ended: unknown[] };
  assert.equal(first.ended.length, 2);
  assert.deepEqual(run(), first);
});

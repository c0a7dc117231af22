// The fault model: links and routes, partitions, what failed and poisoned memory does to accesses (a hart's
// included), the failure report, and determinism of schedules and random campaigns.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CAUSE_LOAD_ACCESS } from '../isa/opcodes.js';
import { Bus } from '../memory/bus.js';
import type { RamRegion } from '../memory/ram.js';
import { HW_MEMORY_FAILED, HW_OK, HW_PAGE_PARTIAL, HW_POISONED, HW_UNREACHABLE, DEVICE_ACCESS } from '../memory/hardware-faults.js';
import { Hart } from '../cpu/hart.js';
import { Reservations } from '../cpu/reservations.js';
import { layoutMachine } from './address-map.js';
import { describeRecord } from './failure-report.js';
import { parseFault, parseFaultScript, parseSimulatedTime, randomFaults } from './fault-script.js';
import { FaultError, faultName, type Fault } from './faults.js';
import { MachineHardware } from './hardware.js';
import { Machine } from './machine.js';
import { linkName, linksFromDistances, Routes } from './interconnect.js';
import { timingModelFor, topologyPreset } from './topology.js';

const MiB = 2 ** 20;
/** What region `r`'s check says of an access (undefined: it carries none), and whether it carries none. */
const at = (r: RamRegion, cpu: number, offset: number, length: number): number | undefined => r.faults?.check(cpu, offset, length);
const clean = (r: RamRegion): boolean => r.faults === null;
const numa4x2 = (): MachineHardware => new MachineHardware(layoutMachine(topologyPreset('numa4x2', 64 * MiB).config));

test('links come from the distances: the 2x2 mesh has its four, flash8 every pair, two nodes one', () => {
  assert.deepEqual(linksFromDistances(topologyPreset('numa4x2', 64 * MiB).config.distances!).map(linkName), ['0-1', '0-2', '1-3', '2-3']);
  assert.equal(linksFromDistances(topologyPreset('flash8', 128 * MiB).config.distances!).length, 28);
  assert.deepEqual(linksFromDistances([[10, 20], [20, 10]]).map(linkName), ['0-1']);
});

test('a failed link reroutes, two partition the mesh, and a failed router cuts its node off but not the routes around it', () => {
  const links = linksFromDistances(topologyPreset('numa4x2', 64 * MiB).config.distances!);
  const whole = new Routes(4, links, new Set(), new Set());
  assert.equal(whole.hops(0, 3), 2);
  assert.deepEqual(whole.groups, [[0, 1, 2, 3]]);
  const oneLink = new Routes(4, links, new Set(['0-1']), new Set());
  assert.equal(oneLink.hops(0, 1), 3, '0 reaches 1 the long way round');
  assert.deepEqual(oneLink.groups, [[0, 1, 2, 3]]);
  const split = new Routes(4, links, new Set(['1-3', '2-3']), new Set());
  assert.deepEqual(split.groups, [[0, 1, 2], [3]]);
  assert.equal(split.reaches(3, 3), true, 'a node reaches its own memory');
  assert.equal(split.reaches(0, 3), false);
  const router = new Routes(4, links, new Set(), new Set([1]));
  assert.deepEqual(router.groups, [[0, 2, 3], [1]]);
  assert.equal(router.hops(0, 3), 2, 'through node 2 instead');
  assert.deepEqual(new Routes(4, links, new Set(['0-1', '0-2']), new Set()).groupOf(0), [0]);
  const distances = topologyPreset('numa4x2', 64 * MiB).config.distances!;
  const weighed = new Routes(4, links, new Set(), new Set(), distances);
  assert.deepEqual([0, 1, 2, 3].map((a) => [0, 1, 2, 3].map((b) => weighed.distance(a, b))), distances, 'whole, the routes are the matrix');
  const long = new Routes(4, links, new Set(['0-1']), new Set(), distances);
  assert.equal(long.distance(0, 1), 40, '0-2-3-1: three links of 20, two routers passed');
  assert.equal(long.distance(0, 3), 30);
  assert.equal(new Routes(4, links, new Set(['1-3', '2-3']), new Set(), distances).distance(0, 3), -1);
});

test('timing mode follows the routes: a miss whose route got longer costs more, the others as before', () => {
  const hw = numa4x2();
  const latencies = topologyPreset('numa4x2', 64 * MiB).latencies;
  const model = timingModelFor(hw.layout, latencies);
  hw.attachTiming(model);
  hw.state.apply({ kind: 'link', a: 0, b: 1 });
  assert.equal(model.missCyclesBetween(0, 1), latencies.missCycles[0]![1]! * 2, '40 instead of 20');
  assert.equal(model.missCyclesBetween(1, 0), latencies.missCycles[1]![0]! * 2);
  assert.equal(model.missCyclesBetween(0, 3), latencies.missCycles[0]![3]!, 'still two hops through node 2');
  assert.equal(model.missCyclesBetween(2, 2), latencies.missCycles[2]![2]!);
});

test('failed memory, partitions and poison refuse exactly the accesses they should, and healthy regions carry no check', () => {
  const hw = numa4x2();
  const [r0, r1, r2, r3] = hw.regions;
  assert.ok(hw.regions.every((r) => r.faults === null), 'no fault, no check');
  hw.state.apply({ kind: 'node', node: 2 });
  assert.equal(at(r2!, 0, 0, 8), HW_MEMORY_FAILED);
  assert.equal(at(r2!, DEVICE_ACCESS, 4096, 8), HW_MEMORY_FAILED);
  assert.ok(clean(r0!), 'a node failure leaves the others alone');
  assert.equal(hw.cpuRuns(4), false);
  assert.equal(hw.cpuRuns(5), false);
  assert.equal(hw.cpuRuns(3), true);
  hw.state.apply({ kind: 'link', a: 1, b: 3 });
  assert.ok(clean(r3!), 'one link down: 3 is still reached through 2 (whose router lives on)');
  hw.state.apply({ kind: 'link', a: 3, b: 2 });
  assert.equal(at(r3!, 6, 0, 8), HW_OK, 'node 3 reaches its own memory');
  assert.equal(at(r3!, 0, 0, 8), HW_UNREACHABLE);
  assert.equal(at(r1!, 6, 0, 8), HW_UNREACHABLE);
  assert.equal(at(r1!, 0, 0, 8), HW_OK);
  const line = r1!.base + 5 * 4096 + 128;
  hw.state.apply({ kind: 'line', address: line + 10 });
  assert.equal(hw.state.poisoned(line), true);
  assert.equal(at(r1!, 0, 5 * 4096 + 128, 8), HW_POISONED);
  assert.equal(at(r1!, 0, 5 * 4096 + 184, 8), HW_POISONED, 'the last word of the line');
  assert.equal(at(r1!, 0, 5 * 4096 + 192, 8), HW_PAGE_PARTIAL, 'the next line: allowed, but never cached');
  assert.equal(at(r1!, 0, 6 * 4096, 8), HW_OK);
  hw.state.apply({ kind: 'page', address: r0!.base + 0x3010 });
  assert.equal(at(r0!, 0, 0x3ff8, 8), HW_POISONED);
  assert.equal(at(r0!, 0, 0x4000, 8), HW_OK);
  hw.state.scrub(r0!.base + 0x3000);
  assert.equal(at(r0!, 0, 0x3010, 8), HW_OK, 'scrubbed');
  assert.equal(at(r0!, 6, 0x3010, 8), HW_UNREACHABLE, 'node 3 is still cut off');
  assert.equal(r0!.u8[0x3010], 0);
});

test('the failure report: one record per change, poison silent until read, repeated bus errors counted in one', () => {
  const hw = numa4x2();
  hw.state.apply({ kind: 'node', node: 1 });
  hw.state.apply({ kind: 'node', node: 1 });
  hw.state.apply({ kind: 'cpu', cpu: 3 });
  hw.state.apply({ kind: 'cpu', cpu: 0 });
  hw.state.apply({ kind: 'page', address: 0x8000_0000 });
  hw.state.apply({ kind: 'router', node: 3 });
  const region = hw.regions[0]!;
  for (let i = 0; i < 3; i++) region.faults!.busError(0, 0x8000_0008, region.faults!.check(0, 8, 8));
  assert.deepEqual(hw.report.since(0).map(describeRecord), [
    'node 1 failed (CPUs 2, 3)',
    'CPU 0 (node 0) stopped',
    'router of node 3 failed',
    'the interconnect is partitioned: {0,1,2} {3}',
    'bus error (poisoned) at 0x80000008 by CPU 0 (3 times)',
  ]);
  assert.deepEqual(hw.report.since(0).map((r) => r.seq), [0, 1, 2, 3, 4]);
});

test('a repair brings every failed part back: a replaced node with new memory, routes whole, poison elsewhere kept', () => {
  const hw = numa4x2();
  const [r0, r1, r2, r3] = hw.regions;
  r2!.u8[100] = 7;
  r1!.u8[100] = 9;
  let emptied = 0;
  hw.attach({ hardwareChanged: () => emptied++ });
  hw.state.apply({ kind: 'node', node: 2 });
  hw.state.apply({ kind: 'cpu', cpu: 1 });
  hw.state.apply({ kind: 'router', node: 3 });
  hw.state.apply({ kind: 'line', address: r2!.base + 4096 });
  hw.state.apply({ kind: 'line', address: r1!.base + 4096 });
  const before = hw.report.count;
  const flushes = emptied;
  hw.state.now = 500;
  assert.equal(hw.state.repair(), 3);
  assert.ok(emptied > flushes, 'every TLB is emptied');
  assert.deepEqual(hw.report.since(before).map(describeRecord), [
    'node 2 was repaired (CPUs 4, 5, its memory new)',
    'CPU 1 (node 0) was repaired',
    'router of node 3 was repaired',
    'the interconnect is whole again',
  ]);
  assert.ok(hw.report.since(before).every((r) => r.time === 500));
  assert.equal(hw.cpuRuns(4), true);
  assert.equal(hw.cpuRuns(1), true);
  assert.equal(hw.delivers(0, 3), true);
  assert.equal(r2!.u8[100], 0, 'the replaced node\'s memory is new');
  assert.equal(at(r2!, 0, 4096, 8), undefined, 'and carries no poison');
  assert.ok(clean(r3!) && clean(r0!));
  assert.equal(at(r1!, 0, 4096, 8), HW_POISONED, 'poison on a node that was not replaced stays');
  assert.equal(r1!.u8[100], 9);
  assert.equal(hw.state.repair(), 0, 'nothing left to repair');
  assert.equal(hw.report.count, before + 4, 'and nothing reported');
});

test('a fault naming nothing the machine has is refused with one line', () => {
  const hw = numa4x2();
  const refused = (fault: Fault, message: string): void => {
    assert.throws(() => hw.injector.inject(fault), (e: unknown) => e instanceof FaultError && e.message === message);
  };
  refused({ kind: 'node', node: 4 }, 'no node 4: the machine has nodes 0 to 3');
  refused({ kind: 'cpu', cpu: 8 }, 'no CPU 8: the machine has CPUs 0 to 7');
  refused({ kind: 'link', a: 0, b: 3 }, 'no link 0-3: the links are 0-1, 0-2, 1-3, 2-3');
  refused({ kind: 'page', address: 0x1000 }, 'no memory at 0x1000: RAM is 0x80000000 to 0x84000000');
  assert.equal(hw.injector.pending.length, 0);
  assert.deepEqual(parseFault('link 2-0'), { kind: 'link', a: 2, b: 0 });
  assert.deepEqual(parseFault(' page 0x80001000 '), { kind: 'page', address: 0x8000_1000 });
  for (const [text, message] of [
    ['disk 3', "no fault kind 'disk': write node N, cpu N, link A-B, router N, page ADDR or line ADDR"],
    ['node two', "node needs a node number, not 'two'"],
    ['link 1', "link needs two nodes as A-B, not '1'"],
    ['page 0xZZ', "'0xZZ' is not an address: write it in hexadecimal (0x80200000) or decimal"],
    ['node', "'node' is not a fault: write node N, cpu N, link A-B, router N, page ADDR or line ADDR"],
    ['cpu\u0000 1', "no fault kind 'cpu\\u0000': write node N, cpu N, link A-B, router N, page ADDR or line ADDR"],
  ]) assert.throws(() => parseFault(text!), (e: unknown) => e instanceof FaultError && e.message === message, text);
});

test('a campaign script is read with every mistake named by its record', () => {
  const hw = numa4x2();
  assert.deepEqual(parseFaultScript([{ time: '2ms', fault: 'node 2' }, { time: 0, fault: 'cpu 1' }], (f) => hw.state.problems(f)), [
    { time: 200_000, fault: { kind: 'node', node: 2 } }, { time: 0, fault: { kind: 'cpu', cpu: 1 } },
  ]);
  assert.equal(parseSimulatedTime('150us'), 15_000);
  assert.throws(() => parseFaultScript([{ time: '2 days', fault: 'node 2' }, { fault: 'node 9', time: '1s' }, { time: '1s', fault: 'cpu 1', why: 1 }], (f) => hw.state.problems(f)),
    (e: unknown) => e instanceof FaultError && e.message === [
      "fault 1: '2 days' is not a simulated time: write a number with a unit, as 20ms, 150us or 1.5s",
      'fault 2: no node 9: the machine has nodes 0 to 3',
      'fault 3: unknown field why (a record is { time, fault })',
    ].join('\n'));
});

/** Runs a schedule on fresh hardware through rounds of 4096 cycles; returns the report and when each applied. */
function runSchedule(schedule: readonly { time: number; fault: Fault }[], rounds: number): unknown {
  const hw = numa4x2();
  for (const s of schedule) hw.injector.schedule(s.time, s.fault);
  for (let round = 1; round <= rounds; round++) hw.advanceTo(round * 4096);
  return { report: hw.report.since(0), applied: hw.injector.applied.map((a) => [faultName(a.fault), a.time, a.appliedAt]) };
}

test('faults apply at the first round boundary at or after their time, and the same seed gives the same run', () => {
  const hw = numa4x2();
  const campaign = { seed: 7, count: 12, from: 0, to: 400_000 };
  const a = randomFaults(campaign, hw.layout, hw.state.links);
  assert.deepEqual(randomFaults(campaign, hw.layout, hw.state.links), a);
  assert.notDeepEqual(randomFaults({ ...campaign, seed: 8 }, hw.layout, hw.state.links), a);
  assert.ok(a.every((s, i) => i === 0 || a[i - 1]!.time <= s.time));
  assert.deepEqual(runSchedule(a, 100), runSchedule(a, 100));
  const one = runSchedule([{ time: 5000, fault: { kind: 'cpu', cpu: 2 } }, { time: 4096, fault: { kind: 'cpu', cpu: 1 } }], 3) as { applied: unknown[] };
  assert.deepEqual(one.applied, [['cpu 1', 4096, 4096], ['cpu 2', 5000, 8192]]);
});

// Encodings (ISA §2.2): ld x7, 0(x8); sd x7, 0(x8); jal x0, 0.
const LD = 0x00043383;
const SD = 0x00743023;
const JUMP_SELF = 0x0000006f;

test('a hart taking a bus error on the bare machine gets the access fault, even for a page its TLB held', () => {
  const hw = numa4x2();
  const bus = new Bus();
  for (const r of hw.regions) bus.addRam(r);
  const hart = new Hart(0, { bus, clock: { now: () => 0 }, reservations: new Reservations(1) });
  hw.attach(hart);
  const code = hw.regions[0]!;
  const target = hw.regions[2]!.base + 0x100;
  const vector = code.base + 0x1000;
  code.view.setUint32(0, LD, true);
  code.view.setUint32(4, SD, true);
  code.view.setUint32(8, JUMP_SELF, true);
  code.view.setUint32(0x1000, JUMP_SELF, true);
  hw.regions[2]!.view.setUint32(0x100, 1234, true);
  const start = (): void => {
    hart.reset(code.base);
    hart.mtvec = vector;
    hart.x64[8] = BigInt(target);
  };
  start();
  hart.run(3);
  assert.equal(hart.x64[7], 1234n, 'the load ran, and its page is in the TLB now');
  hw.state.apply({ kind: 'node', node: 2 });
  // No reset (which would empty the TLB): only the hardware's own flush stands between the hart and the stale entry.
  hart.pc = code.base;
  hart.run(1);
  assert.equal(hart.mcause, BigInt(CAUSE_LOAD_ACCESS));
  assert.equal(hart.mtval, target);
  assert.equal(hart.pc, vector);
  // A poisoned line in a healthy node: the store faults, a load of the next line on the page does not.
  const hw2 = numa4x2();
  const bus2 = new Bus();
  for (const r of hw2.regions) bus2.addRam(r);
  const h2 = new Hart(0, { bus: bus2, clock: { now: () => 0 }, reservations: new Reservations(1) });
  hw2.attach(h2);
  hw2.regions[0]!.u8.set(code.u8.subarray(0, 0x1004));
  hw2.state.apply({ kind: 'line', address: hw2.regions[1]!.base + 0x140 });
  h2.reset(code.base);
  h2.mtvec = vector;
  h2.x64[8] = BigInt(hw2.regions[1]!.base + 0x100);
  h2.run(2);
  assert.equal(h2.pc, code.base + 8, 'load and store of the line before the poisoned one');
  h2.reset(code.base);
  h2.mtvec = vector;
  h2.x64[8] = BigInt(hw2.regions[1]!.base + 0x140);
  h2.run(1);
  assert.equal(h2.mcause, BigInt(CAUSE_LOAD_ACCESS));
  assert.equal(hw2.report.since(0).map(describeRecord).at(-1), `bus error (poisoned) at 0x${(hw2.regions[1]!.base + 0x140).toString(16)} by CPU 0`);
});

// addi x9, x9, 1; ld x7, 0(x8); j -8: counts in x9 and reads the word at x8, forever.
const COUNT_AND_LOAD = [0x00148493, LD, 0xff9ff06f];

test('a bare machine given the hardware: a stopped CPU runs nothing, the other runs on, and then takes the access fault of a failed node', () => {
  const config = { harts: 2, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }, { memoryBytes: 16 * MiB, harts: [1] }] };
  const hw = new MachineHardware(layoutMachine(config));
  const machine = new Machine({ config, builtinSbi: false, hardware: hw });
  const [n0, n1] = hw.regions as [RamRegion, RamRegion];
  COUNT_AND_LOAD.forEach((word, i) => n0.view.setUint32(4 * i, word, true));
  n0.view.setUint32(0x1000, JUMP_SELF, true);
  machine.resetAll(n0.base, true, 0);
  const [h0, h1] = machine.harts as [Hart, Hart];
  for (const h of machine.harts) h.mtvec = n0.base + 0x1000;
  h0.x64[8] = BigInt(n1.base + 0x40);
  h1.x64[8] = BigInt(n0.base + 0x40);
  for (let i = 0; i < 3; i++) machine.runRound();
  assert.ok(h0.x64[9]! > 0n && h1.x64[9]! > 0n);
  hw.injector.schedule(machine.cycles + 1, { kind: 'cpu', cpu: 1 });
  machine.runRound();
  const stopped = h1.x64[9];
  const running = h0.x64[9];
  for (let i = 0; i < 3; i++) machine.runRound();
  assert.equal(h1.x64[9], stopped, 'CPU 1 stopped at the boundary after its time');
  assert.ok(h0.x64[9]! > running!, 'CPU 0 runs on');
  hw.injector.inject({ kind: 'node', node: 1 });
  machine.runRound();
  machine.runRound();
  assert.equal(h0.mcause, BigInt(CAUSE_LOAD_ACCESS));
  assert.equal(h0.mtval, n1.base + 0x40);
  assert.equal(h0.pc, n0.base + 0x1000);
  assert.deepEqual(hw.report.since(0).map(describeRecord), ['CPU 1 (node 1) stopped', 'node 1 failed (CPUs 1)', `bus error (memory-failed) at 0x${(n1.base + 0x40).toString(16)} by CPU 0`]);
});

test('onApply tells of each fault as it takes effect, with the fault already true and the report not yet read', () => {
  const hw = numa4x2();
  const seen: string[] = [];
  const stop = hw.injector.onApply((a) => seen.push(`${faultName(a.fault)} at ${a.appliedAt}: node 2 ${hw.state.nodeFailed(2) ? 'failed' : 'runs'}, ${hw.report.count} records`));
  hw.injector.schedule(5000, { kind: 'node', node: 2 });
  hw.advanceTo(4096);
  assert.deepEqual(seen, []);
  hw.advanceTo(8192);
  assert.deepEqual(seen, ['node 2 at 8192: node 2 failed, 1 records']);
  stop();
  hw.injector.inject({ kind: 'cpu', cpu: 0 });
  hw.advanceTo(12288);
  assert.equal(seen.length, 1, 'a listener stopped hears nothing');
});

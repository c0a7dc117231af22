// Tests of the content-sharing scanner without a guest: its rate, zero pages first, a page merged only once
// its hash held still between two visits (or at its first match, ESX's way), opted-out VMs apart, its work
// charged to its CPU, and a higher rate only while that CPU runs no vCPU.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KIND_SCANNER } from '../cpu/monitor-kinds.js';
import { RAM_BASE } from '../board/address-map.js';
import { CPU_CYCLES_PER_SECOND, latenciesFromDistances } from '../board/topology.js';
import { PRIV_S } from '../isa/opcodes.js';
import { ACCESS_WRITE } from '../memory/bus.js';
import { DEFAULT_SHARING_COSTS } from './costs.js';
import { PAGE } from './machine-memory.js';
import { Monitor } from './monitor.js';
import type { ScanCounts, ScanParameters } from './page-scanner.js';
import type { VirtualMachine } from './vm.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

/** Two VMs (by default), the scanner on CPU 1 at 1000 pages a second, merging only once a hash held still (KSM's rule) unless `scan` says otherwise. */
function setup(sharing: boolean[] = [true, true], scan: Partial<ScanParameters> = {}) {
  const monitor = new Monitor({ config: { harts: 2, nodes: [{ memoryBytes: 64 * MiB, harts: [0, 1] }] }, log: quiet, scan: { pagesPerSecond: 1000, mergeOnFirstMatch: false, cpu: 1, ...scan } });
  const vms = sharing.map((s, i) => monitor.createVm({ name: `vm${i}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, sharing: s }));
  return { monitor, vms };
}

/** Fills guest page `gppn` of `vm` with `value` as its CPU would (faulting the page in). */
function fill(vm: VirtualMachine, gppn: number, value: number): void {
  if (vm.machine.bus.resolveRam(RAM_BASE + gppn * PAGE, ACCESS_WRITE) === undefined) vm.pmap.resolveFault(gppn, ACCESS_WRITE);
  const region = vm.machine.bus.resolveRam(RAM_BASE + gppn * PAGE, ACCESS_WRITE)!;
  region.u8.fill(value, vm.machine.bus.resolvedOffset, vm.machine.bus.resolvedOffset + PAGE);
}

/** Runs the scanner for `seconds` of machine time. */
function scan(monitor: Monitor, seconds: number): void {
  monitor.cycles += seconds * CPU_CYCLES_PER_SECOND;
  monitor.scanner!.afterRound(monitor.cycles, monitor.vms.map((vm) => ({ pmap: vm.pmap, sharesWithOthers: vm.sharesWithOthers })));
}

test('the scanner visits pagesPerSecond pages a simulated second, merges zero pages at once and others once stable', () => {
  const { monitor, vms } = setup();
  const [a, b] = vms as [VirtualMachine, VirtualMachine];
  // a: pages 0–1 zero (touched), 2 = 7; b: page 0 zero, page 1 = 7.
  fill(a, 0, 0);
  fill(a, 1, 0);
  fill(a, 2, 7);
  fill(b, 0, 0);
  fill(b, 1, 7);
  const scanner = monitor.scanner!;
  scan(monitor, 0); // the first call only starts the clock
  scan(monitor, 0.002); // two pages
  assert.equal(scanner.counts.visited, 2);
  assert.equal(scanner.counts.mergedZero, 1, 'a\'s second zero page joins its first at once');
  assert.equal(a.pmap.lookup(0), a.pmap.lookup(1));
  // A whole pass: b's zero page merges too; a's 7 and b's 7 have only been tested for zero (a first look
  // hashes nothing): not merged yet.
  scan(monitor, 0.003);
  assert.equal(scanner.counts.mergedZero, 2);
  assert.equal(b.pmap.lookup(0), a.pmap.lookup(0));
  assert.equal(scanner.counts.hashed, 0);
  assert.notEqual(a.pmap.lookup(2), b.pmap.lookup(1));
  // Second pass: both hashed once, not merged yet.
  scan(monitor, 0.005);
  assert.equal(scanner.counts.hashed, 2);
  assert.equal(scanner.counts.mergedContent, 0);
  // Third pass: both hashes held still, so b's 7 merges into a's.
  scan(monitor, 0.005);
  assert.equal(scanner.counts.mergedContent, 1);
  assert.equal(a.pmap.lookup(2), b.pmap.lookup(1));
  assert.ok(monitor.ledger.sourceOf(a.pmap.lookup(0)) === 'zero' && monitor.ledger.sourceOf(a.pmap.lookup(2)) === 'content');
  const account = monitor.memoryAccount().machine;
  assert.equal(account.savedBy.zero, 2);
  assert.equal(account.savedBy.content, 1);
  // Its work: 10 zero tests, of which 4 pages zero; hashes of the non-zero pages each visit; compares for the merges.
  const c = DEFAULT_SHARING_COSTS;
  // (The second zero merge needs no comparison: the zero page is then shared, read-only, so still zero.)
  assert.equal(scanner.counts.compared, 2);
  assert.ok(scanner.counts.cycles >= scanner.counts.hashed * c.pageHash + 2 * c.pageCompare + 3 * c.pageMerge);
});

test('a page written between two visits does not merge', () => {
  const { monitor, vms } = setup();
  const [a, b] = vms as [VirtualMachine, VirtualMachine];
  fill(a, 0, 5);
  fill(b, 0, 5);
  scan(monitor, 0);
  scan(monitor, 0.002); // both hashed once
  fill(b, 0, 6);
  fill(b, 0, 5); // written again (the same bytes in the end, but hashed in between? no: the scanner saw 5 and sees 5)
  fill(a, 0, 9); // a's changed: its hash differs from the last visit
  scan(monitor, 0.002);
  assert.equal(monitor.scanner!.counts.mergedContent, 0);
  fill(a, 0, 5);
  scan(monitor, 0.002);
  scan(monitor, 0.002);
  assert.equal(monitor.scanner!.counts.mergedContent, 1, 'once still, they merge');
});

test('a VM with share: false merges with none of the others, only within itself', () => {
  const { monitor, vms } = setup([true, false]);
  const [a, b] = vms as [VirtualMachine, VirtualMachine];
  fill(a, 0, 0);
  fill(b, 0, 0);
  fill(b, 1, 0);
  fill(a, 1, 3);
  fill(b, 2, 3);
  fill(b, 3, 3);
  for (let i = 0; i < 6; i++) scan(monitor, 0.01);
  assert.notEqual(a.pmap.lookup(0), b.pmap.lookup(0));
  assert.notEqual(a.pmap.lookup(1), b.pmap.lookup(2));
  assert.equal(b.pmap.lookup(0), b.pmap.lookup(1), 'its own zero pages merge');
  assert.equal(b.pmap.lookup(2), b.pmap.lookup(3), 'its own equal pages merge');
  assert.equal(monitor.sharePages().merged, 0, 'the one-pass merge keeps it apart too');
});

test('the scanner\'s work is charged to the vCPU that runs next on its CPU, and falls in idle time on an idle one', () => {
  const { monitor, vms } = setup([true]);
  fill(vms[0]!, 0, 1);
  scan(monitor, 0);
  scan(monitor, 0.001);
  const owed = monitor.scanner!.owed;
  assert.ok(owed > 0);
  // No vCPU can run (the VM was never booted: its vCPU 0 is not started), so the CPU idles: nothing charged.
  monitor.runRound();
  assert.equal(monitor.scanner!.counts.cyclesCharged, 0);
  assert.equal(monitor.scanner!.owed, 0);
});

const LATENCIES = latenciesFromDistances([[10]]);

/** A monitor in timing mode with a 16 KiB cache per CPU, the scanner on CPU 1, and `pages` non-zero pages in one VM. */
function timed(mode: 'fast' | 'timing', pages: number) {
  const monitor = new Monitor({
    config: { harts: 2, nodes: [{ memoryBytes: 64 * MiB, harts: [0, 1] }] }, log: quiet, scan: { pagesPerSecond: 200_000, cpu: 1 },
    timing: { latencies: LATENCIES, cache: { sizeBytes: 16 * 1024 } },
  });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet });
  for (let g = 0; g < pages; g++) fill(vm, g, 1 + g);
  monitor.setExecutionMode(mode);
  return { monitor, model: monitor.timingModel! };
}

test('in timing mode the scanner reads the pages it hashes through its CPU\'s cache: they miss, evict its lines, and cost cycles on top of the table\'s', () => {
  const { monitor, model } = timed('timing', 24);
  const node = 0;
  const hit = LATENCIES.hitCycles;
  // The first round only starts the scanner's clock (and switches CPU 0 to the VM's vCPU, which cannot run: it was never booted).
  monitor.runRound();
  assert.equal(monitor.scanner!.counts.visited, 0);
  // A line CPU 1 holds before the scanner runs (of the machine's last page, which no one uses): a miss, then a hit.
  const other = 64 * MiB - PAGE;
  model.chargeRamAccess(1, node, other, false);
  assert.equal(model.chargeRamAccess(1, node, other, false), hit);
  const missesBefore = model.missesLocal[1]!;
  const cpu0 = model.accesses(0);
  // The rounds are idle, and the scanner runs after each.
  for (let i = 0; i < 8; i++) monitor.runRound();
  const scanner = monitor.scanner!;
  assert.ok(scanner.counts.hashed >= 24, `every page hashed: ${JSON.stringify(scanner.counts)}`);
  // Each hashed page's 64 lines were read on CPU 1: the first time, each a miss (the pages were written by no CPU).
  assert.ok(model.missesLocal[1]! - missesBefore >= 24 * (PAGE / 64), `CPU 1's misses: ${model.missesLocal[1]! - missesBefore}`);
  assert.equal(model.accesses(0), cpu0, 'nothing on the CPU the scanner does not run on');
  // 24 pages of 4 KiB through a 16 KiB cache: the line CPU 1 held is gone.
  assert.ok(model.chargeRamAccess(1, node, other, false) > hit, 'the scanner\'s reads evicted it');
  // Its cycles are the table's and the references' on top.
  assert.ok(scanner.counts.referenceCycles >= 24 * (PAGE / 64) * LATENCIES.missCycles[0]![0]!, JSON.stringify(scanner.counts));
  assert.ok(scanner.counts.cycles >= scanner.counts.referenceCycles + scanner.counts.hashed * DEFAULT_SHARING_COSTS.pageHash);
});

test('in fast mode the scanner references nothing through the caches', () => {
  const { monitor, model } = timed('fast', 24);
  for (let i = 0; i < 8; i++) monitor.runRound();
  assert.ok(monitor.scanner!.counts.hashed >= 24);
  assert.equal(model.accesses(1), 0);
  assert.equal(monitor.scanner!.counts.referenceCycles, 0);
});

test('a VM whose pages are nearly all shared does not have its few private ones hashed over and over', () => {
  const { monitor, vms } = setup([true]);
  const [a] = vms as [VirtualMachine];
  // 200 zero pages (they merge into one at first sight) and 2 private pages of other bytes.
  for (let gppn = 0; gppn < 200; gppn++) fill(a, gppn, 0);
  fill(a, 200, 1);
  fill(a, 201, 2);
  scan(monitor, 0);
  scan(monitor, 0.202); // one pass: 202 pages at 1000 a second
  assert.equal(monitor.scanner!.counts.mergedZero, 199);
  const before = monitor.scanner!.counts.hashed;
  // A second of machine time is 1000 looks at 202 mapped pages: about five passes, not 500 visits to the two private pages.
  for (let i = 0; i < 100; i++) scan(monitor, 0.01);
  const hashed = monitor.scanner!.counts.hashed - before;
  assert.ok(hashed >= 8 && hashed <= 12, `the two private pages were hashed ${hashed} times in a second`);
});

test('a zero page is not merged into whatever the remembered zero page\'s guest page maps now', () => {
  const { monitor, vms } = setup();
  const [a, b] = vms as [VirtualMachine, VirtualMachine];
  fill(a, 0, 0);
  fill(a, 1, 0);
  scan(monitor, 0);
  scan(monitor, 0.002); // a's page 1 joins page 0: the zero page, shared
  assert.equal(a.pmap.lookup(0), a.pmap.lookup(1));
  // Both are written (no zero page left to remember instead), and a's page 0, the remembered zero page, comes
  // to share b's equal page: shared, not zero.
  fill(a, 0, 7);
  fill(a, 1, 9);
  fill(b, 0, 7);
  for (let i = 0; i < 3; i++) scan(monitor, 0.004);
  assert.equal(a.pmap.lookup(0), b.pmap.lookup(0));
  fill(b, 1, 0);
  for (let i = 0; i < 3; i++) scan(monitor, 0.005);
  assert.notEqual(b.pmap.lookup(1), a.pmap.lookup(0), 'a zero page merged into a page of sevens');
  fill(b, 2, 0);
  for (let i = 0; i < 3; i++) scan(monitor, 0.005);
  assert.equal(b.pmap.lookup(2), b.pmap.lookup(1), 'zero pages still merge');
});

test('with mergeOnFirstMatch a page merges at its first hash that matches (its second look), and a write afterwards breaks the sharing', () => {
  for (const firstMatch of [false, true]) {
    const { monitor, vms } = setup([true, true], { mergeOnFirstMatch: firstMatch });
    const [a, b] = vms as [VirtualMachine, VirtualMachine];
    fill(a, 0, 5);
    fill(b, 0, 5);
    scan(monitor, 0);
    scan(monitor, 0.002); // first looks: zero tests only
    assert.equal(monitor.scanner!.counts.hashed, 0);
    scan(monitor, 0.002); // second looks: a hashed into the index, b hashed and compared with it
    assert.equal(monitor.scanner!.counts.hashed, 2);
    assert.equal(monitor.scanner!.counts.mergedContent, firstMatch ? 1 : 0, `first match ${firstMatch}`);
    assert.equal(a.pmap.lookup(0) === b.pmap.lookup(0), firstMatch);
  }
  const { monitor, vms } = setup([true, true], { mergeOnFirstMatch: true });
  const [a, b] = vms as [VirtualMachine, VirtualMachine];
  fill(a, 0, 5);
  fill(b, 0, 5);
  for (let i = 0; i < 3; i++) scan(monitor, 0.002);
  assert.equal(a.pmap.lookup(0), b.pmap.lookup(0));
  // b writes its page: a copy-on-write break gives it its own copy, and a still sees its fives.
  assert.equal(b.machine.bus.resolveRam(RAM_BASE, ACCESS_WRITE), undefined, 'a shared page is read-only');
  assert.equal(b.pmap.resolveFault(0, ACCESS_WRITE), 'copy-on-write');
  fill(b, 0, 6);
  assert.notEqual(a.pmap.lookup(0), b.pmap.lookup(0));
  const read = (vm: VirtualMachine): number => vm.machine.bus.guestMemory().readU32(RAM_BASE) & 0xff;
  assert.deepEqual([read(a), read(b)], [5, 6]);
  // A page written between its looks merges again once equal, on its next match.
  fill(b, 0, 5);
  for (let i = 0; i < 2; i++) scan(monitor, 0.002);
  assert.equal(a.pmap.lookup(0), b.pmap.lookup(0));
});

/** `j .` (JAL x0, 0): a vCPU that runs it never waits. */
const SPIN = 0x0000006f;

/**
 * One CPU, the scanner on it at 20 000 pages a second (idle rate `idle`), one VM of `pages` non-zero pages
 * (the last 5 % equal, the others distinct) and a vCPU that spins (its CPU is never idle) or is parked (always idle).
 */
function oneCpu(idle: number, spinning: boolean, scan: Partial<ScanParameters> = {}, pages = 2000) {
  const monitor = new Monitor({ config: { harts: 1, nodes: [{ memoryBytes: 64 * MiB, harts: [0] }] }, log: quiet, scan: { pagesPerSecond: 20_000, idlePagesPerSecond: idle, cpu: 0, ...scan } });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet });
  const distinct = pages - pages / 20;
  for (let g = 1; g <= pages; g++) fill(vm, g, g > distinct ? 0x55 : 1 + (g % 251));
  for (let g = 1; g <= distinct; g++) vm.machine.bus.guestMemory().writeU32(RAM_BASE + g * PAGE + 4, g);
  fill(vm, 0, 0);
  vm.machine.bus.guestMemory().writeU32(RAM_BASE, SPIN);
  startSpinning(vm);
  vm.vcpus[0]!.parked = !spinning;
  return { monitor, vm };
}

function startSpinning(vm: VirtualMachine): void {
  const h = vm.vcpus[0]!;
  h.reset(RAM_BASE);
  h.parked = false;
  h.priv = PRIV_S;
  h.updateTranslation();
}

test('while its CPU runs no vCPU the scanner works at the idle rate, in that idle time, charged to no one', () => {
  const rounds = 100;
  const run = (idle: number): { counts: ScanCounts; cycles: number } => {
    const { monitor } = oneCpu(idle, false);
    for (let i = 0; i < rounds; i++) monitor.runRound();
    return { counts: { ...monitor.scanner!.counts }, cycles: monitor.cycles };
  };
  const off = run(0);
  const on = run(2_000_000);
  // 100 idle rounds of 4096 cycles are 4.1 ms: 82 pages at 20 000 a second; the idle cycles allow far more.
  assert.ok(off.counts.visited >= 75 && off.counts.visited <= 90, JSON.stringify(off.counts));
  assert.equal(off.counts.idleCycles, 0);
  assert.ok(on.counts.visited > 20 * off.counts.visited, `idle rate: ${JSON.stringify(on.counts)}, off: ${JSON.stringify(off.counts)}`);
  assert.ok(on.counts.hashed > 0, 'its second looks hashed');
  assert.equal(on.counts.cyclesCharged, 0, 'no vCPU ran there: none was charged');
  // What the idle rate added fits in the idle time (the machine's time: every round idle there).
  assert.ok(on.counts.idleCycles > 0 && on.counts.idleCycles <= on.cycles, `${on.counts.idleCycles} idle-rate cycles in ${on.cycles}`);
});

test('while a vCPU runs on its CPU the scanner keeps its own rate and charges the same cycles, idle rate or not', () => {
  const rounds = 100;
  const run = (idle: number): ScanCounts => {
    const { monitor, vm } = oneCpu(idle, true);
    for (let i = 0; i < rounds; i++) monitor.runRound();
    assert.ok(vm.vcpus[0]!.instret > 100_000, 'the vCPU ran');
    return { ...monitor.scanner!.counts };
  };
  const off = run(0);
  const on = run(2_000_000);
  assert.deepEqual(on, off);
  assert.equal(on.idleCycles, 0);
  assert.ok(on.cyclesCharged > 0 && on.visited >= 75 && on.visited <= 90, JSON.stringify(on));
  // What the scanner charged is the vCPU's monitor time of kind scanner (cpu/monitor-kinds.ts).
  const { monitor, vm } = oneCpu(0, true);
  for (let i = 0; i < rounds; i++) monitor.runRound();
  assert.equal(vm.vcpus[0]!.monitorKindCycles[KIND_SCANNER], monitor.scanner!.counts.cyclesCharged);
});

test('the scanner with an idle rate and first-match merging is deterministic: two identical runs count the same and map the same', () => {
  const run = () => {
    const { monitor, vm } = oneCpu(2_000_000, true, { mergeOnFirstMatch: true }, 400);
    // Busy, idle (the vCPU parked), busy again: both rates, and the owed work of one falling into the other.
    for (let i = 0; i < 60; i++) monitor.runRound();
    vm.vcpus[0]!.parked = true;
    for (let i = 0; i < 200; i++) monitor.runRound();
    vm.vcpus[0]!.parked = false;
    for (let i = 0; i < 60; i++) monitor.runRound();
    const maps = Array.from({ length: 401 }, (_, g) => vm.pmap.lookup(g));
    return { counts: { ...monitor.scanner!.counts }, owed: monitor.scanner!.owed, maps, cycles: monitor.cycles };
  };
  const first = run();
  assert.ok(first.counts.mergedContent > 0 && first.counts.idleCycles > 0 && first.counts.cyclesCharged > 0, JSON.stringify(first.counts));
  assert.deepEqual(run(), first);
});

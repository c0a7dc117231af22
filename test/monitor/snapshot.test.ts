// Snapshots under the monitor. The whole machine saved after N rounds and restored into a fresh monitor runs M
// more exactly as N + M rounds straight through: every VM's console, the statistics and the monitor's whole
// state. One VM saved alone and restored on other machine pages: its console and what its guest can see are
// those of the straight run.

import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import fc from 'fast-check';
import { latenciesFromDistances } from '../../src/board/topology.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, monitorSnapshot, restoreVm, restoreWhole } from '../../src/host/monitor-snapshot.js';
import { encodeSnapshot } from '../../src/host/snapshot-file.js';
import { registerMonitorStats } from '../../src/monitor/accounting.js';
import { FREE, PAGE } from '../../src/monitor/machine-memory.js';
import { saveMonitor } from '../../src/monitor/monitor-snapshot.js';
import { Monitor, type MonitorOptions } from '../../src/monitor/monitor.js';
import { DEFAULT_POLICY } from '../../src/monitor/numa-policy.js';
import { DEFAULT_SHARING_COSTS, scaleSharingCosts } from '../../src/monitor/costs.js';
import type { MmuMode, VirtualMachine } from '../../src/monitor/vm.js';
import { saveMachine } from '../../src/board/snapshot.js';
import { formatStatsText, StatsRegistry } from '../../src/timing/stats.js';
import { requireToolchain } from '../helpers/asm.js';
import { ARRAY_PA, comparableMonitorState, SEAM_MACHINE, startSeamProgram } from '../helpers/monitor-program.js';
import { TEXT_BASE } from '../helpers/asm.js';

const MiB = 2 ** 20;
const LATENCIES = latenciesFromDistances(SEAM_MACHINE.distances!);

interface Run {
  monitor: Monitor;
  consoles: Map<string, number[]>;
}

/** `scan`: the content scanner on CPU 1, fast enough to visit a few pages each round. */
function options(timing: boolean, mmu: MmuMode, scan = false): MonitorOptions {
  return {
    config: SEAM_MACHINE, quantumRounds: 8, translate: true, mmu,
    // (Its costs an eighth of the table's, so that it can visit a pass's worth of pages in a short run and leave the VMs time
    // to run; slower with timing, where each page it reads costs 64 misses on top.)
    // It merges at a page's first hash match, and goes ten times faster while CPU 1 idles (the default), so both cross the seam.
    ...(scan ? { scan: { pagesPerSecond: timing ? 10_000 : 300_000, mergeOnFirstMatch: true, cpu: 1, costs: scaleSharingCosts(DEFAULT_SHARING_COSTS, 0.125) } } : {}),
    // In timing mode the NUMA policy acts too, eager enough to move and replicate pages (and whole 2 MiB groups) within a short run.
    ...(timing ? { timing: { latencies: LATENCIES, cache: { sizeBytes: 16 * 1024 } }, policy: { ...DEFAULT_POLICY, hotMisses: 4, intervalRounds: 16, blockPages: 4, coalescePages: 4 } } : {}),
  };
}

function consoleFor(consoles: Map<string, number[]>, name: string): (bytes: Uint8Array) => void {
  const out: number[] = [];
  consoles.set(name, out);
  return (bytes) => out.push(...bytes);
}

/** Two VMs of two vCPUs on the two CPUs: `a`, and `b` with a network card, running the program with other data. */
function boot(t: TestContext, timing: boolean, mmu: MmuMode): Run | undefined {
  if (!requireToolchain(t)) return undefined;
  const monitor = new Monitor(options(timing, mmu, true));
  const consoles = new Map<string, number[]>();
  const a = monitor.createVm({ name: 'a', vcpus: 2, memoryBytes: 16 * MiB, console: consoleFor(consoles, 'a') });
  const b = monitor.createVm({ name: 'b', vcpus: 2, memoryBytes: 16 * MiB, net: true, console: consoleFor(consoles, 'b') });
  startSeamProgram(a, 1);
  startSeamProgram(b, 2, 700);
  return { monitor, consoles };
}

/** What happens at some rounds besides running: disk blocks cached and mapped, pages shared, timing mode on and off, VM b stopped. */
const CACHE_AT = 12;
const SHARE_AT = 30;
const SAME_PAGES_AT = 40;
const TIMING_FROM = 20;
const FAST_FROM = 150;
const TIMING_AGAIN_FROM = 220;
const STOP_B_AT = 260;

/**
 * As virtio-blk would through the monitor's hook: VM a reads "disk blocks" into its program's page and eight
 * pages of its array (the cache keeps them; the array's are written later, so the cache comes to hold them
 * alone); VM b reads the program's block, which maps a's page (the same bytes), and a block never cached.
 */
function cacheBlocks(m: Monitor): void {
  const [a, b] = [m.vm('a')!, m.vm('b')!];
  const hookA = m.pageCache.blockHook(a.pmap, 'seam', () => a.state === 'running');
  const hookB = m.pageCache.blockHook(b.pmap, 'seam', () => b.state === 'running');
  hookA.copied(0, TEXT_BASE);
  for (let k = 0; k < 8; k++) hookA.copied(1 + k, ARRAY_PA + k * 64 * PAGE);
  assert.ok(hookB.map(0, TEXT_BASE), 'b maps the cached program page');
  assert.ok(!hookB.map(100, TEXT_BASE + PAGE));
}

/** As a device's DMA would: eight pages of equal bytes in both VMs, and eight zero pages each, for the scanner to merge. */
function samePages(m: Monitor): void {
  const bytes = new Uint8Array(PAGE).map((_, i) => (i * 7) & 0xff);
  for (const vm of [m.vm('a')!, m.vm('b')!]) {
    const memory = vm.machine.bus.guestMemory();
    for (let k = 0; k < 8; k++) memory.write(TEXT_BASE + 8 * MiB + k * PAGE, bytes);
    for (let k = 8; k < 16; k++) memory.writeU32(TEXT_BASE + 8 * MiB + k * PAGE, 0);
  }
}

function step(run: Run, round: number, timing: boolean): void {
  const m = run.monitor;
  if (round === CACHE_AT) cacheBlocks(m);
  if (round === SAME_PAGES_AT) samePages(m);
  if (round === SHARE_AT) m.sharePages();
  if (timing && (round === TIMING_FROM || round === TIMING_AGAIN_FROM)) m.setExecutionMode('timing');
  if (timing && round === FAST_FROM) m.setExecutionMode('fast');
  if (round === STOP_B_AT) m.stopVm(m.vm('b')!);
  m.runRound();
}

function statsText(monitor: Monitor): string {
  const stats = new StatsRegistry();
  registerMonitorStats(stats, monitor);
  return formatStatsText(stats.snapshot());
}

const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });

function text(bytes: readonly number[]): string {
  return Buffer.from(bytes).toString('latin1');
}

/** Checks the property for (N, M) pairs: one straight run, saved at each N and compared at each N + M. */
function checkWhole(t: TestContext, timing: boolean, pairs: [number, number][], mmu: MmuMode = 'software'): void {
  const straight = boot(t, timing, mmu);
  if (straight === undefined) return;
  const saves = new Map<number, { bytes: Uint8Array; consoles: Map<string, number> }>();
  const checks = new Map<number, { consoles: Map<string, string>; stats: string; state: Buffer }>();
  const saveAt = new Set(pairs.map(([n]) => n));
  const checkAt = new Set(pairs.map(([n, m]) => n + m));
  const last = Math.max(...checkAt, STOP_B_AT + 10);
  const lengths = (): Map<string, number> => new Map([...straight.consoles].map(([name, c]) => [name, c.length]));
  for (let round = 0; round <= last; round++) {
    if (saveAt.has(round)) {
      const cached: number = straight.monitor.pageCache.size;
      saves.set(round, { bytes: encodeMonitorSnapshot(straight.monitor, noBuild), consoles: lengths() });
      // Saving takes nothing from the running machine (the page cache used to let go of its pages).
      assert.equal(straight.monitor.pageCache.size, cached, `the page cache after a save at round ${round}`);
    }
    if (checkAt.has(round)) {
      checks.set(round, {
        consoles: new Map([...straight.consoles].map(([name, c]) => [name, text(c)])),
        stats: statsText(straight.monitor), state: comparableMonitorState(saveMonitor(straight.monitor)),
      });
    }
    step(straight, round, timing);
  }
  // What the seam was tried across: every kind of exit, shared pages broken by writes, and in timing mode the
  // policy's moves and replicas.
  const a = straight.monitor.vm('a')!;
  for (const cause of ['guest-page-fault.fill', 'guest-page-fault.copy-on-write', 'sbi.time', 'sbi.legacy', 'mmio.ns16550a', 'wfi', 'interrupt.timer']) {
    assert.ok((a.exits.get(cause) ?? 0) > 0, `VM a had no ${cause} exit: ${JSON.stringify([...a.exits])}`);
  }
  // The page cache mapped a block and came to hold pages alone; the scanner merged zero and other pages.
  const m = straight.monitor;
  assert.ok(m.pageCache.counts.disk.hits > 0 && m.pageCache.size > 0, `the page cache: ${JSON.stringify(m.pageCache.counts)}`);
  assert.ok([...Array(m.memory.totalPages).keys()].some((mpn) => m.pageCache.holds(mpn) && m.memory.users[mpn] === 1), 'a page the cache alone holds');
  const scanned = m.scanner!.counts;
  // In timing mode the scanner runs slowly (faster, it would starve the VMs' vCPUs): its first pass, whose looks
  // only test for zero (hashing starts at a page's second look), is what crosses the seam, through the caches.
  if (timing) assert.ok(scanned.zeroTests > 0 && scanned.referenceCycles > 0 && scanned.cyclesCharged > 0, `the scanner: ${JSON.stringify(scanned)}`);
  else assert.ok(scanned.mergedZero > 0 && scanned.mergedContent > 0 && scanned.passes > 0 && scanned.cyclesCharged > 0, `the scanner: ${JSON.stringify(scanned)}`);
  if (timing) {
    const counts = straight.monitor.policy!.counts;
    assert.ok(counts.migratedTo.some((n) => n > 0) && counts.replicatedTo.some((n) => n > 0), `the policy moved and replicated: ${JSON.stringify(counts)}`);
  }
  for (const [n, m] of pairs) {
    const saved = saves.get(n)!;
    const consoles: Map<string, number[]> = new Map();
    const { monitor } = restoreWhole(decodeMonitorSnapshot(saved.bytes), { translate: true }, (name) => ({ console: consoleFor(consoles, name) }));
    const restored: Run = { monitor, consoles };
    for (let round = n; round < n + m; round++) step(restored, round, timing);
    const expected = checks.get(n + m)!;
    for (const [name, c] of straight.consoles) {
      const seen: string = text(c.slice(0, saved.consoles.get(name))) + text(consoles.get(name)!);
      assert.equal(seen, expected.consoles.get(name), `VM ${name}'s console after ${n} + ${m} rounds`);
    }
    assert.equal(statsText(monitor), expected.stats, `stats after ${n} + ${m} rounds`);
    assert.ok(comparableMonitorState(saveMonitor(monitor)).equals(expected.state), `the monitor's state after ${n} + ${m} rounds`);
  }
}

/** What VM `vm`'s guest can see, and what the monitor counted for it, without machine addresses: as bytes. */
function guestVisible(vm: VirtualMachine): Buffer {
  const config = { harts: vm.vcpus.length, nodes: [{ memoryBytes: vm.pmap.size, harts: vm.vcpus.map((_, i) => i) }] };
  const machine = saveMachine(vm.machine, config) as unknown as Record<string, unknown>;
  for (const hart of machine.harts as Record<string, unknown>[]) {
    delete hart.tlbs;
    delete hart.tlbModel;
    delete hart.stop;
    delete hart.countersSynced;
  }
  delete machine.reservations;
  const memory = vm.pmap.regions;
  const pages: (Uint8Array | null)[] = [];
  for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
    const mpn = vm.pmap.lookup(gppn);
    if (mpn === FREE) pages.push(null);
    else {
      const region = vm.pmap.regions.find((r) => r.base <= memory[0]!.base + mpn * PAGE && memory[0]!.base + mpn * PAGE < r.end)!;
      const offset = memory[0]!.base + mpn * PAGE - region.base;
      pages.push(region.u8.slice(offset, offset + PAGE));
    }
  }
  const sorted = (m: ReadonlyMap<string, number>): [string, number][] => [...m].sort(([x], [y]) => (x < y ? -1 : 1));
  return Buffer.from(encodeSnapshot({ machine, pages, exits: sorted(vm.exits), calls: sorted(vm.monitorCalls) }));
}

/**
 * One VM of three vCPUs alone on the machine, saved alone after N rounds, restored into a fresh monitor whose
 * memory another VM used first (so its pages land elsewhere), M more rounds: its console and what its guest
 * sees are the straight run's after N + M.
 */
function checkOneVm(t: TestContext, pairs: [number, number][]): void {
  if (!requireToolchain(t)) return;
  const make = (): Run => ({ monitor: new Monitor(options(false, 'software')), consoles: new Map() });
  const straight = make();
  const vm = straight.monitor.createVm({ name: 'a', vcpus: 3, memoryBytes: 16 * MiB, console: consoleFor(straight.consoles, 'a') });
  startSeamProgram(vm, 3);
  const saves = new Map<number, { bytes: Uint8Array; console: number }>();
  const checks = new Map<number, { console: string; visible: Buffer }>();
  const last = Math.max(...pairs.map(([n, m]) => n + m));
  for (let round = 0; round <= last; round++) {
    if (pairs.some(([n]) => n === round)) {
      saves.set(round, { bytes: encodeSnapshot(monitorSnapshot(straight.monitor, noBuild, vm).value), console: straight.consoles.get('a')!.length });
    }
    if (pairs.some(([n, m]) => n + m === round)) checks.set(round, { console: text(straight.consoles.get('a')!), visible: guestVisible(vm) });
    straight.monitor.runRound();
  }
  for (const [n, m] of pairs) {
    const saved = saves.get(n)!;
    const restored = make();
    // Another VM takes pages first and gives them back: the restored one's pages come from elsewhere.
    const other = restored.monitor.createVm({ name: 'other', vcpus: 1, memoryBytes: 16 * MiB, console: () => {} });
    for (let k = 0; k < 700; k += 3) other.machine.bus.guestMemory().writeU32(other.pmap.base + k * PAGE, k + 1);
    restored.monitor.stopVm(other);
    const { vm: again } = restoreVm(restored.monitor, decodeMonitorSnapshot(saved.bytes), 'a', 'a', { console: consoleFor(restored.consoles, 'a') });
    assert.notDeepEqual(Array.from({ length: 64 }, (_, g) => again.pmap.lookup(g)), Array.from({ length: 64 }, (_, g) => vm.pmap.lookup(g)), 'placed elsewhere');
    for (let round = n; round < n + m; round++) restored.monitor.runRound();
    const expected = checks.get(n + m)!;
    assert.equal(text(straight.consoles.get('a')!.slice(0, saved.console)) + text(restored.consoles.get('a')!), expected.console, `console after ${n} + ${m} rounds`);
    assert.ok(guestVisible(again).equals(expected.visible), `what the guest sees after ${n} + ${m} rounds`);
  }
}

/** A handful of (N, M) pairs from fast-check; the seed is in the test's name so a failure can be replayed. */
function pairs(seed: number, max = 200): [number, number][] {
  return fc.sample(fc.tuple(fc.integer({ min: 0, max }), fc.integer({ min: 1, max })), { seed, numRuns: 4 });
}

describe('VMs under the monitor saved after N rounds and restored run M more exactly as N + M straight', () => {
  const seed = Number(process.env.MIRRORBALL_SNAPSHOT_SEED ?? Date.now() % 2 ** 31);
  it(`the whole machine, fast mode: shared pages, an ended VM (seed ${seed})`, (t) => {
    const chosen = pairs(seed, 180);
    // At least one save after the sharing and one across the VM's end.
    chosen[0]![0] = SHARE_AT + 1 + (chosen[0]![0] % 40);
    chosen[1]![0] = STOP_B_AT - 20 + (chosen[1]![0] % 30);
    checkWhole(t, false, chosen);
  });
  it(`the whole machine, timing mode on and off with the NUMA policy: caches, miss counters, moves and replicas (seed ${seed})`, (t) => {
    const chosen = pairs(seed + 1, 150);
    chosen[0]![0] = TIMING_FROM + 1 + (chosen[0]![0] % (FAST_FROM - TIMING_FROM - 1));
    chosen[1]![1] = Math.max(chosen[1]![1], 250 - chosen[1]![0]);
    checkWhole(t, true, chosen);
  });
  it(`the whole machine, timing mode with the nested walk: its G-stage TLBs (seed ${seed})`, (t) => {
    const chosen = pairs(seed + 3, 150).slice(0, 2);
    chosen[0]![0] = TIMING_FROM + 1 + (chosen[0]![0] % (FAST_FROM - TIMING_FROM - 1));
    checkWhole(t, true, chosen, 'nested');
  });
  it(`one VM alone, restored on other machine pages (seed ${seed})`, (t) => checkOneVm(t, pairs(seed + 2)));
});

describe('sharing across a whole restore', () => {
  const savedWith = (scan: MonitorOptions['scan'], sharing = true): Uint8Array => {
    const monitor = new Monitor({ ...options(false, 'software'), scan });
    monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, sharing, console: () => {} });
    return encodeMonitorSnapshot(monitor, noBuild);
  };
  const restored = (bytes: Uint8Array, scan: MonitorOptions['scan']): Monitor => restoreWhole(decodeMonitorSnapshot(bytes), { scan }, () => ({ console: () => {} })).monitor;
  it('a machine saved with a scanner keeps its own; one saved without takes the host\'s, or none', () => {
    assert.equal(restored(savedWith({ pagesPerSecond: 1000, cpu: 1 }), { pagesPerSecond: 2000, cpu: 0 }).scanner?.parameters.pagesPerSecond, 1000);
    const own = restored(savedWith({ pagesPerSecond: 1000, idlePagesPerSecond: 7000, mergeOnFirstMatch: true, cpu: 1 }), { pagesPerSecond: 2000, cpu: 0 }).scanner!.parameters;
    assert.deepEqual([own.idlePagesPerSecond, own.mergeOnFirstMatch], [7000, true]);
    assert.deepEqual([restored(savedWith({ pagesPerSecond: 1000, idlePagesPerSecond: 0, cpu: 1 }), undefined).scanner!.parameters.idlePagesPerSecond], [0]);
    assert.equal(restored(savedWith({ pagesPerSecond: 1000, cpu: 1 }), undefined).scanner?.parameters.cpu, 1);
    assert.equal(restored(savedWith(undefined), { pagesPerSecond: 2000, cpu: 0 }).scanner?.parameters.pagesPerSecond, 2000);
    assert.equal(restored(savedWith(undefined), undefined).scanner, undefined);
  });
  it('the subnet\'s offloads and MTU come back with the machine (its cards offer what they offered)', () => {
    const monitor = new Monitor({ ...options(false, 'software'), subnet: { offload: true, mtu: 9000 } });
    monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, net: true, console: () => {} });
    const again = restored(encodeMonitorSnapshot(monitor, noBuild), undefined);
    assert.deepEqual(again.settings.subnet, { offload: true, mtu: 9000 });
    const card = (m: Monitor): bigint => m.vm('a')!.machine.virtioTransports()[0]!.device.features;
    assert.equal(card(again), card(monitor));
  });
  it('a VM that opted out of sharing (share: false) still has after a restore (it used to come back sharing)', () => {
    assert.equal(restored(savedWith(undefined, false), undefined).vm('a')!.sharesWithOthers, false);
    assert.equal(restored(savedWith(undefined, true), undefined).vm('a')!.sharesWithOthers, true);
  });
});

describe('the content scanner\'s saved state', () => {
  it('holds only the parameters it reads, so a restored machine saves the same state', () => {
    const scan = { pagesPerSecond: 1000, cpu: 1, unknown: 7 } as MonitorOptions['scan'];
    const monitor = new Monitor({ ...options(false, 'software'), scan });
    monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: () => {} });
    const again = restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(monitor, noBuild)), {}, () => ({ console: () => {} })).monitor;
    assert.ok(comparableMonitorState(saveMonitor(again)).equals(comparableMonitorState(saveMonitor(monitor))));
  });
});

// Memory borrowing between cells (docs/cells.md, "Borrowing"), with bare S-mode counting programs in VMs
// (test/helpers/vm-program.ts): a confined VM that overcommits its cell finishes with borrowing on and is stopped
// with it off; requests and loans are counted exactly; the borrowing VM depends on the lender and ends with it
// while a VM of a third cell counts on; a lender at its minimum refuses; unused chunks go back.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { requireToolchain, TEXT_BASE } from '../../test/helpers/asm.js';
import { assertCounted, counterDone, meshMachine, runRoundsUntil, startCounter } from '../../test/helpers/vm-program.js';
import { DEFAULT_HANDLER_CYCLES, DEFAULT_LATENCY } from './cell-bus.js';
import { PAGE } from './machine-memory.js';
import { defaultBorrowParameters, PAPER_BORROW, type BorrowParameters } from './memory-borrowing.js';
import { Monitor, MonitorError } from './monitor.js';
import { accountVm } from './accounting.js';
import { statsTable } from '../cli/vm-commands.js';
import { monitorCommands } from '../control/monitor-commands.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, restoreWhole } from '../host/monitor-snapshot.js';
import { SnapshotError } from '../board/snapshot.js';
import type { VirtualMachine } from './vm.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
/** A chunk of 64 pages, kept from each lender; a cell is low below 1 MiB free. */
const CHUNK = 64;
const PARAMETERS: BorrowParameters = { lowFree: 1 * MiB, keep: CHUNK * PAGE, chunk: CHUNK * PAGE, lenderMinFree: 4 * MiB };
/** Free pages left in cell 0 when the overcommitting VM starts: fewer than its program needs. */
const LEFT = 12;

interface Scene {
  monitor: Monitor;
  hardware: MachineHardware;
  /** Confined to cell 0 (nodes 0 and 1), at home on node 0: runs the counter on what cell 0 has left. */
  a: VirtualMachine;
  /** Confined to cell 0, at home on node 1: fills cell 0 (its pages touched by the host; its vCPU parked). */
  hog: VirtualMachine;
  /** Confined to the last cell: counts on whatever happens to the others. */
  c: VirtualMachine;
}

/** The mesh (nodes 0-3, one CPU each) in cells `cells`; cell 0 filled until `LEFT` pages are free in it. */
function scene(cells: number[][], borrow: Partial<BorrowParameters> | undefined): Scene {
  const config = meshMachine();
  const hardware = new MachineHardware(layoutMachine(config));
  const monitor = new Monitor({ config, hardware, cells, borrow });
  const last = cells.length - 1;
  const a = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 0, homeNode: 0 });
  const hog = monitor.createVm({ name: 'hog', vcpus: 1, memoryBytes: 64 * MiB, console: quiet, cell: 0, homeNode: 1 });
  const c = monitor.createVm({ name: 'c', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: last });
  hog.vcpus[0]!.parked = true;
  const memory = monitor.memory;
  const free0 = (): number => memory.pagesFree(0) + memory.pagesFree(1);
  const guest = hog.machine.bus.guestMemory();
  // Touched page by page until cell 0 has LEFT free and nothing reserved (no block a reclaim could give back).
  for (let p = 0; free0() > LEFT || memory.pagesReserved(0) + memory.pagesReserved(1) > 0; p++) guest.writeU32(TEXT_BASE + p * PAGE, p + 1);
  assert.equal(free0(), LEFT);
  assert.deepEqual(hog.cells, [0], 'the hog took only its own cell\'s pages');
  return { monitor, hardware, a, hog, c };
}

/** VM `vm`'s guest pages on machine node `node`. */
function pagesOn(monitor: Monitor, vm: VirtualMachine, node: number): number {
  let n = 0;
  for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
    const mpn = vm.pmap.lookup(gppn);
    if (mpn >= 0 && monitor.memory.nodeOf(mpn) === node) n++;
  }
  return n;
}

test('the defaults are the paper\'s numbers scaled by a cell\'s memory against 256 MiB, in whole pages', () => {
  assert.deepEqual(defaultBorrowParameters(4 * 256 * MiB, 4), PAPER_BORROW);
  assert.deepEqual(defaultBorrowParameters(128 * MiB, 2), { lowFree: 4 * MiB, keep: 1 * MiB, chunk: 1 * MiB, lenderMinFree: 8 * MiB });
  // 128 MiB in 3 cells: 1/6 of the paper's, rounded down to pages.
  assert.deepEqual(defaultBorrowParameters(128 * MiB, 3), { lowFree: 682 * PAGE, keep: 170 * PAGE, chunk: 170 * PAGE, lenderMinFree: 1365 * PAGE });
  assert.throws(() => new Monitor({ config: meshMachine(), borrow: {} }), (e: unknown) => e instanceof MonitorError && e.message === 'memory borrowing is between cells: it needs several (machine.cells)');
  assert.throws(() => new Monitor({ config: meshMachine(), cells: 2, borrow: { chunk: 1000 } }),
    (e: unknown) => e instanceof MonitorError && e.message === 'memory borrowing: chunk must be a whole number of 4 KiB pages (at least one), not 1000 bytes');
  assert.deepEqual(new Monitor({ config: meshMachine(), cells: 2, borrow: { chunk: 8192 } }).settings.borrow, { lowFree: 4 * MiB, keep: 1 * MiB, chunk: 8192, lenderMinFree: 8 * MiB });
  assert.equal(new Monitor({ config: meshMachine(), cells: 2 }).settings.borrow, undefined, 'off by default');
});

test('a cell\'s preference list: the other cells, nearest first by node distance, ties to the lower id', () => {
  const monitor = new Monitor({ config: meshMachine(), cells: [[0], [1], [2], [3]], borrow: {} });
  // The mesh's links are 0-1, 0-2, 1-3, 2-3: cells 1 and 2 are one hop from cell 0, cell 3 two.
  assert.deepEqual(monitor.borrowing!.preference, [[1, 2, 3], [0, 3, 2], [0, 3, 1], [1, 2, 0]]);
});

test('without borrowing, a VM that overcommits its cell is stopped: it took nothing from the other cell', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene([[0, 1], [2, 3]], undefined);
  const run = startCounter(s.a, { iterations: 2_000, fillPages: 24, poweroff: false });
  runRoundsUntil(s.monitor, () => s.a.state !== 'running' || counterDone(s.a, run), 5_000);
  assert.equal(s.a.state, 'stopped');
  assert.match(s.a.reason, /memory exhausted/);
  assert.equal(pagesOn(s.monitor, s.a, 2) + pagesOn(s.monitor, s.a, 3), 0);
  assert.equal(s.monitor.borrowing, undefined);
});

test('with borrowing, it finishes on chunks its cell borrowed, each request and loan counted exactly, the round trips paid by it; it depends on the lender, and ends when the lender\'s cell fails while a VM of a third cell counts on exactly', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene([[0, 1], [2], [3]], PARAMETERS);
  const borrowing = s.monitor.borrowing!;
  const memory = s.monitor.memory;
  // Filling cell 0 below 1 MiB free made it borrow one chunk from each cell on its preference list (1, then 2).
  assert.deepEqual(borrowing.preference[0], [1, 2]);
  assert.deepEqual([borrowing.stats(0).requests, borrowing.stats(0).granted, borrowing.stats(0).borrowedChunks], [2, 2, 2]);
  assert.deepEqual([memory.pagesLent(2), memory.pagesLent(3)], [CHUNK, CHUNK], 'each lender\'s free count dropped by the chunk');
  const freeOn2 = memory.pagesFree(2);
  const runA = startCounter(s.a, { iterations: 2_000, fillPages: 24, poweroff: false });
  const runC = startCounter(s.c, { iterations: 40_000, fillPages: 2, poweroff: false });
  const cyclesBefore = s.a.vcpus[0]!.monitorCycles.reduce((x, y) => x + y, 0);
  runRoundsUntil(s.monitor, () => s.a.state !== 'running' || counterDone(s.a, runA), 5_000);
  assertCounted(s.a, runA);
  // Its pages past cell 0's own came from the nearest lender's chunks (node 2, one hop from its home node 0).
  const k = pagesOn(s.monitor, s.a, 2);
  assert.ok(k > 0 && k <= CHUNK, `${k} pages from cell 1`);
  assert.equal(pagesOn(s.monitor, s.a, 3), 0);
  // Before each allocation cell 0 kept a chunk's worth available from cell 1: 1 + ceil((k - 1) / CHUNK) chunks.
  const fromCell1 = 1 + Math.ceil((k - 1) / CHUNK);
  const b0 = borrowing.stats(0);
  assert.deepEqual([b0.requests, b0.granted, b0.refused, b0.returned], [fromCell1 + 1, fromCell1 + 1, 0, 0]);
  assert.deepEqual([b0.borrowedChunks, b0.borrowedPages, b0.borrowedInUse], [fromCell1 + 1, (fromCell1 + 1) * CHUNK, k]);
  const l1 = borrowing.stats(1);
  assert.deepEqual([l1.lentChunks, l1.lentPages, l1.lentInUse], [fromCell1, fromCell1 * CHUNK, k]);
  assert.deepEqual([borrowing.stats(2).lentChunks, borrowing.stats(2).lentInUse], [1, 0]);
  // The lender's accounting: its free count fell by the chunks; the pages handed out are in use on its node.
  assert.equal(memory.pagesLent(2), fromCell1 * CHUNK - k);
  assert.equal(memory.pagesFree(2), freeOn2 - (fromCell1 - 1) * CHUNK);
  // query-monitor gives each cell's loans and each node's lent pages; the memory account still adds up; stats says it.
  const commands = monitorCommands({
    monitor: s.monitor, consolePath: () => undefined, stopVm: () => {}, quit: () => {}, runDir: '.', statsConfig: () => ({}),
  });
  const q = commands['query-monitor']!.run({}) as { cells: { id: number; borrowing: unknown }[]; nodes: { pagesLent: number }[] };
  assert.deepEqual(q.cells.map((c) => c.borrowing), [0, 1, 2].map((c) => borrowing.stats(c)));
  assert.deepEqual(q.nodes.map((n) => n.pagesLent), [0, 0, fromCell1 * CHUNK - k, CHUNK]);
  const m = s.monitor.memoryAccount().machine;
  assert.equal(m.inUse + m.reserved + m.monitor + m.replicas + m.lent + m.free, m.total);
  assert.equal(m.lent, (fromCell1 + 1) * CHUNK - k);
  const stats = statsTable(accountVm(s.monitor, s.a), 3, q.cells as never);
  assert.ok(stats.includes(`cell 0: borrowed ${fromCell1 + 1} chunks (${(fromCell1 + 1) * CHUNK} pages, ${k} in use), lent none; asked ${fromCell1 + 1}, given ${fromCell1 + 1}, refused 0, given back 0`), stats);
  assert.ok(stats.includes(`cell 1: borrowed none, lent ${fromCell1} chunk`), stats);
  // The round trips of the requests it made were its to pay (700 cycles each with the bus's defaults).
  const paid = s.a.vcpus[0]!.monitorCycles.reduce((x, y) => x + y, 0) - cyclesBefore;
  assert.ok(paid >= (fromCell1 - 1) * (2 * DEFAULT_LATENCY + DEFAULT_HANDLER_CYCLES), `${paid} monitor cycles`);
  // It depends on cell 1 now (not on cell 2, whose chunk it never used); every live cell's record says so.
  assert.deepEqual([s.a.cells, s.hog.cells, s.c.cells], [[0, 1], [0], [2]]);
  const cellular = s.monitor.recovery.cellular!;
  assert.deepEqual(cellular.stateOf(1).vms.get(s.a.id)?.cells, [0, 1]);
  assert.equal(cellular.stateOf(2).vms.has(s.a.id), false);
  // Cell 1's monitor node fails: the borrowing VM ends with it; the hog (cell 0 only) and c (cell 2) go on.
  s.hardware.injector.inject({ kind: 'node', node: 2 });
  runRoundsUntil(s.monitor, () => cellular.episodes.length > 0 && !s.monitor.recovery.paused, 400);
  assert.deepEqual([s.a.state, s.a.reason], ['stopped', 'hardware fault: cell 1 failed: node 2, which held its monitor state, failed']);
  assert.deepEqual([s.hog.state, s.c.state], ['running', 'running']);
  runRoundsUntil(s.monitor, () => counterDone(s.c, runC), 20_000);
  assertCounted(s.c, runC);
  // The failed lender took its loans with it; cell 0, still low (the hog), keeps cell 2's chunk, until the hog goes.
  assert.deepEqual([borrowing.stats(0).borrowedChunks, borrowing.stats(0).borrowedPages, borrowing.stats(1).lentChunks], [1, CHUNK, 0]);
  assert.deepEqual([borrowing.stats(2).lentChunks, memory.pagesLent(3)], [1, CHUNK]);
  s.monitor.stopVm(s.hog);
  runRoundsUntil(s.monitor, () => false, 2);
  assert.deepEqual([borrowing.stats(0).returned, borrowing.stats(2).lentChunks, memory.pagesLent(3), borrowing.loans], [1, 0, 0, 0]);
});

test('a lender with no more than its minimum free refuses: nothing is lent, and the VM is stopped as without borrowing', (t) => {
  if (!requireToolchain(t)) return;
  // Cell 1 has less than 64 MiB free: never more than the minimum.
  const s = scene([[0, 1], [2, 3]], { ...PARAMETERS, lenderMinFree: 64 * MiB });
  const borrowing = s.monitor.borrowing!;
  const run = startCounter(s.a, { iterations: 2_000, fillPages: 24, poweroff: false });
  runRoundsUntil(s.monitor, () => s.a.state !== 'running' || counterDone(s.a, run), 5_000);
  assert.equal(s.a.state, 'stopped');
  const b0 = borrowing.stats(0);
  assert.ok(b0.requests > 0);
  assert.deepEqual([b0.refused, b0.granted, b0.borrowedChunks, borrowing.stats(1).lentChunks], [b0.requests, 0, 0, 0]);
  assert.equal(s.monitor.memory.pagesLent(), 0);
  assert.deepEqual(s.a.cells, [0]);
});

test('unused chunks go back once the borrower has twice its threshold free: the lender\'s free count is whole again', (t) => {
  if (!requireToolchain(t)) return;
  const s = scene([[0, 1], [2, 3]], PARAMETERS);
  const borrowing = s.monitor.borrowing!;
  const memory = s.monitor.memory;
  const run = startCounter(s.a, { iterations: 2_000, fillPages: 24, poweroff: true });
  runRoundsUntil(s.monitor, () => s.a.state !== 'running', 5_000);
  assert.equal(s.a.state, 'off', s.a.reason);
  void run;
  // Its pages are free again, back in their chunks: cell 0 is still low (the hog), so it keeps them.
  runRoundsUntil(s.monitor, () => false, 2);
  const held = borrowing.stats(0);
  assert.ok(held.borrowedChunks >= 2 && held.borrowedInUse === 0 && held.returned === 0, JSON.stringify(held));
  assert.equal(memory.pagesLent(2) + memory.pagesLent(3), held.borrowedPages);
  // A whole snapshot does not keep loans: refused in one line while there are any.
  const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });
  assert.throws(() => encodeMonitorSnapshot(s.monitor, noBuild), (e: unknown) => e instanceof SnapshotError
    && e.message === `the cells hold borrowed memory (${2 * held.borrowedChunks} loan records): a whole snapshot does not keep loans yet; save once they are given back`);
  s.monitor.stopVm(s.hog);
  runRoundsUntil(s.monitor, () => false, 2);
  // Given back, it saves, and the copy borrows by the same thresholds.
  const copy = restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(s.monitor, noBuild)), {}, () => ({ console: quiet })).monitor;
  assert.deepEqual(copy.borrowing?.parameters, PARAMETERS);
  const after = borrowing.stats(0);
  assert.deepEqual([after.borrowedChunks, after.returned, borrowing.stats(1).lentChunks, memory.pagesLent()], [0, held.borrowedChunks, 0, 0]);
  assert.ok(borrowing.returnCycles > 0);
});

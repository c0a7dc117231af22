// Cells as configuration, placement and confinement (docs/cells.md): the specification's parsing, where VMs
// go, that a confined VM's vCPUs run and its pages lie only in its cell, and what several cells refuse.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { ACCESS_WRITE } from '../memory/bus.js';
import { monitorMachine } from '../../test/helpers/vm-program.js';
import { cellNodes, CellMap, CellsError } from './cells.js';
import { BLOCK_PAGES, FREE } from './machine-memory.js';
import { Monitor, MonitorError } from './monitor.js';
import { saveOneVm } from './monitor-snapshot.js';
import { DEFAULT_HANDLER_CYCLES } from './cell-bus.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, restoreWhole } from '../host/monitor-snapshot.js';
import type { VirtualMachine } from './vm.js';
import { psTable, statsTable } from '../cli/vm-commands.js';
import { listVm } from '../control/monitor-commands.js';
import { accountVm } from './accounting.js';

const MiB = 2 ** 20;
const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });
const quiet = (): void => {};

test('cells: a count splits the nodes evenly in id order; lists are taken as given, each sorted; none is one cell', () => {
  assert.deepEqual(cellNodes(undefined, 4), [[0, 1, 2, 3]]);
  assert.deepEqual(cellNodes(2, 4), [[0, 1], [2, 3]]);
  assert.deepEqual(cellNodes(4, 4), [[0], [1], [2], [3]]);
  assert.deepEqual(cellNodes([[3, 1], [0, 2]], 4), [[1, 3], [0, 2]]);
  assert.deepEqual(cellNodes([[0, 1, 2, 3]], 4), [[0, 1, 2, 3]]);
});

test('cells: every bad specification is one line that names the problem', () => {
  const bad: [Parameters<typeof cellNodes>[0], string][] = [
    [3, "cells: 3 cells do not divide the machine's 4 nodes evenly"],
    [0, 'cells: must be a positive whole number of cells or a list of lists of nodes, not 0'],
    [1.5, 'cells: must be a positive whole number of cells or a list of lists of nodes, not 1.5'],
    [[], 'cells: must be a number of cells or a non-empty list of lists of nodes'],
    [[[0, 1], []], 'cells[1]: must be a non-empty list of nodes'],
    [[[0, 1], [2, 4]], 'cells[1]: the machine has no node 4 (its nodes are 0 to 3)'],
    [[[0, 1], [1, 2, 3]], 'cells[1]: node 1 is already in cells[0]'],
    [[[0, 1], [3]], 'cells: node 2 is in no cell (every node must be in exactly one)'],
    [[[0], [3]], 'cells: nodes 1, 2 are in no cell (every node must be in exactly one)'],
  ];
  for (const [spec, message] of bad) {
    assert.throws(() => cellNodes(spec, 4), (e: unknown) => e instanceof CellsError && e.message === message && !message.includes('\n'), JSON.stringify(spec));
  }
  // The monitor refuses them as MonitorError.
  assert.throws(() => new Monitor({ config: monitorMachine(4, 32, 1), cells: 3 }), (e: unknown) => e instanceof MonitorError && /do not divide/.test((e as Error).message));
});

test('a cell: its nodes, their CPUs, and its monitor node, its lowest', () => {
  const cells = new CellMap(layoutMachine(monitorMachine(4, 32, 2)), [[3, 2], [0, 1]]);
  assert.deepEqual(cells.cells.map((c) => [c.id, [...c.nodes], [...c.cpus], c.monitorNode]), [[0, [2, 3], [4, 5, 6, 7], 2], [1, [0, 1], [0, 1, 2, 3], 0]]);
  assert.equal(cells.cellOf(1).id, 1);
  assert.equal(cells.primary?.id, 0);
});

/** Four nodes of 32 MiB and one CPU each, in two cells of two nodes. */
function twoCells(options: Partial<ConstructorParameters<typeof Monitor>[0]> = {}): Monitor {
  return new Monitor({ config: monitorMachine(4, 32, 1), cells: 2, ...options });
}

test('placement: a VM that fits goes to the cell with the most memory left (ties: the lowest); one that fits nowhere spans', () => {
  const m = twoCells();
  const vm = (name: string, mib: number, vcpus = 1, extra = {}): VirtualMachine => m.createVm({ name, vcpus, memoryBytes: mib * MiB, console: quiet, ...extra });
  const a = vm('a', 16);
  assert.deepEqual([a.cells, a.pmap.homeNode], [[0], 0]);
  const b = vm('b', 16);
  assert.deepEqual([b.cells, b.pmap.homeNode], [[1], 2], 'cell 1 has more left now');
  const c = vm('c', 24);
  assert.deepEqual([c.cells, c.pmap.homeNode], [[0], 1], 'a tie goes to cell 0; its home is the node with most left');
  // Cell 0 has 24 MiB left, cell 1 48: 40 MiB fits only cell 1; 56 fits neither, so it spans every cell.
  assert.deepEqual(vm('d', 40).cells, [1]);
  const e = vm('e', 56);
  assert.deepEqual(e.cells, [0, 1]);
  // More vCPUs than any cell's CPUs: it spans too.
  assert.deepEqual(vm('f', 16, 3).cells, [0, 1]);
});

test('placement: a named cell confines the VM there; a home node takes its cell if the VM fits; bad combinations are errors', () => {
  const m = twoCells();
  const spec = (name: string, extra: object): Parameters<Monitor['createVm']>[0] => ({ name, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, ...extra });
  const a = m.createVm(spec('a', { cell: 1 }));
  assert.deepEqual([a.cells, a.pmap.homeNode], [[1], 2]);
  const b = m.createVm(spec('b', { homeNode: 3 }));
  assert.deepEqual([b.cells, b.pmap.homeNode], [[1], 3]);
  const c = m.createVm(spec('c', { cell: 0, homeNode: 1 }));
  assert.deepEqual([c.cells, c.pmap.homeNode], [[0], 1]);
  const refused = (extra: object, message: string): void => {
    assert.throws(() => m.createVm(spec('x', extra)), (e: unknown) => e instanceof MonitorError && e.message === message);
  };
  refused({ cell: 2 }, 'VM x: the machine has no cell 2 (its cells are 0 to 1)');
  refused({ cell: 0, homeNode: 2 }, 'VM x: its home node 2 is not in cell 0 (nodes 0, 1)');
  refused({ cell: 0, memoryBytes: 80 * MiB }, "VM x: 80 MiB is more than cell 0's 64 MiB");
  // A home node whose cell has no room: the VM spans, at home there.
  const d = m.createVm(spec('d', { homeNode: 2, memoryBytes: 60 * MiB }));
  assert.deepEqual([d.cells, d.pmap.homeNode], [[0, 1], 2]);
});

test('one cell (the default) places as before cells: the node with the most left, no confinement, cell 0', () => {
  const m = new Monitor({ config: monitorMachine(4, 32, 1) });
  const homes = ['a', 'b', 'c', 'd', 'e'].map((name) => m.createVm({ name, vcpus: 2, memoryBytes: 16 * MiB, console: quiet }));
  assert.deepEqual(homes.map((vm) => vm.pmap.homeNode), [0, 1, 2, 3, 0]);
  assert.ok(homes.every((vm) => vm.cells.length === 1 && vm.cells[0] === 0));
  assert.deepEqual(m.memory.nodesFor(homes[0]!.id), [0, 1, 2, 3]);
});

/** Every machine page of `vm` (its pages, replicas and the monitor's data for it) and the nodes they lie on. */
function nodesUsed(m: Monitor, vm: VirtualMachine): Set<number> {
  const nodes = new Set<number>();
  for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
    const mpn = vm.pmap.lookup(gppn);
    if (mpn !== FREE) nodes.add(m.memory.nodeOf(mpn));
    for (const r of vm.pmap.replicasOf(gppn) ?? []) if (r !== FREE) nodes.add(m.memory.nodeOf(r));
  }
  for (const mpn of vm.tables.savePages().flat()) nodes.add(m.memory.nodeOf(mpn));
  return nodes;
}

function touch(vm: VirtualMachine, gppn: number): void {
  if (vm.pmap.page(gppn, ACCESS_WRITE) === undefined) vm.pmap.resolveFault(gppn, ACCESS_WRITE);
}

test('allocator: a confined VM\'s pages all lie in its cell, when its home node fills up, and under migration and replication', () => {
  for (const placement of ['home', 'round-robin'] as const) {
    const m = twoCells({ placement });
    // Cell 1's memory but for what the monitor holds: more than node 2 alone has.
    const vm = m.createVm({ name: 'big', vcpus: 1, memoryBytes: 60 * MiB, console: quiet, cell: 1 });
    assert.equal(vm.pmap.homeNode, 2);
    for (let gppn = 0; gppn < vm.pmap.pages - 1024; gppn++) touch(vm, gppn);
    assert.deepEqual([...nodesUsed(m, vm)].sort(), [2, 3], placement);
    assert.equal(m.memory.pagesInUse(0) + m.memory.pagesInUse(1), 0, `${placement}: nothing on cell 0's nodes`);
    // What the NUMA policy does (numa-policy.ts, large-pages.ts): none of it leaves the cell.
    const gppn = 5;
    vm.pmap.migrate(gppn, 0);
    assert.ok([2, 3].includes(m.memory.nodeOf(vm.pmap.lookup(gppn))), `${placement}: a migration to node 0 stays in the cell`);
    vm.pmap.replicate(gppn + 1, [0, 1, 3]);
    assert.ok((vm.pmap.replicasOf(gppn + 1) ?? []).every((r, node) => r === FREE || node === 3), `${placement}: replicas only in the cell`);
    assert.equal(vm.pmap.moveGroup(0, 0), undefined, 'no group moves to another cell\'s node');
    assert.deepEqual(vm.pmap.replicateGroup(1, [0, 1]), [], 'no group copies on another cell\'s nodes');
    assert.deepEqual([...nodesUsed(m, vm)].sort(), [2, 3]);
  }
});

test('allocator: without confinement (a spanning VM) the same fill falls back to the other cell\'s nodes, so the test above can fail', () => {
  const m = twoCells();
  m.createVm({ name: 'x', vcpus: 1, memoryBytes: 40 * MiB, console: quiet, cell: 1 });
  const vm = m.createVm({ name: 'big', vcpus: 1, memoryBytes: 60 * MiB, console: quiet, homeNode: 2 });
  assert.deepEqual(vm.cells, [0, 1]);
  for (let gppn = 0; gppn < vm.pmap.pages - 1024; gppn++) touch(vm, gppn);
  assert.ok([...nodesUsed(m, vm)].some((n) => n < 2));
});

test('a confined VM\'s monitor data (pmap tables, vCPU state, second-level TLBs) lies in its cell even when its home node is full', () => {
  const m = twoCells();
  // Fill node 2 with another VM of cell 1.
  const filler = m.createVm({ name: 'filler', vcpus: 1, memoryBytes: 32 * MiB, console: quiet, cell: 1, homeNode: 2 });
  for (let gppn = 0; m.memory.pagesFree(2) > 0; gppn++) touch(filler, gppn);
  const vm = m.createVm({ name: 'late', vcpus: 2, memoryBytes: 16 * MiB, console: quiet, cell: 1, homeNode: 2 });
  const tables = vm.tables.savePages().flat().map((mpn) => m.memory.nodeOf(mpn));
  assert.ok(tables.length > 0 && tables.every((n) => n === 3), `tables on ${[...new Set(tables)].join(', ')}`);
});

test('several cells refuse what is the whole machine\'s (the page cache, boot images through it, the scanner), each in a line', () => {
  const refused = (options: object, pattern: RegExp): void => {
    assert.throws(() => twoCells(options), (e: unknown) => e instanceof MonitorError && pattern.test((e as Error).message) && !(e as Error).message.includes('\n'));
  };
  refused({ diskCache: true }, /^the disk page cache \(diskCache\) is shared by the whole machine: with 2 cells it needs issue 22's cross-cell sharing$/);
  refused({ shareBootImages: true }, /shareBootImages/);
  refused({ scan: { pagesPerSecond: 100, cpu: 0 } }, /content scanner/);
  const m = twoCells();
  assert.throws(() => m.setScan({ pagesPerSecond: 100, cpu: 0 }), /content scanner/);
  const vm = m.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  assert.equal(m.diskHook(vm, 'base'), undefined, 'with several cells the page cache is off by default');
  assert.notEqual(new Monitor({ config: monitorMachine(4, 32, 1) }).diskHook(vm, 'base'), undefined, 'with one it is on');
  // Content merges stay within a cell.
  const b = m.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const c = m.createVm({ name: 'c', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 0 });
  assert.deepEqual([vm.cells, b.cells, c.cells], [[0], [1], [0]]);
  for (const v of [vm, b, c]) touch(v, 3);
  m.sharePages();
  assert.equal(vm.pmap.lookup(3), c.pmap.lookup(3), 'two zero pages of cell 0 merge');
  assert.notEqual(vm.pmap.lookup(3), b.pmap.lookup(3), 'none with cell 1\'s');
  assert.ok(m.memory.nodeOf(b.pmap.lookup(3)) >= 2);
});

test('snapshots: a monitor of several cells is saved whole and comes back with its cells and every VM in its place', () => {
  const m = twoCells();
  const a = m.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const b = m.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 0 });
  // 72 MiB fits in neither cell (64 MiB each): it spans.
  const wide = m.createVm({ name: 'wide', vcpus: 1, memoryBytes: 72 * MiB, console: quiet });
  for (const v of [a, b, wide]) touch(v, 3);
  assert.deepEqual([a.cells, b.cells, wide.cells], [[0], [0], [0, 1]]);
  const { monitor: again } = restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(m, noBuild)), {}, () => ({ console: quiet }));
  assert.deepEqual(again.cells.spec, m.cells.spec);
  assert.deepEqual(again.vms.map((v) => [v.name, v.cells, v.pmap.homeNode]), m.vms.map((v) => [v.name, v.cells, v.pmap.homeNode]));
  // Still confined: a's next pages come from cell 0's nodes only, and the recovery's states know each VM.
  const ra = again.vm('a')!;
  for (let g = 0; g < 40; g++) {
    touch(ra, g);
    assert.ok(again.memory.nodeOf(ra.pmap.lookup(g)) < 2, `page ${g}`);
  }
  assert.deepEqual([...again.recovery.cellular!.stateOf(1).vms.values()].map((e) => e.name), ['wide']);
  // One VM alone is saved as before.
  assert.equal(saveOneVm(m, a).vms.length, 1);
  // A snapshot whose VMs' cells do not match the machine it is restored into is refused, one line.
  const bytes = encodeMonitorSnapshot(m, noBuild);
  const loaded = decodeMonitorSnapshot(bytes);
  (loaded.saved.settings as { cells?: number[][] }).cells = [[0, 1, 2, 3]];
  assert.throws(() => restoreWhole(loaded, {}, () => ({ console: quiet })), /cannot be restored/);
});

test('ps and stats show each VM\'s cells on a machine of several cells, and nothing new on one of one', () => {
  const m = twoCells();
  m.createVm({ name: 'web', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  m.createVm({ name: 'db', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const wide = m.createVm({ name: 'wide', vcpus: 1, memoryBytes: 56 * MiB, console: quiet });
  const listing = m.vms.map((vm) => listVm(vm, undefined));
  assert.deepEqual(listing.map((l) => l.cells), [[0], [1], [0, 1]]);
  const rows = psTable(listing, 2).trimEnd().split('\n').map((r) => r.split(/\s+/));
  assert.deepEqual(rows[0]!.slice(-2), ['NODE', 'CELLS']);
  assert.deepEqual(rows.slice(1).map((r) => r[r.length - 1]), ['0', '1', '0,1']);
  assert.ok(!psTable(listing).includes('CELLS'), 'one cell: the table as before');
  assert.match(statsTable(accountVm(m, wide), 2).split('\n')[0]!, /on node \d, spanning cells 0, 1$/);
  assert.match(statsTable(accountVm(m, m.vms[1]!), 2).split('\n')[0]!, /on node 2, in cell 1$/);
  assert.doesNotMatch(statsTable(accountVm(m, wide)).split('\n')[0]!, /cell/);
});

test('blocks: a confined VM\'s large pages are reserved on its cell\'s nodes', () => {
  const m = twoCells();
  const vm = m.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 1 });
  touch(vm, 0);
  const block = vm.pmap.blockOf(0);
  assert.ok(block >= 0 && [2, 3].includes(m.memory.nodeOf(block)));
  assert.equal(m.memory.pagesReserved(2) + m.memory.pagesReserved(3), BLOCK_PAGES - 1);
});

test('a spanning VM\'s memory on another cell\'s node is lent by that cell over the cell bus, and the messages are the VM\'s to pay; a confined VM asks no one', () => {
  const m = twoCells();
  const cellular = m.recovery.cellular!;
  const confined = m.createVm({ name: 'c', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 1 });
  for (let g = 0; g < 2048; g++) touch(confined, g);
  assert.equal(cellular.lends.asked, 0, 'a confined VM\'s pages are its own cell\'s');
  // 72 MiB fits in neither cell: it spans, at home in cell 0, whose two nodes it fills before taking cell 1's.
  const wide = m.createVm({ name: 'wide', vcpus: 1, memoryBytes: 72 * MiB, console: quiet });
  assert.deepEqual([wide.cells, m.cells.cellOf(wide.pmap.homeNode).id], [[0, 1], 0]);
  for (let g = 0; g < wide.pmap.pages; g++) touch(wide, g);
  let inCell1 = 0;
  for (let g = 0; g < wide.pmap.pages; g++) {
    const mpn = wide.pmap.lookup(g);
    if (mpn >= 0 && m.cells.cellOf(m.memory.nodeOf(mpn)).id === 1) inCell1++;
  }
  assert.ok(inCell1 > 0, 'some of its pages are in cell 1');
  // One message per page cell 1 lent, each recorded in cell 1's own state and answered at most once.
  assert.equal(cellular.lends.asked, inCell1);
  assert.equal(cellular.lends.refused, 0);
  assert.equal(cellular.stateOf(1).lent.get(wide.id), inCell1);
  assert.equal(cellular.stateOf(0).lent.get(wide.id), undefined, 'its home cell lends it nothing');
  assert.equal(cellular.bus.counters.delivered, inCell1);
  const roundTrip = 2 * cellular.bus.latency + DEFAULT_HANDLER_CYCLES;
  assert.equal(cellular.takeOwed(wide.id), inCell1 * roundTrip);
  assert.equal(cellular.takeOwed(wide.id), 0, 'owed once');
  // A VM that ends leaves no loan behind.
  m.stopVm(wide);
  assert.equal(cellular.stateOf(1).lent.get(wide.id), undefined);
});

test('a cell that does not answer lends nothing: the VM\'s page comes from elsewhere, and it paid the timeout', () => {
  const m = twoCells();
  const cellular = m.recovery.cellular!;
  const wide = m.createVm({ name: 'wide', vcpus: 1, memoryBytes: 72 * MiB, console: quiet });
  // Node 2, cell 1's monitor node, fails in the hardware; the monitor has not read the report yet.
  m.hardware.injector.inject({ kind: 'node', node: 2 });
  m.hardware.advanceTo(m.cycles);
  assert.equal(m.memory.lends!(wide.id, 3), false);
  assert.deepEqual([cellular.lends.asked, cellular.lends.refused], [1, 1]);
  assert.equal(cellular.takeOwed(wide.id), cellular.bus.timeout);
  assert.equal(m.memory.lends!(wide.id, 1), true, 'its own cell\'s node needs no one');
});

test('a cell short of memory reclaims within itself: another cell\'s replicas and large pages stay, and the reclaim frees what it needs', () => {
  const m = twoCells();
  const a = m.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, cell: 0 });
  touch(a, 0);
  touch(a, 512);
  assert.equal(a.pmap.replicate(512, [0, 1]).length, 1, 'a copy of page 512 on the other node of cell 0');
  assert.ok(a.pmap.blockOf(0) >= 0 && m.memory.pagesReserved() > 0, 'a has a large page partly touched');
  const b = m.createVm({ name: 'b', vcpus: 1, memoryBytes: 60 * MiB, console: quiet, cell: 1 });
  // Cell 1 fills: most of b's pages, then copies of them on its other node until nothing is free there. b's
  // next pages (a group not reserved yet) can come only from what cell 1 gives back.
  const filled = 28 * 512;
  for (let gppn = 0; gppn < filled; gppn++) touch(b, gppn);
  for (let gppn = 0; m.memory.pagesFree(2) + m.memory.pagesFree(3) > 0; gppn++) b.pmap.replicate(gppn, [2, 3]);
  const copies = m.memory.replicaPages() - 1;
  for (let gppn = filled; gppn < filled + 64; gppn++) touch(b, gppn);
  assert.ok(m.memory.replicaPages() - 1 < copies, 'b\'s copies gave way');
  assert.notEqual(a.pmap.replicasOf(512), undefined, 'cell 0\'s replica stayed');
  assert.ok(a.pmap.blockOf(0) >= 0, 'cell 0\'s large page stayed whole');
  assert.ok([...nodesUsed(m, b)].every((n) => n >= 2));
});

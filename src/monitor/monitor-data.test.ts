// The monitor's own data in machine memory: where it lies, what references to it cost, and that it goes back.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { latenciesFromDistances, timingModelFor } from '../board/topology.js';
import { MachineMemory, MONITOR, OutOfMachineMemory, PAGE } from './machine-memory.js';
import { MemmapTable, VmTables, type PmapShape } from './monitor-data.js';

const MiB = 2 ** 20;
const RAM = 0x8000_0000;

/** Two nodes of 16 MiB and one CPU each, 10 and 30 apart (local misses 30 cycles, remote 90). */
function machine(): { memory: MachineMemory; timing: ReturnType<typeof timingModelFor> } {
  const layout = layoutMachine({ harts: 2, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }, { memoryBytes: 16 * MiB, harts: [1] }], distances: [[10, 30], [30, 10]] });
  return { memory: new MachineMemory(layout), timing: timingModelFor(layout, latenciesFromDistances([[10, 30], [30, 10]])) };
}

function shape(size: number, large: (group: number) => boolean = () => false): PmapShape {
  return { base: RAM, size, largeBlock: (group) => (large(group) ? RAM + group * 2 * MiB : -1) };
}

test('a VM\'s tables lie on its home node and go back when released; a machine too small for them allocates nothing', () => {
  const { memory } = machine();
  const tables = new VmTables(memory, shape(6 * MiB), 1, 2, 2048);
  // Root (4 pages), one middle table, 3 leaf tables, and per vCPU a state page and 8 pages of second-level TLB.
  assert.equal(tables.pages, 4 + 1 + 3 + 2 + 16);
  assert.deepEqual([memory.monitorPages(0), memory.monitorPages(1)], [0, tables.pages]);
  assert.equal(memory.pagesInUse(), 0, 'the monitor\'s pages counted as a VM\'s');
  assert.equal(memory.owner.filter((o) => o === MONITOR).length, tables.pages);
  tables.release();
  assert.equal(memory.monitorPages(), 0);
  assert.equal(memory.pagesFree(1), 16 * MiB / PAGE);

  // A second-level TLB bigger than the whole machine: refused, and what was taken before the refusal given back.
  assert.throws(() => new VmTables(memory, shape(6 * MiB), 0, 1, 2 ** 21), (e: unknown) => e instanceof OutOfMachineMemory && /pmap tables/.test(e.message));
  assert.equal(memory.monitorPages(), 0);
});

test('the monitor\'s references go through the cache of the CPU that makes them: remote from another node, a hit the second time', () => {
  const { memory, timing } = machine();
  const tables = new VmTables(memory, shape(4 * MiB), 1, 1, 2048);
  // CPU 0 is on node 0, the tables on node 1: a remote miss (90 cycles), then a hit (0).
  assert.equal(tables.pmapEntry(timing, 0, RAM + 5 * PAGE, false), 90);
  assert.equal(tables.pmapEntry(timing, 0, RAM + 5 * PAGE, false), 0);
  // CPU 1 is at home: a local miss for another line (16 entries of 8 bytes to a 128-byte line).
  assert.equal(tables.pmapEntry(timing, 1, RAM + 100 * PAGE, false), 30);
  // An exit's registers: 256 bytes written then read back, two lines each way; first time both lines miss.
  assert.equal(tables.exitState(timing, 1, 0), 2 * 30);
  assert.equal(tables.exitState(timing, 1, 0), 0);
  // The second-level TLB is indexed by the page number's low bits, a kernel address's negative one too: the
  // entry of vpn -1 is the last of 2048, on the same line as vpn 2047's.
  assert.equal(tables.secondLevelEntry(timing, 1, 0, -1, false), 30);
  assert.equal(tables.secondLevelEntry(timing, 1, 0, 2047, false), 0);
  // The memmap: a page's entry is on the page's own node.
  const memmap = new MemmapTable(memory);
  assert.equal(memmap.pages, 2 * (16 * MiB / PAGE) * 16 / PAGE);
  const onNode1 = memory.allocate(1, 0, 0);
  assert.equal(memmap.entry(timing, 1, onNode1, false), 30);
  const onNode0 = memory.allocate(0, 0, 1);
  assert.equal(memmap.entry(timing, 1, onNode0, false), 90);
});

test('the G-stage walk reads root, middle and leaf entries, and stops at the middle over a 2 MiB group mapped as one block', () => {
  const { memory, timing } = machine();
  const tables = new VmTables(memory, shape(4 * MiB, (group) => group === 1), 0, 1, 2048);
  // First walk: three lines never read, all local misses.
  assert.equal(tables.gStageWalk(timing, 0, RAM + 3 * PAGE), 3 * 30);
  assert.equal(tables.gStageLevels, 3);
  // The same page again: all hits.
  assert.equal(tables.gStageWalk(timing, 0, RAM + 3 * PAGE), 0);
  // In group 1 (a large page): root and middle only, both lines already read.
  assert.equal(tables.gStageWalk(timing, 0, RAM + 2 * MiB + 7 * PAGE), 0);
  assert.equal(tables.gStageLevels, 2);
});

// The machine file's cells (`machine.cells`, `vms[i].cell`; docs/cells.md): what a good file gives, and one
// line per mistake.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMachineFile } from './machine-file.js';
import { machineFileProblems } from '../../test/helpers/machine-file.js';

const problems = machineFileProblems;

const file = (cells: string, vm = '', monitor = ''): string =>
  `machine:\n  topology: numa4x2\n  memory: 2G\n  cells: ${cells}\n${monitor}vms:\n  - name: web\n${vm}`;

test('machine.cells: a count or lists of nodes give the cells as lists; a VM may name its cell; the page cache is off', () => {
  const even = parseMachineFile(file('2', '    cell: 1\n'), 'm.yaml');
  assert.deepEqual(even.machine.cells, [[0, 1], [2, 3]]);
  assert.equal(even.vms[0]!.cell, 1);
  assert.equal(even.monitor.diskCache, false, 'the page cache is the whole machine\'s: off with several cells');
  assert.deepEqual(parseMachineFile(file('[[3, 0], [1, 2]]'), 'm.yaml').machine.cells, [[0, 3], [1, 2]]);
  const one = parseMachineFile(file('1', '', 'monitor:\n  diskCache: true\n'), 'm.yaml');
  assert.deepEqual([one.machine.cells, one.monitor.diskCache], [[[0, 1, 2, 3]], true]);
  const none = parseMachineFile('machine:\n  topology: numa4x2\nvms:\n  - name: web\n', 'm.yaml');
  assert.deepEqual([none.machine.cells, none.vms[0]!.cell, none.monitor.diskCache], [undefined, undefined, true], 'no cells: as before');
});

test('machine.cells: each mistake is one line at its place', () => {
  assert.deepEqual(problems(file('3')), ["m.yaml:4:10: machine.cells: 3 cells do not divide the machine's 4 nodes evenly"]);
  assert.deepEqual(problems(file('[[0, 1], [1, 2, 3]]')), ['m.yaml:4:10: machine.cells[1]: node 1 is already in cells[0]']);
  assert.deepEqual(problems(file('[[0, 1], [2]]')), ['m.yaml:4:10: machine.cells: node 3 is in no cell (every node must be in exactly one)']);
  assert.deepEqual(problems(file('[[0, 1], [2, 9]]')), ['m.yaml:4:10: machine.cells[1]: the machine has no node 9 (its nodes are 0 to 3)']);
  assert.deepEqual(problems(file('two')), ['m.yaml:4:10: machine.cells: must be a number of cells (cells: 2) or a list of lists of nodes (cells: [[0, 1], [2, 3]])']);
  assert.deepEqual(problems(file('[0, 1]')), ['m.yaml:4:10: machine.cells: must be a number of cells (cells: 2) or a list of lists of nodes (cells: [[0, 1], [2, 3]])']);
  assert.deepEqual(problems(file('2', '    cell: 2\n')), ["m.yaml:7:11: vms[0].cell must be an integer from 0 to 1, not '2'"]);
  assert.deepEqual(problems(file('2', '', 'monitor:\n  diskCache: true\n')),
    ["m.yaml:6:14: monitor.diskCache: the page cache is shared by the whole machine: with 2 cells it needs issue 22's cross-cell sharing"]);
  assert.equal(problems(file('2', '', 'monitor:\n  scan: true\n  shareBootImages: true\n')).length, 2);
  for (const p of problems(file('[[0, 1], [1, 2, 3]]'))) assert.ok(!p.includes('\n'));
});

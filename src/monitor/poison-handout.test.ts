// A line poisoned while its page is free is not handed to a VM as poison: the allocator's zeroing of a page
// for its new owner writes whole lines, which on this machine replaces them with their poison (docs/faults.md,
// "Poison"). Without it a VM given the page would take a bus error for a fault that touched nothing of its.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { HW_OK, HW_POISONED } from '../memory/hardware-faults.js';
import { monitorMachine } from '../../test/helpers/vm-program.js';
import { BLOCK_PAGES, MachineMemory, PAGE } from './machine-memory.js';

function setting(): { hardware: MachineHardware; memory: MachineMemory } {
  const layout = layoutMachine(monitorMachine(2, 16, 1));
  const hardware = new MachineHardware(layout);
  return { hardware, memory: new MachineMemory(layout, hardware.regions) };
}

/** The check an access by CPU 0 to `length` bytes at machine page `mpn`'s byte `offset` meets. */
function access(memory: MachineMemory, mpn: number, offset = 0, length = PAGE): number {
  const region = memory.regionOf(mpn);
  return region.faults?.check(0, memory.offsetOf(mpn) + offset, length) ?? HW_OK;
}

test('a never-used page poisoned while free comes to its first owner clean', () => {
  const { hardware, memory } = setting();
  const target = memory.nodeSpan(1).first + 3;
  hardware.injector.inject({ kind: 'line', address: memory.addressOf(target) + 128 });
  hardware.advanceTo(0);
  assert.equal(access(memory, target), HW_POISONED, 'the line is poisoned');
  let got = -1;
  for (let gppn = 0; got !== target; gppn++) got = memory.allocate(1, 0, gppn);
  assert.equal(access(memory, target), HW_OK);
  assert.equal(memory.regionOf(target).faults, null, 'no fault is left on the region');
});

test('a freed page poisoned while free, and a block reserved over one, come clean; a poisoned page in use stays poisoned', () => {
  const { hardware, memory } = setting();
  const first = memory.nodeSpan(1).first;
  const a = memory.allocate(1, 0, 0);
  const b = memory.allocate(1, 0, 1);
  memory.removeUser(a, 0, 0);
  hardware.injector.inject({ kind: 'line', address: memory.addressOf(a) });
  hardware.injector.inject({ kind: 'page', address: memory.addressOf(b) });
  // A line of a never-used 2 MiB block further on.
  const blockPage = first + 2 * BLOCK_PAGES + 17;
  hardware.injector.inject({ kind: 'line', address: memory.addressOf(blockPage) + 64 });
  hardware.advanceTo(0);
  assert.equal(memory.allocate(1, 1, 0), a, 'the freed page is the next one given');
  assert.equal(access(memory, a), HW_OK);
  assert.equal(access(memory, b, 0, 8), HW_POISONED, 'a page in use keeps its poison: only the owner\'s reads find it');
  let block = -1;
  while (block >= 0 ? block + BLOCK_PAGES <= blockPage : true) block = memory.reserveBlock(1);
  assert.ok(block <= blockPage && blockPage < block + BLOCK_PAGES);
  assert.equal(access(memory, blockPage), HW_OK);
});

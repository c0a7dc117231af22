// Tests of the page cache without a guest: a block read by one VM is mapped into the next, read-only; a
// write by either gets a private copy and the cached bytes stay; pages only the cache holds go when memory
// runs short or on request (clear); an opted-out VM and a cache turned off get no hook.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RAM_BASE } from '../board/address-map.js';
import { ACCESS_WRITE, PERM_RX } from '../memory/bus.js';
import { FREE, PAGE, PAGE_CACHE } from './machine-memory.js';
import { Monitor } from './monitor.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

function setup(options: { diskCache?: boolean } = {}) {
  const monitor = new Monitor({ config: { harts: 2, nodes: [{ memoryBytes: 64 * MiB, harts: [0, 1] }] }, log: quiet, ...options });
  const vms = [true, true, false].map((sharing, i) => monitor.createVm({ name: `vm${i}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, sharing }));
  return { monitor, vms };
}

const block = new Uint8Array(PAGE).fill(0x5a);

test('a block one VM read is mapped into another read-only; writes get private copies and the cache keeps the block', () => {
  const { monitor, vms } = setup();
  const [a, b, c] = vms;
  const hooks = vms.map((vm) => monitor.diskHook(vm, 'base'));
  assert.equal(hooks[2], undefined, 'a VM with share: false gets no hook');
  const at = RAM_BASE + 5 * PAGE;
  // a misses, copies, and offers its page; b maps it.
  assert.equal(hooks[0]!.map(7, at), false);
  a!.machine.bus.guestMemory().write(at, block);
  hooks[0]!.copied(7, at);
  assert.equal(hooks[1]!.map(7, RAM_BASE + 9 * PAGE), true);
  const mpn = a!.pmap.lookup(5);
  assert.equal(b!.pmap.lookup(9), mpn);
  assert.equal(b!.pmap.permission(9), PERM_RX);
  assert.deepEqual(monitor.memory.usersOf(mpn).map((u) => u.vm).sort(), [PAGE_CACHE, a!.id, b!.id].sort());
  assert.deepEqual(b!.machine.bus.guestMemory().read(RAM_BASE + 9 * PAGE, PAGE), block);
  // b's DMA over it and a's store both get copies; the cached page keeps the block.
  b!.machine.bus.guestMemory().write(RAM_BASE + 9 * PAGE, Uint8Array.of(1));
  a!.pmap.resolveFault(5, ACCESS_WRITE);
  assert.notEqual(a!.pmap.lookup(5), mpn);
  assert.notEqual(b!.pmap.lookup(9), mpn);
  const cached = monitor.memory.regionOf(mpn).u8.subarray(monitor.memory.offsetOf(mpn), monitor.memory.offsetOf(mpn) + PAGE);
  assert.deepEqual(cached, block);
  // Only the cache holds it now: the account shows it, and trimming (memory short) gives it back.
  const m = monitor.memoryAccount().machine;
  assert.equal(m.cacheOnly, 1);
  assert.equal(m.mapped - m.saved + m.cacheOnly, m.inUse);
  assert.equal(monitor.pageCache.trim(), 1);
  assert.equal(monitor.memory.users[mpn], 0);
  assert.equal(hooks[1]!.map(7, RAM_BASE + 9 * PAGE), false, 'a block trimmed away is read again');
  assert.equal(c!.pmap.lookup(5), FREE);
});

test('a VM that ends leaves the page to the cache; clear lets every page go', () => {
  const { monitor, vms } = setup();
  const [a, b] = vms;
  const hook = monitor.diskHook(a!, 'base')!;
  a!.machine.bus.guestMemory().write(RAM_BASE, block);
  hook.copied(0, RAM_BASE);
  const mpn = a!.pmap.lookup(0);
  monitor.stopVm(a!);
  assert.equal(monitor.memory.users[mpn], 1);
  assert.equal(monitor.memory.owner[mpn], PAGE_CACHE);
  assert.equal(monitor.diskHook(b!, 'other')!.map(0, RAM_BASE), false, 'another base does not share the block');
  assert.equal(monitor.diskHook(b!, 'base')!.map(0, RAM_BASE), true);
  assert.equal(monitor.pageCache.clear(), 1);
  assert.equal(monitor.memory.users[mpn], 1, 'b still maps it');
  assert.equal(b!.pmap.lookup(0), mpn);
});

test('diskCache: false gives no hook (reads copy), but the reads are still counted', () => {
  const { monitor, vms } = setup({ diskCache: false });
  assert.equal(monitor.diskHook(vms[0]!, 'base'), undefined);
  assert.equal(monitor.diskReads.length, 1);
});

test('forgetOn lets go of the cached pages on the nodes named, from the cache\'s own slots, and keeps the others', () => {
  const monitor = new Monitor({ config: { harts: 2, nodes: [{ memoryBytes: 32 * MiB, harts: [0] }, { memoryBytes: 32 * MiB, harts: [1] }] }, log: quiet });
  const vms = [0, 1].map((node) => monitor.createVm({ name: `vm${node}`, vcpus: 1, memoryBytes: 16 * MiB, console: quiet, log: quiet, homeNode: node }));
  // Each VM reads a block of its own into a page on its home node, which the cache keeps.
  vms.forEach((vm, i) => {
    const hook = monitor.diskHook(vm, 'base')!;
    const at = RAM_BASE + 3 * PAGE;
    assert.equal(hook.map(i, at), false);
    vm.machine.bus.guestMemory().write(at, block);
    hook.copied(i, at);
  });
  const pages = vms.map((vm) => vm.pmap.lookup(3));
  assert.deepEqual(pages.map((mpn) => monitor.memory.nodeOf(mpn)), [0, 1]);
  assert.equal(monitor.pageCache.size, 2);
  assert.equal(monitor.pageCache.forgetOn(new Set([1])), 1);
  assert.equal(monitor.pageCache.size, 1);
  assert.ok(!monitor.memory.usersOf(pages[1]!).some((u) => u.vm === PAGE_CACHE), 'node 1\'s page is no longer cached');
  assert.ok(monitor.memory.usersOf(pages[0]!).some((u) => u.vm === PAGE_CACHE), 'node 0\'s stays');
});

test('trim lets go of every page only the cache holds, however many, and keeps the ones a VM maps', () => {
  const { monitor, vms } = setup();
  const [a, b] = vms;
  const hook = monitor.diskHook(a!, 'base')!;
  for (let k = 0; k < 40; k++) {
    a!.machine.bus.guestMemory().write(RAM_BASE + k * PAGE, Uint8Array.of(k + 1));
    hook.copied(k, RAM_BASE + k * PAGE);
  }
  // b maps every third block; a stops, so the cache alone holds the others.
  const bHook = monitor.diskHook(b!, 'base')!;
  for (let k = 0; k < 40; k += 3) assert.equal(bHook.map(k, RAM_BASE + k * PAGE), true);
  monitor.stopVm(a!);
  const kept = Math.ceil(40 / 3);
  assert.equal(monitor.pageCache.trim(), 40 - kept);
  assert.equal(monitor.pageCache.trim(), 0, 'nothing is left to trim');
  for (let k = 0; k < 40; k++) assert.equal(bHook.map(k, RAM_BASE + 50 * PAGE), k % 3 === 0, `block ${k}`);
});

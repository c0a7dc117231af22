// A group replicated whole in a snapshot: a whole monitor restored keeps its copy blocks where they were (the
// pmap's saved replicas list its pages one by one), each node still reads its copy, and a write still collapses
// them; one VM restored alone maps the master, writable, one large page again.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RAM_BASE } from '../../src/board/address-map.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, restoreVm, restoreWhole } from '../../src/host/monitor-snapshot.js';
import { BLOCK_PAGES, PAGE } from '../../src/monitor/machine-memory.js';
import { saveMonitor } from '../../src/monitor/monitor-snapshot.js';
import { Monitor } from '../../src/monitor/monitor.js';
import type { VirtualMachine } from '../../src/monitor/vm.js';
import { comparableMonitorState } from '../helpers/monitor-program.js';
import { monitorMachine } from '../helpers/vm-program.js';

const MiB = 2 ** 20;
const GROUP = 2;
const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });
const quiet = (): void => {};
const address = (k: number): number => RAM_BASE + (GROUP * BLOCK_PAGES + k) * PAGE + 12;

/** A monitor of three nodes, a VM at home on node 0 whose group GROUP is filled (page k holds k + 7) and replicated whole on nodes 1 and 2, and a 4 KiB replica of a page in another group. */
function replicated(): { monitor: Monitor; vm: VirtualMachine } {
  const monitor = new Monitor({ config: monitorMachine(3, 32, 1) });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const memory = vm.machine.bus.guestMemory();
  for (let k = 0; k < BLOCK_PAGES; k++) memory.writeU32(address(k), k + 7);
  memory.writeU32(RAM_BASE + 5 * PAGE, 99);
  assert.equal(vm.pmap.replicateGroup(GROUP, [1, 2]).length, 2);
  assert.equal(vm.pmap.replicate(5, [2]).length, 1);
  return { monitor, vm };
}

test('a whole monitor restored keeps a group replicated whole: same state, each node reads its copy, a write collapses it', () => {
  const { monitor, vm } = replicated();
  const { monitor: again } = restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(monitor, noBuild)), {}, () => ({ console: quiet }));
  assert.ok(comparableMonitorState(saveMonitor(again)).equals(comparableMonitorState(saveMonitor(monitor))), 'the restored monitor\'s state differs');
  const restored = again.vm('a')!;
  assert.deepEqual(restored.pmap.groupCopiesOf(GROUP), vm.pmap.groupCopiesOf(GROUP));
  assert.deepEqual(restored.pmap.replicasOf(5), vm.pmap.replicasOf(5));
  assert.equal(restored.pmap.replicatedGroups, 1);
  for (const node of [0, 1, 2]) {
    vm.pmap.readerNode = restored.pmap.readerNode = node;
    assert.equal(restored.pmap.largeBlock(GROUP), vm.pmap.largeBlock(GROUP), `node ${node}'s block`);
  }
  assert.equal(again.memory.replicaPages(), 2 * BLOCK_PAGES + 1);
  for (const m of [monitor, again]) {
    const v = m.vm('a')!;
    v.machine.bus.guestMemory().writeU32(address(100), 1);
    assert.equal(v.pmap.groupCopiesOf(GROUP), undefined);
    assert.equal(v.pmap.takeWrittenGroup(GROUP), true);
    assert.equal(m.memory.replicaPages(), 1);
  }
  assert.ok(comparableMonitorState(saveMonitor(again)).equals(comparableMonitorState(saveMonitor(monitor))), 'the two differ after the collapse');
});

test('one VM restored alone maps its replicated group\'s master, writable, one large page again', () => {
  const { monitor } = replicated();
  const target = new Monitor({ config: monitorMachine(3, 32, 1) });
  const { vm } = restoreVm(target, decodeMonitorSnapshot(encodeMonitorSnapshot(monitor, noBuild)), 'a', 'a', { console: quiet });
  assert.equal(vm.pmap.groupCopiesOf(GROUP), undefined);
  assert.equal(target.memory.replicaPages(), 0);
  assert.ok(vm.pmap.largeBlock(GROUP) >= 0, 'the group is no large page');
  const memory = vm.machine.bus.guestMemory();
  for (let k = 0; k < BLOCK_PAGES; k += 31) assert.equal(memory.readU32(address(k)), k + 7);
  memory.writeU32(address(3), 5);
  assert.equal(memory.readU32(address(3)), 5);
});

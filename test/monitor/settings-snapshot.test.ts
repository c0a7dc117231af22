// A whole monitor snapshot keeps the page cache's two switches: a monitor made with `diskCache: false` or
// `shareBootImages: true` comes back so (before, a restore made them the defaults, and the restored machine's
// later disk reads and boots went otherwise than the saved one's would have); a default monitor's settings
// are what they were, so older snapshots still restore.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, monitorSnapshot, restoreWhole } from '../../src/host/monitor-snapshot.js';
import { monitorSettings, readMonitorSnapshot } from '../../src/monitor/monitor-snapshot.js';
import { Monitor } from '../../src/monitor/monitor.js';
import { monitorMachine } from '../helpers/vm-program.js';

const MiB = 2 ** 20;
const quiet = (): void => {};
const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });

function roundTrip(monitor: Monitor): Monitor {
  monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  return restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(monitor, noBuild)), {}, () => ({ console: quiet })).monitor;
}

test('diskCache: false and shareBootImages: true come back from a whole snapshot; the defaults save nothing new', () => {
  const config = monitorMachine(2, 32, 1);
  const plain = new Monitor({ config });
  assert.equal('diskCache' in monitorSettings(plain), false);
  assert.equal('shareBootImages' in monitorSettings(plain), false);
  const set = new Monitor({ config, diskCache: false, shareBootImages: true });
  const again = roundTrip(set);
  assert.deepEqual([monitorSettings(again).diskCache, monitorSettings(again).shareBootImages], [false, true]);
  // The restored monitor maps no disk block from its page cache, as the saved one did not.
  assert.equal(again.diskHook(again.vm('a')!, 'base'), undefined);
  const defaults = roundTrip(new Monitor({ config }));
  assert.notEqual(defaults.diskHook(defaults.vm('a')!, 'base'), undefined, 'a default monitor keeps its page cache on');
});

test('gang scheduling and the balancers come back from a whole snapshot, and a default monitor saves nothing of them', () => {
  const config = monitorMachine(2, 32, 1);
  const plain = monitorSettings(new Monitor({ config }));
  assert.deepEqual(['gang', 'idleBalance', 'balancePeriodRounds'].filter((k) => k in plain), []);
  const again = roundTrip(new Monitor({ config, gang: true, idleBalance: true, balancePeriodRounds: 64 }));
  const s = monitorSettings(again);
  assert.deepEqual([s.gang, s.idleBalance, s.balancePeriodRounds], [true, true, 64]);
  assert.equal(again.scheduler.gang, true);
});

test('a saved switch with a value that is never saved is refused in one line', () => {
  const monitor = new Monitor({ config: monitorMachine(2, 32, 1), diskCache: false });
  monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const value = (monitorSnapshot(monitor, noBuild).value as { monitor: { settings: Record<string, unknown> } }).monitor;
  assert.equal(value.settings.diskCache, false, 'the switch is saved as plain data');
  assert.doesNotThrow(() => readMonitorSnapshot(value));
  value.settings.diskCache = 'yes';
  assert.throws(() => readMonitorSnapshot(value), /snapshot.settings.diskCache: "yes", where only false is saved/);
});

test('a VM\'s balloon, its account and target, and the balloon costs come back from a whole snapshot', () => {
  const monitor = new Monitor({ config: monitorMachine(2, 32, 1), balloonCosts: { request: 7, page: 3 } });
  const vm = monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, balloon: true });
  monitor.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const memory = vm.machine.bus.guestMemory();
  memory.write(vm.pmap.base, new Uint8Array(3 * 4096).fill(5));
  vm.balloon!.report([{ address: vm.pmap.base, length: 2 * 4096 }]);
  vm.balloon!.takeOwed(0);
  monitor.setBalloon(vm, 300);
  const again = restoreWhole(decodeMonitorSnapshot(encodeMonitorSnapshot(monitor, noBuild)), {}, () => ({ console: quiet })).monitor;
  const a = again.vm('a')!;
  assert.deepEqual(a.balloon!.account, vm.balloon!.account);
  assert.equal(a.balloon!.account.freed, 2);
  assert.equal(a.balloonDevice!.target, 300);
  assert.equal(again.vm('b')!.balloon, undefined, 'a VM without a balloon has none after the restore');
  assert.deepEqual(monitorSettings(again).balloonCosts, { request: 7, page: 3 });
  assert.equal('balloonCosts' in monitorSettings(new Monitor({ config: monitorMachine(2, 32, 1) })), false, 'the default costs save nothing new');
  // The restored balloon goes on with the saved costs.
  a.balloon!.report([{ address: a.pmap.base + 2 * 4096, length: 4096 }]);
  assert.equal(a.balloon!.takeOwed(0), 7 + 3);
});

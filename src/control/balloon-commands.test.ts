// `balloon` and `query-balloon` on up's socket: the target reaches the VM's device, and mistakes are one clear error.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Monitor } from '../monitor/monitor.js';
import { monitorCommands } from './monitor-commands.js';
import { QmpError } from './qmp.js';

const MiB = 2 ** 20;
const quiet = (): void => {};

test('balloon sets a VM\'s balloon target and query-balloon shows it; a VM without one, or a bad size, is refused', () => {
  const monitor = new Monitor({ config: { harts: 1, nodes: [{ memoryBytes: 64 * MiB, harts: [0] }] }, log: quiet });
  monitor.createVm({ name: 'a', vcpus: 1, memoryBytes: 16 * MiB, console: quiet, balloon: true });
  monitor.createVm({ name: 'b', vcpus: 1, memoryBytes: 16 * MiB, console: quiet });
  const commands = monitorCommands({ monitor, consolePath: () => undefined, stopVm: () => {}, quit: () => {}, runDir: '.', statsConfig: () => ({}) });
  const set = commands.balloon!.run({ vm: 'a', pages: 1024 }) as { target: number; actual: number; account: { reports: number } };
  assert.deepEqual([set.target, set.actual, set.account.reports], [1024, 0, 0]);
  assert.equal(monitor.vm('a')!.balloonDevice!.target, 1024);
  assert.equal((commands['query-balloon']!.run({ vm: 'a' }) as { target: number }).target, 1024);
  const refused = (args: Record<string, unknown>, command: string, pattern: RegExp): void => {
    assert.throws(() => commands[command]!.run(args as never), (e: unknown) => e instanceof QmpError && pattern.test(e.message));
  };
  refused({ vm: 'b', pages: 1 }, 'balloon', /VM b has no balloon/);
  refused({ vm: 'b' }, 'query-balloon', /has no balloon/);
  refused({ vm: 'a', pages: 4097 }, 'balloon', /'pages' must be an integer from 0 to 4096/);
  refused({ vm: 'a', pages: -1 }, 'balloon', /'pages' must be an integer/);
  refused({ vm: 'a' }, 'balloon', /'pages' is missing/);
  refused({ vm: 'c', pages: 1 }, 'balloon', /no VM named 'c'/);
  assert.equal(monitor.vm('a')!.balloonDevice!.target, 1024, 'a refused request changed nothing');
  const memory = commands['query-memory']!.run({}) as { vms: { name: string; balloon: { reports: number } | null }[] };
  assert.deepEqual(memory.vms.map((v) => [v.name, v.balloon?.reports ?? null]), [['a', 0], ['b', null]]);
});

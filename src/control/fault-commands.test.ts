// The control socket's fault commands without a socket: a fault now or at a simulated time, one line for a bad one, the report as records.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { layoutMachine } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { topologyPreset } from '../board/topology.js';
import { faultCommands } from './fault-commands.js';
import { QmpError } from './qmp.js';

test('inject-fault schedules now or at a simulated time, refuses bad faults in one line; query-failure-report gives the records', () => {
  const hw = new MachineHardware(layoutMachine(topologyPreset('numa4x2', 64 * 2 ** 20).config));
  let now = 4096;
  const commands = faultCommands(hw, () => now);
  const run = (name: string, args: Record<string, unknown>): unknown => commands[name]!.run(args);
  assert.deepEqual(run('inject-fault', { fault: 'link 2-0' }), { fault: 'link 2-0', time: 4096 });
  assert.deepEqual(run('inject-fault', { fault: 'node 3', time: '2ms' }), { fault: 'node 3', time: 200_000 });
  assert.deepEqual(hw.injector.pending.map((p) => p.time), [4096, 200_000]);
  for (const [args, message] of [
    [{ fault: 'node 4' }, 'no node 4: the machine has nodes 0 to 3'],
    [{ fault: 'link 0-3' }, 'no link 0-3: the links are 0-1, 0-2, 1-3, 2-3'],
    [{ fault: 'node 1', time: 'later' }, "'later' is not a simulated time: write a number with a unit, as 20ms, 150us or 1.5s"],
    [{ fault: 'node 1', time: 5 }, `'time' must be a simulated time such as "20ms"`],
    [{}, "Parameter 'fault' is missing"],
  ] as const) {
    assert.throws(() => run('inject-fault', args), (e: unknown) => e instanceof QmpError && e.message === message, JSON.stringify(args));
  }
  assert.equal(hw.injector.pending.length, 2, 'a refused fault is not scheduled');
  hw.advanceTo(now = 8192);
  const report = run('query-failure-report', {}) as { seq: number; kind: string; text: string }[];
  assert.deepEqual(report.map((r) => [r.seq, r.kind, r.text]), [[0, 'link-failed', 'link 0-2 failed']]);
  assert.deepEqual(run('query-failure-report', { from: 1 }), []);
  assert.throws(() => run('query-failure-report', { from: -1 }), QmpError);
  hw.advanceTo(now = 300_000);
  assert.deepEqual(run('repair-hardware', {}), { parts: 2 });
  assert.deepEqual((run('query-failure-report', { from: 1 }) as { text: string }[]).map((r) => r.text),
    ['node 3 failed (CPUs 6, 7)', 'node 3 was repaired (CPUs 6, 7, its memory new)', 'link 0-2 was repaired']);
  assert.deepEqual(run('repair-hardware', {}), { parts: 0 });
});

// A booted VM under the monitor saved once and restored for each use: the whole machine into a fresh monitor,
// and the VM alone into a monitor that already runs another. Every restore answers commands at once and none
// sees what another did. Sizes and times are reported (test diagnostics, docs/snapshots.md), not asserted.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { MonitorSession, type MonitorSessionOptions } from '../../src/guest/monitor-session.js';
import { loadMonitorSnapshot, restoreVm, restoreWhole, saveMonitorSnapshot } from '../../src/host/monitor-snapshot.js';
import { Monitor } from '../../src/monitor/monitor.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const MiB = 2 ** 20;
const noBuild = (): { drives: []; rngSeed: null } => ({ drives: [], rngSeed: null });

describe('a booted VM restored from a snapshot', { skip }, () => {
  it('the whole machine and the VM alone: each restore answers from the saved state alone', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mb-snapshot-vm-'));
    const options: MonitorSessionOptions = {
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: { harts: 1, nodes: [{ memoryBytes: 512 * MiB, harts: [0] }] },
      vms: [{ name: 'vm', vcpus: 1, memoryBytes: 256 * MiB }],
      timeoutMs: 180_000,
    };
    const command = 'cat /tmp/mark 2>/dev/null; echo "answer $((6*7))"';
    const ms = (since: number): string => (performance.now() - since).toFixed(0);
    try {
      let started = performance.now();
      const booted = await MonitorSession.boot(options);
      assert.equal((await booted.exec('vm', command)).output, 'answer 42\n');
      const boot = ms(started);
      const whole = join(dir, 'whole.snap');
      const one = join(dir, 'vm.snap');
      const [wholeSaved, oneSaved] = await booted.atMachineIdle(() => [
        saveMonitorSnapshot(whole, booted.monitor, noBuild),
        saveMonitorSnapshot(one, booted.monitor, noBuild, booted.vm('vm')),
      ]);
      const bytes = await booted.snapshot();
      await booted.kill();

      const lines = [`boot + command ${boot} ms`,
        `whole machine: ${(wholeSaved!.bytes / MiB).toFixed(1)} MB (${wholeSaved!.pages} pages) saved in ${wholeSaved!.milliseconds} ms`,
        `one VM: ${(statSync(one).size / MiB).toFixed(1)} MB (${oneSaved!.pages} pages) saved in ${oneSaved!.milliseconds} ms`];
      // The file read, checked and made into a fresh monitor; the VM alone into a monitor that runs another.
      started = performance.now();
      restoreWhole(loadMonitorSnapshot(whole), {}, () => ({ console: () => {} }));
      lines.push(`whole machine restored from its file in ${ms(started)} ms`);
      const running = new Monitor({ config: options.config });
      running.createVm({ name: 'other', vcpus: 1, memoryBytes: 64 * MiB, console: () => {} });
      started = performance.now();
      const { vm } = restoreVm(running, loadMonitorSnapshot(one), 'vm', 'vm', { console: () => {} });
      lines.push(`one VM restored into a running monitor in ${ms(started)} ms`);
      assert.equal(vm.state, 'running');

      const restores: string[] = [];
      for (const mark of ['one', 'two', 'three']) {
        started = performance.now();
        const session = await MonitorSession.boot({ ...options, restore: bytes });
        try {
          const r = await session.exec('vm', command);
          restores.push(ms(started));
          // The mark the last restore left is not here: each starts from the snapshot.
          assert.equal(r.output, 'answer 42\n');
          assert.equal((await session.exec('vm', `echo ${mark} > /tmp/mark; cat /tmp/mark`)).output, `${mark}\n`);
        } finally {
          await session.kill();
        }
      }
      lines.push(`restore + command ${restores.join(', ')} ms`);
      t.diagnostic(lines.join('; '));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

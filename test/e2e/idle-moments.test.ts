// End to end: a host action given to a session with holdIdle (atIdle) lands at the same guest instant
// however long the host takes to ask for it, on bare Linux and in a VM under the monitor. The overhead
// experiment switches modes and reads counters this way; read when the host's await returns, they moved
// with the host's speed.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { bootedGuest, bootedMonitor } from '../helpers/booted.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const config = { harts: 2, nodes: [{ memoryBytes: 128 * 2 ** 20, harts: [0, 1] }] };
/** A command that leaves the guest busy for a while after the agent has answered. */
const COMMAND = 'cpubench -n 1 > /dev/null; (cpubench -n 1 > /dev/null &)';

describe('host actions at the guest\'s idle moments', { skip }, () => {
  const kernel = guest === undefined ? new Uint8Array(0) : readFileSync(guest.kernel);
  const initrd = guest === undefined ? new Uint8Array(0) : readFileSync(guest.initramfs);

  it('bare Linux: the machine\'s time seen by atIdle does not depend on when the host asks', async () => {
    const seen: number[] = [];
    for (const hostDelay of [0, 300]) {
      const session = await bootedGuest({ kernel, initrd, config, holdIdle: true });
      try {
        const r = await session.exec(COMMAND);
        assert.equal(r.status, 0, r.output);
        if (hostDelay > 0) await sleep(hostDelay);
        seen.push(await session.atIdle(() => session.machine.cycles));
      } finally {
        await session.kill();
      }
    }
    assert.equal(seen[1], seen[0], `the host's delay moved the guest instant: ${seen.join(' vs ')}`);
  });

  it('a VM: the monitor\'s time seen by atIdle and atMachineIdle does not depend on when the host asks', async () => {
    const seen: number[] = [];
    const seenByMachine: number[] = [];
    for (const hostDelay of [0, 300]) {
      const session = await bootedMonitor({ kernel, initrd, config, vms: [{ name: 'vm', vcpus: 2, memoryBytes: 64 * 2 ** 20 }] });
      try {
        const r = await session.exec('vm', COMMAND);
        assert.equal(r.status, 0, r.output);
        if (hostDelay > 0) await sleep(hostDelay);
        seen.push(await session.atIdle('vm', () => session.monitor.cycles));
        const r2 = await session.exec('vm', COMMAND);
        assert.equal(r2.status, 0, r2.output);
        if (hostDelay > 0) await sleep(hostDelay);
        seenByMachine.push(await session.atMachineIdle(() => session.monitor.cycles));
      } finally {
        await session.kill();
      }
    }
    assert.equal(seen[1], seen[0], `the host's delay moved the guest instant: ${seen.join(' vs ')}`);
    assert.equal(seenByMachine[1], seenByMachine[0], `the host's delay moved the machine's idle moment: ${seenByMachine.join(' vs ')}`);
  });
});

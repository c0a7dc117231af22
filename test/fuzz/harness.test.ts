// The fuzz harness finds what it is meant to find: a case that writes into the canary VM's memory, or throws, fails
// the run, and the failure comes back shrunk; a clean target passes and counts its cases.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { runFuzz, type FuzzTarget } from '../../src/fuzz/harness.js';
import { GuardedMonitor } from '../../src/fuzz/guarded.js';
import { findTarget } from '../../src/fuzz/targets/index.js';
import { runVirtioCase, KINDS, type VirtioCase } from '../../src/fuzz/targets/virtio.js';

/** A target whose "device" writes one byte straight into machine memory at the canary's page when a value passes 1000. */
function leaking(): FuzzTarget<number[]> {
  return {
    name: 'leaking',
    surface: 'a device that bypasses the pmap',
    cases: fc.array(fc.nat({ max: 5000 }), { maxLength: 20 }),
    open() {
      const guarded = new GuardedMonitor();
      return {
        run(values) {
          for (const v of values) {
            if (v <= 1000) continue;
            const mpn = guarded.canary.pmap.lookup(guarded.canaryPages[1]!);
            guarded.monitor.memory.regionOf(mpn).u8[guarded.monitor.memory.offsetOf(mpn) + (v % 4096)] ^= 1;
          }
          guarded.checkCanary();
        },
      };
    },
  };
}

test('a case that writes into the canary VM fails the run, shrunk to the smallest such case', async () => {
  const report = await runFuzz(leaking(), { seconds: 30, seed: 1 });
  assert.ok(report.failure !== undefined, 'the leak was found');
  assert.match(report.failure.error, /canary page 64 word \d+ changed/);
  assert.equal(report.failure.counterexample, '[1001]');
});

test('a device that throws on a hostile ring fails the run, and the failing case replays alone', async () => {
  const blk = KINDS.blk!;
  // The real virtio-blk, made to throw a TypeError (a bug, not a guest's mistake) when it serves a chain.
  const broken = { ...blk, make: (guarded: Parameters<typeof blk.make>[0]) => {
    const kit = blk.make(guarded);
    const notify = kit.device.notify.bind(kit.device);
    kit.device.notify = (q) => { notify(q); throw new TypeError('device bug'); };
    return kit;
  } };
  const base = findTarget('blk')!;
  const target: FuzzTarget<VirtioCase> = {
    name: 'broken-blk', surface: 'virtio-blk with a bug', cases: base.cases as fc.Arbitrary<VirtioCase>,
    open() {
      const guarded = new GuardedMonitor();
      const zeros = new Uint8Array(0x5_0000);
      return { run: (c) => { runVirtioCase(broken, guarded, c, zeros); } };
    },
  };
  const report = await runFuzz(target, { seconds: 30, seed: 2 });
  assert.ok(report.failure !== undefined);
  assert.match(report.failure.error, /device bug/);
});

test('a clean target runs its cases and reports a rate', async () => {
  const report = await runFuzz(findTarget('clint')!, { maxCases: 500, seconds: 60, seed: 3 });
  assert.equal(report.failure, undefined);
  assert.equal(report.cases, 500);
  assert.ok(report.casesPerSecond > 0);
});

// End to end: Linux boots in fast mode, and the guest's own tool (mbctl) turns timing mode on and off around
// a region of interest and asks for a statistics dump, through the machine's control device.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { Machine } from '../../src/board/machine.js';
import { Simulation } from '../../src/board/simulation.js';
import { configureTiming } from '../../src/board/timing-mode.js';
import { topologyPreset } from '../../src/board/topology.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { GuestSession } from '../../src/guest/session.js';
import { bootedGuest } from '../helpers/booted.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

/** The sum over CPUs of one per-CPU statistic (`system.cpuN.<name>`). */
function total(simulation: Simulation, cpus: number, name: string): number {
  let sum = 0;
  for (let cpu = 0; cpu < cpus; cpu++) sum += simulation.stats.read(`system.cpu${cpu}.${name}`);
  return sum;
}

describe('guest control (mbctl)', { skip }, () => {
  it('mbctl roi begin/end switches timing mode around a region; stats dump records a tagged snapshot', async () => {
    const { config, latencies } = topologyPreset('numa4x2', 256 * MiB);
    let simulation: Simulation | undefined;
    const configure = (machine: Machine): void => {
      simulation = new Simulation(machine, configureTiming(machine, latencies));
    };
    const session = await GuestSession.boot({ kernel: readFileSync(guest!.kernel), initrd: readFileSync(guest!.initramfs), config, configure });
    const cpus = config.harts;
    try {
      const sim = simulation!;
      // Booted in fast mode: the cache model has seen nothing.
      assert.equal(total(sim, cpus, 'cache.accesses'), 0);
      assert.equal((await session.exec('mbctl mode')).output.trim(), 'fast');

      const roi = await session.exec('mbctl roi begin && mbctl mode && i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; ' +
        'mbctl roi end && mbctl mode && mbctl stats dump 5');
      assert.equal(roi.status, 0, roi.output);
      assert.deepEqual(roi.output.trim().split(/\s+/), ['timing', 'fast']);
      assert.equal(sim.dumps.length, 1);
      assert.equal(sim.dumps[0]!.tag, 5);
      const inRoi = total(sim, cpus, 'cache.accesses');
      assert.ok(inRoi > 10_000, `the region's loop went through the cache model (${inRoi} accesses)`);
      const dumped = sim.dumps[0]!.samples.find((s) => s.name === 'system.cpu0.cache.accesses');
      assert.ok(dumped !== undefined && dumped.kind === 'scalar');

      // Outside the region the model charges nothing more.
      const after = await session.exec('i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; echo done');
      assert.equal(after.output.trim(), 'done');
      assert.equal(total(sim, cpus, 'cache.accesses'), inRoi);

      // A reset zeroes the counts; bad use is refused with a message and status 2.
      assert.equal((await session.exec('mbctl stats reset')).status, 0);
      assert.equal(total(sim, cpus, 'cache.accesses'), 0);
      const bad = await session.exec('mbctl stats dump nope');
      assert.equal(bad.status, 2);
      assert.match(bad.output, /the tag must be a number/);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- console ---\n${session.tail()}`);
    } finally {
      await session.kill();
    }
  });

  it('without a timing configuration mbctl says so', async () => {
    const { config } = topologyPreset('uma', 256 * MiB);
    const session = await bootedGuest({ kernel: readFileSync(guest!.kernel), initrd: readFileSync(guest!.initramfs), config });
    try {
      const r = await session.exec('mbctl roi begin');
      assert.equal(r.status, 1);
      assert.match(r.output, /no timing configuration/);
    } finally {
      await session.kill();
    }
  });
});

// End to end: a NUMA-aware Linux on the numa4x2 preset sees its four nodes, their CPUs, memory and distances.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { topologyPreset } from '../../src/board/topology.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { bootedGuest } from '../helpers/booted.js';

const GiB = 2 ** 30;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('NUMA topology in the guest', { skip }, () => {
  it('numa4x2 with 1 GiB: four nodes of two CPUs, a quarter of the memory each, the mesh distances', async () => {
    const { config } = topologyPreset('numa4x2', GiB);
    const session = await bootedGuest({ kernel: readFileSync(guest!.kernel), initrd: readFileSync(guest!.initramfs), config });
    try {
      const r = await session.exec('cd /sys/devices/system/node; for n in node*; do ' +
        'echo "$n cpus=$(cat $n/cpulist) distance=$(cat $n/distance) kB=$(awk \'/MemTotal/ { print $4 }\' $n/meminfo)"; done');
      assert.equal(r.status, 0, r.output);
      const nodes = [...r.output.matchAll(/^node(\d) cpus=(\S+) distance=([\d ]+) kB=(\d+)$/gm)];
      assert.equal(nodes.length, 4, r.output);
      // A 2x2 mesh (board/topology.ts): one hop is distance 20, the diagonal two hops 30.
      const expectedDistances = ['10 20 20 30', '20 10 30 20', '20 30 10 20', '30 20 20 10'];
      for (const [n, m] of nodes.entries()) {
        assert.equal(Number(m[1]), n);
        assert.equal(m[2], `${2 * n}-${2 * n + 1}`, `node ${n}'s CPUs`);
        assert.equal(m[3], expectedDistances[n], `node ${n}'s distances`);
        // MemTotal leaves out what firmware reserved (and node 0 holds the kernel), but stays near 256 MiB.
        const mib = Number(m[4]) / 1024;
        assert.ok(mib > 192 && mib <= 256, `node ${n} has ${mib} MiB`);
      }
    } catch (error) {
      throw new Error(`${(error as Error).message}\n--- console ---\n${session.tail()}`);
    } finally {
      await session.kill();
    }
  });
});

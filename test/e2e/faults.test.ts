// End to end: a node of the machine fails under three Linux VMs. The VM at home on it and a VM with one page
// there end, each with its reason; the VM confined elsewhere goes on and computes checksummed work correctly.
// Which VMs depended on the node is read from the machine's own state (the memmap, where each vCPU last ran,
// each VM's home node) before the fault, not from the monitor's verdict.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { MonitorSession } from '../../src/guest/monitor-session.js';
import { FREE } from '../../src/monitor/machine-memory.js';
import type { Monitor } from '../../src/monitor/monitor.js';
import { bootedMonitor } from '../helpers/booted.js';
import { referenceChecksum } from '../helpers/reference-checks.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const FAILED_NODE = 1;
const CPUBENCH = 'cpubench -n 2';

/** The VMs that hold a machine page on `node`, have a vCPU's registers in one of its CPUs, or are at home there. */
function dependents(monitor: Monitor, node: number): string[] {
  const cpus = monitor.layout.nodes[node]!.harts;
  return monitor.vms.filter((vm) => {
    if (vm.state !== 'running') return false;
    if (vm.pmap.homeNode === node) return true;
    if (cpus.some((cpu) => monitor.scheduler.lastOn(cpu)?.vm === vm.id)) return true;
    for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
      const mpn = vm.pmap.lookup(gppn);
      if (mpn !== FREE && monitor.memory.nodeOf(mpn) === node) return true;
    }
    return false;
  }).map((vm) => vm.name);
}

describe('a node fails under three Linux VMs', { skip }, () => {
  let session: MonitorSession;

  before(async () => {
    // Three nodes of one CPU: the VMs' homes are nodes 0, 1 and 2 in turn (each the node with the most memory left).
    session = await bootedMonitor({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: {
        harts: 3,
        nodes: [0, 1, 2].map((n) => ({ memoryBytes: 256 * MiB, harts: [n] })),
      },
      vms: ['a', 'b', 'c'].map((name) => ({ name, vcpus: 1, memoryBytes: 128 * MiB })),
      timeoutMs: 180_000,
    });
  });

  after(async () => {
    await session?.kill();
  });

  it('ends exactly the VMs that depended on the node, and the other computes correctly', async () => {
    const monitor = session.monitor;
    const [a, b, c] = ['a', 'b', 'c'].map((name) => session.vm(name));
    assert.deepEqual([a!.pmap.homeNode, b!.pmap.homeNode, c!.pmap.homeNode], [0, 1, 2]);
    const before = await session.atMachineIdle(() => {
      // One of c's pages moves to the node that will fail: c depends on it too, by one page.
      let moved = -1;
      for (let gppn = 0; gppn < c!.pmap.pages && moved < 0; gppn++) if (c!.pmap.lookup(gppn) !== FREE) moved = gppn;
      c!.pmap.migrate(moved, FAILED_NODE);
      const truth = dependents(monitor, FAILED_NODE);
      monitor.hardware.injector.inject({ kind: 'node', node: FAILED_NODE });
      return { truth, cycles: monitor.cycles };
    });
    assert.deepEqual(before.truth, ['b', 'c'], 'the machine\'s state says b and c depend on the node, a does not');

    const numbers = Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join('');
    const md5 = createHash('md5').update(numbers).digest('hex');
    const r = await session.exec('a', `seq 1 20000 | md5sum; ${CPUBENCH}`);
    assert.equal(r.status, 0, r.output);
    assert.equal(r.output.split(/\s+/)[0], md5, r.output);
    assert.match(r.output, new RegExp(`checksum=${referenceChecksum(guest!, CPUBENCH)}\\b`), r.output);

    assert.equal(a!.state, 'running');
    assert.equal(b!.state, 'stopped');
    assert.equal(c!.state, 'stopped');
    assert.match(b!.reason, /^hardware fault: node 1 failed: .*its home node 1 held its devices and the monitor's data for it/);
    assert.equal(c!.reason, 'hardware fault: node 1 failed: 1 of its pages were there');
    const records = monitor.hardware.report.since(0);
    assert.equal(records[0]?.kind, 'node-failed');
    assert.ok(records[0]!.time >= before.cycles && records[0]!.time < before.cycles + 2 * 4096, 'the fault took effect at the next round boundary');
  });
});

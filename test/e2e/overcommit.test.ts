// End to end: overcommit. Four Linux VMs of 256 MiB boot on a 512 MiB machine and run the workloads'
// reference checks; then a VM that fills memory without end finds the machine full and is stopped alone, with
// one line, while the others finish their workloads with the right checksums.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { MonitorSession } from '../../src/guest/monitor-session.js';
import { bootedMonitor } from '../helpers/booted.js';
import type { MachineConfig } from '../../src/board/address-map.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import { endLine } from '../../src/cli/vm-commands.js';
import { assertChecks, checksScript, referenceCommands } from '../helpers/reference-checks.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

/** One node of `mib` MiB with `cpus` CPUs. */
function uma(mib: number, cpus: number): MachineConfig {
  return { harts: cpus, nodes: [{ memoryBytes: mib * MiB, harts: Array.from({ length: cpus }, (_, i) => i) }] };
}

describe('four VMs of 256 MiB on a 512 MiB machine', { skip }, () => {
  let session: MonitorSession;
  const names = ['a', 'b', 'c', 'd'];

  before(async () => {
    session = await bootedMonitor({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: uma(512, 4),
      vms: names.map((name) => ({ name, vcpus: 1, memoryBytes: 256 * MiB })),
      timeoutMs: 180_000,
    });
  });

  after(async () => {
    await session?.kill();
  });

  it('boots them all; each runs its share of the reference checks and sees its own 256 MiB', async (t: TestContext) => {
    // Every check of reference.txt, split over the four VMs and run at the same time: a workload that no
    // share names fails here, so a new workload cannot go unchecked in the guest.
    const shares = ['^cpubench|^wshare', '^membench|^dbbench', '^pmake|^engineering', '^raytrace'];
    const commands = referenceCommands(guest!);
    const counts = shares.map((share) => commands.filter((c) => new RegExp(share).test(c)).length);
    assert.equal(counts.reduce((a, b) => a + b, 0), commands.length, `reference checks no share runs: ${commands.join(', ')}`);
    assert.ok(commands.some((c) => c.startsWith('engineering ')) && commands.some((c) => c.startsWith('wshare ')), commands.join(', '));
    const results = await Promise.all(names.map((name, i) =>
      session.exec(name, `${checksScript(shares[i]!)}; awk '/MemTotal/ { print "kib", $2 }' /proc/meminfo`)));
    results.forEach((r, i) => {
      assert.equal(r.status, 0, r.output);
      assertChecks(r.output, counts[i]!);
      const kib = Number(/^kib (\d+)$/m.exec(r.output)?.[1]);
      assert.ok(kib > 200 * 1024 && kib < 256 * 1024, `${names[i]} has ${kib} KiB`);
    });
    // The machine's totals add up: what the VMs use, private or shared, and what is reserved or free.
    const monitor = session.monitor;
    const memory = monitor.memory;
    let inUse = 0;
    for (const vm of monitor.vms) {
      assert.equal(vm.state, 'running');
      assert.equal(vm.pmap.pagesShared, 0);
      inUse += vm.pmap.pagesInUse;
    }
    assert.equal(memory.pagesInUse(), inUse);
    assert.equal(memory.pagesInUse() + memory.pagesReserved() + memory.monitorPages() + memory.pagesFree(0), memory.totalPages);
    assert.equal(monitor.memoryFree, memory.pagesFree(0) * PAGE);
    assert.ok(inUse * PAGE < 512 * MiB, `${inUse} pages in use`);
    t.diagnostic(`machine memory in use: ${(inUse * PAGE / MiB).toFixed(1)} MiB of 512, reserved ${(memory.pagesReserved() * PAGE / MiB).toFixed(1)} MiB`);
  });
});

describe('a VM that fills memory without end on an overcommitted machine', { skip }, () => {
  let session: MonitorSession;

  before(async () => {
    session = await bootedMonitor({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      // 256 + 2 × 64 MiB of VMs on 256 MiB: the hog alone could use the whole machine.
      config: uma(256, 2),
      vms: [
        { name: 'hog', vcpus: 1, memoryBytes: 256 * MiB },
        { name: 'w1', vcpus: 1, memoryBytes: 64 * MiB },
        { name: 'w2', vcpus: 1, memoryBytes: 64 * MiB },
      ],
      timeoutMs: 180_000,
    });
  });

  after(async () => {
    await session?.kill();
  });

  it('is stopped with one line when the machine runs out; the other VMs finish their workloads with the right checksums', async (t: TestContext) => {
    // The hog writes zeros into a ramfs (no size limit) a megabyte at a time: every page it writes is one the
    // guest's page cache holds and the monitor must back. The workers run their checks meanwhile.
    const hog = session.exec('hog', 'mkdir -p /fill && mount -t ramfs ramfs /fill && dd if=/dev/zero of=/fill/zero bs=1M; echo "dd ended $?"');
    const workers = Promise.all([session.exec('w1', checksScript('^pmake|^membench')), session.exec('w2', checksScript('^dbbench'))]);
    await assert.rejects(hog, /VM hog ended \(stopped: machine memory exhausted \(\d+ MiB in use\)\)/);
    const [w1, w2] = await workers;
    assertChecks(w1.output, 2);
    assertChecks(w2.output, 1);
    const stopped = session.monitor.vm('hog')!;
    assert.equal(stopped.state, 'stopped');
    // The line `up` prints for it.
    assert.match(endLine(stopped), /^vm hog stopped: machine memory exhausted \(\d+ MiB in use\)$/);
    const mib = Number(/\((\d+) MiB in use\)/.exec(stopped.reason)![1]);
    assert.ok(mib > 100 && mib < 256, `the hog had ${mib} MiB`);
    t.diagnostic(`hog stopped at ${mib} MiB; workers use ${['w1', 'w2'].map((w) => session.vm(w).pmap.pagesInUse * PAGE / MiB).join(' and ')} MiB`);
    // Its pages went back, and the workers still run and answer.
    assert.equal(stopped.pmap.pagesInUse, 0);
    const after = await session.exec('w1', 'echo alive');
    assert.equal(after.output.trim(), 'alive');
  });
});

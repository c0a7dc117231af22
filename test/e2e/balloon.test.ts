// End to end: a Linux VM with the virtio balloon. Memory the guest allocates and frees is reported free
// (free page reporting) and the monitor takes its machine pages back; asked to inflate, the guest gives pages
// and the monitor takes those too; the guest goes on computing the right results on fresh pages.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { MonitorSession } from '../../src/guest/monitor-session.js';
import { bootedMonitor } from '../helpers/booted.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import { referenceChecksum } from '../helpers/reference-checks.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const MEMBENCH = 'membench -m 1M -r 1 -l 10000';

describe('a Linux VM with the virtio balloon', { skip }, () => {
  let session: MonitorSession;

  before(async () => {
    session = await bootedMonitor({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: { harts: 1, nodes: [{ memoryBytes: 256 * MiB, harts: [0] }] },
      vms: [{ name: 'a', vcpus: 1, memoryBytes: 128 * MiB, balloon: true }],
      timeoutMs: 180_000,
    });
  });

  after(async () => {
    await session?.kill();
  });

  const inUseMiB = (): number => (session.monitor.memory.pagesInUse() * PAGE) / MiB;

  it('reports memory the guest freed, and the monitor gives its machine pages back', { timeout: 300_000 }, async (t: TestContext) => {
    const vm = session.vm('a');
    // Linux 6.1.192 sets the reporting order when the driver registers (pageblock_order, 10 here: 4 MiB), over
    // any `page_reporting.page_reporting_order=` on the command line; and it reports only while a zone has
    // 32 blocks of that order free above its low watermark, which a 128 MiB VM never has. So it is set after boot.
    const order = await session.exec('a', `cat ${ORDER}; echo 0 > ${ORDER}; cat ${ORDER}`);
    assert.deepEqual(order.output.trim().split(/\s+/), ['10', '0'], order.output);
    const atStart = inUseMiB();
    const reportsAtStart = vm.balloon!.account.reports;
    // 24 MiB written into a RAM file system, then freed; the reporting worker runs 2 s after the frees.
    await session.exec('a', 'dd if=/dev/zero of=/tmp/fill bs=1M count=24 2>/dev/null');
    const full = inUseMiB();
    await session.exec('a', 'rm /tmp/fill; sleep 3');
    const after = inUseMiB();
    const a = vm.balloon!.account;
    t.diagnostic(`machine MiB in use: ${atStart.toFixed(1)} before, ${full.toFixed(1)} with 24 MiB filled, ${after.toFixed(1)} after rm and 3 s; ` +
      `reports ${a.reports - reportsAtStart}: ${a.reportedPages} pages reported, ${a.unmapped} unmapped, ${a.freed} freed, ${a.cycles} cycles charged`);
    assert.ok(a.reports > reportsAtStart, 'the guest reported free pages after the rm');
    assert.ok(full - atStart > 20, `filling took only ${(full - atStart).toFixed(1)} MiB`);
    assert.ok(full - after > 20, `only ${(full - after).toFixed(1)} MiB came back of the 24 freed`);
    assert.ok(a.cycles > 0, 'the work was charged');
  });

  it('inflates when the monitor asks, deflates again, and the guest computes right on fresh pages', { timeout: 300_000 }, async () => {
    const vm = session.vm('a');
    const before = { ...vm.balloon!.account };
    await session.atMachineIdle(() => session.monitor.setBalloon(vm, 4096));
    await session.exec('a', 'sleep 1');
    assert.equal(vm.balloonDevice!.actual, 4096, 'the guest filled the balloon to the target');
    assert.equal(vm.balloon!.account.inflatedPages - before.inflatedPages, 4096);
    const total = await session.exec('a', 'grep MemTotal /proc/meminfo');
    await session.atMachineIdle(() => session.monitor.setBalloon(vm, 0));
    await session.exec('a', 'sleep 1');
    assert.equal(vm.balloonDevice!.actual, 0);
    assert.equal(vm.balloon!.account.deflatedPages - before.deflatedPages, 4096);
    const totalAfter = await session.exec('a', 'grep MemTotal /proc/meminfo');
    assert.equal(kib(totalAfter.output) - kib(total.output), 16 * 1024, `${total.output} then ${totalAfter.output}`);
    const check = await session.exec('a', MEMBENCH);
    assert.equal(check.status, 0, check.output);
    assert.match(check.output, new RegExp(`checksum=${referenceChecksum(guest!, MEMBENCH)}\\b`), check.output);
  });
});

const ORDER = '/sys/module/page_reporting/parameters/page_reporting_order';

function kib(line: string): number {
  return Number(/(\d+) kB/.exec(line)?.[1] ?? NaN);
}

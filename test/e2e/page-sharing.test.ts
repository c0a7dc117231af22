// End to end: content-based page sharing under two Linux VMs. Their equal pages (zeroed memory, the same
// kernel and initramfs) merge into copy-on-write machine pages, the machine's memory in use falls, and both
// guests go on computing the right results, writing their way out of the shared pages as they need.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it, type TestContext } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { MonitorSession } from '../../src/guest/monitor-session.js';
import { bootedMonitor } from '../helpers/booted.js';
import { FREE } from '../../src/monitor/machine-memory.js';
import { referenceChecksum } from '../helpers/reference-checks.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

/** A reference check of guest/workloads/checks.txt, its checksum computed on the build host. */
const PMAKE = 'pmake -j 2 -n 8 -l 100';

describe('content-based page sharing between two Linux VMs', { skip }, () => {
  let session: MonitorSession;

  before(async () => {
    session = await bootedMonitor({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: { harts: 2, nodes: [{ memoryBytes: 512 * MiB, harts: [0, 1] }] },
      vms: [{ name: 'a', vcpus: 1, memoryBytes: 128 * MiB }, { name: 'b', vcpus: 1, memoryBytes: 128 * MiB }],
      timeoutMs: 180_000,
    });
  });

  after(async () => {
    await session?.kill();
  });

  it('merges equal pages, and both guests go on computing the right results', async (t: TestContext) => {
    const monitor = session.monitor;
    const first = await session.atMachineIdle(() => monitor.sharePages());
    // Measured: 15 810 pages in use after boot, 2 770 after the merge.
    assert.equal(first.pagesBefore, first.scanned);
    assert.ok(first.pagesAfter < first.pagesBefore / 3, `${first.pagesBefore} pages in use before the merge, ${first.pagesAfter} after`);
    assert.equal(first.pagesBefore - first.pagesAfter, first.merged, 'every merge gives one machine page back');
    assert.ok(monitor.memory.pagesShared > 0);

    const numbers = Array.from({ length: 20_000 }, (_, i) => `${i + 1}\n`).join('');
    const md5 = createHash('md5').update(numbers).digest('hex');
    const command = `seq 1 20000 | md5sum; ${PMAKE}`;
    const results = await Promise.all(['a', 'b'].map((name) => session.exec(name, command)));
    const pmakeSum = referenceChecksum(guest!, PMAKE);
    for (const r of results) {
      assert.equal(r.status, 0, r.output);
      assert.equal(r.output.split(/\s+/)[0], md5, r.output);
      assert.match(r.output, new RegExp(`checksum=${pmakeSum}\\b`), r.output);
    }
    // The guests wrote their way out of shared pages: copy-on-write breaks, each a private copy.
    const copies = ['a', 'b'].map((name) => session.vm(name).exits.get('guest-page-fault.copy-on-write') ?? 0);
    assert.ok(copies.every((n) => n > 0), `copy-on-write breaks: ${copies.join(', ')}`);

    // The memmap names every (VM, guest page) that maps a page, and nothing else.
    const memory = monitor.memory;
    const mapped = new Map<number, string[]>();
    for (const vm of monitor.vms) {
      for (let gppn = 0; gppn < vm.pmap.pages; gppn++) {
        const mpn = vm.pmap.lookup(gppn);
        if (mpn !== FREE) mapped.set(mpn, [...(mapped.get(mpn) ?? []), `${vm.id}:${gppn}`]);
      }
    }
    for (const [mpn, users] of mapped) {
      assert.deepEqual(memory.usersOf(mpn).map((u) => `${u.vm}:${u.gppn}`).sort(), users.sort(), `machine page ${mpn}`);
    }
    assert.equal(memory.pagesInUse(), mapped.size);
    t.diagnostic(`merged ${first.merged} of ${first.scanned} pages: ${first.pagesBefore} → ${first.pagesAfter} machine pages; copy-on-write breaks since: ${copies.join(', ')}`);
  });
});

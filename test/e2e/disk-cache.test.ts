// End to end: two Linux VMs under the monitor with root on snapshot=on disks over the built guest's
// rootfs.ext4. The second VM's reads of blocks the first read map the first's machine pages (the page
// cache) instead of copying; both run pmake from the disk with the right results; one's writes never reach
// the other; the memory account adds up, and the image is unchanged.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { MonitorSession } from '../../src/guest/monitor-session.js';
import { referenceChecksum } from '../helpers/reference-checks.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const PMAKE = 'pmake -j 2 -n 8 -l 100';

describe('the page cache under two VMs with root on one copy-on-write base', { skip }, () => {
  it('maps blocks the other VM read, keeps each VM\'s writes its own, and the account adds up', { timeout: 20 * 60_000 }, async (t: TestContext) => {
    const image = guest!.disk;
    const before = sha256(readFileSync(image));
    const vm = (name: string) => ({
      name, vcpus: 1, memoryBytes: 128 * MiB, append: 'root=/dev/vda rw',
      drives: [{ file: image, readOnly: false, snapshot: true }],
    });
    const session = await MonitorSession.boot({
      kernel: readFileSync(guest!.kernel),
      config: { harts: 2, nodes: [{ memoryBytes: 512 * MiB, harts: [0, 1] }] },
      vms: [vm('a'), vm('b')],
      timeoutMs: 600_000,
    });
    try {
      const monitor = session.monitor;
      const afterBoot = await session.atMachineIdle(() => ({ reads: monitor.diskReads.map((m) => ({ ...m })), cache: structuredClone(monitor.pageCache.counts.disk) }));
      const pmakeSum = referenceChecksum(guest!, PMAKE);
      const results = await Promise.all(['a', 'b'].map((name) => session.exec(name, `cat /proc/sys/vm/page-cluster; cat /sys/block/vda/queue/read_ahead_kb /sys/block/vda/queue/max_sectors_kb; ${PMAKE} -d /root -k`)));
      for (const r of results) {
        assert.equal(r.status, 0, r.output);
        assert.match(r.output, new RegExp(`checksum=${pmakeSum}\\b`), r.output);
      }
      // a writes a file over blocks b reads from the base: b never sees it, even through the shared pages.
      const written = await session.exec('a', 'cp /bin/busybox /root/bb && echo from-a >> /etc/hostname && sync && echo 3 > /proc/sys/vm/drop_caches && tail -c 7 /etc/hostname');
      assert.equal(written.output, 'from-a\n', written.output);
      const other = await session.exec('b', 'echo 3 > /proc/sys/vm/drop_caches; cat /etc/hostname; ls /root');
      assert.doesNotMatch(other.output, /from-a|bb/, other.output);

      const end = await session.atMachineIdle(() => ({ reads: monitor.diskReads.map((m) => ({ ...m })), cache: structuredClone(monitor.pageCache.counts.disk), account: monitor.memoryAccount() }));
      const sum = (rs: typeof end.reads, k: keyof (typeof end.reads)[number]): number => rs.reduce((n, r) => n + r[k], 0);
      assert.ok(sum(end.reads, 'mapped') > 0, 'no read mapped a cached block');
      assert.equal(sum(end.reads, 'mapped'), end.cache.hits);
      assert.ok(sum(afterBoot.reads, 'mapped') > 0, 'the second boot mapped nothing the first read');
      const m = end.account.machine;
      assert.equal(m.mapped - m.saved + m.cacheOnly, m.inUse, JSON.stringify(m));
      assert.equal(m.inUse + m.reserved + m.monitor + m.replicas + m.free, m.total);
      assert.ok(m.savedBy.disk > 0, JSON.stringify(m.savedBy));
      const line = (label: string, rs: typeof end.reads): string => `${label}: ${sum(rs, 'requests')} read requests, ${sum(rs, 'blocks')} blocks, ` +
        `${sum(rs, 'wholeAligned')} whole and aligned, ${sum(rs, 'base')} of the base, ${sum(rs, 'mapped')} mapped`;
      t.diagnostic(line('after boot', afterBoot.reads));
      t.diagnostic(line('after pmake', end.reads));
      t.diagnostic(`guest settings: ${results[0]!.output.split('\n').slice(0, 3).join(' / ')}`);
      t.diagnostic(`cache: ${JSON.stringify(end.cache)}; machine: ${JSON.stringify(m)}`);
      for (const [id, a] of end.account.vms) t.diagnostic(`vm ${id}: ${JSON.stringify(a)}`);
    } finally {
      await session.kill();
    }
    assert.equal(sha256(readFileSync(image)), before, 'the base image was not written');
  });

  it('shares the kernel and initrd the monitor loaded, and the scanner merges zero and equal pages while both VMs run pmake right', { timeout: 20 * 60_000 }, async (t: TestContext) => {
    const session = await MonitorSession.boot({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: { harts: 2, nodes: [{ memoryBytes: 512 * MiB, harts: [0, 1] }] },
      vms: [{ name: 'a', vcpus: 1, memoryBytes: 128 * MiB }, { name: 'b', vcpus: 1, memoryBytes: 128 * MiB }],
      monitor: { shareBootImages: true, scan: { pagesPerSecond: 20_000, cpu: 1 } },
      timeoutMs: 600_000,
    });
    try {
      const monitor = session.monitor;
      const booted = await session.atMachineIdle(() => ({ account: monitor.memoryAccount().machine, cache: structuredClone(monitor.pageCache.counts.kernel), cycles: monitor.cycles }));
      assert.ok(booted.cache.hits > 0, `the second VM mapped none of the first's boot image pages: ${JSON.stringify(booted.cache)}`);
      const pmakeSum = referenceChecksum(guest!, PMAKE);
      const results = await Promise.all(['a', 'b'].map((name) => session.exec(name, PMAKE)));
      for (const r of results) {
        assert.equal(r.status, 0, r.output);
        assert.match(r.output, new RegExp(`checksum=${pmakeSum}\\b`), r.output);
      }
      const end = await session.atMachineIdle(() => ({ account: monitor.memoryAccount().machine, scan: { ...monitor.scanner!.counts }, cycles: monitor.cycles }));
      const m = end.account;
      assert.equal(m.mapped - m.saved + m.cacheOnly, m.inUse, JSON.stringify(m));
      assert.ok(end.scan.mergedZero > 0, JSON.stringify(end.scan));
      assert.ok(end.scan.cyclesCharged > 0 && end.scan.cyclesCharged <= end.scan.cycles, JSON.stringify(end.scan));
      assert.ok(m.savedBy.zero > 0 && m.savedBy.kernel > 0, JSON.stringify(m.savedBy));
      t.diagnostic(`after boot: ${JSON.stringify(booted.account)}; boot images: ${JSON.stringify(booted.cache)}`);
      t.diagnostic(`after pmake (${((end.cycles - booted.cycles) / 1e8).toFixed(2)} s simulated): ${JSON.stringify(m)}`);
      t.diagnostic(`scanner: ${JSON.stringify(end.scan)}`);
    } finally {
      await session.kill();
    }
  });
});

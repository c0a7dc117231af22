// End to end: could the subnet move page-aligned data by remapping, as Disco's did? Two Linux VMs on the
// monitor's subnet, one serving a file with busybox httpd (which sends it with sendfile, so the frames are
// gathered from the page cache's pages), the other fetching it with wget; each NIC records where the frames'
// bytes lay in guest memory (devices/virtio/net.ts `shapes`). A page could be remapped only if a whole,
// aligned page of the sender's lands on a whole, aligned page of the receiver's buffers. Measured with the
// cards as they are, with a 64 KiB MTU, with checksum and TCP segmentation offload, and with both
// (docs/monitor.md, "The subnet").

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { topologyPreset } from '../../src/board/topology.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { FrameShapes, VirtioNet } from '../../src/devices/virtio/net.js';
import type { SubnetOptions } from '../../src/monitor/monitor.js';
import { bootedMonitor } from '../helpers/booted.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const FILE_PAGES = 512;

function nic(session: Awaited<ReturnType<typeof bootedMonitor>>, name: string): VirtioNet {
  return session.monitor.vm(name)!.machine.virtioTransports()[0]!.device as VirtioNet;
}

function shown(s: FrameShapes): string {
  const landing = [...s.landing].sort(([a], [b]) => a - b).map(([offset, n]) => `${offset}:${n}`).join(' ');
  return `sent ${s.sent} (<4K ${s.sentBySize[0]}, <16K ${s.sentBySize[1]}, ≤64K ${s.sentBySize[2]}), with whole pages ${s.sentWithPages} (${s.pagesSent} pages); ` +
    `received ${s.received}, with the sender's pages ${s.receivedWithPages} (${s.pagesReceived} pages), aligned ${s.pagesAligned}; landing offsets ${landing || '-'}`;
}

describe('the subnet: where a sendfile transfer\'s pages lie in the sender\'s and the receiver\'s memory', { skip }, () => {
  const cases: [string, SubnetOptions][] = [['as it is (MTU 1500, no offload)', {}], ['MTU 65535', { mtu: 65535 }], ['TSO and checksum offload', { offload: true }], ['offload and MTU 65535', { offload: true, mtu: 65535 }]];
  for (const [what, subnet] of cases) {
    it(what, { timeout: 10 * 60_000 }, async (t) => {
      const session = await bootedMonitor({
        kernel: readFileSync(guest!.kernel), initrd: readFileSync(guest!.initramfs), config: topologyPreset('numa4x2', 2 ** 30).config,
        monitor: { subnet },
        vms: [
          { name: 'a', vcpus: 1, memoryBytes: 96 * 2 ** 20, net: true, append: 'mb.ip=10.0.2.1/24' },
          { name: 'b', vcpus: 1, memoryBytes: 96 * 2 ** 20, net: true, append: 'mb.ip=10.0.2.2/24' },
        ],
      });
      try {
        const serve = await session.exec('a', `cat /sys/class/net/eth0/mtu && mkdir -p /www && dd if=/dev/urandom of=/www/f bs=4096 count=${FILE_PAGES} 2>/dev/null && md5sum /www/f && httpd -p 8080 -h /www && echo served`);
        assert.match(serve.output, /served/, serve.output);
        const fetch = await session.exec('b', 'wget -q -O /tmp/f http://10.0.2.1:8080/f && md5sum /tmp/f && cat /sys/class/net/eth0/mtu');
        assert.equal(fetch.status, 0, fetch.output);
        const sum = (output: string): string | undefined => /^([0-9a-f]{32}) /m.exec(output)?.[1];
        assert.ok(sum(serve.output) !== undefined && sum(fetch.output) === sum(serve.output), `the whole file came, unchanged: ${serve.output} / ${fetch.output}`);
        const [a, b] = [nic(session, 'a'), nic(session, 'b')];
        t.diagnostic(`${what}: mtu a ${serve.output.trim().split('\n')[0]}, b ${fetch.output.trim().split('\n').pop()}`);
        t.diagnostic(`a (sender): ${shown(a.shapes)}`);
        t.diagnostic(`b (receiver): ${shown(b.shapes)}`);
        t.diagnostic(`dropped: a ${a.statistics.dropped}, b ${b.statistics.dropped}`);
        // The measurement itself: every page b received of a's came from a's whole pages, and lands somewhere.
        assert.ok(b.shapes.pagesReceived <= a.shapes.pagesSent && b.shapes.pagesAligned <= b.shapes.pagesReceived);
        assert.equal([...b.shapes.landing.values()].reduce((x, y) => x + y, 0), b.shapes.pagesReceived);
        assert.ok(a.shapes.sent > 0 && b.shapes.received >= a.shapes.sent - a.statistics.dropped);
        if (subnet.offload === true || subnet.mtu !== undefined) assert.ok(a.shapes.pagesSent > 0, 'large frames carry whole pages of the sender\'s');
        // What docs/monitor.md reports: no page ever lands on a whole page of the receiver's (Linux's receive
        // buffers put the frame 16 bytes into a page). If one does, remapping has become possible: measure again.
        assert.equal(b.shapes.pagesAligned, 0, 'a sender\'s page landed on a whole page of the receiver\'s');
      } finally {
        await session.kill();
      }
    });
  }
});

// End to end: two VMs under the monitor on its subnet ping each other; the switch carried their frames.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { topologyPreset } from '../../src/board/topology.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { MonitorSession } from '../../src/guest/monitor-session.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('the VMs\' subnet', { skip }, () => {
  it('two VMs with network cards ping each other; a third without one sees nothing', async () => {
    const session = await MonitorSession.boot({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: topologyPreset('numa4x2', 2 ** 30).config,
      vms: [
        { name: 'a', vcpus: 1, memoryBytes: 96 * 2 ** 20, net: true, append: 'mb.ip=10.0.2.1/24' },
        { name: 'b', vcpus: 1, memoryBytes: 96 * 2 ** 20, net: true, append: 'mb.ip=10.0.2.2/24' },
        { name: 'c', vcpus: 1, memoryBytes: 96 * 2 ** 20 },
      ],
    });
    try {
      const [ping, mac, none] = await Promise.all([
        session.exec('a', 'ping -c 3 -W 5 10.0.2.2'),
        session.exec('b', 'cat /sys/class/net/eth0/address'),
        session.exec('c', 'ls /sys/class/net'),
      ]);
      assert.equal(ping.status, 0, ping.output);
      assert.match(ping.output, /3 packets transmitted, 3 packets received/);
      // b is the monitor's second VM: id 1.
      assert.equal(mac.output.trim(), '52:54:00:4d:00:01');
      assert.doesNotMatch(none.output, /eth0/);
      const back = await session.exec('b', 'ping -c 1 -W 5 10.0.2.1');
      assert.equal(back.status, 0, back.output);
      // ARP request (flooded) and replies, and the echo requests and replies at least.
      assert.ok(session.monitor.subnet.frames >= 8, `the switch carried ${session.monitor.subnet.frames} frames`);
      // a ends: b's pings to it now go unanswered, and b is unharmed.
      await session.poweroff('a');
      const lost = await session.exec('b', 'ping -c 1 -W 2 10.0.2.1; echo rc=$?');
      assert.match(lost.output, /rc=1/, lost.output);
    } finally {
      await session.kill();
    }
  });
});

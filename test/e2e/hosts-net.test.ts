// End to end: virtio-net on a VM spread over two host processes (`run --hosts 2 --net user`,
// docs/giantvm.md, "DMA"). The card lives on host 0; Linux on 2 harts, one per host, takes an address by
// DHCP, a process on the hart of host 1 fetches a page from a server on the host's loopback, and the host
// fetches a page the guest serves from a process on that hart, through hostfwd. Both arrive whole.
// Loopback only: the user network is restricted to 127.0.0.1.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { freePort } from '../../src/host/free-port.js';
import { RunProcess } from '../helpers/run-process.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

/** udhcpc calls its script with the lease in the environment; this one configures eth0 from it. */
const DHCP_SCRIPT = '#!/bin/sh\\n[ "$1" = bound ] && ifconfig "$interface" "$ip" netmask "$subnet" && route add default gw "$router"\\nexit 0\\n';

function curl(url: string): Promise<Buffer> {
  return new Promise((done, fail) => execFile('curl', ['-sS', '--max-time', '60', url], { encoding: 'buffer', maxBuffer: 8 << 20 },
    (error, stdout, stderr) => (error ? fail(new Error(`curl ${url}: ${stderr.toString()}`)) : done(stdout))));
}

const md5 = (data: Buffer | string): string => createHash('md5').update(data).digest('hex');

test('Linux on 2 harts over 2 host processes: virtio-net carries TCP both ways for a process on host 1\'s hart', { skip, timeout: 240_000 }, async (t) => {
  // 200 KiB the host serves: a line pattern, so that a lost or repeated piece changes the checksum.
  const page = Array.from({ length: 200 * 1024 / 16 }, (_, i) => `${String(i).padStart(15, '0')}\n`).join('');
  const server = createHttpServer((request, response) => response.end(request.url === '/page' ? page : 'other'));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  t.after(() => server.close());
  const serverPort = (server.address() as AddressInfo).port;
  const hostPort = await freePort();
  const statsDir = join(mkdtempSync(join(tmpdir(), 'mb-hosts-net-')), 'stats');
  t.after(() => rmSync(dirname(statsDir), { recursive: true, force: true }));
  const run = new RunProcess(['--smp', '2', '--hosts', '2', '--memory', '256M', '--net', `user,restrict=on,hostfwd=tcp::${hostPort}-:80`, '--stats-dir', statsDir], '');
  t.after(() => run.stop());
  await run.ready();
  const dhcp = await run.exec(`printf '${DHCP_SCRIPT}' > /tmp/dhcp.sh && chmod +x /tmp/dhcp.sh && ip link set eth0 up && udhcpc -i eth0 -n -q -s /tmp/dhcp.sh`);
  assert.equal(dhcp.status, 0, dhcp.output);
  assert.match(dhcp.output, /lease of 10\.0\.2\.15 obtained from 10\.0\.2\.2/);
  // Host 1's hart (hart 1) fetches: its socket buffers are pages the card's DMA reaches through the DSM.
  const fetched = await run.exec(`taskset -c 1 wget -q -O - http://10.0.2.2:${serverPort}/page | taskset -c 1 md5sum`);
  assert.equal(fetched.status, 0, fetched.output);
  assert.equal(fetched.output.trim(), `${md5(page)}  -`);
  // And serves, from a process on the same hart: 300 KiB of a pattern the guest makes.
  const served = await run.exec("mkdir -p /tmp/www && seq 1 50000 > /tmp/www/big && md5sum /tmp/www/big && taskset -c 1 httpd -p 80 -h /tmp/www");
  assert.equal(served.status, 0, served.output);
  const body = await curl(`http://127.0.0.1:${hostPort}/big`);
  let expected = '';
  for (let i = 1; i <= 50000; i++) expected += `${i}\n`;
  assert.equal(md5(body), md5(expected));
  assert.equal(served.output.trim(), `${md5(expected)}  /tmp/www/big`);
  assert.equal(await run.stop(), 0, run.stderr);
  // The card's DMA went through the DSM: pages of host 1's hart were fetched to send, and made Modified to receive.
  const stats = JSON.parse(readFileSync(join(statsDir, 'stats.json'), 'utf8')) as Record<string, { value?: number; values?: Record<string, number> }>;
  const dma = stats['dsm.host0.dmaPages']?.values;
  t.diagnostic(`DMA pages asked of the DSM: ${JSON.stringify(dma)}, waits ${stats['dsm.host0.dmaWaits']?.value}, bytes ${JSON.stringify(stats['dsm.host0.dmaBytes']?.values)}`);
  assert.ok(dma !== undefined && dma.read! > 0 && dma.write! > 0, JSON.stringify(dma));
});

// End to end, `mirrorball run` as a user runs it: the user network (DHCP, DNS, a guest wget of a host server,
// host curl of the guest's httpd through hostfwd), two runs on one socket segment pinging, console sockets.
// Loopback only: the user network is restricted (restrict=on) to the host's 127.0.0.1.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { RunProcess } from '../helpers/run-process.js';
import { freePort } from '../../src/host/free-port.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const directory = mkdtempSync(join(tmpdir(), 'mirrorball-run-net-'));
after(() => rmSync(directory, { recursive: true, force: true }));

/** A port nothing listens on now (the kernel's pick for a listener on port 0). */

function curl(url: string): Promise<string> {
  return new Promise((done, fail) => execFile('curl', ['-sS', '--max-time', '30', url], (error, stdout, stderr) => (error ? fail(new Error(`curl ${url}: ${stderr}`)) : done(stdout))));
}

async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 600 && !existsSync(path); i++) await new Promise((done) => setTimeout(done, 50));
}

/** udhcpc calls its script with the lease in the environment; this one configures eth0 from it. */
const DHCP_SCRIPT = '#!/bin/sh\\n[ "$1" = bound ] && ifconfig "$interface" "$ip" netmask "$subnet" && route add default gw "$router"\\nexit 0\\n';

describe('run --net user', { skip, timeout: 300_000 }, () => {
  it('gives the guest an address by DHCP, resolves the host\'s name, and carries TCP both ways on loopback', async () => {
    const hostPort = await freePort();
    const page = `served-by-the-host-${process.pid}`;
    const server = createHttpServer((request, response) => response.end(request.url === '/page' ? page : 'other'));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
    const serverPort = (server.address() as AddressInfo).port;
    const run = new RunProcess(['--net', `user,restrict=on,hostfwd=tcp::${hostPort}-:80`], '');
    try {
      await run.ready();
      const dhcp = await run.exec(`printf '${DHCP_SCRIPT}' > /tmp/dhcp.sh && chmod +x /tmp/dhcp.sh && ip link set eth0 up && udhcpc -i eth0 -n -q -s /tmp/dhcp.sh && ip -4 addr show eth0 && ip route`);
      assert.equal(dhcp.status, 0, dhcp.output);
      assert.match(dhcp.output, /lease of 10\.0\.2\.15 obtained from 10\.0\.2\.2/);
      assert.match(dhcp.output, /inet 10\.0\.2\.15\/24/);
      assert.match(dhcp.output, /default via 10\.0\.2\.2/);

      const name = hostname().toLowerCase().split('.')[0];
      const lookup = await run.exec(`nslookup ${name} 10.0.2.3; nslookup no-such-name.example 10.0.2.3`);
      assert.match(lookup.output, new RegExp(`Name:\\s+${name}[\\s\\S]*Address: 10\\.0\\.2\\.2`));
      assert.match(lookup.output, /NXDOMAIN|can't resolve/);

      const fetched = await run.exec(`wget -q -O - http://10.0.2.2:${serverPort}/page`);
      assert.equal(fetched.status, 0, fetched.output);
      assert.equal(fetched.output, page);

      const served = await run.exec(`mkdir -p /tmp/www && echo page-from-the-guest > /tmp/www/index.html && dd if=/dev/zero bs=1k count=300 2>/dev/null | tr '\\0' 'x' > /tmp/www/big && httpd -p 80 -h /tmp/www`);
      assert.equal(served.status, 0, served.output);
      assert.equal(await curl(`http://127.0.0.1:${hostPort}/index.html`), 'page-from-the-guest\n');
      // Several at once, each its own guest connection; and one larger than any window.
      const pages = await Promise.all([1, 2, 3].map(() => curl(`http://127.0.0.1:${hostPort}/index.html`)));
      assert.deepEqual(pages, ['page-from-the-guest\n', 'page-from-the-guest\n', 'page-from-the-guest\n']);
      assert.equal(await curl(`http://127.0.0.1:${hostPort}/big`), 'x'.repeat(300 * 1024));

      // restrict=on: an address outside is refused at once, never tried.
      const outside = await run.exec('wget -q -T 5 -O - http://192.0.2.1:80/ 2>&1; echo status=$?');
      assert.match(outside.output, /refused|status=1/);
    } finally {
      assert.equal(await run.stop(), 0, run.stderr);
      await new Promise<void>((done) => server.close(() => done()));
    }
  });

  it('refuses a hostfwd port that is taken, in one line', async () => {
    const holder = createServer();
    await new Promise<void>((done) => holder.listen(0, '127.0.0.1', () => done()));
    const port = (holder.address() as AddressInfo).port;
    const run = new RunProcess(['--net', `user,hostfwd=tcp::${port}-:80`], '');
    const code = await run.exited;
    await new Promise<void>((done) => holder.close(() => done()));
    assert.equal(code, 2);
    assert.match(run.stderr, new RegExp(`hostfwd cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  });
});

describe('run --net socket', { skip, timeout: 300_000 }, () => {
  it('joins two runs on one Ethernet segment: they ping each other', async () => {
    const port = await freePort();
    const a = new RunProcess(['--net', `socket,listen=127.0.0.1:${port}`], 'mb.ip=10.0.9.1/24');
    // The listener must be up before the other connects: its socket opens before the guest boots.
    for (let i = 0; i < 200; i++) {
      const up = await new Promise<boolean>((done) => { const c = createConnection(port, '127.0.0.1'); c.once('connect', () => { c.destroy(); done(true); }); c.once('error', () => done(false)); });
      if (up) break;
      await new Promise((done) => setTimeout(done, 100));
    }
    const b = new RunProcess(['--net', `socket,connect=127.0.0.1:${port}`], 'mb.ip=10.0.9.2/24');
    try {
      await Promise.all([a.ready(), b.ready()]);
      const there = await a.exec('ping -c 3 -W 5 10.0.9.2');
      assert.equal(there.status, 0, there.output);
      assert.match(there.output, /3 packets transmitted, 3 packets received/);
      const back = await b.exec('ping -c 1 -W 5 10.0.9.1');
      assert.equal(back.status, 0, back.output);
      const macs = await Promise.all([a.exec('cat /sys/class/net/eth0/address'), b.exec('cat /sys/class/net/eth0/address')]);
      assert.deepEqual(macs.map((m) => m.output.trim()), ['52:54:00:12:34:56', '52:54:00:12:34:57']);
    } finally {
      assert.equal(await b.stop(), 0, b.stderr);
      assert.equal(await a.stop(), 0, a.stderr);
    }
  });
});

describe('run --serial socket= and --console socket=', { skip, timeout: 300_000 }, () => {
  it('put the UART and the virtio console on Unix sockets of mode 0600', async () => {
    const serial = join(directory, 'serial.sock');
    const hvc = join(directory, 'hvc.sock');
    const run = new RunProcess(['--serial', `socket=${serial}`, '--console', `socket=${hvc}`], '');
    try {
      await waitFor(serial);
      assert.equal(statSync(serial).mode & 0o777, 0o600);
      assert.equal(statSync(hvc).mode & 0o777, 0o600);
      await run.attach(serial); // the agent speaks over the UART's socket now
      await run.ready();
      let fromHvc = '';
      const client = createConnection(hvc);
      client.on('data', (chunk: Buffer) => { fromHvc += chunk.toString(); });
      await new Promise<void>((done) => client.once('connect', () => done()));
      const reading = run.exec('stty -F /dev/hvc1 -echo; read -r line < /dev/hvc1; echo "got:$line"; echo written-to-hvc1 > /dev/hvc1');
      setTimeout(() => client.write('typed-into-hvc1\n'), 2000);
      const result = await reading;
      assert.equal(result.output.trim(), 'got:typed-into-hvc1');
      for (let i = 0; i < 100 && !fromHvc.includes('written-to-hvc1'); i++) await new Promise((done) => setTimeout(done, 50));
      assert.match(fromHvc, /written-to-hvc1/);
      client.destroy();
    } finally {
      assert.equal(await run.stop(), 0, run.stderr);
    }
    assert.equal(existsSync(serial), false, 'the socket file is removed at the end');
  });
});

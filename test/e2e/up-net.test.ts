// End to end: a VM of `mirrorball up` with `net: user` (its own user network): curl on the host reaches the
// guest's httpd through its hostfwd, the guest's wget a server on the host's loopback. Loopback only (restrict=on).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createConnection, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentProtocol } from '../../src/guest/agent-protocol.js';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { CLI } from '../helpers/run-process.js';
import { freePort } from '../../src/host/free-port.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const directory = mkdtempSync(join(tmpdir(), 'mirrorball-up-net-'));
after(() => rmSync(directory, { recursive: true, force: true }));


describe('up with net: user', { skip, timeout: 300_000 }, () => {
  it('forwards a host port to the VM and carries the VM\'s connections to the host', async () => {
    const hostPort = await freePort();
    const server = createHttpServer((request, response) => response.end(`host-saw-${request.url}`));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
    const serverPort = (server.address() as AddressInfo).port;
    const file = join(directory, 'net.yaml');
    const runDir = join(directory, 'run');
    writeFileSync(file, ['vms:', '  - name: web', '    memory: 256M', `    net: user,restrict=on,hostfwd=tcp::${hostPort}-:80`, '    append: "mb.agent=1 mb.ip=10.0.2.15/24,10.0.2.2"'].join('\n'));
    const up = spawn(process.execPath, [CLI, 'up', file, '--run-dir', runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    up.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((done) => up.once('exit', (code) => done(code)));
    const socketPath = join(runDir, 'web.console.sock');
    for (let i = 0; i < 600 && !existsSync(socketPath); i++) await new Promise((done) => setTimeout(done, 50));
    const socket = createConnection(socketPath);
    const agent = new AgentProtocol({ send: (bytes) => { socket.write(bytes); } });
    socket.on('data', (chunk: Buffer) => agent.feed(new Uint8Array(chunk)));
    void exited.then((code) => agent.abort(`up exited (${code}): ${stderr}`));
    try {
      await agent.whenReady();
      const started = await agent.exec('mkdir -p /tmp/www && echo page-from-the-vm > /tmp/www/index.html && httpd -p 80 -h /tmp/www');
      assert.equal(started.status, 0, started.output);
      const page = await new Promise<string>((done, fail) => execFile('curl', ['-sS', '--max-time', '30', `http://127.0.0.1:${hostPort}/index.html`], (error, stdout, err) => (error ? fail(new Error(err)) : done(stdout))));
      assert.equal(page, 'page-from-the-vm\n');
      const fetched = await agent.exec(`wget -q -O - http://10.0.2.2:${serverPort}/x`);
      assert.equal(fetched.output, 'host-saw-/x');
      agent.exec('poweroff -f').catch(() => {});
      assert.equal(await exited, 0, stderr);
    } finally {
      socket.destroy();
      if (up.exitCode === null) up.kill('SIGKILL');
      await new Promise<void>((done) => server.close(() => done()));
    }
  });
});

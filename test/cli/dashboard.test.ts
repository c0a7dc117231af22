// `up --web`: the dashboard's server as a client meets it, with tiny kernels (no guest needed): the page
// served, Host and Origin checked, the token refused or taken, the control protocol and the consoles over
// the WebSocket, vm-stop and vm-start (and `mirrorball start`), and the token kept across a restart.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { CLI } from '../helpers/run-process.js';
import { PROGRAMS, tinyKernel } from '../helpers/tiny-kernels.js';
import { WebClient, type Message } from '../helpers/web-client.js';

let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mb-web-'));
  for (const name of ['echo', 'idle'] as const) writeFileSync(join(dir, `${name}.Image`), tinyKernel(PROGRAMS[name]));
  writeFileSync(join(dir, 'tiny.yaml'), 'machine:\n  topology: uma\n  smp: 2\n  memory: 256M\nvms:\n' +
    ['echo', 'idle'].map((v) => `  - name: ${v}\n    memory: 32M\n    kernel: ${join(dir, `${v}.Image`)}\n`).join(''));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** `up --web 0` in the background; resolves once it printed the dashboard's address. */
async function startUp(runDir: string): Promise<{ child: ChildProcess; url: URL; token: string; output: () => string }> {
  const child = spawn(process.execPath, [CLI, 'up', join(dir, 'tiny.yaml'), '--run-dir', runDir, '--web', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (t: string) => { output += t; });
  child.stderr!.setEncoding('utf8').on('data', (t: string) => { output += t; });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = /dashboard (http:\/\/\S+)#token=(\S+) /.exec(output);
    if (m !== null) return { child, url: new URL(m[1]!), token: m[2]!, output: () => output };
    if (child.exitCode !== null || Date.now() > deadline) assert.fail(`up did not print its dashboard: ${output}`);
    await sleep(50);
  }
}

function get(url: URL, path: string, host: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: url.hostname, port: url.port, path, headers: { Host: host } }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (t: string) => { body += t; });
      response.on('end', () => resolve({ status: response.statusCode!, body, headers: response.headers }));
    });
    r.on('error', reject);
    r.end();
  });
}

async function negotiated(host: string, token: string): Promise<WebClient> {
  const client = await WebClient.connect(host);
  await client.next((m) => 'QMP' in m);
  await client.ok('qmp_capabilities', { token });
  return client;
}

describe('mirrorball up --web', () => {
  it('serves the page, refuses strangers, and speaks the control protocol with consoles to clients that give the token', { timeout: 180_000 }, async () => {
    const runDir = join(dir, 'run');
    const up = await startUp(runDir);
    try {
      const host = up.url.host;
      // The token is the run directory's, 0600.
      const tokenFile = join(runDir, 'web.token');
      assert.equal(readFileSync(tokenFile, 'utf8').trim(), up.token);
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      assert.equal(up.url.hostname, '127.0.0.1', 'on this machine only unless told otherwise');

      // The page, to the right Host only (DNS rebinding: a foreign name resolved to 127.0.0.1).
      const page = await get(up.url, '/', host);
      assert.equal(page.status, 200);
      assert.match(page.body, /<script type="module" src="\/dashboard.js">/);
      assert.doesNotMatch(page.body, new RegExp(up.token), 'the page does not carry the token');
      assert.equal((await get(up.url, '/dashboard.js', host)).status, 200);
      assert.equal((await get(up.url, '/', `localhost:${up.url.port}`)).status, 200);
      assert.equal((await get(up.url, '/', `evil.example:${up.url.port}`)).status, 421);
      assert.equal((await get(up.url, '/', `127.0.0.1:${Number(up.url.port) + 1}`)).status, 421);
      assert.equal((await get(up.url, '/etc/passwd', host)).status, 404);

      // The WebSocket: another site's page, no Origin, a foreign Host: refused before any protocol.
      await assert.rejects(WebClient.connect(host, { origin: 'http://evil.example' }), /refused: 403/);
      await assert.rejects(WebClient.connect(host, { origin: null }), /refused: 403/);
      await assert.rejects(WebClient.connect(host, { hostHeader: `evil.example:${up.url.port}`, origin: `http://evil.example:${up.url.port}` }), /refused: 421/);

      // No token, a wrong one: an error and the connection closed; nothing else before it.
      for (const args of [undefined, { token: 'x'.repeat(43) }, { token: 7 }]) {
        const stranger = await WebClient.connect(host);
        assert.deepEqual(await stranger.next(), { QMP: { version: { mirrorball: '0.1.0' }, capabilities: [] } });
        assert.match(await stranger.error('query-vms'), /Expecting capabilities negotiation/);
        assert.equal(await stranger.error('qmp_capabilities', args), 'the token is missing or wrong');
        const deadline = Date.now() + 10_000;
        while (!stranger.closed && Date.now() < deadline) await sleep(20);
        assert.ok(stranger.closed, `closed after ${JSON.stringify(args)}`);
      }

      // With the token: the same commands as the control socket.
      const a = await negotiated(host, up.token);
      const b = await negotiated(host, up.token);
      const vms = await a.ok<Message[]>('query-vms');
      assert.deepEqual(vms.map((v) => [v.name, v.state]), [['echo', 'running'], ['idle', 'running']]);
      const cpus = await a.ok<{ cpus: { cpu: number; node: number }[]; cycles: number }>('query-cpus');
      assert.deepEqual(cpus.cpus.map((c) => [c.cpu, c.node]), [[0, 0], [1, 0]]);

      // Consoles: both clients subscribed see the output of what one typed; the second's backlog has it after.
      assert.equal((await a.ok<{ backlog: string }>('console-subscribe', { vm: 'echo' })).backlog, '');
      await a.ok('console-input', { vm: 'echo', data: Buffer.from('HAL').toString('base64') });
      let seen = '';
      const until = async (client: WebClient, want: string): Promise<void> => {
        const deadline = Date.now() + 30_000;
        while (!seen.includes(want) && Date.now() < deadline) { seen += client.consoleText('echo'); await sleep(20); }
        assert.ok(seen.includes(want), `console so far: ${seen}`);
      };
      await until(a, 'IBM');
      const backlog = (await b.ok<{ backlog: string }>('console-subscribe', { vm: 'echo' })).backlog;
      assert.equal(Buffer.from(backlog, 'base64').toString('latin1'), 'IBM');
      await b.ok('console-input', { vm: 'echo', data: Buffer.from('`').toString('base64') });
      seen = '';
      await until(a, 'a');
      seen = '';
      await until(b, 'a');
      await a.ok('console-unsubscribe', { vm: 'echo' });
      assert.match(await a.error('console-input', { vm: 'echo', data: 'not base64!' }), /must be base64/);
      assert.match(await a.error('console-subscribe', { vm: 'nope' }), /no VM named 'nope'/);

      // Stop a VM and start it again: events to every client, the same name, a new VM.
      const stopped = await a.ok<Message>('vm-stop', { vm: 'idle' });
      assert.equal(stopped.state, 'stopped');
      await b.next((m) => m.event === 'VM_STOPPED' && (m.data as Message).vm === 'idle');
      assert.match(await a.error('vm-start', { vm: 'echo' }), /VM 'echo' is running/);
      assert.match(await a.error('vm-start', { vm: 'nope' }), /no VM named 'nope' in .*tiny\.yaml/);
      const started = await a.ok<Message>('vm-start', { vm: 'idle' });
      assert.equal(started.state, 'running');
      await b.next((m) => m.event === 'VM_STARTED' && (m.data as Message).vm === 'idle');
      const after = await a.ok<Message[]>('query-vms');
      assert.deepEqual(after.map((v) => [v.name, v.state]), [['echo', 'running'], ['idle', 'stopped'], ['idle', 'running']]);
      assert.notEqual(after[2]!.id, after[1]!.id);
      // The command line does the same through the control socket.
      const cli = (args: string[]): { status: number | null; stdout: string; stderr: string } => spawnSync(process.execPath, [CLI, ...args, '--run-dir', runDir], { encoding: 'utf8' });
      assert.equal(cli(['stop', 'idle']).status, 0);
      const start = cli(['start', 'idle']);
      assert.equal(start.status, 0, start.stderr);
      assert.match(start.stdout, /^vm idle: running, 1 vCPU, 32M on node 0\n$/);
      assert.equal(cli(['start', 'idle']).status, 1, 'a running VM is not started twice');

      await a.ok('quit');
      await b.next((m) => m.event === 'SHUTDOWN');
    } finally {
      up.child.kill('SIGKILL');
    }
    await new Promise((resolve) => { if (up.child.exitCode !== null) resolve(null); else up.child.once('exit', resolve); });

    // Started again in the same run directory: the same token, so an open page gets back in.
    const again = await startUp(runDir);
    try {
      assert.equal(again.token, up.token);
      const client = await negotiated(again.url.host, up.token);
      await client.ok('quit');
    } finally {
      again.child.kill('SIGKILL');
    }
  });
});

describe('mirrorball run --web', () => {
  it('gives the one machine\'s console and commands to a client with the token it printed', { timeout: 120_000 }, async () => {
    const child = spawn(process.execPath, [CLI, 'run', '--kernel', join(dir, 'echo.Image'), '-m', '64M', '--web', '0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (t: string) => { stderr += t; });
    child.stdout!.resume();
    try {
      const deadline = Date.now() + 60_000;
      let m: RegExpExecArray | null = null;
      while ((m = /dashboard (http:\/\/\S+)#token=(\S+) \(the token lives only in this process\)/.exec(stderr)) === null) {
        if (child.exitCode !== null || Date.now() > deadline) assert.fail(`run did not print its dashboard: ${stderr}`);
        await sleep(50);
      }
      const url = new URL(m[1]!);
      const stranger = await WebClient.connect(url.host);
      await stranger.next((x) => 'QMP' in x);
      assert.equal(await stranger.error('qmp_capabilities', { token: 'wrong'.repeat(9) }), 'the token is missing or wrong');
      await assert.rejects(WebClient.connect(url.host, { origin: 'http://evil.example' }), /refused: 403/);
      const client = await negotiated(url.host, m[2]!);
      assert.deepEqual(await client.ok('query-status'), { running: true, status: 'running' });
      assert.match(await client.error('console-subscribe', { vm: 'web' }), /run's console is 'machine'/);
      await client.ok('console-subscribe', { vm: 'machine' });
      await client.ok('console-input', { vm: 'machine', data: Buffer.from('HAL').toString('base64') });
      let seen = '';
      const until = Date.now() + 30_000;
      while (!seen.includes('IBM') && Date.now() < until) { seen += client.consoleText('machine'); await sleep(20); }
      assert.equal(seen, 'IBM');
      // Where the hart's time went, in the monitor's query-cpus shape, so the page draws it: busy cycles grow
      // and never exceed the machine's time.
      type Cpus = { cycles: number; cpus: { cpu: number; userCycles: number; kernelCycles: number; monitorCycles: number }[] };
      const first = await client.ok('query-cpus') as Cpus;
      await sleep(300);
      const later = await client.ok('query-cpus') as Cpus;
      assert.deepEqual(later.cpus.map((c) => c.cpu), [0]);
      const busy = (r: Cpus): number => r.cpus[0]!.userCycles + r.cpus[0]!.kernelCycles;
      assert.ok(later.cycles > first.cycles && busy(later) > busy(first), JSON.stringify([first, later]));
      assert.ok(busy(later) <= later.cycles && later.cpus[0]!.monitorCycles === 0, JSON.stringify(later));
      await client.ok('quit');
      assert.deepEqual((await client.next((x) => x.event === 'SHUTDOWN')).data, { reason: 'host-quit' });
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('mirrorball up --detach --web', () => {
  it('prints the dashboard\'s address too, once the monitor in the background serves it', { timeout: 120_000 }, async () => {
    const runDir = join(dir, 'detached');
    const r = spawnSync(process.execPath, [CLI, 'up', join(dir, 'tiny.yaml'), '--run-dir', runDir, '--detach', '--web', '0'], { encoding: 'utf8', timeout: 100_000 });
    try {
      assert.equal(r.status, 0, r.stderr);
      const m = /^mirrorball: dashboard (http:\/\/\S+)#token=(\S+) /m.exec(r.stdout);
      assert.ok(m !== null, r.stdout);
      assert.equal(m[2], readFileSync(join(runDir, 'web.token'), 'utf8').trim());
      const client = await negotiated(new URL(m[1]!).host, m[2]!);
      assert.equal((await client.ok<Message[]>('query-vms')).length, 2);
      client.close();
    } finally {
      spawnSync(process.execPath, [CLI, 'down', '--run-dir', runDir], { encoding: 'utf8', timeout: 60_000 });
    }
  });
});

describe('vm-start when the VM cannot be made', () => {
  it('is an error naming why, and leaves no half-made VM running', { timeout: 120_000 }, async () => {
    const kernel = join(dir, 'gone.Image');
    writeFileSync(kernel, tinyKernel(PROGRAMS.idle));
    const file = join(dir, 'gone.yaml');
    writeFileSync(file, `machine:\n  topology: uma\n  smp: 2\n  memory: 256M\nvms:\n  - name: stays\n    memory: 32M\n    kernel: ${join(dir, 'idle.Image')}\n  - name: gone\n    memory: 32M\n    kernel: ${kernel}\n`);
    const runDir = join(dir, 'gone-run');
    const child = spawn(process.execPath, [CLI, 'up', file, '--run-dir', runDir, '--web', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (t: string) => { output += t; });
    child.stderr!.setEncoding('utf8').on('data', (t: string) => { output += t; });
    try {
      const deadline = Date.now() + 60_000;
      let m: RegExpExecArray | null = null;
      while ((m = /dashboard (http:\/\/\S+)#token=(\S+) /.exec(output)) === null) {
        if (child.exitCode !== null || Date.now() > deadline) assert.fail(`up did not print its dashboard: ${output}`);
        await sleep(50);
      }
      const client = await negotiated(new URL(m[1]!).host, m[2]!);
      await client.ok('vm-stop', { vm: 'gone' });
      rmSync(kernel);
      assert.match(await client.error('vm-start', { vm: 'gone' }), /cannot read kernel '.*gone\.Image'/);
      const vms = await client.ok<Message[]>('query-vms');
      assert.deepEqual(vms.filter((v) => v.name === 'gone').map((v) => v.state), ['stopped', 'stopped'], JSON.stringify(vms));
      assert.match(String(vms[vms.length - 1]!.reason), /^vm-start failed: /);
      writeFileSync(kernel, tinyKernel(PROGRAMS.idle));
      assert.equal((await client.ok<Message>('vm-start', { vm: 'gone' })).state, 'running', 'with its kernel back, it starts');
      await client.ok('quit');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

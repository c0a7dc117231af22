// `up` with threads: tiny hand-made kernels (no guest needed) on two worker threads: a console that echoes
// through its socket, a VM whose guest powers off reporting a failure (exit status 1), `stop`, and the
// control commands: `ps` and `stats` from the threads' monitors, what is not forwarded yet one line.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { Client } from '../helpers/control-client.js';
import { CLI } from '../helpers/run-process.js';
import { PROGRAMS, tinyKernel } from '../helpers/tiny-kernels.js';

const dir = mkdtempSync(join(tmpdir(), 'mirrorball-up-threads-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
for (const name of ['echo', 'idle', 'fail'] as const) writeFileSync(join(dir, `${name}.Image`), tinyKernel(PROGRAMS[name]));

async function until(what: string, test: () => boolean, detail: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!test()) {
    if (Date.now() > deadline) assert.fail(`${what} not seen: ${detail()}`);
    await sleep(50);
  }
}

describe('up --threads 2 with tiny kernels', { timeout: 180_000 }, () => {
  it('runs them on two threads: the console echoes, a failed power-off is reported and makes the exit status 1, stop works', async () => {
    const file = join(dir, 'tiny.yaml');
    writeFileSync(file, 'machine:\n  smp: 2\n  memory: 256M\nvms:\n  - name: echo\n    memory: 32M\n    kernel: echo.Image\n' +
      '  - name: idle\n    memory: 32M\n    kernel: idle.Image\n  - name: fail\n    memory: 32M\n    kernel: fail.Image\n');
    const runDir = join(dir, 'run');
    const up = spawn(process.execPath, [CLI, 'up', file, '--run-dir', runDir, '--threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    up.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    up.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => up.on('exit', (code) => resolve(code)));
    let client: Client | undefined;
    let echo: Socket | undefined;
    try {
      client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.execute('qmp_capabilities');
      // Equal VMs alternate between the threads.
      const vms = (await client.execute('query-vms')).return as { name: string; thread: number }[];
      assert.deepEqual(vms.map((v) => [v.name, v.thread]), [['echo', 0], ['idle', 1], ['fail', 0]]);
      await until('fail\'s end', () => stdout.includes('vm fail: powered off (code 1)\n'), () => stdout + stderr);
      echo = createConnection(join(runDir, 'echo.console.sock'));
      let echoed = '';
      echo.on('data', (chunk: Buffer) => { echoed += chunk.toString('latin1'); });
      await new Promise<void>((resolve) => echo!.once('connect', () => resolve()));
      echo.write('HAL');
      await until('the echo', () => echoed === 'IBM', () => echoed);
      // ps and stats: what each thread's monitor answers, added up by the main thread.
      const ps = spawnSync(process.execPath, [CLI, 'ps', '--run-dir', runDir], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(ps.status, 0, ps.stderr);
      const [table, machine] = ps.stdout.split('\n\n');
      assert.deepEqual(table!.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/).slice(0, 2)), [['echo', 'running'], ['idle', 'running'], ['fail', 'off']]);
      assert.match(machine!, /^machine: \S+ in use by VMs = \S+ of guest pages − 0 saved by sharing \+ 0 held by the page cache alone\n.* free, of 256M\n$/s);
      const statsText = spawnSync(process.execPath, [CLI, 'stats', 'echo', '--run-dir', runDir], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(statsText.status, 0, statsText.stderr);
      assert.match(statsText.stdout, /^vm echo: running, 1 vCPU, 32M on node 0\n/);
      assert.deepEqual((await client.execute('query-cpus')).error, { class: 'GenericError', desc: 'query-cpus is not available with threads: 2 yet (docs/threads.md)' });
      const stop = spawnSync(process.execPath, [CLI, 'stop', 'idle', '--run-dir', runDir], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(stop.status, 0, stop.stderr);
      assert.equal(stop.stdout, 'vm idle: stopped (vm-stop from the control socket)\n');
      await until('idle\'s end', () => stdout.includes('vm idle: stopped (vm-stop from the control socket)\n'), () => stdout + stderr);
      assert.deepEqual((await client.execute('vm-stop', { vm: 'nobody' })).error, { class: 'GenericError', desc: 'no VM named \'nobody\' (the VMs are: echo, idle, fail)' });
      // A VM's account comes from its thread's monitor; a thread whose VMs have all ended has gone.
      const account = (await client.execute('query-vm-stats', { vm: 'echo' })).return as { name: string; state: string; total: { instructions: number }; exitCauses: Record<string, number> };
      assert.equal(account.name, 'echo');
      assert.ok(account.total.instructions > 0 && (account.exitCauses['mmio.ns16550a'] ?? 0) > 0, JSON.stringify(account.exitCauses));
      let gone: unknown;
      await until('thread 1 to end', () => {
        void client!.execute('query-vm-stats', { vm: 'idle' }).then((r) => { gone = r.error; });
        return JSON.stringify(gone) === JSON.stringify({ class: 'GenericError', desc: 'vm idle has ended, and thread 1 with every VM it ran' });
      }, () => JSON.stringify(gone));
      await client.execute('quit');
      // A guest powered off reporting a failure: exit status 1, as on one thread.
      assert.equal(await exited, 1, stderr);
      assert.match(stdout, /^vm echo: stopped \(the monitor quit\)$/m);
      assert.equal(stderr, '');
    } finally {
      echo?.destroy();
      client?.socket.destroy();
      up.kill('SIGKILL');
    }
  });

  it('refuses --restore and --web with threads, and a machine file mistake, in one line, nothing started', () => {
    const file = join(dir, 'two.yaml');
    writeFileSync(file, 'machine:\n  smp: 2\n  threads: 2\nvms:\n  - name: a\n    kernel: idle.Image\n    net: true\n');
    const run = (args: string[]): { status: number | null; stderr: string } => spawnSync(process.execPath, [CLI, 'up', file, '--run-dir', join(dir, 'refused'), ...args], { encoding: 'utf8', timeout: 60_000 });
    const net = run([]);
    assert.equal(net.status, 2);
    assert.match(net.stderr, /^\S+two\.yaml:7:10: vms\[0\]\.net: not with machine\.threads: 2 yet: .*\n$/);
    writeFileSync(file, 'machine:\n  smp: 2\n  threads: 2\nvms:\n  - name: a\n    kernel: idle.Image\n');
    for (const [args, expected] of [[['--restore', 'x.snap'], /^mirrorball: --restore: not with 2 threads yet/], [['--web', '0'], /^mirrorball: --web: not with 2 threads yet/],
      [['--threads', '3'], /two\.yaml:3:12: --threads 3: 3 threads need 3 CPUs at least, and the machine has 2\n$/]] as const) {
      const r = run([...args]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, expected);
    }
    assert.ok(!existsSync(join(dir, 'refused', 'control.sock')));
    // A kernel that cannot be read, on the second thread: its worker's one line, every worker ended.
    const missing = join(dir, 'missing.yaml');
    writeFileSync(missing, 'machine:\n  smp: 2\n  threads: 2\nvms:\n  - name: a\n    kernel: idle.Image\n  - name: b\n    kernel: none.Image\n');
    const unread = spawnSync(process.execPath, [CLI, 'up', missing, '--run-dir', join(dir, 'unread')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(unread.status, 2, unread.stderr);
    assert.equal(unread.stderr, `mirrorball: vm b: cannot read kernel '${join(dir, 'none.Image')}': ENOENT\n`);
    assert.ok(!existsSync(join(dir, 'unread', 'control.sock')));
    // A control socket path taken by a plain file: refused once the workers have made their VMs, which go with them.
    mkdirSync(join(dir, 'taken'), { mode: 0o700 });
    writeFileSync(join(dir, 'taken', 'control.sock'), 'not a socket');
    const taken = spawnSync(process.execPath, [CLI, 'up', file, '--run-dir', join(dir, 'taken')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(taken.status, 2, taken.stderr);
    assert.equal(taken.stderr.trimEnd().split('\n').length, 1, taken.stderr);
    assert.match(taken.stderr, /control\.sock.*not a socket/);
    assert.equal(taken.stdout, '');
  });
});

// End to end, issue 23 item 1: `up` with `threads: 2` runs two VMs of the built guest on two worker threads,
// one VM each, to their shells; each console runs a command (one reads its disk), the control socket lists
// them with their threads, stops one and quits; a disk that cannot be opened is one line before anything starts.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { Client } from '../helpers/control-client.js';
import { CLI } from '../helpers/run-process.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;
const dir = mkdtempSync(join(tmpdir(), 'mirrorball-up-threads-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const MARK = 'threads-disk-0123456789';

async function until(what: string, test: () => boolean, timeoutMs: number, detail: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) assert.fail(`${what} not seen in ${timeoutMs / 1000} s: ${detail()}`);
    await sleep(100);
  }
}

/** A console socket's output, collected. */
async function attach(path: string): Promise<{ socket: Socket; text: () => string }> {
  const socket = createConnection(path);
  await new Promise<void>((resolve, reject) => { socket.once('connect', () => resolve()); socket.once('error', reject); });
  let text = '';
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
  return { socket, text: () => text };
}

describe('up with threads: 2 and two VMs of the built guest', { skip, timeout: 600_000 }, () => {
  it('runs each VM on its own thread to its shell; consoles, a disk, query-vms, vm-stop and quit work', async () => {
    const disk = join(dir, 'a.img');
    writeFileSync(disk, Buffer.concat([Buffer.from(MARK), Buffer.alloc(2 ** 20 - MARK.length, 0)]));
    const file = join(dir, 'two.yaml');
    writeFileSync(file, 'machine:\n  topology: uma\n  smp: 2\n  memory: 512M\n  threads: 2\nvms:\n' +
      `  - name: a\n    memory: 96M\n    drive: file=${disk},readonly=on\n  - name: b\n    memory: 96M\n`);
    const runDir = join(dir, 'run');
    const up = spawn(process.execPath, [CLI, 'up', file, '--run-dir', runDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    up.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    up.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<number | null>((resolve) => up.on('exit', (code) => resolve(code)));
    let client: Client | undefined;
    const sockets: Socket[] = [];
    try {
      client = await Client.connect(join(runDir, 'control.sock'), up);
      await client.execute('qmp_capabilities');
      const vms = (await client.execute('query-vms')).return as { name: string; state: string; thread: number; vcpus: number; memoryBytes: number }[];
      assert.deepEqual(vms.map((v) => [v.name, v.state, v.thread, v.vcpus, v.memoryBytes]), [['a', 'running', 0, 1, 96 * 2 ** 20], ['b', 'running', 1, 1, 96 * 2 ** 20]]);
      const log = (name: string): string => {
        const path = join(runDir, `${name}.console.log`);
        return existsSync(path) ? readFileSync(path, 'latin1') : '';
      };
      for (const name of ['a', 'b']) await until(`vm ${name}'s shell prompt`, () => log(name).includes('mirrorball:/# '), 300_000, () => `${log(name).slice(-1500)}\n${stderr}`);
      const a = await attach(join(runDir, 'a.console.sock'));
      const b = await attach(join(runDir, 'b.console.sock'));
      sockets.push(a.socket, b.socket);
      a.socket.write(`echo hello-$((6*7)); head -c ${MARK.length} /dev/vda; echo\n`);
      b.socket.write('echo hello-$((7*8))\n');
      await until('a\'s answer', () => /hello-42\r?\n/.test(a.text()) && a.text().includes(`${MARK}\r\n`), 120_000, () => a.text().slice(-1000));
      await until('b\'s answer', () => /hello-56\r?\n/.test(b.text()), 120_000, () => b.text().slice(-1000));
      const threads = (await client.execute('query-threads')).return as { thread: number; cpus: number[]; vms: string[]; instructions: number }[];
      assert.deepEqual(threads.map((t) => [t.thread, t.cpus, t.vms]), [[0, [0], ['a']], [1, [1], ['b']]]);
      assert.ok(threads.every((t) => t.instructions > 1e6), JSON.stringify(threads));
      // The machine's memory from both threads' monitors: each VM's pages, added up.
      const memory = (await client.execute('query-memory')).return as { machine: { inUse: number; total: number }; vms: { name: string; private: number }[] };
      assert.deepEqual(memory.vms.map((v) => v.name), ['a', 'b']);
      assert.ok(memory.vms.every((v) => v.private > 1000) && memory.machine.inUse >= memory.vms[0]!.private + memory.vms[1]!.private, JSON.stringify(memory));
      assert.equal(memory.machine.total, 512 * 256);
      // b stops; a goes on.
      assert.deepEqual((await client.execute('vm-stop', { vm: 'b' })).return, { vm: 'b', state: 'stopped', reason: 'vm-stop from the control socket' });
      const stopped = await client.next((m) => m.event === 'VM_STOPPED');
      assert.deepEqual(stopped.data, { vm: 'b', state: 'stopped', reason: 'vm-stop from the control socket' });
      a.socket.write('echo again-$((2*3))\n');
      await until('a\'s second answer', () => /again-6\r?\n/.test(a.text()), 120_000, () => a.text().slice(-1000));
      assert.deepEqual(((await client.execute('query-vms')).return as { name: string; state: string }[]).map((v) => [v.name, v.state]), [['a', 'running'], ['b', 'stopped']]);
      await client.execute('quit');
      assert.equal(await exited, 0, stderr);
      assert.match(stdout, /^mirrorball: up: 2 CPUs, 1 node \(uma\), 512 MiB, 2 threads \(not reproducible\); control socket /m);
      assert.match(stdout, /^vm a: booting, 1 vCPU, 96 MiB on node 0, thread 0; /m);
      assert.match(stdout, /^vm b: booting, 1 vCPU, 96 MiB on node 0, thread 1; /m);
      assert.match(stdout, /^vm b: stopped \(vm-stop from the control socket\)$/m);
      assert.match(stdout, /^vm a: stopped \(the monitor quit\)$/m);
      assert.ok(!existsSync(join(runDir, 'control.sock')), 'the control socket is removed');
    } finally {
      for (const s of sockets) s.destroy();
      client?.socket.destroy();
      up.kill('SIGKILL');
    }
  });

  it('refuses a disk that cannot be opened in one line, exit 2, nothing started', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, `machine:\n  smp: 2\n  memory: 512M\n  threads: 2\nvms:\n  - name: a\n    memory: 64M\n  - name: b\n    memory: 64M\n    drive: file=${join(dir, 'none.img')}\n`);
    const runDir = join(dir, 'bad-run');
    const r = spawnSync(process.execPath, [CLI, 'up', file, '--run-dir', runDir], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /vm b: .*none\.img/);
    assert.ok(!existsSync(join(runDir, 'control.sock')), 'nothing started');
  });
});

// Files private to their user: everything `run` and `up` create (sockets, console logs, run directory,
// statistics, snapshots, up.log) is 0600 or 0700 even under umask 000, and another uid can neither connect,
// attach nor read. The other uid is nobody (65534) through setpriv, which needs root: otherwise that part skips.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Client } from '../helpers/control-client.js';
import { CLI } from '../helpers/run-process.js';

const NOBODY = 65534;

const otherUid = process.getuid?.() !== 0 ? 'becoming another uid needs root (setpriv --reuid)'
  : spawnSync('setpriv', ['--version']).status !== 0 ? 'setpriv (util-linux) is not installed' : false;

let dir: string;

/** The command line under umask 000: whatever it creates has only the modes it asks for. */
function underUmask000(args: string[]): string[] {
  return ['-c', 'umask 000; exec "$@"', 'sh', process.execPath, CLI, ...args];
}

/** A kernel that sleeps forever: a RISC-V Linux Image header whose first instruction jumps to `wfi; j .-4`. */
function idleKernel(): Buffer {
  const image = Buffer.alloc(72);
  image.writeUInt32LE(0x0400006f, 0); // j +64
  image.writeBigUInt64LE(0x200000n, 8); // text_offset
  image.writeUInt32LE(2, 32); // header version 0.2
  image.write('RISCV\0\0\0', 48, 'latin1');
  image.write('RSC\x05', 56, 'latin1');
  image.writeUInt32LE(0x10500073, 64); // wfi
  image.writeUInt32LE(0xffdff06f, 68); // j -4
  return image;
}

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

/** What uid `NOBODY` gets: for each socket 'connected' or an errno code, for each file 'read' or a code. */
function asNobody(sockets: string[], files: string[]): Record<string, string> {
  const probe = `
    const fs = require('fs'), net = require('net');
    const [sockets, files] = JSON.parse(process.argv[1]);
    const result = {};
    for (const f of files) { try { fs.readFileSync(f); result[f] = 'read'; } catch (e) { result[f] = e.code; } }
    let left = sockets.length;
    const done = () => { if (--left <= 0) console.log(JSON.stringify(result)); };
    if (left === 0) console.log(JSON.stringify(result));
    for (const s of sockets) {
      const c = net.createConnection(s);
      c.on('connect', () => { result[s] = 'connected'; c.destroy(); done(); });
      c.on('error', (e) => { result[s] = e.code; done(); });
    }`;
  const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '-e', probe, JSON.stringify([sockets, files])],
    { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, string>;
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1200 && !condition(); i++) await sleep(50);
  assert.ok(condition(), `waited 60 s for ${what}`);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mb-private-'));
  // Others may enter this directory and read what it holds by default: only each file's own mode keeps them out.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'idle.Image'), idleKernel());
  writeFileSync(join(dir, 'public.txt'), 'anyone may read this\n', { mode: 0o644 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('files private to their user', () => {
  it('up: the run directory is 0700; its sockets, console logs, up.log and statistics 0600, a user-named log too', async () => {
    const runDir = join(dir, 'up-run');
    const control = join(dir, 'up-control.sock');
    const userLog = join(dir, 'a.log');
    const file = join(dir, 'machine.yaml');
    writeFileSync(file, `machine:\n  topology: uma\n  smp: 1\n  memory: 128M\nvms:\n  - name: a\n    memory: 32M\n    kernel: idle.Image\n    console-log: ${userLog}\n` +
      '  - name: b\n    memory: 32M\n    kernel: idle.Image\n');
    const started = spawnSync('sh', underUmask000(['up', file, '--run-dir', runDir, '--control', control, '--detach']), { encoding: 'utf8', timeout: 120_000 });
    assert.equal(started.status, 0, started.stderr);
    const pid = Number(/pid (\d+)/.exec(started.stdout)?.[1]);
    let client: Client | undefined;
    try {
      client = await Client.connect(control, { exitCode: null } as ChildProcess);
      await client.execute('qmp_capabilities');
      assert.ok('return' in await client.execute('stats-dump'));
      const modes = {
        [runDir]: '700', [control]: '600', [join(runDir, 'a.console.sock')]: '600', [join(runDir, 'b.console.sock')]: '600',
        [userLog]: '600', [join(runDir, 'b.console.log')]: '600', [join(runDir, 'up.log')]: '600',
        [join(runDir, 'stats')]: '700', [join(runDir, 'stats', 'stats.json')]: '600', [join(runDir, 'stats', 'stats.txt')]: '600', [join(runDir, 'stats', 'config.json')]: '600',
      };
      assert.deepEqual(Object.fromEntries(Object.keys(modes).map((p) => [p, mode(p)])), modes);

      if (otherUid === false) {
        const sockets = [control, join(runDir, 'a.console.sock'), join(runDir, 'b.console.sock')];
        const files = [userLog, join(runDir, 'b.console.log'), join(runDir, 'up.log'), join(runDir, 'stats', 'stats.json')];
        const denied = Object.fromEntries([...sockets, ...files].map((p) => [p, 'EACCES']));
        assert.deepEqual(asNobody(sockets, [...files, join(dir, 'public.txt')]), { ...denied, [join(dir, 'public.txt')]: 'read' });
      }
    } finally {
      client?.socket.destroy();
      const down = spawnSync(process.execPath, [CLI, 'down', '--control', control], { encoding: 'utf8', timeout: 60_000 });
      if (down.status !== 0 && pid > 0) process.kill(pid, 'SIGKILL');
    }
  });

  it('run: the control socket, console log, statistics and a snapshot are 0600, a new statistics directory 0700', async () => {
    const control = join(dir, 'run-control.sock');
    const log = join(dir, 'run.log');
    const stats = join(dir, 'run-stats');
    const snapshot = join(dir, 'run.snapshot');
    const child = spawn('sh', underUmask000(['run', '--kernel', join(dir, 'idle.Image'), '-m', '64M', '--control', control, '--console-log', log, '--stats-dir', stats]),
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (t: string) => { stderr += t; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const client = await Client.connect(control, child);
      await client.execute('qmp_capabilities');
      const saved = await client.execute('snapshot-save', { file: snapshot });
      assert.ok('return' in saved, JSON.stringify(saved));
      assert.equal(mode(control), '600');
      if (otherUid === false) {
        assert.deepEqual(asNobody([control], [log, snapshot]), { [control]: 'EACCES', [log]: 'EACCES', [snapshot]: 'EACCES' });
      }
      await client.execute('quit');
      client.socket.destroy();
      assert.equal(await exited, 0, stderr);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await until('the statistics', () => existsSync(join(stats, 'stats.json')));
    const modes = {
      [log]: '600', [snapshot]: '600', [stats]: '700',
      [join(stats, 'stats.json')]: '600', [join(stats, 'stats.txt')]: '600', [join(stats, 'config.json')]: '600',
    };
    assert.deepEqual(Object.fromEntries(Object.keys(modes).map((p) => [p, mode(p)])), modes);
    if (otherUid === false) {
      const files = [join(stats, 'stats.json'), join(stats, 'stats.txt')];
      assert.deepEqual(asNobody([], files), Object.fromEntries(files.map((p) => [p, 'EACCES'])));
    }
  });

  it('another uid is tried only as root', { skip: otherUid === false ? false : otherUid }, () => {
    assert.deepEqual(asNobody([], [join(dir, 'public.txt')]), { [join(dir, 'public.txt')]: 'read' });
  });
});

// `mirrorball run --control SOCKET`: a client pauses, resumes, switches modes, dumps statistics and quits a
// running machine over the QMP-shaped control socket.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { linkHtifElf, toolchainAvailable } from '../helpers/asm.js';
import { Client } from '../helpers/control-client.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));

/** Hart 0 walks 256 KiB forever (so timing mode has misses to count); the others wait. */
const FOREVER = [
  '.globl _start',
  '_start:',
  '  csrr t0, mhartid',
  '  bnez t0, park',
  '1: li t3, 0x80100000',
  '  li t4, 0x80140000',
  '2: ld t5, 0(t3)',
  '  addi t5, t5, 1',
  '  sd t5, 0(t3)',
  '  addi t3, t3, 64',
  '  bltu t3, t4, 2b',
  '  j 1b',
  'park: wfi',
  '  j park',
];

function start(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  return { child, done };
}

describe('mirrorball run --control', () => {
  let dir: string;
  let elf: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'mirrorball-control-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('pauses, resumes, switches to timing mode, dumps statistics and quits', async (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    elf = linkHtifElf(dir, 'forever', FOREVER);
    const path = join(dir, 'control.sock');
    const stats = join(dir, 'stats');
    const run = start(['--elf', elf, '--topology', 'numa4x2', '-m', '256M', '--timing', 'roi', '--control', path, '--stats-dir', stats]);
    const client = await Client.connect(path, run.child);
    try {
      assert.deepEqual(await client.next(), { QMP: { version: { mirrorball: '0.1.0' }, capabilities: [] } });
      assert.equal(((await client.execute('query-status')).error as { class: string }).class, 'CommandNotFound');
      assert.deepEqual(await client.execute('qmp_capabilities'), { return: {} });
      assert.deepEqual(await client.execute('query-status'), { return: { running: true, status: 'running' } });

      // Paused, the machine does not move; resumed, it does.
      assert.deepEqual(await client.execute('stop'), { return: {} });
      assert.equal((await client.next((m) => m.event !== undefined)).event, 'STOP');
      assert.deepEqual(await client.execute('query-status'), { return: { running: false, status: 'paused' } });
      const machine = async (): Promise<{ instructions: number; harts: number; nodes: number }> =>
        (await client.execute('query-machine')).return as { instructions: number; harts: number; nodes: number };
      const pausedAt = (await machine()).instructions;
      await sleep(300);
      assert.equal((await machine()).instructions, pausedAt);
      assert.deepEqual(await client.execute('cont'), { return: {} });
      assert.equal((await client.next((m) => m.event !== undefined)).event, 'RESUME');
      await sleep(200);
      const m = await machine();
      assert.ok(m.instructions > pausedAt, 'running again');
      assert.equal(m.harts, 8);
      assert.equal(m.nodes, 4);

      // Fast mode charges nothing to the caches; timing mode does.
      assert.deepEqual(await client.execute('query-mode'), { return: { mode: 'fast', timingConfigured: true } });
      assert.deepEqual(await client.execute('stats-reset'), { return: {} });
      const accesses = async (): Promise<number> =>
        ((await client.execute('query-stats', { prefix: 'system.cpu0.cache.accesses' })).return as Record<string, number>)['system.cpu0.cache.accesses']!;
      assert.equal(await accesses(), 0);
      assert.deepEqual(await client.execute('set-mode', { mode: 'timing' }), { return: {} });
      assert.deepEqual(await client.execute('query-mode'), { return: { mode: 'timing', timingConfigured: true } });
      await sleep(300);
      assert.ok((await accesses()) > 1000, 'timing mode counts accesses');
      assert.deepEqual(await client.execute('stats-dump', { tag: 42 }), { return: { dumps: 1 } });
      assert.deepEqual(await client.execute('set-mode', { mode: 'fast' }), { return: {} });
      const bad = await client.execute('set-mode', { mode: 'slow' });
      assert.match((bad.error as { desc: string }).desc, /must be one of "fast", "timing"/);

      assert.deepEqual(await client.execute('quit'), { return: {} });
      const shutdown = await client.next((m) => m.event !== undefined);
      assert.equal(shutdown.event, 'SHUTDOWN');
      assert.deepEqual(shutdown.data, { reason: 'host-quit' });
    } catch (error) {
      run.child.kill();
      throw error;
    } finally {
      client.socket.destroy();
    }
    const { stderr } = await run.done;
    assert.equal(stderr, '');
    assert.ok(!existsSync(path), 'the socket is removed at exit');
    const dumps = JSON.parse(readFileSync(join(stats, 'dumps.json'), 'utf8')) as { tag: number; stats: Record<string, { value: number }> }[];
    assert.equal(dumps.length, 1);
    assert.equal(dumps[0]!.tag, 42);
    assert.ok(dumps[0]!.stats['system.cpu0.cache.missesLocal']!.value > 0);
  });

  it('without a timing configuration, set-mode says so; a stale socket is replaced', async (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    elf ??= linkHtifElf(dir, 'forever', FOREVER);
    const path = join(dir, 'stale.sock');
    // A socket file nobody listens on, as a killed run leaves behind.
    const stale = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
    assert.equal(stale.status, 0);
    assert.ok(existsSync(path));
    const run = start(['--elf', elf, '--control', path]);
    const client = await Client.connect(path, run.child);
    try {
      await client.next();
      await client.execute('qmp_capabilities');
      assert.deepEqual(await client.execute('query-mode'), { return: { mode: 'fast', timingConfigured: false } });
      const refused = await client.execute('set-mode', { mode: 'timing' });
      assert.match((refused.error as { desc: string }).desc, /no timing configuration/);
      await client.execute('quit');
    } catch (error) {
      run.child.kill();
      throw error;
    } finally {
      client.socket.destroy();
    }
    assert.equal((await run.done).code, 0);
  });

  it('injects hardware faults into the bare machine: a stopped CPU runs no more, the report tells, and bad faults are one line', async (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    elf ??= linkHtifElf(dir, 'forever', FOREVER);
    const path = join(dir, 'faults.sock');
    const run = start(['--elf', elf, '--topology', 'numa4x2', '-m', '256M', '--control', path]);
    const client = await Client.connect(path, run.child);
    try {
      await client.next();
      await client.execute('qmp_capabilities');
      const fault = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
        spawnSync(process.execPath, [CLI, 'fault', ...args, '--control', path], { encoding: 'utf8', timeout: 60_000 });
      const bad = fault('link', '0-3');
      assert.deepEqual([bad.status, bad.stderr], [1, 'mirrorball: no link 0-3: the links are 0-1, 0-2, 1-3, 2-3\n']);
      const ok = fault('cpu', '0');
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /^mirrorball: cpu 0 injected for cycle \d+\n$/);
      const instructions = async (): Promise<number> => ((await client.execute('query-machine')).return as { instructions: number }).instructions;
      let report: { text: string }[] = [];
      for (let i = 0; i < 100 && report.length === 0; i++) {
        await sleep(50);
        report = (await client.execute('query-failure-report')).return as { text: string }[];
      }
      assert.deepEqual(report.map((r) => r.text), ['CPU 0 (node 0) stopped']);
      const stoppedAt = await instructions();
      await sleep(300);
      assert.equal(await instructions(), stoppedAt, 'hart 0 was the only one running: nothing runs now');
      const save = await client.execute('snapshot-save', { file: join(dir, 'x.snap') });
      assert.deepEqual(save.error, { class: 'GenericError', desc: 'this machine has had hardware faults, which snapshots do not save yet' });
      await client.execute('quit');
    } catch (error) {
      run.child.kill();
      throw error;
    } finally {
      client.socket.destroy();
    }
    assert.equal((await run.done).code, 0);
  });

  it('refuses a path that is not a socket, in one line, and leaves the file alone', (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    elf ??= linkHtifElf(dir, 'forever', FOREVER);
    const path = join(dir, 'plain-file');
    writeFileSync(path, 'keep me');
    const r = spawnSync(process.execPath, [CLI, 'run', '--elf', elf, '--control', path], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2);
    assert.equal(readFileSync(path, 'utf8'), 'keep me');
    assert.match(r.stderr, /^mirrorball: control socket '.*plain-file': a file that is not a socket is in the way\n$/);
  });
});

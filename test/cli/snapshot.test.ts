// `snapshot-save` on the control socket and `mirrorball run --restore`: the restored run ends as the saved one
// did, byte for byte, and a bad snapshot or a changed disk is one line and exit status 2 with nothing run.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { linkHtifElf, toolchainAvailable } from '../helpers/asm.js';
import { mirrorballEach } from '../helpers/cli-batch.js';
import { Client } from '../helpers/control-client.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));

/**
 * Hart 0 walks 256 KiB a page at a time (misses for timing mode), prints a letter every 4096 passes, and after 20 letters
 * ends through HTIF with exit code 5; the other harts wait.
 */
const PROGRAM = [
  '.globl _start',
  '_start:',
  '  csrr t0, mhartid',
  '  bnez t0, park',
  '  li s0, 0',
  '  li s1, 0x10000000',
  '  li s2, 4096',
  '1: li t3, 0x80100000',
  '  li t4, 0x80140000',
  '2: ld t5, 0(t3)',
  '  addi t5, t5, 1',
  '  sd t5, 0(t3)',
  '  add t3, t3, s2',
  '  bltu t3, t4, 2b',
  '  addi s0, s0, 1',
  '  li t0, 4095',
  '  and t0, s0, t0',
  '  bnez t0, 1b',
  '  srli t0, s0, 12',
  '  addi t1, t0, 64',
  '  sb t1, 0(s1)',
  '  li t2, 20',
  '  bltu t0, t2, 1b',
  '  li t0, 11',
  '  la t1, tohost',
  '  sd t0, 0(t1)',
  '3: j 3b',
  'park: wfi',
  '  j park',
];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runSync(args: string[]): Result {
  const r = spawnSync(process.execPath, [CLI, 'run', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('mirrorball run --restore', { skip: toolchainAvailable() ? false : 'the RISC-V cross toolchain is not installed' }, () => {
  let dir: string;
  let snapshot: string;
  let disk: string;
  let straight: Result;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mirrorball-snapshot-'));
    const elf = linkHtifElf(dir, 'letters', PROGRAM);
    disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(64 * 1024, 7));
    snapshot = join(dir, 'saved.snap');
    const socket = join(dir, 'control.sock');
    const child = spawn(process.execPath, [CLI, 'run', '--elf', elf, '--topology', 'numa4x2', '-m', '256M', '--timing', '--rng', '3',
      '--drive', `file=${disk},readonly=on`, '--control', socket, '--stats-dir', join(dir, 'straight')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString('latin1'); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const client = await Client.connect(socket, child);
    await client.next();
    await client.execute('qmp_capabilities');
    await client.execute('stop');
    const saved = await client.execute('snapshot-save', { file: snapshot });
    const reply = saved.return as { bytes: number; pages: number; milliseconds: number };
    assert.ok(reply !== undefined && reply.bytes > 0 && reply.pages > 0, JSON.stringify(saved));
    await client.execute('cont');
    client.socket.end();
    straight = { code: await exited, stdout, stderr };
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('continues where the save was and ends as the straight run did: same exit, the rest of its console, the same stats.txt', () => {
    assert.equal(straight.code, 5, straight.stderr);
    assert.equal(straight.stdout.length, 20);
    const restored = runSync(['--restore', snapshot, '--stats-dir', join(dir, 'restored')]);
    assert.equal(restored.code, 5, restored.stderr);
    assert.ok(restored.stdout.length > 0 && straight.stdout.endsWith(restored.stdout), `'${restored.stdout}' ends '${straight.stdout}'`);
    const stats = (run: string): string => readFileSync(join(dir, run, 'stats.txt'), 'utf8');
    assert.ok(stats('straight').includes('system.cpu0.cache.missesLocal'), 'timing statistics are there');
    assert.equal(stats('restored'), stats('straight'));
  });

  /** Checks that a `--restore` refused with one line on stderr, exit 2, and ran nothing. */
  function assertRefused(r: Result, pattern: RegExp): void {
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '', 'nothing ran');
    assert.match(r.stderr, /^mirrorball: [^\n]+\n$/);
    assert.match(r.stderr, pattern);
  }

  /** Runs `--restore file` and checks it refused. */
  function refused(file: string, pattern: RegExp, extra: string[] = []): void {
    assertRefused(runSync(['--restore', file, ...extra]), pattern);
  }

  it('refuses a truncated, corrupt or foreign file, or another version, in one line', () => {
    const bytes = readFileSync(snapshot);
    const variant = (name: string, data: Uint8Array): string => {
      const path = join(dir, name);
      writeFileSync(path, data);
      return path;
    };
    const flipped = Buffer.from(bytes);
    flipped[flipped.length >> 1] ^= 0x10;
    const version = Buffer.from(bytes);
    version.writeUInt32LE(99, 8);
    const cases: [string, RegExp][] = [
      [variant('truncated.snap', bytes.subarray(0, bytes.length >> 1)), /corrupt or truncated/],
      [variant('flipped.snap', flipped), /corrupt or truncated/],
      [variant('version.snap', version), /format version 99; this Mirrorball reads version 1/],
      [variant('text.snap', Buffer.from('hello\n')), /is not a Mirrorball snapshot/],
      [join(dir, 'missing.snap'), /no such file/],
    ];
    // Each through the command line's main, all in one process (its start-up once).
    const results = mirrorballEach(cases.map(([file]) => ['run', '--restore', file]));
    for (const [i, [, pattern]] of cases.entries()) assertRefused({ code: results[i]!.status, stdout: results[i]!.stdout, stderr: results[i]!.stderr }, pattern);
  });

  it('refuses flags that would build another machine', () => {
    refused(snapshot, /drop --smp, --elf/, ['--smp', '2', '--elf', 'x']);
  });

  it('refuses a disk image that changed or is gone', () => {
    const original = readFileSync(disk);
    writeFileSync(disk, Buffer.alloc(original.length, 8));
    refused(snapshot, /disk image '.*disk\.img' changed since the snapshot was taken/);
    renameSync(disk, `${disk}.away`);
    refused(snapshot, /disk image '.*disk\.img' is gone/);
    renameSync(`${disk}.away`, disk);
    writeFileSync(disk, original);
  });
});

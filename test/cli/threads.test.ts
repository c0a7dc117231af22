// `mirrorball run --threads N` as a user meets it (docs/threads.md): a bare-metal program on worker threads
// exits with its HTIF code; what threads cannot run yet is one line and exit 2. (Linux on threads: test/e2e/threads.test.ts.)

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildStress } from '../../src/bench/programs.js';
import { toolchainAvailable } from '../helpers/asm.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));

function mirrorball(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return mirrorballWith({}, ...args);
}

function mirrorballWith(env: Record<string, string>, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: ReturnType<typeof mirrorball>, pattern: RegExp): void {
  assert.equal(r.status, 2, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^mirrorball: /);
  assert.match(lines[0]!, pattern);
}

test('run --elf --threads 2: the stress program on 2 harts, one a thread, exits 0', (t) => {
  if (!toolchainAvailable()) {
    t.skip('the RISC-V cross toolchain is not installed: apt-get install gcc-riscv64-linux-gnu');
    return;
  }
  const r = mirrorball('run', '--elf', buildStress(2, 2000), '--smp', '2', '--threads', '2', '--stats');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /instructions/);
});

test('MIRRORBALL_THREAD_LAG: 4 (workers running ahead of each other; the default is 1) runs the stress program on 2 threads; 0 is one line', (t) => {
  if (!toolchainAvailable()) {
    t.skip('the RISC-V cross toolchain is not installed: apt-get install gcc-riscv64-linux-gnu');
    return;
  }
  const r = mirrorballWith({ MIRRORBALL_THREAD_LAG: '4' }, 'run', '--elf', buildStress(2, 2000), '--smp', '2', '--threads', '2', '--stats');
  assert.equal(r.status, 0, r.stderr);
  // The per-thread lines of --stats: each worker's time and what crossed.
  assert.match(r.stderr, /^mirrorball: worker 1: running [0-9.]+ s/m);
  assertOneLineError(mirrorballWith({ MIRRORBALL_THREAD_LAG: '0' }, 'run', '--elf', buildStress(2, 20), '--smp', '2', '--threads', '2'), /MIRRORBALL_THREAD_LAG/);
});

test('--threads above 1 with timing, the control socket, a restore or host time, or out of range is one line', () => {
  assertOneLineError(mirrorball('run', '--elf', CLI, '--threads', '2', '--timing', '--rng'), /does not work with --timing yet$/);
  assertOneLineError(mirrorball('run', '--threads', '2', '--control', 'x.sock', '--time', 'host'), /does not work with --control, --time host yet$/);
  assertOneLineError(mirrorball('run', '--threads', '2', '--restore', 'x.snap'), /does not work with --restore yet$/);
  assertOneLineError(mirrorball('run', '--elf', CLI, '--threads', '0'), /--threads/);
});

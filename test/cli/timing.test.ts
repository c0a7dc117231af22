// `mirrorball run --timing --stats-dir`: a bare-metal program in timing mode writes the same statistics twice.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { linkHtifElf, toolchainAvailable } from '../helpers/asm.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const FILES = ['config.json', 'stats.txt', 'stats.json'];

/**
 * Hart 0 (node 0 of numa4x2) sums 64 KiB in its own node's memory and then in node 3's (at +240 MiB, in
 * the last quarter of 256 MiB), twice each, storing every word back, then exits through HTIF.
 */
const PROGRAM = [
  '.globl _start',
  '_start:',
  '  csrr t0, mhartid',
  '  bnez t0, park',
  '  li s0, 0x80100000', // node 0
  '  call walk',
  '  li s0, 0x8f000000', // node 3
  '  call walk',
  '  la t0, tohost',
  '  li t1, 1',
  '  sd t1, 0(t0)',
  'park: wfi',
  '  j park',
  'walk:',
  '  li t2, 2', // passes
  '2: mv t3, s0',
  '  li t4, 65536',
  '  add t4, t4, s0',
  '1: ld t5, 0(t3)',
  '  add t6, t6, t5',
  '  sd t6, 0(t3)',
  '  addi t3, t3, 8',
  '  bltu t3, t4, 1b',
  '  addi t2, t2, -1',
  '  bnez t2, 2b',
  '  ret',
];

describe('mirrorball run --timing --stats-dir', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'mirrorball-timing-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('two runs of the same program give identical stats files, with the remote misses it made', (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    const elf = linkHtifElf(dir, 'walk', PROGRAM);
    const outputs = ['a', 'b'].map((name) => {
      const out = join(dir, name);
      const r = spawnSync(process.execPath, [CLI, 'run', '--elf', elf, '--topology', 'numa4x2', '-m', '256M', '--timing', '--stats-dir', out],
        // stdin not a pipe: a run that someone may type into paces idle time by the host's clock (cli/run.ts).
        { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      assert.equal(r.status, 0, r.stderr);
      return FILES.map((file) => readFileSync(join(out, file), 'utf8'));
    });
    FILES.forEach((file, k) => assert.equal(outputs[1]![k], outputs[0]![k], `${file} differs between the runs`));

    const stats = JSON.parse(outputs[0]![2]!) as Record<string, { value?: number; values?: number[] }>;
    const value = (name: string): number => {
      assert.ok(name in stats, `${name} in stats.json`);
      return stats[name]!.value!;
    };
    const lines = 2 * 2 * 65536 / 128; // two regions, two passes, 128-byte lines
    // The first pass misses every line of each region (64 KiB fits the 1 MiB cache, so the second hits).
    assert.equal(value('system.cpu0.cache.missesLocal') >= lines / 4, true);
    assert.equal(value('system.cpu0.cache.missesRemote'), lines / 4);
    assert.ok(value('system.cpu0.instructions') > 4 * 65536 / 8 * 5);
    assert.ok(value('system.cpu0.cycles') > value('system.cpu0.instructions'), 'misses cost cycles');
    const config = JSON.parse(outputs[0]![0]!) as { topology: string; mode: string };
    assert.equal(config.topology, 'numa4x2');
    assert.equal(config.mode, 'timing');
  });
});

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

/** A bare program that asks the control device for a region of interest around its middle loop only. */
const ROI_PROGRAM = [
  '.globl _start',
  '_start:',
  '  li s0, 0x110000', // the control device
  '  li s1, 0x80100000',
  '  li t2, 500', // before the region: fast mode
  '1: ld t0, 0(s1)',
  '  addi t2, t2, -1',
  '  bnez t2, 1b',
  '  sw zero, 12(s0)', // REQUEST = ROI begin
  '  li t2, 300', // the region: 300 loads, 300 x 3 fetches
  '2: ld t0, 0(s1)',
  '  addi t2, t2, -1',
  '  bnez t2, 2b',
  '  li t1, 1',
  '  sw t1, 12(s0)', // REQUEST = ROI end
  '  li t1, 7',
  '  sw t1, 8(s0)', // ARGUMENT = 7
  '  li t1, 2',
  '  sw t1, 12(s0)', // REQUEST = stats dump
  '  li t2, 500', // after the region: fast mode again
  '3: ld t0, 0(s1)',
  '  addi t2, t2, -1',
  '  bnez t2, 3b',
  '  la t0, tohost',
  '  li t1, 1',
  '  sd t1, 0(t0)',
  '4: j 4b',
];

describe('mirrorball run --timing roi', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'mirrorball-roi-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('charges only the region of interest the program marks through the control device, and keeps its dump', (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    const elf = linkHtifElf(dir, 'roi', ROI_PROGRAM);
    const out = join(dir, 'out');
    const r = spawnSync(process.execPath, [CLI, 'run', '--elf', elf, '-m', '64M', '--timing', 'roi', '--stats-dir', out],
      { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(r.status, 0, r.stderr);
    const dumps = JSON.parse(readFileSync(join(out, 'dumps.json'), 'utf8')) as { tag: number; stats: Record<string, { value: number }> }[];
    assert.equal(dumps.length, 1);
    assert.equal(dumps[0]!.tag, 7);
    const accesses = dumps[0]!.stats['system.cpu0.cache.accesses']!.value;
    // The region's 300 iterations of 3 instructions (one load each), plus the few instructions around it.
    assert.ok(accesses >= 1200 && accesses < 1220, `accesses in the region: ${accesses}`);
    const final = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8')) as Record<string, { value: number }>;
    assert.equal(final['system.cpu0.cache.accesses']!.value, accesses, 'nothing charged after the region ended');
    assert.ok(final['system.cpu0.instructions']!.value > 4000, 'the loops outside the region ran');
    const text = readFileSync(join(out, 'stats.txt'), 'utf8');
    assert.equal(text.split('Begin Simulation Statistics').length - 1, 2, 'the dump, then the statistics at exit');
    assert.match(text, /^dump\.tag\s+7\s/m);
  });

  it('refuses a --timing it does not know in one line', () => {
    const r = spawnSync(process.execPath, [CLI, 'run', '--elf', '/nonexistent', '--timing', 'later'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim(), `mirrorball: --timing takes "start" or "roi", not 'later'`);
  });

  it('--cache and --local-miss reach the model and config.json; without --timing they are refused', (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    const elf = linkHtifElf(dir, 'walk2', PROGRAM);
    const out = join(dir, 'small-cache');
    const r = spawnSync(process.execPath, [CLI, 'run', '--elf', elf, '--topology', 'numa4x2', '-m', '256M', '--timing',
      '--cache', 'size=32K,ways=1,line=64', '--local-miss', '40', '--stats-dir', out], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(r.status, 0, r.stderr);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { timing: { cache: object; latencies: { missCycles: number[][] } } };
    assert.deepEqual(config.timing.cache, { sizeBytes: 32768, ways: 1, lineBytes: 64 });
    assert.deepEqual(config.timing.latencies.missCycles[0], [40, 80, 80, 120]);
    const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8')) as Record<string, { value: number }>;
    // 64 KiB regions do not fit a 32 KiB cache: the second pass over node 3's misses again, in 64-byte lines
    // (2048; a few more where the data shares a direct-mapped set with the loop's code and they evict each
    // other). With the default 1 MiB cache of 128-byte lines it is 512.
    const remote = stats['system.cpu0.cache.missesRemote']!.value;
    assert.ok(remote >= 2 * 65536 / 64 && remote < 1.1 * 2 * 65536 / 64, `${remote} remote misses`);

    const refused = spawnSync(process.execPath, [CLI, 'run', '--elf', elf, '--cache', 'size=32K'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(refused.status, 2);
    assert.equal(refused.stderr, 'mirrorball: --cache configures timing mode: add --timing or --timing roi\n');
  });
});

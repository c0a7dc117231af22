// `mirrorball run` as a user meets it: bad input gives one line and a non-zero exit, never a stack trace;
// a bare-metal ELF's HTIF exit code becomes the process's exit code.

import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { linkHtifElf, toolchainAvailable } from '../helpers/asm.js';
import { mirrorballEach } from '../helpers/cli-batch.js';
import { buildThinOs, thinOsChecksum, thinOsHarts, thinOsSkip } from '../helpers/thin-os.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));

function mirrorball(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, MIRRORBALL_CACHE: dir } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;

/** Asserts a usage failure: exit 2 and exactly one line on stderr, starting with `mirrorball:`. */
function assertOneLineError(r: ReturnType<typeof mirrorball>, pattern: RegExp): void {
  assert.equal(r.status, 2, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^mirrorball: /);
  assert.match(lines[0], pattern);
}

/**
 * Each of `cases` (the words after `mirrorball`, and what its one line must match) through the command line's
 * main, all in one process: the CLI's start-up once, not once a case.
 */
function assertOneLineErrors(cases: [string[], RegExp][]): void {
  const results = mirrorballEach(cases.map(([args]) => args), { MIRRORBALL_CACHE: dir });
  for (const [i, [args, pattern]] of cases.entries()) {
    const r = results[i]!;
    assert.equal(r.status, 2, `${args.join(' ')}: exit status; stderr: ${r.stderr}`);
    assertOneLineError(r, pattern);
  }
}

describe('mirrorball run: bad input', () => {
  before(() => { dir = mkdtempSync(join(tmpdir(), 'mirrorball-cli-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('names a missing kernel file', () => {
    assertOneLineError(mirrorball('run', '--kernel', join(dir, 'nope')), /cannot read kernel .*nope.*no such file/);
  });

  it('refuses a file that is not a RISC-V Linux Image', () => {
    const junk = join(dir, 'junk');
    writeFileSync(junk, Buffer.alloc(4096, 0x41));
    assertOneLineError(mirrorball('run', '--kernel', junk), /Image|magic|header/i);
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not a kernel\n');
    assertOneLineError(mirrorball('run', '--kernel', text), new RegExp(`^mirrorball: kernel '${text}': not a RISC-V Linux Image`));
  });

  it('refuses a file that is not an ELF, and an ELF that does not fit in RAM', (t) => {
    const junk = join(dir, 'junk.elf');
    writeFileSync(junk, Buffer.alloc(256, 0x41));
    assertOneLineError(mirrorball('run', '--elf', junk), new RegExp(`^mirrorball: ELF program '${junk}': .*ELF`));
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    const source = join(dir, 'low.S');
    writeFileSync(source, '.globl _start\n_start: j _start\n');
    const low = join(dir, 'low.elf');
    execFileSync('riscv64-linux-gnu-gcc', ['-nostdlib', '-static', '-no-pie', '-Wl,-N,-Ttext=0x1000,--build-id=none', source, '-o', low],
      { stdio: ['ignore', 'ignore', 'ignore'] });
    assertOneLineError(mirrorball('run', '--elf', low), /outside RAM/);
  });

  it('refuses too little memory, a bad hart count and a bad size', () => {
    assertOneLineErrors([
      [['run', '-m', '1M'], /16 MiB|memory/i],
      [['run', '-m', '1K'], /^mirrorball: -m asks for 1 KiB of RAM, too little: the machine needs at least 16 MiB; -m must be at least 16M$/],
      [['run', '--smp', '0'], /--smp/],
      [['run', '-m', 'lots'], /-m/],
      [['run', '--nodes', '3', '--smp', '2'], /--nodes 3 needs at least 3 harts/],
    ]);
  });

  it('names a missing disk image', () => {
    assertOneLineError(mirrorball('run', '--drive', `file=${join(dir, 'disk.img')}`, '--kernel', join(dir, 'nope')), /nope|disk\.img/);
  });

  it('names a damaged overlay and contradictory drive options in one line', () => {
    const base = join(dir, 'cow-base.img');
    writeFileSync(base, Buffer.alloc(1 << 20));
    const overlay = join(dir, 'cow.overlay');
    writeFileSync(overlay, 'not an overlay\n');
    assertOneLineErrors([
      [['run', '--drive', `file=${base},overlay=${overlay}`, '--kernel', join(dir, 'nope')], /'.*cow\.overlay' is not a Mirrorball overlay/],
      [['run', '--drive', `file=${base},snapshot=on,readonly=on`], /readonly=on and snapshot=on exclude each other/],
      [['run', '--drive', `file=${base},snapshot=maybe`], /--drive: snapshot must be on or off, not 'maybe'/],
      [['run', '--drive', `file=${base},overlay=`], /overlay needs a file name/],
    ]);
  });

  it('rejects an unknown option with one line and exit 2 (test/cli/usage.test.ts: every command)', () => {
    assertOneLineError(mirrorball('run', '--frobnicate'), /unknown option '--frobnicate'/);
  });

  it('refuses bad --net, --console and --serial specifications, and a segment peer that is not there, in one line', () => {
    assertOneLineErrors([
      [['run', '--net', 'tap'], /--net: 'tap' is not a network \(user or socket\)/],
      [['run', '--net', 'user,hostfwd=tcp::80'], /hostfwd=tcp::80 is not tcp:\[ADDRESS\]:HOSTPORT-:GUESTPORT/],
      [['run', '--console', join(dir, 'c.sock')], /--console takes socket=PATH/],
      [['run', '--serial', `socket=${join(dir, 'x'.repeat(120))}`], /Unix sockets allow 107/],
      // Port 1 on loopback: nothing listens there unprivileged.
      [['run', '--net', 'socket,connect=127.0.0.1:1'], /--net socket cannot connect to 127\.0\.0\.1:1: ECONNREFUSED/],
      [['run', '--net', 'user', '--restore', join(dir, 'none.snap')], /--restore builds the machine the snapshot holds: drop --net/],
    ]);
  });

  it('refuses --sbi without --elf, and --elf with a kernel, initrd, append or firmware, in one line', () => {
    const elf = join(dir, 'some.elf');
    writeFileSync(elf, Buffer.alloc(256, 0x41));
    assertOneLineErrors([
      [['run', '--sbi'], /--sbi runs an ELF program under the built-in SBI: give it with --elf/],
      [['run', '--elf', elf, '--sbi', '--bios', elf], /--elf runs a program on the bare machine .*: drop --bios/],
      [['run', '--elf', elf, '--kernel', elf], /--elf runs its program instead of a kernel: drop --kernel/],
      [['run', '--elf', elf, '--sbi', '--append', 'quiet'], /--append is a kernel's command line: an --elf program takes none/],
      [['run', '--elf', elf, '--sbi'], new RegExp(`^mirrorball: ELF program '${elf}': not an ELF file`)],
    ]);
  });

  it('says what to do when no kernel is given and no guest is built', () => {
    assertOneLineError(mirrorball('run'), /guest build/);
  });
});

describe('mirrorball run --elf', () => {
  before(() => { dir = mkdtempSync(join(tmpdir(), 'mirrorball-cli-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits with the code the program writes to HTIF tohost, and prints what it sends to the console', (t) => {
    if (!toolchainAvailable()) return t.skip('the RISC-V cross toolchain is not installed');
    const elf = linkHtifElf(dir, 'exit', [
      '.globl _start',
      '_start:',
      '  la t0, tohost',
      // HTIF device 1 (console), command 1 (write a byte): 'K'.
      '  li t1, 0x0101000000000000 + 0x4b',
      '  sd t1, 0(t0)',
      '1: ld t1, 0(t0)', // the host clears tohost once it has taken the byte
      '  bnez t1, 1b',
      '  li t1, (42 << 1) | 1',
      '  sd t1, 0(t0)',
      '2: j 2b',
    ]);
    const r = mirrorball('run', '--elf', elf);
    assert.equal(r.status, 42, r.stderr);
    assert.equal(r.stdout, 'K');
  });
});

describe('mirrorball run --elf --sbi: the thin-OS example', { skip: thinOsSkip() }, () => {
  it('runs it in S-mode under the built-in SBI on every hart; the checksum does not depend on the harts, and --kernel takes it as QEMU\'s -kernel does', () => {
    const elf = buildThinOs();
    const runs = [['--elf', elf, '--sbi', '--smp', '1'], ['--elf', elf, '--sbi', '--smp', '4'], ['--kernel', elf, '--smp', '2']].map((args) => {
      const r = mirrorball('run', ...args);
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    });
    assert.deepEqual(runs.map(thinOsHarts), [1, 4, 2]);
    const sums = runs.map(thinOsChecksum);
    assert.ok(sums[0] !== undefined, runs[0]);
    assert.deepEqual(sums, [sums[0], sums[0], sums[0]]);
  });
});

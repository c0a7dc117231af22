// Test helper: the thin-OS example (examples/thin-os) built with its Makefile into a directory of this process,
// and the checksum line it prints.

import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCES = fileURLToPath(new URL('../../examples/thin-os/', import.meta.url));
const CROSS_GCC = 'riscv64-linux-gnu-gcc';

let built: string | undefined;

/** Why the example cannot be built here (no make, no cross compiler), or false: the `skip` of a test. */
export function thinOsSkip(): string | false {
  for (const tool of ['make', CROSS_GCC]) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) return `${tool} is not installed (apt-get install make gcc-riscv64-linux-gnu)`;
  }
  return false;
}

/** The path of thin-os.elf, built once per process; throws with make's output when the build fails. */
export function buildThinOs(): string {
  if (built !== undefined) return built;
  const out = join(mkdtempSync(join(tmpdir(), 'mirrorball-thin-os-')), 'thin-os.elf');
  const make = spawnSync('make', ['-s', '-C', SOURCES, `OUT=${out}`], { encoding: 'utf8' });
  if (make.status !== 0) throw new Error(`building the thin OS failed:\n${make.stdout}${make.stderr}`);
  built = out;
  return out;
}

/** The checksum the thin OS printed (`checksum 0x…`), or undefined when it printed none. */
export function thinOsChecksum(output: string): string | undefined {
  return /thin-os: \d+ points inside; checksum (0x[0-9a-f]{16})\n/.exec(output)?.[1];
}

/** The number of harts it says it ran on. */
export function thinOsHarts(output: string): number | undefined {
  const m = /thin-os: (\d+) harts, mandelbrot/.exec(output);
  return m === null ? undefined : Number(m[1]);
}

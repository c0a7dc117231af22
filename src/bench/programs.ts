// Builds the bare-metal benchmark programs (src/bench/programs) with the RISC-V cross compiler.

import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchError, onPath } from './measure.js';

export const CROSS_GCC = 'riscv64-linux-gnu-gcc';

/** The sources, found from this file whether it runs from src/ (tsx) or dist/ (compiled). */
const SOURCES = fileURLToPath(new URL('../../src/bench/programs/', import.meta.url));

const FLAGS = [
  '-O2', '-march=rv64gc', '-mabi=lp64d', '-mcmodel=medany',
  '-static', '-nostdlib', '-nostartfiles', '-fno-pie', '-no-pie',
  // Without this gcc turns the clearing loops into calls to a memset that a bare-metal program lacks.
  '-fno-tree-loop-distribute-patterns',
  '-Wl,--build-id=none,--no-warn-rwx-segments',
];

/** Compiles `name`.c with start.S into an ELF that runs `iterations` rounds; returns its path. */
export function buildProgram(name: string, iterations: number): string {
  if (!onPath(CROSS_GCC)) throw new BenchError(`${CROSS_GCC} is not installed (apt-get install gcc-riscv64-linux-gnu)`);
  const outDir = join(tmpdir(), 'mirrorball-bench-programs');
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `${name}-${iterations}.elf`);
  try {
    execFileSync(CROSS_GCC, [
      ...FLAGS, `-DITERATIONS=${iterations}`, '-T', join(SOURCES, 'link.ld'),
      join(SOURCES, 'start.S'), join(SOURCES, `${name}.c`), '-o', out,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim() ?? String(error);
    throw new BenchError(`building the ${name} benchmark failed: ${stderr.split('\n')[0]}`);
  }
  return out;
}

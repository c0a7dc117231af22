// Builds the bare-metal programs (src/bench/programs: the benchmarks and the stress program) with the RISC-V
// cross compiler.

import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync } from 'node:fs';
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
  return compile(name, 'start.S', [`-DITERATIONS=${iterations}`], `${name}-${iterations}.elf`);
}

/**
 * Compiles a program that runs on every hart (harts-start.S: the stress program, stress.c, or the parallel
 * benchmark, parallel.c; docs/threads.md) for exactly `harts` harts and `iterations` rounds each; returns
 * its path.
 */
export function buildHartsProgram(name: 'stress' | 'parallel' | 'virtio', harts: number, iterations: number): string {
  if (!Number.isInteger(harts) || harts < 1 || harts > 32) throw new BenchError(`the ${name} program takes 1 to 32 harts, not ${harts}`);
  return compile(name, 'harts-start.S', [`-DHARTS=${harts}`, `-DITERATIONS=${iterations}`], `${name}-${harts}-${iterations}.elf`);
}

/** The stress program for `harts` harts and `iterations` rounds each. */
export function buildStress(harts: number, iterations: number): string {
  return buildHartsProgram('stress', harts, iterations);
}

function compile(name: string, start: string, defines: string[], file: string): string {
  if (!onPath(CROSS_GCC)) throw new BenchError(`${CROSS_GCC} is not installed (apt-get install gcc-riscv64-linux-gnu)`);
  const outDir = join(tmpdir(), 'mirrorball-bench-programs');
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, file);
  // Through a name of this process's own, so that test files building the same program at once never
  // run half a file.
  const temporary = `${out}.${process.pid}.tmp`;
  try {
    execFileSync(CROSS_GCC, [
      ...FLAGS, ...defines, '-T', join(SOURCES, 'link.ld'),
      join(SOURCES, start), join(SOURCES, `${name}.c`), '-o', temporary,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(temporary, out);
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim() ?? String(error);
    throw new BenchError(`building the ${name} program failed: ${stderr.split('\n')[0]}`);
  }
  return out;
}

// The workloads: sqlite's amalgamation from Debian's source, the C workloads cross-built, and host reference checksums.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { reproducibleEnv } from './kernel.js';
import type { StepLog } from './steps.js';
import { CROSS_PREFIX, type Toolchain } from './toolchain.js';

/**
 * sqlite3.c, sqlite3.h and shell.c made from the canonical source tree (Debian ships that, not the
 * amalgamation) by its own `configure && make sqlite3.c shell.c`, which needs the host's cc and tclsh.
 * Cached beside the source as `<source>.amalgamation`.
 */
export async function sqliteAmalgamation(log: StepLog, source: string): Promise<string> {
  const done = `${source}.amalgamation`;
  if (existsSync(join(done, 'sqlite3.c'))) return done;
  const work = `${source}.amalgamation.partial`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  await log.run(join(source, 'configure'), ['--disable-tcl', '--disable-readline'], { cwd: work });
  await log.run('make', ['sqlite3.c', 'shell.c'], { cwd: work });
  const keep = join(work, 'keep');
  mkdirSync(keep);
  for (const name of ['sqlite3.c', 'sqlite3.h', 'sqlite3ext.h', 'shell.c']) renameSync(join(work, name), join(keep, name));
  renameSync(keep, done);
  rmSync(work, { recursive: true, force: true });
  return done;
}

export interface WorkloadOptions {
  /** guest/workloads */
  src: string;
  sqlite: string;
  outDir: string;
  toolchain: Toolchain;
  jobs: number;
  epoch: number;
}

/** Cross-compiles `mbwork` and `sqlite3` (static, stripped) with guest/workloads/Makefile. */
export async function buildWorkloads(log: StepLog, o: WorkloadOptions): Promise<{ mbwork: string; sqlite3: string }> {
  mkdirSync(o.outDir, { recursive: true });
  const env = reproducibleEnv(o.toolchain.env, o.epoch);
  await log.run('make', ['-f', join(o.src, 'Makefile'), `-j${o.jobs}`, `SRC=${o.src}`, `SQLITE=${o.sqlite}`, `CC=${CROSS_PREFIX}gcc`, 'LDFLAGS=-static -s'], { cwd: o.outDir, env });
  return { mbwork: join(o.outDir, 'mbwork'), sqlite3: join(o.outDir, 'sqlite3') };
}

/** Lines of guest/workloads/checks.txt: the reference commands. */
export function parseChecks(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(/\s+/));
}

const RESULT = /^RESULT (\S+) elapsed=\S+ checksum=([0-9a-f]{16})\b/m;

/**
 * Builds the workloads natively and runs every reference command, returning the text of reference.txt:
 * `COMMAND<TAB>CHECKSUM` lines. A guest run of the same command must print the same checksum.
 */
export async function referenceChecksums(log: StepLog, o: Omit<WorkloadOptions, 'toolchain'> & { env: NodeJS.ProcessEnv }): Promise<string> {
  mkdirSync(o.outDir, { recursive: true });
  await log.run('make', ['-f', join(o.src, 'Makefile'), `-j${o.jobs}`, `SRC=${o.src}`, `SQLITE=${o.sqlite}`, 'CC=cc', 'CFLAGS=-O1', 'LDFLAGS=', 'mbwork'], { cwd: o.outDir, env: o.env });
  const lines = ['# Reference checksums of guest/workloads/checks.txt, computed on the build host.'];
  for (const check of parseChecks(readFileSync(join(o.src, 'checks.txt'), 'utf8'))) {
    const out = await log.capture(join(o.outDir, 'mbwork'), check, { cwd: o.outDir, env: { ...o.env, TMPDIR: o.outDir } });
    log.write(out);
    const match = RESULT.exec(out);
    if (!match || match[1] !== check[0]) throw new Error(`${check.join(' ')} printed no RESULT line`);
    lines.push(`${check.join(' ')}\t${match[2]}`);
  }
  const text = `${lines.join('\n')}\n`;
  writeFileSync(join(o.outDir, 'reference.txt'), text);
  return text;
}

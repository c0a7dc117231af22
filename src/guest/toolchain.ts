// The riscv64 cross compiler: the host's if installed, else Debian's packages unpacked into the cache (no root).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { extractDebs, type PrivateApt } from './debian.js';
import { hashParts } from './recipe.js';
import type { StepLog } from './steps.js';
import type { UsedVersions } from './versions.js';

/** The GNU triplet of the guest, and so the prefix of every cross tool (CROSS_COMPILE). */
export const TRIPLET = 'riscv64-linux-gnu';
export const CROSS_PREFIX = `${TRIPLET}-`;

/** Set to `debian` to ignore an installed cross compiler and use the unpacked packages (tests the fallback). */
export const TOOLCHAIN_ENV = 'MIRRORBALL_GUEST_TOOLCHAIN';

export interface Toolchain {
  /** Where the tools came from. */
  origin: 'host' | 'debian';
  /** The environment to build with: PATH leads to `riscv64-linux-gnu-gcc` and friends. */
  env: NodeJS.ProcessEnv;
  /** `riscv64-linux-gnu-gcc --version`, first line. */
  version: string;
}

/** The first line of `<tool> --version` using `env`'s PATH, or undefined when the tool is not there. */
function toolVersion(tool: string, env: NodeJS.ProcessEnv): string | undefined {
  try {
    return execFileSync(tool, ['--version'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch {
    return undefined;
  }
}

/**
 * A cross compiler that can build the workloads: `gcc` runs and finds the C library's headers. Debian's
 * gcc-riscv64-linux-gnu only recommends libc6-dev-riscv64-cross, so an install without recommends has a
 * compiler that fails on the first `#include <stdio.h>`. Returns its version, or why it cannot be used.
 */
export function checkCompiler(gcc: string, env: NodeJS.ProcessEnv): { version: string } | { problem: string } {
  const version = toolVersion(gcc, env);
  if (version === undefined) return { problem: `no ${gcc} on PATH` };
  try {
    execFileSync(gcc, ['-E', '-x', 'c', '-'], { env, input: '#include <stdio.h>\n', stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    return { problem: `${gcc} (${version}) has no C library headers (libc6-dev-${TRIPLET.replace('-linux-gnu', '')}-cross is missing)` };
  }
  return { version };
}

/**
 * The cross toolchain the versions chose (versions.ts): the machine's compiler on PATH, or Debian's
 * packages at the chosen versions, downloaded with the private apt and unpacked with dpkg -x under
 * `<cacheDir>/toolchain/<hash>`: Debian's cross gcc finds its cc1, assembler, linker, headers and
 * libraries relative to its own path, so it runs from there. Only the unversioned `riscv64-linux-gnu-gcc`
 * names (from the package gcc-riscv64-linux-gnu, which depends on the whole toolchain) are added as symlinks.
 */
export async function findToolchain(log: StepLog, apt: PrivateApt, cacheDir: string, chosen: UsedVersions['toolchain']): Promise<Toolchain> {
  const host = chosen.origin === 'host' ? checkCompiler(`${CROSS_PREFIX}gcc`, process.env) : { problem: process.env[TOOLCHAIN_ENV] === 'debian' ? `${TOOLCHAIN_ENV}=debian` : 'none usable on PATH' };
  if ('version' in host) {
    log.write(`using the installed ${CROSS_PREFIX}gcc: ${host.version}\n`);
    return { origin: 'host', env: process.env, version: host.version };
  }
  if (chosen.origin === 'host') throw new Error(`the cross compiler on PATH no longer works: ${host.problem}`);
  const packages = Object.fromEntries(Object.entries(chosen.packages).map(([name, version]) => [name, version ?? '']));
  log.write(`not using an installed cross compiler: ${host.problem}\n`);
  const dir = join(cacheDir, 'toolchain', hashParts(Object.entries(packages).flat()));
  const root = join(dir, 'root');
  if (!existsSync(root)) {
    log.write(`unpacking Debian's cross toolchain into ${dir}\n`);
    const staging = join(dir, 'root.partial');
    rmSync(staging, { recursive: true, force: true });
    const debs = await apt.download(log, packages, join(dir, 'debs'));
    await extractDebs(log, debs, staging);
    const bin = join(staging, 'usr', 'bin');
    for (const tool of ['gcc', 'cpp', 'gcc-ar', 'gcc-nm', 'gcc-ranlib']) {
      const versioned = Object.keys(packages).find((p) => p.startsWith(`${tool === 'cpp' ? 'cpp' : 'gcc'}-`) && p.endsWith(`-${TRIPLET}`));
      const major = versioned?.split('-')[1];
      const target = `${CROSS_PREFIX}${tool}-${major}`;
      if (major !== undefined && existsSync(join(bin, target)) && !existsSync(join(bin, `${CROSS_PREFIX}${tool}`))) symlinkSync(target, join(bin, `${CROSS_PREFIX}${tool}`));
    }
    rmSync(join(dir, 'debs'), { recursive: true, force: true });
    renameSync(staging, root);
  }
  mkdirSync(dir, { recursive: true });
  const env = { ...process.env, PATH: `${join(root, 'usr', 'bin')}${delimiter}${process.env.PATH ?? ''}` };
  const version = toolVersion(join(root, 'usr', 'bin', `${CROSS_PREFIX}gcc`), env);
  if (version === undefined) throw new Error(`the unpacked cross compiler in ${root} does not run`);
  log.write(`using Debian's cross toolchain unpacked in ${root}: ${version}\n`);
  return { origin: 'debian', env, version };
}

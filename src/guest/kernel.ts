// The guest kernel: Debian's linux-source, allnoconfig + guest/kernel.config (checked line by line), `make Image`.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkFragment, parseFragment } from './config-fragment.js';
import { extractDebs, type PrivateApt } from './debian.js';
import type { RecipeConfig } from './recipe.js';
import type { StepLog } from './steps.js';
import { CROSS_PREFIX, TOOLCHAIN_ENV, type Toolchain } from './toolchain.js';

/** Fixed build identity, so that `uname -a` and the Image do not depend on who built it or when. */
export function reproducibleEnv(base: NodeJS.ProcessEnv, epoch: number): NodeJS.ProcessEnv {
  return {
    ...base,
    LC_ALL: 'C',
    TZ: 'UTC',
    SOURCE_DATE_EPOCH: String(epoch),
    KBUILD_BUILD_TIMESTAMP: new Date(epoch * 1000).toUTCString(),
    KBUILD_BUILD_USER: 'mirrorball',
    KBUILD_BUILD_HOST: 'mirrorball',
    KBUILD_BUILD_VERSION: '1',
  };
}

/** The installed package's version, or undefined when it is not installed. */
function installedVersion(name: string): string | undefined {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f', '${Status} ${Version}', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const match = /^install ok installed (\S+)$/.exec(out.trim());
    return match?.[1];
  } catch {
    return undefined;
  }
}

/**
 * The unpacked kernel tree, cached as `<cacheDir>/src/<package>-<version>`. The source tarball comes from
 * the installed linux-source package when it is the pinned version, else from the package downloaded and
 * unpacked with dpkg -x.
 */
export async function kernelSource(log: StepLog, apt: PrivateApt, cacheDir: string, recipe: RecipeConfig): Promise<string> {
  const { package: name, version, tarball } = recipe.debian.kernelSource;
  const srcRoot = join(cacheDir, 'src');
  const tree = join(srcRoot, `${name}-${version}`);
  if (existsSync(tree)) return tree;
  let archive = join('/', tarball);
  const installed = installedVersion(name);
  const forced = process.env[TOOLCHAIN_ENV] === 'debian';
  const useInstalled = installed === version && existsSync(archive) && !forced;
  const download = join(srcRoot, `.${name}-${version}.download`);
  rmSync(download, { recursive: true, force: true });
  if (useInstalled) log.write(`using the installed ${name} ${installed}: ${archive}\n`);
  else {
    const why = forced ? `${TOOLCHAIN_ENV}=debian` : `installed: ${installed ?? 'none'}`;
    log.write(`downloading ${name} ${version} (${why})\n`);
    const debs = await apt.download(log, { [name]: version }, join(download, 'debs'));
    await extractDebs(log, debs, join(download, 'root'));
    archive = join(download, 'root', tarball);
  }
  const partial = join(download, 'tree');
  mkdirSync(partial, { recursive: true });
  await log.run('tar', ['-xJf', archive, '-C', partial]);
  const [top] = readdirSync(partial);
  if (top === undefined) throw new Error(`${archive} is empty`);
  renameSync(join(partial, top), tree);
  rmSync(download, { recursive: true, force: true });
  return tree;
}

export interface KernelOptions {
  source: string;
  /** The build directory (make O=). */
  outDir: string;
  fragment: string;
  toolchain: Toolchain;
  jobs: number;
  epoch: number;
}

function makeArgs(o: KernelOptions): string[] {
  return ['-C', o.source, `O=${o.outDir}`, 'ARCH=riscv', `CROSS_COMPILE=${CROSS_PREFIX}`];
}

/** allnoconfig with the fragment, then every fragment line checked in the resulting .config. */
export async function configureKernel(log: StepLog, o: KernelOptions): Promise<void> {
  mkdirSync(o.outDir, { recursive: true });
  // KCONFIG_ALLCONFIG: allnoconfig starts from the fragment's values, then turns everything else off.
  await log.run('make', [...makeArgs(o), `KCONFIG_ALLCONFIG=${o.fragment}`, 'allnoconfig'], { env: reproducibleEnv(o.toolchain.env, o.epoch) });
  const settings = parseFragment(readFileSync(o.fragment, 'utf8'), 'guest/kernel.config');
  const problems = checkFragment(settings, readFileSync(join(o.outDir, '.config'), 'utf8'));
  if (problems.length > 0) {
    log.write(`guest/kernel.config lines that did not take:\n${problems.join('\n')}\n`);
    throw new Error(`${problems.length} line(s) of guest/kernel.config did not take, first: ${problems[0]}`);
  }
}

/** `make Image`; returns the Image's path and the kernel release string. */
export async function compileKernel(log: StepLog, o: KernelOptions): Promise<{ image: string; release: string }> {
  await log.run('make', [...makeArgs(o), `-j${o.jobs}`, 'Image'], { env: reproducibleEnv(o.toolchain.env, o.epoch) });
  const release = readFileSync(join(o.outDir, 'include', 'config', 'kernel.release'), 'utf8').trim();
  return { image: join(o.outDir, 'arch', 'riscv', 'boot', 'Image'), release };
}

// The guest kernel: Debian's linux-source, allnoconfig + guest/kernel.config (checked line by line), `make Image`.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkFragment, parseFragment } from './config-fragment.js';
import { extractDebs, type PrivateApt } from './debian.js';
import type { StepLog } from './steps.js';
import { CROSS_PREFIX, type Toolchain } from './toolchain.js';
import type { UsedVersions } from './versions.js';

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

/**
 * The unpacked kernel tree, cached as `<cacheDir>/src/<package>-<version>`. The source tarball comes from
 * the installed linux-source package when the versions chose it (versions.ts), else from the package
 * downloaded at the chosen version and unpacked with dpkg -x.
 */
export async function kernelSource(log: StepLog, apt: PrivateApt, cacheDir: string, used: UsedVersions['kernelSource'], tarball: string): Promise<string> {
  const { package: name, version, from } = used;
  const srcRoot = join(cacheDir, 'src');
  const tree = join(srcRoot, `${name}-${version}`);
  if (existsSync(tree)) return tree;
  let archive = join('/', tarball);
  const download = join(srcRoot, `.${name}-${version}.download`);
  rmSync(download, { recursive: true, force: true });
  if (from === 'installed') log.write(`using the installed ${name} ${version}: ${archive}\n`);
  else {
    log.write(`downloading ${name} ${version}, the archive's candidate\n`);
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

/** A line of kbuild's quiet output for an object it compiled or assembled: `  CC      kernel/fork.o`. */
const OBJECT_LINE = /^\s+(?:CC|AS)\s+\S+\.o$/;

/** True when a line of make's output reports an object compiled (the kernel step's measure of progress). */
export function isObjectLine(line: string): boolean {
  return OBJECT_LINE.test(line);
}

/** How far the kernel build is: objects compiled so far, out of the previous build's total when there was one. */
export function objectProgress(compiled: number, previousTotal: number | undefined): string {
  if (previousTotal === undefined || previousTotal <= 0) return `${compiled} objects`;
  if (compiled > previousTotal) return `${compiled} objects (${previousTotal} last time)`;
  return `${compiled}/${previousTotal} objects (${Math.floor((100 * compiled) / previousTotal)} %)`;
}

/**
 * `make Image`; returns the Image's path, the kernel release string and how many objects make compiled
 * (the next build's measure of progress: kbuild's `CC`/`AS` lines of objects, counted as they come).
 */
export async function compileKernel(log: StepLog, o: KernelOptions, previousObjects?: number): Promise<{ image: string; release: string; objects: number }> {
  let objects = 0;
  const onLine = (line: string) => {
    if (!isObjectLine(line)) return;
    objects++;
    log.progress(objectProgress(objects, previousObjects));
  };
  await log.run('make', [...makeArgs(o), `-j${o.jobs}`, 'Image'], { env: reproducibleEnv(o.toolchain.env, o.epoch), onLine });
  const release = readFileSync(join(o.outDir, 'include', 'config', 'kernel.release'), 'utf8').trim();
  return { image: join(o.outDir, 'arch', 'riscv', 'boot', 'Image'), release, objects };
}

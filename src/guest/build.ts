// `mirrorball guest build`: every step from Debian packages to the kernel, initramfs, disk and workloads, cached by recipe hash.

import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ARTIFACT_FILES, artifactDir, artifactsIn, defaultCacheDir, type GuestArtifacts } from './artifacts.js';
import { buildBusybox } from './busybox.js';
import { PrivateApt } from './debian.js';
import { diskTree, initramfsImage, initramfsTree, writeExt4, type GuestContents } from './images.js';
import { compileKernel, configureKernel, kernelSource, type KernelOptions } from './kernel.js';
import { hashParts, loadRecipe, RECIPE_FORMAT, type Recipe } from './recipe.js';
import { StepError, StepRunner } from './steps.js';
import { findToolchain, type Toolchain } from './toolchain.js';
import { buildWorkloads, referenceChecksums, sqliteAmalgamation } from './workloads.js';

export interface BuildOptions {
  cacheDir?: string;
  /** Build again even when the cache has this recipe's guest. */
  force?: boolean;
  /** Parallel jobs of each make (default: the host's CPUs). */
  jobs?: number;
  /** Where progress goes (default stderr). */
  out?: NodeJS.WriteStream;
}

export interface BuildResult {
  artifacts: GuestArtifacts;
  /** True when the cache already had it and nothing was built. */
  cached: boolean;
  seconds: number;
}

const SIGINT_STATUS = 130;
const MS_PER_SECOND = 1000;

/**
 * Builds the guest of the current recipe into `<cache>/guest/<hash>` unless it is there already. Work
 * happens in `<cache>/guest/.work-<hash>-<pid>` (kept after a failure, with the logs, until the next
 * build) and the artifacts are
 * assembled in a private directory renamed into place last, so the cache never holds a partial guest.
 * Downloads, unpacked sources and an unpacked toolchain are kept in the cache for the next build.
 */
export async function buildGuest(options: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / MS_PER_SECOND;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const recipe = loadRecipe();
  const finalDir = artifactDir(cacheDir, recipe.hash);
  if (!options.force && existsSync(join(finalDir, ARTIFACT_FILES.manifest))) {
    return { artifacts: artifactsIn(finalDir, recipe.hash), cached: true, seconds: seconds() };
  }
  const guestDir = join(cacheDir, 'guest');
  // Per process, so that two builds at once (two test runs) cannot mix their files; the last rename wins.
  const work = join(guestDir, `.work-${recipe.hash}-${process.pid}`);
  const staging = join(guestDir, `.new-${recipe.hash}-${process.pid}`);
  removeAbandoned(guestDir);
  mkdirSync(staging, { recursive: true });
  const runner = new StepRunner(join(work, 'logs'), options.out);
  const onSignal = () => {
    runner.fail();
    rmSync(staging, { recursive: true, force: true });
    process.exit(SIGINT_STATUS);
  };
  process.once('SIGINT', onSignal);
  try {
    runner.note(`guest: building recipe ${recipe.hash} in ${work} (logs in ${runner.logDir})`);
    const manifest = await buildInto(runner, recipe, { cacheDir, work, staging, jobs: options.jobs ?? availableParallelism() });
    manifest.buildSeconds = Math.round(seconds());
    writeFileSync(join(staging, ARTIFACT_FILES.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
    cpSync(runner.logDir, join(staging, 'logs'), { recursive: true });
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(staging, finalDir);
    runner.finish();
    // build.log went with the logs into the guest; the work directory is no longer needed.
    rmSync(work, { recursive: true, force: true });
    (options.out ?? process.stderr).write(`guest: built in ${seconds().toFixed(0)} s: ${finalDir}\n`);
    return { artifacts: artifactsIn(finalDir, recipe.hash), cached: false, seconds: seconds() };
  } catch (error) {
    runner.fail();
    rmSync(staging, { recursive: true, force: true });
    if (error instanceof StepError) throw error;
    throw new StepError('build', runner.mainLog, error instanceof Error ? error.message : String(error));
  } finally {
    runner.finish();
    process.removeListener('SIGINT', onSignal);
  }
}

/** Work and staging directories left by builds whose process is gone (failed or killed). */
function removeAbandoned(guestDir: string): void {
  if (!existsSync(guestDir)) return;
  for (const name of readdirSync(guestDir)) {
    const match = /^\.(?:work|new)-[0-9a-f]+-(\d+)$/.exec(name);
    if (match && !isAlive(Number(match[1]))) rmSync(join(guestDir, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Places {
  cacheDir: string;
  work: string;
  staging: string;
  jobs: number;
}

export interface Manifest {
  format: string;
  hash: string;
  kernelRelease: string;
  toolchain: { origin: Toolchain['origin']; version: string };
  debian: Recipe['config']['debian']['sources'] & { kernel: string };
  files: Record<string, { bytes: number; sha256: string }>;
  buildSeconds?: number;
}

async function buildInto(runner: StepRunner, recipe: Recipe, p: Places): Promise<Manifest> {
  const config = recipe.config;
  const epoch = config.sourceDateEpoch;
  const apt = new PrivateApt(join(p.cacheDir, 'debian'), config.debian.release);
  const srcDir = join(p.cacheDir, 'src');
  const versionOf = (name: string) => {
    const version = config.debian.sources[name];
    if (version === undefined) throw new Error(`guest/recipe.json pins no version of ${name}`);
    return version;
  };
  const toolchain = runner.step('toolchain', (log) => findToolchain(log, apt, p.cacheDir, config.debian.toolchain));

  const kernel = (async () => {
    const tools = await toolchain;
    const fragment = join(recipe.dir, 'kernel.config');
    // The kernel takes most of a build: it is kept by a hash of its own inputs, so that a change to the
    // workloads or the root file system does not build it again.
    const key = kernelKey(config.debian.kernelSource, readFileSync(fragment), tools, epoch);
    const kept = keptKernel(p.cacheDir, key);
    if (kept !== undefined) return runner.step('kernel', async (log) => { log.write(`kernel ${key} from the cache: ${kept.image}\n`); return kept; });
    const source = await runner.step('kernel-source', (log) => kernelSource(log, apt, p.cacheDir, config));
    const options: KernelOptions = { source, outDir: join(p.work, 'linux'), fragment, toolchain: tools, jobs: p.jobs, epoch };
    await runner.step('kernel-config', (log) => configureKernel(log, options));
    const built = await runner.step('kernel', (log) => compileKernel(log, options));
    return keepKernel(p.cacheDir, key, built);
  })();

  const userland = (async () => {
    const tools = await toolchain;
    const busyboxSource = await runner.step('busybox-source', (log) => apt.source(log, 'busybox', versionOf('busybox'), srcDir));
    const busybox = await runner.step('busybox', (log) =>
      buildBusybox(log, { source: busyboxSource, outDir: join(p.work, 'busybox'), fragment: join(recipe.dir, 'busybox.config'), toolchain: tools, jobs: p.jobs, epoch }),
    );
    const sqlite = await runner.step('sqlite-source', async (log) => sqliteAmalgamation(log, await apt.source(log, 'sqlite3', versionOf('sqlite3'), srcDir)));
    const workloadsSrc = join(recipe.dir, 'workloads');
    const workloads = await runner.step('workloads', (log) => buildWorkloads(log, { src: workloadsSrc, sqlite, outDir: join(p.work, 'workloads'), toolchain: tools, jobs: p.jobs, epoch }));
    const reference = await runner.step('reference-checksums', (log) =>
      referenceChecksums(log, { src: workloadsSrc, sqlite, outDir: join(p.work, 'workloads-host'), jobs: p.jobs, epoch, env: process.env }),
    );
    return { busybox, workloads, reference };
  })();

  // Both chains run at once (make -jN each): the kernel's tar and configure steps are mostly one core.
  const [kernelBuild, user] = await Promise.all([kernel, userland]);
  const tools = await toolchain;

  const contents: GuestContents = {
    busybox: readFileSync(user.busybox.binary),
    busyboxLinks: user.busybox.links,
    mbwork: readFileSync(user.workloads.mbwork),
    sqlite3: readFileSync(user.workloads.sqlite3),
    rootfs: recipe.files.filter((f) => f.path.startsWith('rootfs/')).map((f) => ({ ...f, path: f.path.slice('rootfs/'.length) })),
    reference: user.reference,
    release: `Mirrorball guest ${recipe.hash}: Linux ${kernelBuild.release}, busybox ${versionOf('busybox')}, sqlite ${versionOf('sqlite3')}\n`,
  };
  const s = p.staging;
  await runner.step('initramfs', async () => writeFileSync(join(s, ARTIFACT_FILES.initramfs), initramfsImage(initramfsTree(contents, epoch))));
  await runner.step('disk', (log) => writeExt4(log, diskTree(contents, epoch), join(s, ARTIFACT_FILES.disk), join(p.work, 'disk-staging'), { ...config.disk, epoch }));
  copyFileSync(kernelBuild.image, join(s, ARTIFACT_FILES.kernel));
  const workloadsOut = join(s, ARTIFACT_FILES.workloads);
  mkdirSync(workloadsOut);
  copyFileSync(user.workloads.mbwork, join(workloadsOut, 'mbwork'));
  copyFileSync(user.workloads.sqlite3, join(workloadsOut, 'sqlite3'));
  copyFileSync(join(recipe.dir, 'workloads', 'checks.txt'), join(workloadsOut, 'checks.txt'));
  writeFileSync(join(workloadsOut, 'reference.txt'), user.reference);

  const files: Manifest['files'] = {};
  for (const name of [ARTIFACT_FILES.kernel, ARTIFACT_FILES.initramfs, ARTIFACT_FILES.disk, 'workloads/mbwork', 'workloads/sqlite3']) {
    const data = readFileSync(join(s, name));
    files[name] = { bytes: statSync(join(s, name)).size, sha256: createHash('sha256').update(data).digest('hex') };
  }
  return {
    format: RECIPE_FORMAT,
    hash: recipe.hash,
    kernelRelease: kernelBuild.release,
    toolchain: { origin: tools.origin, version: tools.version },
    debian: { ...config.debian.sources, kernel: `${config.debian.kernelSource.package} ${config.debian.kernelSource.version}` },
    files,
  };
}

/** The hash of what the kernel Image is made from: the source package, the config fragment, the compiler, the epoch. */
export function kernelKey(source: unknown, fragment: Uint8Array, tools: Pick<Toolchain, 'origin' | 'version'>, epoch: number): string {
  return hashParts(['kernel 1', JSON.stringify(source), fragment, tools.origin, tools.version, String(epoch)]);
}

const KEPT_IMAGE = 'Image';
const KEPT_RELEASE = 'release';

/** A kernel kept under `<cache>/kernel/<key>` by an earlier build, or undefined. */
export function keptKernel(cacheDir: string, key: string): { image: string; release: string } | undefined {
  const dir = join(cacheDir, 'kernel', key);
  if (!existsSync(join(dir, KEPT_RELEASE))) return undefined;
  return { image: join(dir, KEPT_IMAGE), release: readFileSync(join(dir, KEPT_RELEASE), 'utf8').trim() };
}

/** Keeps a built kernel for later builds (written beside and renamed into place: never half a kernel). */
export function keepKernel(cacheDir: string, key: string, built: { image: string; release: string }): { image: string; release: string } {
  const dir = join(cacheDir, 'kernel', key);
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  copyFileSync(built.image, join(partial, KEPT_IMAGE));
  writeFileSync(join(partial, KEPT_RELEASE), `${built.release}\n`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return { image: join(dir, KEPT_IMAGE), release: built.release };
}

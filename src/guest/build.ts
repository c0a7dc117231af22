// `mirrorball guest build`: every step from Debian packages to the kernel, initramfs, disk and workloads, cached by recipe hash.

import { createHash } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatElapsed, StatusLine, type StatusOutput } from '../host/status-line.js';
import { isAlive } from '../host/disk-lock.js';
import { ARTIFACT_FILES, artifactDir, artifactsIn, cacheApt, defaultCacheDir, finishedGuest, type GuestArtifacts } from './artifacts.js';
import { buildBusybox } from './busybox.js';
import type { PrivateApt } from './debian.js';
import { currentVersions, hostChoices, systemFacts } from './host-versions.js';
import { diskTree, initramfsImage, initramfsTree, writeExt4, type GuestContents } from './images.js';
import { compileKernel, configureKernel, kernelPatches, kernelSource, patchedKernelSource, type KernelOptions } from './kernel.js';
import { DEFAULT_DISK_BLOCK_SIZE, guestHash, hashParts, loadRecipe, RECIPE_FORMAT, type Recipe, type RecipeFile } from './recipe.js';
import { StepError, StepRunner } from './steps.js';
import { findToolchain, type Toolchain } from './toolchain.js';
import { resolveVersions, versionWarning, type HostChoices, type PackageFacts, type Resolution, type UsedVersions } from './versions.js';
import { buildWorkloads, referenceChecksums, sqliteAmalgamation } from './workloads.js';

export interface BuildOptions {
  cacheDir?: string;
  /** Build again even when the cache has this recipe's guest. */
  force?: boolean;
  /** Parallel jobs of each make (default: the host's CPUs). */
  jobs?: number;
  /** Where progress goes (default stderr). */
  out?: StatusOutput;
  /**
   * What the machine and its archive say about package versions (default: dpkg and the private apt's
   * lists; `updated`: after the build's `apt-get update`, default the same), and what of the machine the
   * build may use (default: hostChoices). Tests give them; no update runs then.
   */
  versions?: { facts: PackageFacts; updated?: PackageFacts; choices: HostChoices };
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
  const out = options.out ?? process.stderr;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const recipe = loadRecipe();
  const apt = cacheApt(cacheDir, recipe.config.debian.release);
  const choices = options.versions?.choices ?? hostChoices(recipe.config);
  // A cache hit needs no network: the versions installed now, and the package lists of the last build.
  const known = currentVersions(options.versions?.facts ?? systemFacts(apt, recipe.config), recipe.config, choices);
  const hit = known === undefined ? undefined : finishedGuest(cacheDir, guestHash(recipe, known.versions));
  if (!options.force && hit !== undefined) return { artifacts: hit, cached: true, seconds: seconds() };
  const guestDir = join(cacheDir, 'guest');
  // Per process, so that two builds at once (two test runs) cannot mix their files; the last rename wins.
  const work = join(guestDir, `.work-${recipe.hash}-${process.pid}`);
  const staging = join(guestDir, `.new-${recipe.hash}-${process.pid}`);
  await removeAbandoned(guestDir, out);
  mkdirSync(staging, { recursive: true });
  const runner = new StepRunner(join(work, 'logs'), out);
  const onSignal = () => {
    runner.fail();
    rmSync(staging, { recursive: true, force: true });
    process.exit(SIGINT_STATUS);
  };
  process.once('SIGINT', onSignal);
  let hash: string;
  try {
    runner.note(`guest: building recipe ${recipe.hash} in ${work} (logs in ${runner.logDir})`);
    const resolution = await runner.step('versions', async (log) => {
      // The archive may have moved on since the last build: its lists first, unless the facts are given.
      if (options.versions === undefined) await apt.update(log);
      const facts = options.versions === undefined ? systemFacts(apt, recipe.config) : options.versions.updated ?? options.versions.facts;
      const resolved = resolveVersions(recipe.config, facts, choices);
      log.write(`${JSON.stringify(resolved, null, 2)}\n`);
      return resolved;
    });
    const warning = versionWarning(resolution.differences);
    if (warning !== undefined) runner.note(warning);
    hash = guestHash(recipe, resolution.versions);
    const finalDir = artifactDir(cacheDir, hash);
    const already = finishedGuest(cacheDir, hash);
    if (!options.force && already !== undefined) {
      // The lists were stale: with fresh ones, the versions are those of a guest already built.
      runner.finish();
      rmSync(staging, { recursive: true, force: true });
      rmSync(work, { recursive: true, force: true });
      return { artifacts: already, cached: true, seconds: seconds() };
    }
    runner.note(`guest: building guest ${hash}`);
    const manifest = await buildInto(runner, recipe, resolution, hash, { cacheDir, work, staging, jobs: options.jobs ?? availableParallelism(), apt });
    manifest.buildSeconds = Math.round(seconds());
    writeFileSync(join(staging, ARTIFACT_FILES.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
    cpSync(runner.logDir, join(staging, 'logs'), { recursive: true });
    rmSync(finalDir, { recursive: true, force: true });
    renameSync(staging, finalDir);
    runner.finish();
  } catch (error) {
    runner.fail();
    rmSync(staging, { recursive: true, force: true });
    if (error instanceof StepError) throw error;
    throw new StepError('build', runner.mainLog, error instanceof Error ? error.message : String(error));
  } finally {
    runner.finish();
    process.removeListener('SIGINT', onSignal);
  }
  // build.log went with the logs into the guest; the work directory (the kernel's and busybox's objects) is no longer needed.
  await removeSaying(work, 'the work directory (build objects; the guest is complete)', out);
  const dir = artifactDir(cacheDir, hash);
  out.write(`guest: built in ${seconds().toFixed(0)} s: ${dir}\n`);
  return { artifacts: artifactsIn(dir, hash), cached: false, seconds: seconds() };
}

/**
 * Removes a directory tree, saying so first: a kernel build's objects take seconds to delete. On a
 * terminal a status line counts the time; the removal is asynchronous so that it can.
 */
async function removeSaying(dir: string, what: string, out: StatusOutput): Promise<void> {
  let started = 0;
  const status: StatusLine = new StatusLine(out, (): string => `guest: removing ${what}, ${formatElapsed(status.secondsSince(started))}`);
  started = status.now();
  status.print(`guest: removing ${what}: ${dir}`);
  status.start();
  try {
    await rm(dir, { recursive: true, force: true });
  } finally {
    status.stop();
  }
  const took = status.secondsSince(started);
  if (took >= 1) status.print(`guest: removed in ${took.toFixed(1)} s`);
}

/** Work and staging directories left by builds whose process is gone (failed or killed). */
async function removeAbandoned(guestDir: string, out: StatusOutput): Promise<void> {
  if (!existsSync(guestDir)) return;
  for (const name of readdirSync(guestDir)) {
    const match = /^\.(work|new)-[0-9a-f]+-(\d+)$/.exec(name);
    if (match && !isAlive(Number(match[2]))) {
      await removeSaying(join(guestDir, name), `the ${match[1] === 'work' ? 'work' : 'staging'} directory of an earlier build that did not finish`, out);
    }
  }
}


interface Places {
  cacheDir: string;
  work: string;
  staging: string;
  jobs: number;
  apt: PrivateApt;
}

export interface Manifest {
  format: string;
  /** The guest hash (the directory's name). */
  hash: string;
  /** The recipe hash: guest/ without the versions recipe.json records. */
  recipe: string;
  kernelRelease: string;
  toolchain: { origin: Toolchain['origin']; version: string; packages: Record<string, string | null> };
  /** The Debian versions used: each source package, and the kernel source as `<package> <version>`. */
  debian: Record<string, string> & { kernel: string };
  files: Record<string, { bytes: number; sha256: string }>;
  buildSeconds?: number;
}

/** The manifest's record of the versions a build used. */
export function manifestVersions(versions: UsedVersions): Pick<Manifest, 'debian'> & { toolchainPackages: Manifest['toolchain']['packages'] } {
  return {
    debian: { ...versions.sources, kernel: `${versions.kernelSource.package} ${versions.kernelSource.version}` },
    toolchainPackages: versions.toolchain.packages,
  };
}

/** Where the kernel step keeps the number of objects the last kernel build compiled: its measure of progress. */
const OBJECTS_FILE = 'objects';

async function buildInto(runner: StepRunner, recipe: Recipe, resolution: Resolution, hash: string, p: Places): Promise<Manifest> {
  const config = recipe.config;
  const used = resolution.versions;
  const epoch = config.sourceDateEpoch;
  const apt = p.apt;
  const srcDir = join(p.cacheDir, 'src');
  const versionOf = (name: string) => {
    const version = used.sources[name];
    if (version === undefined) throw new Error(`guest/recipe.json names no source package ${name}`);
    return version;
  };
  const toolchain = runner.step('toolchain', (log) => findToolchain(log, apt, p.cacheDir, used.toolchain));

  const kernel = (async () => {
    const tools = await toolchain;
    const fragment = join(recipe.dir, 'kernel.config');
    // The kernel takes most of a build: it is kept by a hash of its own inputs, so that a change to the
    // workloads or the root file system does not build it again.
    const patches = kernelPatches(recipe.files);
    const key = kernelKey({ ...config.debian.kernelSource, version: used.kernelSource.version }, readFileSync(fragment), tools, epoch, patches);
    const kept = keptKernel(p.cacheDir, key);
    if (kept !== undefined) return runner.step('kernel', async (log) => { log.write(`kernel ${key} from the cache: ${kept.image}\n`); return kept; });
    const source = await runner.step('kernel-source', async (log) =>
      patchedKernelSource(log, await kernelSource(log, apt, p.cacheDir, used.kernelSource, config.debian.kernelSource.tarball), recipe.dir, patches),
    );
    const options: KernelOptions = { source, outDir: join(p.work, 'linux'), fragment, toolchain: tools, jobs: p.jobs, epoch };
    await runner.step('kernel-config', (log) => configureKernel(log, options));
    const objectsFile = join(p.cacheDir, 'kernel', OBJECTS_FILE);
    const previous = existsSync(objectsFile) ? Number.parseInt(readFileSync(objectsFile, 'utf8'), 10) : undefined;
    const built = await runner.step('kernel', (log) => compileKernel(log, options, Number.isInteger(previous) ? previous : undefined));
    mkdirSync(join(p.cacheDir, 'kernel'), { recursive: true });
    writeFileSync(objectsFile, `${built.objects}\n`);
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
    release: `Mirrorball guest ${hash}: Linux ${kernelBuild.release}, busybox ${versionOf('busybox')}, sqlite ${versionOf('sqlite3')}\n`,
    sources: recipe.files.filter((f) => f.path.startsWith('workloads/')).map((f) => ({ ...f, path: f.path.slice('workloads/'.length) })),
  };
  const s = p.staging;
  await runner.step('initramfs', async () => writeFileSync(join(s, ARTIFACT_FILES.initramfs), initramfsImage(initramfsTree(contents, epoch))));
  await runner.step('disk', (log) => writeExt4(log, diskTree(contents, epoch), join(s, ARTIFACT_FILES.disk), join(p.work, 'disk-staging'), { ...config.disk, blockSize: config.disk.blockSize ?? DEFAULT_DISK_BLOCK_SIZE, epoch }));
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
  const recorded = manifestVersions(used);
  return {
    format: RECIPE_FORMAT,
    hash,
    recipe: recipe.hash,
    kernelRelease: kernelBuild.release,
    toolchain: { origin: tools.origin, version: tools.version, packages: recorded.toolchainPackages },
    debian: recorded.debian,
    files,
  };
}

/** The hash of what the kernel Image is made from: the source package, its patches, the config fragment, the compiler, the epoch. */
export function kernelKey(source: unknown, fragment: Uint8Array, tools: Pick<Toolchain, 'origin' | 'version'>, epoch: number, patches: readonly RecipeFile[] = []): string {
  const patched = patches.flatMap((p) => [p.path, p.data]);
  return hashParts(['kernel 1', JSON.stringify(source), fragment, tools.origin, tools.version, String(epoch), ...(patched.length === 0 ? [] : ['patches', ...patched])]);
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

// The guest kernel: Debian's linux-source, allnoconfig + guest/kernel.config (checked line by line), `make Image`.

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { checkFragment, parseFragment } from './config-fragment.js';
import { extractDebs, type PrivateApt } from './debian.js';
import { hashParts, type RecipeFile } from './recipe.js';
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

/** Where the recipe keeps its kernel patches (guest/kernel-patches/*.patch, applied in name order with patch -p1). */
export const KERNEL_PATCHES_DIR = 'kernel-patches/';

/** The recipe's kernel patches, in the order they are applied. */
export function kernelPatches(files: readonly RecipeFile[]): RecipeFile[] {
  return files.filter((f) => f.path.startsWith(KERNEL_PATCHES_DIR) && f.path.endsWith('.patch')).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The files a unified diff changes (its `+++ b/PATH` lines), relative to the tree's top (as patch -p1 reads them). */
export function patchedFiles(patch: string): string[] {
  const files: string[] = [];
  for (const line of patch.split('\n')) {
    const m = /^\+\+\+ [^/\s]+\/(\S+)/.exec(line);
    if (m !== null) files.push(m[1]!);
  }
  return files;
}

/**
 * The kernel tree with the recipe's patches applied, cached beside the unpacked one as `<tree>+<hash of the
 * patches>`: a tree of hard links to the unpacked one, where every file a patch touches is a copy of its
 * own first, so the unpacked tree stays as Debian shipped it. Built beside and renamed into place.
 */
export async function patchedKernelSource(log: StepLog, pristine: string, recipeDir: string, patches: readonly RecipeFile[]): Promise<string> {
  if (patches.length === 0) return pristine;
  const tree = `${pristine}+${hashParts(patches.flatMap((p) => [p.path, p.data]))}`;
  if (existsSync(tree)) return tree;
  const partial = `${tree}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  await log.run('cp', ['-al', pristine, partial]);
  for (const p of patches) {
    const text = p.data.toString('utf8');
    const files = patchedFiles(text);
    if (files.length === 0) throw new Error(`guest/${p.path} changes no file (no '+++ b/PATH' line)`);
    for (const file of files) {
      const path = join(partial, file);
      if (!existsSync(path)) continue;
      // Break the hard link: the copy is this tree's own, the unpacked tree keeps Debian's.
      copyFileSync(path, `${path}.own`);
      renameSync(`${path}.own`, path);
    }
    log.write(`applying guest/${p.path}\n`);
    await log.run('patch', ['-p1', '--batch', '--forward', '--no-backup-if-mismatch', '-d', partial, '-i', join(recipeDir, p.path)]);
  }
  renameSync(partial, tree);
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
  const image = join(o.outDir, 'arch', 'riscv', 'boot', 'Image');
  const relocations = vdsoRelocations(readFileSync(image));
  log.write(`the Image's vDSO: ${relocations === undefined ? 'none found' : `${relocations} dynamic relocation(s)`}\n`);
  if (relocations !== undefined && relocations > 0) {
    throw new Error(`the kernel's vDSO has ${relocations} dynamic relocation(s), which user code would read unrelocated; see guest/kernel-patches`);
  }
  return { image, release, objects };
}

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const ELFCLASS64 = 2;
const ET_DYN = 3;
const EM_RISCV = 0xf3;
const SHT_RELA = 4;
const SHT_REL = 9;
/** The vDSO is embedded page-aligned in the Image. */
const VDSO_ALIGN = 4096;

/**
 * The dynamic relocations of the vDSO embedded in a RISC-V kernel Image, or undefined when the Image holds
 * no vDSO. The vDSO is mapped into every process as it is and never relocated, so every entry here is a
 * word that user code reads unrelocated (Debian's 6.1 tree had one, riscv_isa_ext_keys: a load from
 * address 4 in clock_gettime(); guest/kernel-patches/0001).
 */
export function vdsoRelocations(image: Uint8Array): number | undefined {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  for (let at = 0; at + 64 <= image.length; at += VDSO_ALIGN) {
    if (!ELF_MAGIC.every((b, i) => image[at + i] === b) || image[at + 4] !== ELFCLASS64) continue;
    if (view.getUint16(at + 16, true) !== ET_DYN || view.getUint16(at + 18, true) !== EM_RISCV) continue;
    const shoff = Number(view.getBigUint64(at + 40, true));
    const shentsize = view.getUint16(at + 58, true);
    const shnum = view.getUint16(at + 60, true);
    if (shentsize < 64 || at + shoff + shnum * shentsize > image.length) throw new Error(`the Image's vDSO at ${at} has section headers outside the Image`);
    let relocations = 0;
    for (let i = 0; i < shnum; i++) {
      const sh = at + shoff + i * shentsize;
      const type = view.getUint32(sh + 4, true);
      if (type !== SHT_RELA && type !== SHT_REL) continue;
      const size = Number(view.getBigUint64(sh + 32, true));
      const entsize = Number(view.getBigUint64(sh + 56, true));
      relocations += entsize === 0 ? 0 : size / entsize;
    }
    return relocations;
  }
  return undefined;
}

// Where a built guest lives in the cache, and a fast check for one built from the current recipe.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PrivateApt } from './debian.js';
import { currentVersions, hostChoices, systemFacts } from './host-versions.js';
import { guestHash, loadRecipe, recipeDir } from './recipe.js';
import type { HostChoices, PackageFacts } from './versions.js';

export interface GuestArtifacts {
  /** The Linux `Image` (RISC-V boot image, loaded at a 2 MiB-aligned address). */
  kernel: string;
  /** The uncompressed cpio newc initramfs. */
  initramfs: string;
  /** The ext4 root disk image (`root=/dev/vda`). */
  disk: string;
  /** Directory of the workload binaries (host copies of what the guest has in /usr/bin). */
  workloads: string;
  /** The artifact directory. */
  dir: string;
  /** The guest hash naming `dir`: the recipe and the package versions used (guestHash). */
  hash: string;
}

/** File names inside an artifact directory. */
export const ARTIFACT_FILES = {
  kernel: 'Image',
  initramfs: 'initramfs.cpio',
  disk: 'rootfs.ext4',
  workloads: 'workloads',
  manifest: 'manifest.json',
} as const;

/** $MIRRORBALL_CACHE, else $XDG_CACHE_HOME/mirrorball, else ~/.cache/mirrorball. */
export function defaultCacheDir(): string {
  const explicit = process.env.MIRRORBALL_CACHE;
  if (explicit) return explicit;
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg) return join(xdg, 'mirrorball');
  return join(homedir(), '.cache', 'mirrorball');
}

/** The directory that holds (or will hold) the guest built from the recipe with this hash. */
export function artifactDir(cacheDir: string, hash: string): string {
  return join(cacheDir, 'guest', hash);
}

export function artifactsIn(dir: string, hash: string): GuestArtifacts {
  return {
    kernel: join(dir, ARTIFACT_FILES.kernel),
    initramfs: join(dir, ARTIFACT_FILES.initramfs),
    disk: join(dir, ARTIFACT_FILES.disk),
    workloads: join(dir, ARTIFACT_FILES.workloads),
    dir,
    hash,
  };
}

/**
 * "Linux 6.1.192 from linux-source-6.1 6.1.192-3": the kernel of a built guest, from its manifest, to name
 * beside every figure measured with it.
 */
export function describeGuestKernel(dir: string): string {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, ARTIFACT_FILES.manifest), 'utf8')) as { kernelRelease?: string; debian?: { kernel?: string } };
    return `Linux ${manifest.kernelRelease ?? '(release unknown)'} from ${manifest.debian?.kernel ?? '(source unknown)'}`;
  } catch {
    return 'a kernel whose guest has no readable manifest';
  }
}

/** The private apt of the guest build in a cache directory. */
export function cacheApt(cacheDir: string, release: string): PrivateApt {
  return new PrivateApt(join(cacheDir, 'debian'), release);
}

/**
 * The guest built from the current recipe with the package versions a build would use now, or undefined
 * when there is none. Builds nothing and needs no network: hashes the recipe files, asks dpkg and the
 * package lists of the last build for the versions (tens of milliseconds), and looks for the finished
 * directory, which a build only creates by renaming a complete one into place.
 */
export function findBuiltGuest(cacheDir = defaultCacheDir(), versions?: { facts: PackageFacts; choices: HostChoices }): GuestArtifacts | undefined {
  const recipe = loadRecipe(recipeDir());
  const facts = versions?.facts ?? systemFacts(cacheApt(cacheDir, recipe.config.debian.release), recipe.config);
  const used = currentVersions(facts, recipe.config, versions?.choices ?? hostChoices(recipe.config));
  if (used === undefined) return undefined;
  return finishedGuest(cacheDir, guestHash(recipe, used.versions));
}

/** The guest of this hash if the cache has it finished (a build writes its manifest last), else undefined. */
export function finishedGuest(cacheDir: string, hash: string): GuestArtifacts | undefined {
  const dir = artifactDir(cacheDir, hash);
  return existsSync(join(dir, ARTIFACT_FILES.manifest)) ? artifactsIn(dir, hash) : undefined;
}

// The package versions this machine gives a guest build: dpkg's installed packages, the private apt's lists, the cross compiler on PATH.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { installedVersions, type PrivateApt } from './debian.js';
import type { RecipeConfig } from './recipe.js';
import { checkCompiler, CROSS_PREFIX, TOOLCHAIN_ENV } from './toolchain.js';
import { resolveVersions, VersionError, type HostChoices, type PackageFacts, type Resolution } from './versions.js';

/** What the build may use of this machine: its kernel source tarball, its cross compiler (MIRRORBALL_GUEST_TOOLCHAIN=debian: neither). */
export function hostChoices(config: RecipeConfig, env: NodeJS.ProcessEnv = process.env): HostChoices {
  const forced = env[TOOLCHAIN_ENV] === 'debian';
  return {
    installedKernel: !forced && existsSync(join('/', config.debian.kernelSource.tarball)),
    hostToolchain: !forced && 'version' in checkCompiler(`${CROSS_PREFIX}gcc`, env),
  };
}

/**
 * Facts from dpkg and from the private apt's package lists as the last update left them (no network):
 * each kind asked once, for every package of the recipe, and only when needed.
 */
export function systemFacts(apt: PrivateApt, config: RecipeConfig): PackageFacts {
  const binaries = [config.debian.kernelSource.package, ...Object.keys(config.debian.toolchain)];
  let installed: Map<string, string> | undefined;
  let candidates: Map<string, string> | undefined;
  let sources: Map<string, string> | undefined;
  return {
    installed: (name) => (installed ??= installedVersions(binaries)).get(name),
    candidate: (name) => (candidates ??= apt.candidates(binaries)).get(name),
    sourceCandidate: (name) => (sources ??= apt.sourceCandidates(Object.keys(config.debian.sources))).get(name),
  };
}

/**
 * The versions a build would use now, offline; undefined when the package lists cannot say (no build has
 * fetched them yet, or a package is gone from them).
 */
export function currentVersions(facts: PackageFacts, config: RecipeConfig, choices: HostChoices): Resolution | undefined {
  try {
    return resolveVersions(config, facts, choices);
  } catch (error) {
    if (error instanceof VersionError) return undefined;
    throw error;
  }
}

// Which Debian package versions a guest build uses: what the machine has installed, else what its archive
// offers. The versions guest/recipe.json records are the last ones used: a difference is a warning, not an error.

import type { RecipeConfig } from './recipe.js';

/** What the machine and its archive say about packages: injected, so that the decision is tested without apt. */
export interface PackageFacts {
  /** The installed version of a binary package, or undefined. */
  installed(name: string): string | undefined;
  /** The version of a binary package apt would download (its candidate), or undefined when the archive has none. */
  candidate(name: string): string | undefined;
  /** The version of a source package `apt-get source` would fetch (the archive's newest), or undefined. */
  sourceCandidate(name: string): string | undefined;
}

/** What the build may use of the machine, decided before the versions. */
export interface HostChoices {
  /** The installed kernel source may be used: its tarball is there and MIRRORBALL_GUEST_TOOLCHAIN=debian does not ask for downloads. */
  installedKernel: boolean;
  /** A usable cross compiler is on PATH (and not overridden): the toolchain is the machine's, not downloaded. */
  hostToolchain: boolean;
}

export type VersionOrigin = 'installed' | 'archive';

export interface UsedVersions {
  kernelSource: { package: string; version: string; from: VersionOrigin };
  /** Source packages built here: name → version. */
  sources: Record<string, string>;
  toolchain: {
    origin: 'host' | 'debian';
    /** The toolchain packages: the installed versions with the host's compiler (null: not installed), else the downloaded ones. */
    packages: Record<string, string | null>;
  };
}

/** A version used that guest/recipe.json does not record. */
export interface VersionDifference {
  package: string;
  used: string;
  recorded: string;
  from: VersionOrigin;
}

export interface Resolution {
  versions: UsedVersions;
  differences: VersionDifference[];
}

/** A package the build needs that is neither installed nor in the archive. */
export class VersionError extends Error {}

/**
 * The versions to build with. The kernel source: the installed linux-source when the build may use it,
 * else the archive's candidate. busybox and sqlite3 (source packages, never installed): the archive's
 * newest. The toolchain: the machine's when its compiler is used (the installed versions are recorded),
 * else the archive's candidates. A recorded version is never required: when the archive has moved on, the
 * build follows it, and the difference is reported.
 */
export function resolveVersions(config: RecipeConfig, facts: PackageFacts, choices: HostChoices): Resolution {
  const missing: string[] = [];
  const differences: VersionDifference[] = [];
  const use = (name: string, version: string | undefined, from: VersionOrigin, recorded: string | undefined, what: string): string => {
    if (version === undefined) {
      missing.push(what);
      return '';
    }
    if (recorded !== undefined && recorded !== version) differences.push({ package: name, used: version, recorded, from });
    return version;
  };

  const kernel = config.debian.kernelSource;
  const installedKernel = choices.installedKernel ? facts.installed(kernel.package) : undefined;
  const kernelFrom: VersionOrigin = installedKernel === undefined ? 'archive' : 'installed';
  const kernelVersion = use(kernel.package, installedKernel ?? facts.candidate(kernel.package), kernelFrom, kernel.version,
    `${kernel.package} (not installed${choices.installedKernel ? '' : ' or not to be used'}, and not in the archive)`);

  const sources: Record<string, string> = {};
  for (const [name, recorded] of Object.entries(config.debian.sources)) {
    sources[name] = use(name, facts.sourceCandidate(name), 'archive', recorded, `source package ${name} (not in the archive)`);
  }

  const packages: Record<string, string | null> = {};
  for (const [name, recorded] of Object.entries(config.debian.toolchain)) {
    if (choices.hostToolchain) {
      // The machine's compiler need not come from these packages: one not installed is no difference.
      const installed = facts.installed(name);
      packages[name] = installed ?? null;
      if (installed !== undefined && installed !== recorded) differences.push({ package: name, used: installed, recorded, from: 'installed' });
    } else {
      packages[name] = use(name, facts.candidate(name), 'archive', recorded, `${name} (no cross compiler installed, and not in the archive)`);
    }
  }

  if (missing.length > 0) throw new VersionError(`cannot build without ${missing.join('; ')}`);
  return {
    versions: {
      kernelSource: { package: kernel.package, version: kernelVersion, from: kernelFrom },
      sources,
      toolchain: { origin: choices.hostToolchain ? 'host' : 'debian', packages },
    },
    differences,
  };
}

/** The one warning line for versions guest/recipe.json does not record, or undefined when it records them all. */
export function versionWarning(differences: readonly VersionDifference[]): string | undefined {
  if (differences.length === 0) return undefined;
  const each = differences.map((d) => `${d.package} ${d.used} (${d.from}; recorded ${d.recorded})`);
  return `guest: warning: building with versions guest/recipe.json does not record: ${each.join(', ')}`;
}

/**
 * What of the used versions names the guest: the versions only. Where a version came from (installed or
 * downloaded, the machine's compiler or Debian's unpacked) does not change what is built from it.
 */
export function versionIdentity(versions: UsedVersions): unknown {
  return { kernelSource: { package: versions.kernelSource.package, version: versions.kernelSource.version }, sources: versions.sources, toolchain: versions.toolchain.packages };
}

/**
 * Debian's version order (deb-version(7)): epoch numerically, then upstream version and revision, each
 * compared as alternating non-digit parts (letters before other characters, `~` before everything, even
 * the end) and numbers. Negative, zero or positive as `a` sorts before, with or after `b`.
 */
export function compareDebianVersions(a: string, b: string): number {
  const split = (v: string): [number, string, string] => {
    const colon = v.indexOf(':');
    const epoch = colon < 0 ? 0 : Number(v.slice(0, colon));
    const rest = colon < 0 ? v : v.slice(colon + 1);
    const dash = rest.lastIndexOf('-');
    return dash < 0 ? [epoch, rest, ''] : [epoch, rest.slice(0, dash), rest.slice(dash + 1)];
  };
  const [ea, ua, ra] = split(a);
  const [eb, ub, rb] = split(b);
  if (ea !== eb) return ea - eb;
  return comparePart(ua, ub) || comparePart(ra, rb);
}

/** The order of one non-digit character: `~` first, then the end of the part, then letters, then the rest. */
function charOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function comparePart(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // The non-digit run, character by character.
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const ca = i < a.length && !/\d/.test(a[i]!) ? a[i] : undefined;
      const cb = j < b.length && !/\d/.test(b[j]!) ? b[j] : undefined;
      const diff = charOrder(ca) - charOrder(cb);
      if (diff !== 0) return diff;
      if (ca !== undefined) i++;
      if (cb !== undefined) j++;
    }
    // The digit run, as a number (leading zeros do not count).
    let na = '';
    let nb = '';
    while (i < a.length && /\d/.test(a[i]!)) na += a[i++];
    while (j < b.length && /\d/.test(b[j]!)) nb += b[j++];
    const diff = compareDigits(na, nb);
    if (diff !== 0) return diff;
  }
  return 0;
}

function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

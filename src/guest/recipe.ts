// The guest recipe: the files under guest/ and their hash, which names the cache entry of a build.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { versionIdentity, type UsedVersions } from './versions.js';

/**
 * Bump when the build code changes what it produces from the same recipe files (a new step, other compiler
 * flags, another image layout): the hash then changes and old cache entries are no longer used.
 */
export const RECIPE_FORMAT = 'mirrorball-guest/3';

/** Hex digits of the recipe hash used in directory names: 64 bits, plenty for a local cache. */
export const HASH_DIGITS = 16;

/** Names the hash never includes: editor and OS litter that is not part of the recipe. */
const IGNORED = /(^|\/)(\.DS_Store|[^/]*~|\.#[^/]*|[^/]*\.swp)$/;
const EXEC_BITS = 0o111;
/** The ext4 block sizes the guest kernel mounts: at most its 4 KiB page. */
export const EXT4_BLOCK_SIZES = [1024, 2048, 4096];
/** The root disk's block size when recipe.json does not give one. */
export const DEFAULT_DISK_BLOCK_SIZE = 4096;

export interface RecipeConfig {
  /** The versions below are the ones the last build used (versions.ts): the build follows the archive, and warns when they differ. */
  debian: {
    release: string;
    /** Source packages built here, name → Debian version last used. */
    sources: Record<string, string>;
    kernelSource: { package: string; version: string; tarball: string };
    /** Binary packages of the cross toolchain, downloaded when no cross compiler is installed: name → version last used. */
    toolchain: Record<string, string>;
  };
  /** Every timestamp in the images. */
  sourceDateEpoch: number;
  /**
   * The root disk (rootfs.ext4): its size, ext4 block size (1024, 2048 or 4096; default 4096, the page size,
   * so that a file system block is one guest page) and identity.
   */
  disk: { sizeMiB: number; blockSize?: number; uuid: string; hashSeed: string; label: string };
}

export interface RecipeFile {
  /** Relative to the recipe directory, '/'-separated. */
  path: string;
  executable: boolean;
  data: Buffer;
}

export interface Recipe {
  dir: string;
  /**
   * The hash of the recipe's files, recipe.json by its meaning: without its comment and the versions it
   * records, which enter a guest's hash only as the versions a build uses (guestHash).
   */
  hash: string;
  files: RecipeFile[];
  config: RecipeConfig;
}

export class RecipeError extends Error {}

/** The guest/ directory of this package: two levels up from this module, both from src/ (tests) and dist/. */
export function recipeDir(): string {
  return fileURLToPath(new URL('../../guest/', import.meta.url));
}

/** Every regular file under `dir`, sorted by path, with its content and executable bit. */
export function readRecipeFiles(dir: string): RecipeFile[] {
  const files: RecipeFile[] = [];
  const walk = (rel: string) => {
    const names = readdirSync(join(dir, rel)).sort();
    for (const name of names) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (IGNORED.test(path)) continue;
      const stat = statSync(join(dir, path));
      if (stat.isDirectory()) walk(path);
      else if (stat.isFile()) files.push({ path, executable: (stat.mode & EXEC_BITS) !== 0, data: readFileSync(join(dir, path)) });
    }
  };
  walk('');
  return files;
}

/**
 * The hash of a recipe: the format version, then for each file its path, executable bit, length and
 * bytes. Lengths make the encoding unambiguous, so no two different recipes hash the same input.
 */
export function hashRecipeFiles(files: readonly RecipeFile[]): string {
  const hash = createHash('sha256');
  hash.update(`${RECIPE_FORMAT}\n`);
  for (const file of files) {
    hash.update(`${file.path}\n${file.executable ? 'x' : '-'}\n${file.data.length}\n`);
    hash.update(file.data);
  }
  return hash.digest('hex').slice(0, HASH_DIGITS);
}

/** A short hash of any values, for naming cached intermediate steps. */
export function hashParts(parts: ReadonlyArray<string | Uint8Array>): string {
  const hash = createHash('sha256');
  for (const part of parts) {
    const bytes = typeof part === 'string' ? Buffer.from(part) : part;
    hash.update(`${bytes.length}\n`);
    hash.update(bytes);
  }
  return hash.digest('hex').slice(0, HASH_DIGITS);
}

export function loadRecipe(dir = recipeDir()): Recipe {
  let files: RecipeFile[];
  try {
    files = readRecipeFiles(dir);
  } catch (error) {
    throw new RecipeError(`cannot read the guest recipe in ${dir}: ${(error as Error).message}`);
  }
  const configFile = files.find((f) => f.path === 'recipe.json');
  if (configFile === undefined) throw new RecipeError(`${dir} has no recipe.json`);
  let config: RecipeConfig;
  try {
    config = JSON.parse(configFile.data.toString('utf8')) as RecipeConfig;
  } catch (error) {
    throw new RecipeError(`${join(dir, 'recipe.json')}: ${(error as Error).message}`);
  }
  validate(config);
  const hashed = files.map((f) => (f === configFile ? { ...f, data: Buffer.from(canonicalConfig(config)) } : f));
  return { dir, hash: hashRecipeFiles(hashed), files, config };
}

/** recipe.json as the build reads it: keys sorted, no comment, package names without their recorded versions. */
export function canonicalConfig(config: RecipeConfig): string {
  const names = (versions: Record<string, string>) => Object.keys(versions).sort();
  const { comment: _comment, ...rest } = config as RecipeConfig & { comment?: unknown };
  const { version: _version, ...kernelSource } = config.debian.kernelSource;
  const meaning = { ...rest, debian: { ...config.debian, sources: names(config.debian.sources), kernelSource, toolchain: names(config.debian.toolchain) } };
  return JSON.stringify(meaning, (_key, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value,
  );
}

/**
 * The hash naming a built guest (`<cache>/guest/<hash>`): the recipe, and the package versions the build
 * uses. Changing a version recorded in recipe.json changes nothing; the archive or the machine offering
 * another version does.
 */
export function guestHash(recipe: Pick<Recipe, 'hash'>, versions: UsedVersions): string {
  return hashParts([RECIPE_FORMAT, recipe.hash, JSON.stringify(versionIdentity(versions))]);
}

function validate(config: RecipeConfig): void {
  const problems: string[] = [];
  if (typeof config.debian?.release !== 'string') problems.push('debian.release must be a string');
  if (typeof config.debian?.sources !== 'object') problems.push('debian.sources must map package names to versions');
  if (typeof config.debian?.kernelSource?.version !== 'string') problems.push('debian.kernelSource.version must be a string');
  if (typeof config.debian?.toolchain !== 'object') problems.push('debian.toolchain must map package names to versions');
  if (!Number.isInteger(config.sourceDateEpoch) || config.sourceDateEpoch < 0) problems.push('sourceDateEpoch must be a non-negative integer');
  if (!Number.isInteger(config.disk?.sizeMiB) || config.disk.sizeMiB < 8) problems.push('disk.sizeMiB must be an integer of at least 8');
  if (config.disk?.blockSize !== undefined && !EXT4_BLOCK_SIZES.includes(config.disk.blockSize)) problems.push(`disk.blockSize must be one of ${EXT4_BLOCK_SIZES.join(', ')}`);
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  if (!uuid.test(config.disk?.uuid ?? '')) problems.push('disk.uuid must be a lower-case UUID');
  if (!uuid.test(config.disk?.hashSeed ?? '')) problems.push('disk.hashSeed must be a lower-case UUID');
  if (problems.length > 0) throw new RecipeError(`guest/recipe.json: ${problems.join('; ')}`);
}

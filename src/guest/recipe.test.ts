// Tests of recipe hashing and of finding a built guest in the cache.

import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveVersions } from './versions.js';
import { guestHash, hashParts, loadRecipe, readRecipeFiles, hashRecipeFiles, recipeDir, RecipeError, HASH_DIGITS, type RecipeConfig } from './recipe.js';
import { artifactDir, defaultCacheDir, findBuiltGuest, ARTIFACT_FILES } from './artifacts.js';

let work: string;
let recipe: string;

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'mb-recipe-'));
  recipe = join(work, 'guest');
  cpSync(recipeDir(), recipe, { recursive: true });
});

afterEach(() => rmSync(work, { recursive: true, force: true }));

const hashOf = (dir: string) => hashRecipeFiles(readRecipeFiles(dir));

describe('recipe hash', () => {
  it('is the same for the same files, wherever they are', () => {
    assert.equal(hashOf(recipe), hashOf(recipeDir()));
    assert.equal(loadRecipe(recipe).hash.length, HASH_DIGITS);
  });

  it('changes when any recipe file changes', () => {
    const before = hashOf(recipe);
    writeFileSync(join(recipe, 'kernel.config'), '# CONFIG_NUMA is not set\n', { flag: 'a' });
    assert.notEqual(hashOf(recipe), before);
  });

  it('changes when a file is added, renamed or made executable', () => {
    const before = hashOf(recipe);
    writeFileSync(join(recipe, 'workloads', 'extra.c'), 'int x;\n');
    const added = hashOf(recipe);
    assert.notEqual(added, before);
    rmSync(join(recipe, 'workloads', 'extra.c'));
    writeFileSync(join(recipe, 'workloads', 'other.c'), 'int x;\n');
    assert.notEqual(hashOf(recipe), added);
    rmSync(join(recipe, 'workloads', 'other.c'));
    assert.equal(hashOf(recipe), before);
    chmodSync(join(recipe, 'kernel.config'), 0o755);
    assert.notEqual(hashOf(recipe), before);
  });

  it('does not change when only the recorded versions, the comment or the layout of recipe.json change (the versions used are in the guest hash)', () => {
    const before = loadRecipe(recipe).hash;
    const path = join(recipe, 'recipe.json');
    const config = loadRecipe(recipe).config as RecipeConfig & { comment?: string };
    config.debian.sources.busybox = '1:1.36.1-1';
    config.debian.kernelSource.version = '6.1.999-1';
    config.debian.toolchain['binutils-riscv64-linux-gnu'] = '2.41-1';
    config.comment = 'another comment';
    writeFileSync(path, JSON.stringify(config));
    assert.equal(loadRecipe(recipe).hash, before);
  });

  it('changes when what the build reads of recipe.json changes: a package, the kernel tarball, the disk', () => {
    const path = join(recipe, 'recipe.json');
    const original = loadRecipe(recipe);
    const changed = (edit: (config: RecipeConfig) => void) => {
      const config = structuredClone(original.config);
      edit(config);
      writeFileSync(path, JSON.stringify(config));
      return loadRecipe(recipe).hash;
    };
    assert.notEqual(changed((c) => { c.debian.sources.zlib = '1:1.2.13.dfsg-1'; }), original.hash);
    assert.notEqual(changed((c) => { c.debian.toolchain['gcc-13-riscv64-linux-gnu'] = '13.2.0-1'; }), original.hash);
    assert.notEqual(changed((c) => { c.debian.kernelSource.package = 'linux-source-6.6'; }), original.hash);
    assert.notEqual(changed((c) => { c.disk.sizeMiB = 128; }), original.hash);
    assert.equal(changed(() => {}), original.hash);
  });

  it('ignores editor backup files', () => {
    const before = hashOf(recipe);
    writeFileSync(join(recipe, 'kernel.config~'), 'old');
    writeFileSync(join(recipe, '.kernel.config.swp'), 'swap');
    assert.equal(hashOf(recipe), before);
  });

  it('does not confuse a file boundary with content', () => {
    assert.notEqual(hashParts(['ab', 'c']), hashParts(['a', 'bc']));
  });

  it('rejects a recipe.json that is not valid', () => {
    writeFileSync(join(recipe, 'recipe.json'), JSON.stringify({ debian: {} }));
    assert.throws(() => loadRecipe(recipe), RecipeError);
    writeFileSync(join(recipe, 'recipe.json'), '{ not json');
    assert.throws(() => loadRecipe(recipe), RecipeError);
  });
});

describe('findBuiltGuest', () => {
  /** The machine of the tests: every package of the recipe installed or in the archive at the recorded version. */
  const config = loadRecipe().config;
  const versions = {
    facts: {
      installed: (name: string) => (name === config.debian.kernelSource.package ? config.debian.kernelSource.version : config.debian.toolchain[name]),
      candidate: () => undefined,
      sourceCandidate: (name: string) => config.debian.sources[name],
    },
    choices: { installedKernel: true, hostToolchain: true },
  };

  it('finds only a complete artifact directory named by the current hash and versions', () => {
    const cache = join(work, 'cache');
    assert.equal(findBuiltGuest(cache, versions), undefined);
    const hash = guestHash(loadRecipe(), resolveVersions(config, versions.facts, versions.choices).versions);
    const dir = artifactDir(cache, hash);
    mkdirSync(dir, { recursive: true });
    assert.equal(findBuiltGuest(cache, versions), undefined, 'no manifest yet: not a finished build');
    writeFileSync(join(dir, ARTIFACT_FILES.manifest), '{}');
    const found = findBuiltGuest(cache, versions);
    assert.equal(found?.dir, dir);
    assert.equal(found?.kernel, join(dir, 'Image'));
    assert.equal(found?.hash, hash);
    const moved = { ...versions, facts: { ...versions.facts, installed: (name: string) => (name === config.debian.kernelSource.package ? '6.1.999-1' : versions.facts.installed(name)) } };
    assert.equal(findBuiltGuest(cache, moved), undefined, 'another installed kernel source: another guest');
  });

  it('finds nothing, without an error, when no build has fetched the package lists', () => {
    assert.equal(findBuiltGuest(join(work, 'empty-cache'), { ...versions, facts: { ...versions.facts, sourceCandidate: () => undefined } }), undefined);
  });

  it('uses $MIRRORBALL_CACHE, then $XDG_CACHE_HOME', () => {
    const saved = { cache: process.env.MIRRORBALL_CACHE, xdg: process.env.XDG_CACHE_HOME };
    try {
      process.env.MIRRORBALL_CACHE = '/x/mb';
      process.env.XDG_CACHE_HOME = '/x/xdg';
      assert.equal(defaultCacheDir(), '/x/mb');
      delete process.env.MIRRORBALL_CACHE;
      assert.equal(defaultCacheDir(), join('/x/xdg', 'mirrorball'));
      delete process.env.XDG_CACHE_HOME;
      assert.match(defaultCacheDir(), /\.cache[/\\]mirrorball$/);
    } finally {
      if (saved.cache === undefined) delete process.env.MIRRORBALL_CACHE;
      else process.env.MIRRORBALL_CACHE = saved.cache;
      if (saved.xdg === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved.xdg;
    }
  });
});

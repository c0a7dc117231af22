// Tests of recipe hashing and of finding a built guest in the cache.

import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashParts, loadRecipe, readRecipeFiles, hashRecipeFiles, recipeDir, RecipeError, HASH_DIGITS } from './recipe.js';
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

  it('changes when a pinned package version changes', () => {
    const before = loadRecipe(recipe).hash;
    const path = join(recipe, 'recipe.json');
    const config = loadRecipe(recipe).config;
    config.debian.sources.busybox = '1:1.36.1-1';
    writeFileSync(path, JSON.stringify(config, null, 2));
    assert.notEqual(loadRecipe(recipe).hash, before);
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
  it('finds only a complete artifact directory named by the current hash', () => {
    const cache = join(work, 'cache');
    assert.equal(findBuiltGuest(cache), undefined);
    const dir = artifactDir(cache, loadRecipe().hash);
    mkdirSync(dir, { recursive: true });
    assert.equal(findBuiltGuest(cache), undefined, 'no manifest yet: not a finished build');
    writeFileSync(join(dir, ARTIFACT_FILES.manifest), '{}');
    const found = findBuiltGuest(cache);
    assert.equal(found?.dir, dir);
    assert.equal(found?.kernel, join(dir, 'Image'));
    assert.equal(found?.hash, loadRecipe().hash);
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

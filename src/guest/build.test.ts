// Tests of the build's cache behaviour: a cache hit builds nothing; a failed step names itself and leaves no guest.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ARTIFACT_FILES, artifactDir, findBuiltGuest } from './artifacts.js';
import { buildGuest, keepKernel, keptKernel, kernelKey } from './build.js';
import { guestHash, loadRecipe } from './recipe.js';
import { StepError } from './steps.js';
import { TOOLCHAIN_ENV } from './toolchain.js';
import { resolveVersions, type HostChoices, type PackageFacts } from './versions.js';

const work = mkdtempSync(join(tmpdir(), 'mb-build-'));
after(() => rmSync(work, { recursive: true, force: true }));
const quiet = { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream;
const hasApt = (() => {
  try {
    execFileSync('apt-get', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A machine with the recipe's kernel source installed at `kernel`, and everything else at the recorded versions. */
function machine(kernel: string): { facts: PackageFacts; choices: HostChoices } {
  const config = loadRecipe().config;
  return {
    facts: {
      installed: (name) => (name === config.debian.kernelSource.package ? kernel : config.debian.toolchain[name]),
      candidate: () => undefined,
      sourceCandidate: (name) => config.debian.sources[name],
    },
    choices: { installedKernel: true, hostToolchain: true },
  };
}

/** Marks the guest of these versions as built in `cache`. */
function finishedGuest(cache: string, versions: { facts: PackageFacts; choices: HostChoices }): string {
  const recipe = loadRecipe();
  const dir = artifactDir(cache, guestHash(recipe, resolveVersions(recipe.config, versions.facts, versions.choices).versions));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, ARTIFACT_FILES.manifest), '{}\n');
  return dir;
}

describe('guest build', () => {
  const recorded = loadRecipe().config.debian.kernelSource.version;
  const other = `${recorded}.1`;

  it('is a cache hit when the guest of the recipe and the versions of the machine is finished', async () => {
    const cache = join(work, 'hit');
    const dir = finishedGuest(cache, machine(recorded));
    const result = await buildGuest({ cacheDir: cache, out: quiet, versions: machine(recorded) });
    assert.equal(result.cached, true);
    assert.equal(result.artifacts.dir, dir);
    assert.ok(result.seconds < 1);
  });

  it('with another kernel source installed than the recipe records, uses that one: the guest of the installed version is the hit', async () => {
    const cache = join(work, 'installed');
    const dir = finishedGuest(cache, machine(other));
    assert.notEqual(dir, finishedGuest(join(work, 'recorded'), machine(recorded)), 'another version, another guest');
    const result = await buildGuest({ cacheDir: cache, out: quiet, versions: machine(other) });
    assert.equal(result.cached, true);
    assert.equal(result.artifacts.dir, dir);
  });

  it('resolves the versions again when it builds, warns in one line when they differ from the recipe\'s, and finds a guest built with them', async () => {
    const cache = join(work, 'stale');
    const versions = machine(other);
    const dir = finishedGuest(cache, versions);
    // The package lists before the build's update know nothing of busybox; after it, they do.
    const stale: PackageFacts = { ...versions.facts, sourceCandidate: () => undefined };
    const lines: string[] = [];
    const out = { isTTY: false, write: (text: string) => lines.push(text) > 0 };
    const result = await buildGuest({ cacheDir: cache, out, versions: { facts: stale, updated: versions.facts, choices: versions.choices } });
    assert.equal(result.cached, true);
    assert.equal(result.artifacts.dir, dir);
    const warnings = lines.join('').split('\n').filter((l) => l.includes('warning'));
    assert.deepEqual(warnings, [`guest: warning: building with versions guest/recipe.json does not record: linux-source-6.1 ${other} (installed; recorded ${recorded})`]);
  });

  it('a failed step (no package archive) names the step and its log, and leaves no guest behind', { skip: hasApt ? false : 'no apt-get' }, async () => {
    const cache = join(work, 'fail');
    const sources = join(work, 'nowhere.sources');
    writeFileSync(sources, `Types: deb\nURIs: file://${join(work, 'no-such-archive')}\nSuites: ${loadRecipe().config.debian.release}\nComponents: main\n`);
    const saved = { apt: process.env.MIRRORBALL_APT_SOURCES, toolchain: process.env[TOOLCHAIN_ENV] };
    process.env.MIRRORBALL_APT_SOURCES = sources;
    process.env[TOOLCHAIN_ENV] = 'debian';
    try {
      await assert.rejects(buildGuest({ cacheDir: cache, out: quiet, force: true }), (error: unknown) => {
        assert.ok(error instanceof StepError);
        assert.equal(error.step, 'versions');
        assert.match(error.message, /^guest build failed at step "[a-z-]+": apt-get update failed .* \(log: .*\.log\)$/);
        return true;
      });
    } finally {
      for (const [name, value] of [['MIRRORBALL_APT_SOURCES', saved.apt], [TOOLCHAIN_ENV, saved.toolchain]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
    assert.equal(findBuiltGuest(cache), undefined);
    const left = readdirSync(join(cache, 'guest'));
    assert.ok(left.every((name) => name.startsWith('.work-')), `left in the cache: ${left.join(', ')}`);
  });
});

describe('the kept kernel', () => {
  const tools = { origin: 'host' as const, version: 'riscv64-linux-gnu-gcc 12.2.0' };
  const fragment = new TextEncoder().encode('CONFIG_SMP=y\n');
  const source = { package: 'linux-source-6.1', version: '6.1.1-1' };

  it('is keyed by everything the Image is made from', () => {
    const key = kernelKey(source, fragment, tools, 1);
    assert.equal(kernelKey(source, fragment, tools, 1), key);
    assert.notEqual(kernelKey({ ...source, version: '6.1.1-2' }, fragment, tools, 1), key);
    assert.notEqual(kernelKey(source, new TextEncoder().encode('CONFIG_SMP=n\n'), tools, 1), key);
    assert.notEqual(kernelKey(source, fragment, { ...tools, version: 'riscv64-linux-gnu-gcc 13' }, 1), key);
    assert.notEqual(kernelKey(source, fragment, { ...tools, origin: 'debian' }, 1), key);
    assert.notEqual(kernelKey(source, fragment, tools, 2), key);
  });

  it('is found again after it was kept, and not before', () => {
    const cache = join(work, 'kernel');
    const key = kernelKey(source, fragment, tools, 1);
    assert.equal(keptKernel(cache, key), undefined);
    const image = join(work, 'Image');
    writeFileSync(image, 'not really a kernel');
    const kept = keepKernel(cache, key, { image, release: '6.1.0-test' });
    assert.deepEqual(keptKernel(cache, key), kept);
    assert.equal(kept.release, '6.1.0-test');
    assert.equal(readFileSync(kept.image, 'utf8'), 'not really a kernel');
    assert.deepEqual(readdirSync(join(cache, 'kernel')), [key], 'no partial directory left');
  });
});

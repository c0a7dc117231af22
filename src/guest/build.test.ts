// Tests of the build's cache behaviour: a cache hit builds nothing; a failed step names itself and leaves no guest.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ARTIFACT_FILES, artifactDir, findBuiltGuest } from './artifacts.js';
import { buildGuest, keepKernel, keptKernel, kernelKey } from './build.js';
import { loadRecipe } from './recipe.js';
import { StepError } from './steps.js';
import { TOOLCHAIN_ENV } from './toolchain.js';

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

describe('guest build', () => {
  it('is a cache hit when the recipe hash has a finished guest', async () => {
    const cache = join(work, 'hit');
    const dir = artifactDir(cache, loadRecipe().hash);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, ARTIFACT_FILES.manifest), '{}\n');
    const result = await buildGuest({ cacheDir: cache, out: quiet });
    assert.equal(result.cached, true);
    assert.equal(result.artifacts.dir, dir);
    assert.ok(result.seconds < 1);
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
        assert.ok(['toolchain', 'kernel-source'].includes(error.step), error.step);
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

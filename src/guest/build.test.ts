// Tests of the build's cache behaviour: a cache hit builds nothing; a failed step names itself and leaves no guest.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ARTIFACT_FILES, artifactDir, findBuiltGuest } from './artifacts.js';
import { buildGuest } from './build.js';
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

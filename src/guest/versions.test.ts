// Tests of which package versions a guest build uses: installed, else the archive's; the recorded ones only warn.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { manifestVersions } from './build.js';
import { guestHash, loadRecipe, type RecipeConfig } from './recipe.js';
import { compareDebianVersions, resolveVersions, VersionError, versionWarning, type HostChoices, type PackageFacts } from './versions.js';

/** A recipe as guest/recipe.json has it, with a small toolchain. */
function config(kernel = '6.1.192-2'): RecipeConfig {
  return {
    debian: {
      release: 'bookworm',
      sources: { busybox: '1:1.35.0-4+deb12u1', sqlite3: '3.40.1-2+deb12u2' },
      kernelSource: { package: 'linux-source-6.1', version: kernel, tarball: 'usr/src/linux-source-6.1.tar.xz' },
      toolchain: { 'gcc-12-riscv64-linux-gnu': '12.2.0-13cross1', 'libc6-dev-riscv64-cross': '2.36-8cross1' },
    },
    sourceDateEpoch: 1672531200,
    disk: { sizeMiB: 64, uuid: '6d697272-6f72-4261-8c6c-677565737400', hashSeed: '6d697272-6f72-4261-8c6c-686173680000', label: 'mirrorball' },
  };
}

/** Facts from tables: what is installed, the archive's binary candidates, its source packages. */
function facts(installed: Record<string, string>, candidates: Record<string, string>, sources: Record<string, string>): PackageFacts {
  return { installed: (n) => installed[n], candidate: (n) => candidates[n], sourceCandidate: (n) => sources[n] };
}

const ARCHIVE_SOURCES = { busybox: '1:1.35.0-4+deb12u1', sqlite3: '3.40.1-2+deb12u2' };
const TOOLCHAIN = { 'gcc-12-riscv64-linux-gnu': '12.2.0-13cross1', 'libc6-dev-riscv64-cross': '2.36-8cross1' };
const HOST: HostChoices = { installedKernel: true, hostToolchain: true };

describe('the versions a guest build uses', () => {
  it('builds the installed kernel source when the recipe records another version, and says so in one line', () => {
    const r = resolveVersions(config('6.1.192-2'), facts({ 'linux-source-6.1': '6.1.192-3', ...TOOLCHAIN }, { 'linux-source-6.1': '6.1.192-3' }, ARCHIVE_SOURCES), HOST);
    assert.deepEqual(r.versions.kernelSource, { package: 'linux-source-6.1', version: '6.1.192-3', from: 'installed' });
    assert.deepEqual(r.differences, [{ package: 'linux-source-6.1', used: '6.1.192-3', recorded: '6.1.192-2', from: 'installed' }]);
    const warning = versionWarning(r.differences);
    assert.equal(warning, 'guest: warning: building with versions guest/recipe.json does not record: linux-source-6.1 6.1.192-3 (installed; recorded 6.1.192-2)');
    assert.equal(manifestVersions(r.versions).debian.kernel, 'linux-source-6.1 6.1.192-3', 'the manifest records the version used');
  });

  it('prefers the installed kernel source to a newer one in the archive (nothing is downloaded)', () => {
    const r = resolveVersions(config('6.1.192-3'), facts({ 'linux-source-6.1': '6.1.192-3', ...TOOLCHAIN }, { 'linux-source-6.1': '6.1.200-1' }, ARCHIVE_SOURCES), HOST);
    assert.equal(r.versions.kernelSource.version, '6.1.192-3');
    assert.deepEqual(r.differences, []);
    assert.equal(versionWarning(r.differences), undefined);
  });

  it('without an installed kernel source (or told not to use it), takes the archive candidate, not the recorded version', () => {
    const archive = facts(TOOLCHAIN, { 'linux-source-6.1': '6.1.192-3' }, ARCHIVE_SOURCES);
    const r = resolveVersions(config('6.1.192-2'), archive, HOST);
    assert.deepEqual(r.versions.kernelSource, { package: 'linux-source-6.1', version: '6.1.192-3', from: 'archive' });
    const forced = resolveVersions(config('6.1.192-2'), facts({ 'linux-source-6.1': '6.1.192-2' }, { 'linux-source-6.1': '6.1.192-3', ...TOOLCHAIN }, ARCHIVE_SOURCES),
      { installedKernel: false, hostToolchain: false });
    assert.equal(forced.versions.kernelSource.version, '6.1.192-3');
    assert.equal(forced.versions.kernelSource.from, 'archive');
  });

  it('builds busybox and sqlite from the archive\'s version when the recorded one is gone', () => {
    const r = resolveVersions(config('6.1.192-3'), facts({ 'linux-source-6.1': '6.1.192-3' }, {}, { busybox: '1:1.35.0-4+deb12u2', sqlite3: '3.40.1-2+deb12u2' }), HOST);
    assert.deepEqual(r.versions.sources, { busybox: '1:1.35.0-4+deb12u2', sqlite3: '3.40.1-2+deb12u2' });
    assert.deepEqual(r.differences.map((d) => d.package), ['busybox']);
  });

  it('downloads the archive\'s toolchain versions without a cross compiler, and records the installed ones with it', () => {
    const newer = { 'gcc-12-riscv64-linux-gnu': '12.2.0-14cross1', 'libc6-dev-riscv64-cross': '2.36-9cross1' };
    const downloaded = resolveVersions(config(), facts({}, { 'linux-source-6.1': '6.1.192-2', ...newer }, ARCHIVE_SOURCES), { installedKernel: true, hostToolchain: false });
    assert.deepEqual(downloaded.versions.toolchain, { origin: 'debian', packages: newer });
    assert.equal(downloaded.differences.length, 2);
    // The machine's compiler need not come from Debian's packages: one not installed is no difference.
    const host = resolveVersions(config(), facts({ 'linux-source-6.1': '6.1.192-2', 'gcc-12-riscv64-linux-gnu': '12.2.0-13cross1' }, {}, ARCHIVE_SOURCES), HOST);
    assert.deepEqual(host.versions.toolchain, { origin: 'host', packages: { 'gcc-12-riscv64-linux-gnu': '12.2.0-13cross1', 'libc6-dev-riscv64-cross': null } });
    assert.deepEqual(host.differences, []);
  });

  it('fails with one message naming every package that is neither installed nor in the archive', () => {
    assert.throws(() => resolveVersions(config(), facts({}, {}, { busybox: '1:1.35.0-4+deb12u1' }), HOST), (error: unknown) => {
      assert.ok(error instanceof VersionError);
      assert.match(error.message, /linux-source-6\.1 \(not installed, and not in the archive\)/);
      assert.match(error.message, /source package sqlite3/);
      assert.doesNotMatch(error.message, /busybox/);
      return true;
    });
  });
});

describe('the guest hash', () => {
  const recipe = loadRecipe();
  const used = (kernel: string) => resolveVersions(config(), facts({ 'linux-source-6.1': kernel, ...TOOLCHAIN }, {}, ARCHIVE_SOURCES), HOST).versions;

  it('follows the versions used (recipe.test.ts: recording another version leaves the recipe hash alone)', () => {
    assert.notEqual(guestHash(recipe, used('6.1.192-3')), guestHash(recipe, used('6.1.192-2')));
    assert.equal(guestHash(recipe, used('6.1.192-3')), guestHash({ hash: recipe.hash }, used('6.1.192-3')));
    assert.notEqual(guestHash({ hash: '0000000000000000' }, used('6.1.192-3')), guestHash(recipe, used('6.1.192-3')));
  });

  it('does not depend on where a version came from', () => {
    const installed = used('6.1.192-3');
    const downloaded = { ...installed, kernelSource: { ...installed.kernelSource, from: 'archive' as const }, toolchain: { ...installed.toolchain, origin: 'debian' as const } };
    assert.equal(guestHash(recipe, downloaded), guestHash(recipe, installed));
  });
});

describe('Debian version order', () => {
  const ordered = ['0.9', '1.0~rc1', '1.0', '1.0-1', '1.0-1+deb12u1', '1.0-2', '1.0a', '1.0+b1', '1.01.1', '1.2', '1.10', '1:0.1', '2:0'];

  it('sorts versions as dpkg does (epochs, ~, letters before symbols, numbers by value)', () => {
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        assert.equal(Math.sign(compareDebianVersions(ordered[i]!, ordered[j]!)), Math.sign(i - j), `${ordered[i]} against ${ordered[j]}`);
      }
    }
    assert.ok(compareDebianVersions('6.1.192-3', '6.1.192-2') > 0);
    assert.ok(compareDebianVersions('1:1.35.0-4+deb12u1', '1.36.1-1') > 0, 'an epoch outweighs the rest');
    assert.equal(compareDebianVersions('1.01', '1.1'), 0, 'leading zeros do not count');
  });

  const dpkg = (() => {
    try {
      execFileSync('dpkg', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it('agrees with dpkg --compare-versions', { skip: dpkg ? false : 'no dpkg' }, () => {
    const part = fc.stringMatching(/^[0-9][0-9a-z.+~]{0,5}$/);
    fc.assert(
      fc.property(part, part, fc.option(fc.stringMatching(/^[0-9a-z.+~]{1,4}$/), { nil: undefined }), (a, b, revision) => {
        const x = a;
        const y = revision === undefined ? b : `${b}-${revision}`;
        const lt = (() => {
          try {
            execFileSync('dpkg', ['--compare-versions', x, 'lt', y], { stdio: 'ignore' });
            return true;
          } catch {
            return false;
          }
        })();
        assert.equal(compareDebianVersions(x, y) < 0, lt, `${x} < ${y}`);
      }),
      { numRuns: 60 },
    );
  });
});

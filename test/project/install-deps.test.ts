// scripts/install-deps on a machine whose apt is locked by another package manager (unattended upgrades on a
// freshly booted Debian): it waits, says what for, and goes on. Every command it runs is a stand-in on a
// minimal PATH in a temporary directory: nothing touches the real system.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../scripts/install-deps', import.meta.url));
/** Harmless tools the script uses, taken from the system as they are. */
const REAL_TOOLS = ['sh', 'grep', 'sed', 'awk', 'head', 'cat', 'mktemp', 'rm', 'dirname', 'env', 'id'];
const HOLDER = 'process 4242 (unattended-upgr)';

let dir: string;
let bin: string;

function tool(name: string, body: string): void {
  writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(bin, name), 0o755);
}

function which(name: string): string {
  for (const d of ['/usr/bin', '/bin', '/usr/local/bin']) if (existsSync(join(d, name))) return join(d, name);
  throw new Error(`no ${name} on this machine`);
}

/**
 * A machine where linux-source-6.1 is missing, and apt's locks are held for the first `updateHeld` runs of
 * `apt-get update` (which, like apt, does not wait) and the first `installHeld` lock checks of
 * `apt-get install` (which waits, once a second, when given DPkg::Lock::Timeout, and fails at once without).
 */
function standIns(updateHeld: number, installHeld: number): void {
  const calls = join(dir, 'apt-calls');
  tool('dpkg-query', `for last; do :; done\nif [ "$last" = linux-source-6.1 ]; then echo "dpkg-query: no packages found matching $last" >&2; exit 1; fi\nprintf 'install ok installed'`);
  tool('apt-get', [
    `echo "$*" >> ${calls}`,
    `n=$(grep -c . ${calls})`,
    'case " $* " in',
    `*" update "*) if [ "$(grep -c ' update' ${calls})" -le ${updateHeld} ]; then`,
    `    echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by ${HOLDER}" >&2`,
    '    echo "E: Unable to lock directory /var/lib/apt/lists/" >&2; exit 100; fi',
    '  echo "Reading package lists..."; exit 0 ;;',
    '*" install "*) case "$*" in *DPkg::Lock::Timeout=*) ;; *)',
    `    echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by ${HOLDER}" >&2; exit 100 ;; esac`,
    `  i=0; while [ $i -lt ${installHeld} ]; do echo "Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by ${HOLDER}..."; i=$((i + 1)); done`,
    '  echo "Setting up linux-source-6.1 (6.1.192-3) ..."; exit 0 ;;',
    'esac',
    'exit 64',
  ].join('\n'));
  tool('sudo', 'exec "$@"');
  tool('sleep', ':');
  tool('npm', `echo "$*" >> ${join(dir, 'npm-calls')}`);
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const name of REAL_TOOLS) symlinkSync(which(name), join(bin, name));
}

function installDeps(env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  // The script works in its checkout: a copy of it in the temporary directory, with no node_modules.
  const r = spawnSync(join(bin, 'sh'), [join(dir, 'scripts', 'install-deps')], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: bin, HOME: dir, TMPDIR: dir, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const aptCalls = () => readFileSync(join(dir, 'apt-calls'), 'utf8').trim().split('\n');

describe('scripts/install-deps with apt locked', () => {
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mb-install-deps-'));
    bin = join(dir, 'bin');
    mkdirSync(bin);
    mkdirSync(join(dir, 'scripts'));
    copyFileSync(SCRIPT, join(dir, 'scripts', 'install-deps'));
    writeFileSync(join(dir, 'package-lock.json'), '{}\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('waits for the package lists\' lock and for the dpkg lock, says once which lock and who holds it, and goes on', () => {
    standIns(2, 3);
    const r = installDeps();
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(lines, [
      'install-deps: installing linux-source-6.1',
      `install-deps: waiting up to 600 s for /var/lib/apt/lists/lock, held by ${HOLDER}`,
      'install-deps: the package lists are free; going on',
      `install-deps: waiting up to 600 s for /var/lib/dpkg/lock-frontend, held by ${HOLDER}`,
      'install-deps: the lock is free; going on',
    ]);
    assert.match(r.stdout, /Setting up linux-source-6\.1/);
    const calls = aptCalls();
    assert.equal(calls.filter((c) => / update$/.test(c)).length, 3, 'update tried until the lock was free');
    const install = calls.filter((c) => /(^| )install /.test(c));
    assert.equal(install.length, 1);
    assert.match(install[0]!, /-o DPkg::Lock::Timeout=600 .*linux-source-6\.1$/);
    assert.equal(readFileSync(join(dir, 'npm-calls'), 'utf8').trim(), 'ci --no-audit --no-fund', 'and then the npm packages');
  });

  it('gives up after the bound with the lock and its holder named, and a failing status', () => {
    standIns(1000, 0);
    const r = installDeps({ MIRRORBALL_APT_LOCK_WAIT: '20' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`install-deps: gave up after 20 s waiting for /var/lib/apt/lists/lock, held by ${HOLDER.replace(/[()]/g, '\\$&')}`));
    assert.equal(aptCalls().length, 5, 'tried every 5 s for 20 s');
    assert.ok(!existsSync(join(dir, 'npm-calls')));
  });
});

// Tests of reading the host's apt sources into the private sources of the build.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { forRelease, hostAptSources, PrivateApt, mergeSources, newestSourceVersions, parseDeb822Sources, parseOneLineSources, parsePolicyCandidates, renderSources } from './debian.js';

const DEB822 = `Types: deb
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/example.gpg

Types: deb
URIs: http://other.example/node
Suites: nodistro
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
`;

describe('apt sources', () => {
  it('reads deb822 stanzas, skipping disabled ones', () => {
    const sources = parseDeb822Sources(DEB822);
    assert.equal(sources.length, 2);
    assert.deepEqual(sources[0], { uris: ['http://archive.example/debian'], suites: ['bookworm', 'bookworm-updates'], components: ['main'], signedBy: '/usr/share/keyrings/example.gpg' });
  });

  it('reads one-line entries with options and comments', () => {
    const sources = parseOneLineSources('# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://a.example/debian bookworm-security main contrib\ndeb-src http://a.example/debian trixie main\n');
    assert.equal(sources.length, 2);
    assert.deepEqual(sources[0], { uris: ['http://a.example/debian'], suites: ['bookworm-security'], components: ['main', 'contrib'], signedBy: '/k.gpg' });
  });

  it('keeps only the suites of the release, and renders them as deb + deb-src', () => {
    const kept = forRelease([...parseDeb822Sources(DEB822), ...parseOneLineSources('deb http://b.example/debian trixie main\n')], 'bookworm');
    assert.equal(kept.length, 1);
    const text = renderSources(kept);
    assert.match(text, /^Types: deb deb-src$/m);
    assert.match(text, /^Suites: bookworm bookworm-updates$/m);
    assert.match(text, /^Signed-By: \/usr\/share\/keyrings\/example.gpg$/m);
  });
});

describe('our own sources list', () => {
  /** The (type, URI, suite, component) targets a sources text asks apt for: each must be there once. */
  const targets = (text: string) =>
    parseDeb822Sources(text).flatMap((s) => s.uris.map((u) => u.replace(/\/$/, '')).flatMap((u) => s.suites.flatMap((suite) => s.components.flatMap((c) => ['deb', 'deb-src'].map((t) => `${t} ${u} ${suite} ${c}`)))));

  it('names each archive suite once when the host has deb and deb-src lines, or the same archive in two files', () => {
    const oneLine = parseOneLineSources([
      'deb http://a.example/debian bookworm main',
      'deb-src http://a.example/debian bookworm main',
      'deb http://a.example/debian/ bookworm-updates main contrib',
      'deb-src http://a.example/debian bookworm-updates main',
      'deb http://s.example/debian-security bookworm-security main',
    ].join('\n'));
    const deb822 = parseDeb822Sources('Types: deb\nURIs: http://a.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n');
    const merged = mergeSources(forRelease([...oneLine, ...deb822], 'bookworm'));
    const all = targets(renderSources(merged));
    assert.equal(new Set(all).size, all.length, `a target twice in:\n${renderSources(merged)}`);
    assert.deepEqual(new Set(all), new Set(targets(renderSources([...oneLine, ...deb822]))), 'and every target is still there');
    assert.ok(merged.length <= 3, `few stanzas: ${merged.length}`);
  });

  it('is what the build writes from the host\'s sources (MIRRORBALL_APT_SOURCES here): no target twice', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mb-sources-'));
    const saved = process.env.MIRRORBALL_APT_SOURCES;
    try {
      const file = join(dir, 'host.sources');
      writeFileSync(file, 'Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\nComponents: main\n\nTypes: deb-src\nURIs: http://a.example/debian\nSuites: bookworm\nComponents: main\n');
      process.env.MIRRORBALL_APT_SOURCES = file;
      const all = targets(renderSources(hostAptSources('bookworm')));
      assert.deepEqual(all, ['deb http://a.example/debian bookworm main', 'deb-src http://a.example/debian bookworm main']);
    } finally {
      if (saved === undefined) delete process.env.MIRRORBALL_APT_SOURCES;
      else process.env.MIRRORBALL_APT_SOURCES = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps one archive\'s suites with the same components in one stanza', () => {
    const merged = mergeSources(parseDeb822Sources(DEB822));
    assert.deepEqual(merged[0]?.suites, ['bookworm', 'bookworm-updates']);
  });
});

describe('what apt-cache says', () => {
  it('reads the candidate of each package from apt-cache policy, skipping (none)', () => {
    const text = [
      'linux-source-6.1:',
      '  Installed: 6.1.192-3',
      '  Candidate: 6.1.192-3',
      '  Version table:',
      ' *** 6.1.192-3 500',
      '        500 http://a.example/debian-security bookworm-security/main amd64 Packages',
      '     6.1.192-2 500',
      'gcc-12-riscv64-linux-gnu:',
      '  Installed: (none)',
      '  Candidate: 12.2.0-13cross1',
      'gone-package:',
      '  Installed: (none)',
      '  Candidate: (none)',
    ].join('\n');
    assert.deepEqual(parsePolicyCandidates(text), new Map([['linux-source-6.1', '6.1.192-3'], ['gcc-12-riscv64-linux-gnu', '12.2.0-13cross1']]));
  });

  it('takes the newest version of each source package from apt-cache showsrc records', () => {
    const record = (name: string, version: string) => `Package: ${name}\nBinary: ${name}, ${name}-static\nVersion: ${version}\nFormat: 3.0 (quilt)\n`;
    const text = [record('busybox', '1:1.35.0-4+deb12u1'), record('busybox', '1:1.35.0-4+deb12u2'), record('busybox', '1:1.35.0-4'), record('sqlite3', '3.40.1-2+deb12u2')].join('\n');
    assert.deepEqual(newestSourceVersions(text), new Map([['busybox', '1:1.35.0-4+deb12u2'], ['sqlite3', '3.40.1-2+deb12u2']]));
  });
});

describe('apt-cache over our lists', () => {
  it('asks apt-cache once while the lists are the same, and again when an update changed them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mb-apt-cache-'));
    const saved = process.env.PATH;
    try {
      // A stand-in apt-cache that counts its calls and answers like apt-cache policy.
      const bin = join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'apt-cache'), `#!/bin/sh\necho x >> "${join(dir, 'calls')}"\nprintf 'linux-source-6.1:\\n  Candidate: 6.1.192-3\\n'\n`, { mode: 0o755 });
      process.env.PATH = `${bin}:${saved ?? ''}`;
      const apt = new PrivateApt(join(dir, 'apt'), 'bookworm');
      const calls = () => (existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').split('\n').length - 1 : 0);
      assert.deepEqual(apt.candidates(['linux-source-6.1']), new Map(), 'no lists yet: no answer, and no call');
      assert.equal(calls(), 0);
      mkdirSync(join(dir, 'apt', 'lists'), { recursive: true });
      const list = join(dir, 'apt', 'lists', 'a.example_dists_bookworm_main_binary-amd64_Packages.lz4');
      writeFileSync(list, 'one');
      assert.deepEqual(apt.candidates(['linux-source-6.1']), new Map([['linux-source-6.1', '6.1.192-3']]));
      assert.deepEqual(apt.candidates(['linux-source-6.1']), new Map([['linux-source-6.1', '6.1.192-3']]));
      assert.equal(calls(), 1, 'the second answer was kept');
      writeFileSync(list, 'changed by an update');
      apt.candidates(['linux-source-6.1']);
      assert.equal(calls(), 2);
    } finally {
      process.env.PATH = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});


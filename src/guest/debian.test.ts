// Tests of reading the host's apt sources into the private sources of the build.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forRelease, parseDeb822Sources, parseOneLineSources, renderSources } from './debian.js';

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

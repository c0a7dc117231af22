// Tests of the private files: modes under umask 000, and a user's existing file left as the user made it.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenPrivately, makePrivateDirectory, openPrivateFile } from './private-files.js';

const directory = mkdtempSync(join(tmpdir(), 'mirrorball-private-'));
const mode = (path: string): number => statSync(path).mode & 0o777;
let umask: number;

before(() => { umask = process.umask(0); }); // the worst case: nothing taken away from what is asked for
after(() => {
  process.umask(umask);
  rmSync(directory, { recursive: true, force: true });
});

describe('private files', () => {
  it('creates files 0600; an existing file keeps its mode unless it is ours', () => {
    const fresh = join(directory, 'fresh.log');
    closeSync(openPrivateFile(fresh, 'w'));
    assert.equal(mode(fresh), 0o600);
    const users = join(directory, 'users.log');
    writeFileSync(users, 'old', { mode: 0o644 });
    closeSync(openPrivateFile(users, 'a'));
    assert.equal(mode(users), 0o644, 'a path the user gave: the user chose its mode');
    const earlier = join(directory, 'earlier.console.log');
    writeFileSync(earlier, 'old', { mode: 0o644 });
    closeSync(openPrivateFile(earlier, 'w', true));
    assert.equal(mode(earlier), 0o600, 'our own file from an earlier run');
  });

  it('creates every missing directory 0700 and leaves an existing one alone', () => {
    const existing = join(directory, 'existing');
    mkdirSync(existing, { mode: 0o755 });
    makePrivateDirectory(join(existing, 'a', 'b'));
    assert.deepEqual([mode(existing), mode(join(existing, 'a')), mode(join(existing, 'a', 'b'))], [0o755, 0o700, 0o700]);
  });

  it('binds a socket 0600 and gives the umask back', async () => {
    const server = createServer();
    const path = join(directory, 'control.sock');
    await new Promise<void>((resolve) => listenPrivately(server, path, resolve));
    assert.equal(mode(path), 0o600);
    assert.equal(process.umask(), 0);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { TokenFileError, loadToken, newToken } from './token.js';

const dir = mkdtempSync(join(tmpdir(), 'mb-token-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the web token file', () => {
  it('is made once, 0600, and read back the same', () => {
    const path = join(dir, 'web.token');
    const token = loadToken(path);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(loadToken(path), token);
    assert.notEqual(newToken(), newToken());
  });

  it('replaces a token others could read, and makes the file 0600', () => {
    const path = join(dir, 'open.token');
    writeFileSync(path, `${'a'.repeat(43)}\n`);
    chmodSync(path, 0o644);
    const token = loadToken(path);
    assert.notEqual(token, 'a'.repeat(43));
    assert.equal(readFileSync(path, 'utf8').trim(), token);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it('refuses a file that holds no token, and leaves it alone', () => {
    const path = join(dir, 'junk.token');
    writeFileSync(path, 'not a token at all\n', { mode: 0o600 });
    assert.throws(() => loadToken(path), (e: unknown) => e instanceof TokenFileError && /does not hold a token/.test(e.message));
    assert.equal(readFileSync(path, 'utf8'), 'not a token at all\n');
  });
});

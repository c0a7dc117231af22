// The dashboard's token (docs/dashboard.md): a secret every web client must show before any command or
// console. `up` keeps it in its run directory (web.token, 0600), so an `up` started again in the same
// directory has the same token and an open page reconnects; `run` makes one per run and keeps it in memory.

import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { PRIVATE_FILE_MODE, openPrivateFile } from '../private-files.js';

/** 32 random bytes, URL-safe: it goes into the page's URL fragment. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

const TOKEN_SHAPE = /^[A-Za-z0-9_-]{32,128}$/;

export class TokenFileError extends Error {}

/**
 * The token kept in `path`: read when the file holds one, else a new one written there (0600). A file
 * that others may read is made 0600 and its token replaced: it may have been seen. A file that is not a
 * token is an error (one line), left alone.
 */
export function loadToken(path: string): string {
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new TokenFileError(`web token '${path}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (text !== undefined) {
    const token = text.trim();
    if (!TOKEN_SHAPE.test(token)) throw new TokenFileError(`web token '${path}' does not hold a token; remove it and a new one is made`);
    const fd = openSync(path, 'r');
    try {
      if ((fstatSync(fd).mode & 0o077) === 0) return token;
      fchmodSync(fd, PRIVATE_FILE_MODE);
    } finally {
      closeSync(fd);
    }
  }
  const token = newToken();
  const fd = openPrivateFile(path, 'w', true);
  try {
    writeSync(fd, `${token}\n`);
  } finally {
    closeSync(fd);
  }
  return token;
}

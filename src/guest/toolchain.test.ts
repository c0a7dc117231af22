import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkCompiler } from './toolchain.js';

// Fake compilers: shell scripts that answer --version and succeed or fail at preprocessing.
const dir = mkdtempSync(join(tmpdir(), 'mb-toolchain-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function fakeGcc(name: string, preprocesses: boolean): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\nif [ "$1" = --version ]; then echo "${name} (fake) 12.2.0"; exit 0; fi\n` +
    (preprocesses ? 'cat >/dev/null; exit 0\n' : 'echo "fatal error: bits/libc-header-start.h: No such file or directory" >&2; exit 1\n'));
  chmodSync(path, 0o755);
  return path;
}

describe('checkCompiler', () => {
  const env = { ...process.env, PATH: `${dir}${delimiter}${process.env.PATH ?? ''}` };

  it('accepts a compiler that finds the C library headers', () => {
    assert.deepEqual(checkCompiler(fakeGcc('good-gcc', true), env), { version: 'good-gcc (fake) 12.2.0' });
  });

  it('refuses a compiler installed without the C library (apt without recommends), naming the package', () => {
    const result = checkCompiler(fakeGcc('bare-gcc', false), env);
    assert.ok('problem' in result);
    assert.match(result.problem, /no C library headers \(libc6-dev-riscv64-cross is missing\)/);
  });

  it('says so when there is no compiler at all', () => {
    const result = checkCompiler(join(dir, 'absent-gcc'), env);
    assert.ok('problem' in result);
    assert.match(result.problem, /^no .*absent-gcc on PATH$/);
  });
});

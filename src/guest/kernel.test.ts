// Tests of the kernel step's measure of progress: objects compiled, out of the previous build's total.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isObjectLine, objectProgress } from './kernel.js';

describe('kernel build progress', () => {
  it('counts the objects kbuild reports compiling or assembling, and nothing else', () => {
    assert.ok(isObjectLine('  CC      kernel/fork.o'));
    assert.ok(isObjectLine('  AS      arch/riscv/kernel/head.o'));
    for (const line of ['  HOSTCC  scripts/basic/fixdep', '  AR      kernel/built-in.a', '  CC      scripts/mod/devicetable-offsets.s', '  LD      vmlinux.o', 'make[1]: Entering directory', '']) {
      assert.ok(!isObjectLine(line), line);
    }
  });

  it('says objects out of the last build\'s total, and copes with a first build or a bigger one', () => {
    assert.equal(objectProgress(312, 725), '312/725 objects (43 %)');
    assert.equal(objectProgress(312, undefined), '312 objects');
    assert.equal(objectProgress(800, 725), '800 objects (725 last time)');
  });
});

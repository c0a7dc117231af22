// Tests of the kernel step's measure of progress: objects compiled, out of the previous build's total.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultCacheDir, findBuiltGuest } from './artifacts.js';
import { isObjectLine, kernelPatches, objectProgress, patchedFiles, patchedKernelSource, vdsoRelocations } from './kernel.js';
import { loadRecipe, recipeDir } from './recipe.js';
import { StepRunner } from './steps.js';

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

describe('kernel patches', () => {
  const file = (path: string, text: string) => ({ path, executable: false, data: Buffer.from(text) });

  it('takes guest/kernel-patches/*.patch in name order, and nothing else', () => {
    const files = [file('kernel-patches/0002-b.patch', ''), file('kernel.config', ''), file('kernel-patches/0001-a.patch', ''), file('kernel-patches/README', '')];
    assert.deepEqual(kernelPatches(files).map((f) => f.path), ['kernel-patches/0001-a.patch', 'kernel-patches/0002-b.patch']);
  });

  it('finds the files a patch changes, after its description', () => {
    const text = 'what and why\n\n--- a/arch/x.h\n+++ b/arch/x.h\n@@ -1 +1 @@\n-a\n+b\n--- a/y.c\t2026-01-01\n+++ b/y.c\t2026-01-01\n';
    assert.deepEqual(patchedFiles(text), ['arch/x.h', 'y.c']);
    assert.deepEqual(patchedFiles('no diff here\n'), []);
  });

  it('the recipe\'s patches apply to a copy of the tree and leave the unpacked tree as it was', async (t) => {
    const recipe = loadRecipe(recipeDir());
    const patches = kernelPatches(recipe.files);
    assert.ok(patches.length > 0, 'the recipe has kernel patches');
    const work = mkdtempSync(join(tmpdir(), 'mb-kpatch-'));
    t.after(() => rmSync(work, { recursive: true, force: true }));
    // A stand-in tree holding only the files the patches change, taken from the unpacked source when it is here.
    const source = join(defaultCacheDir(), 'src', `${recipe.config.debian.kernelSource.package}-${recipe.config.debian.kernelSource.version}`);
    const targets = patches.flatMap((p) => patchedFiles(p.data.toString('utf8')));
    if (!targets.every((f) => existsSync(join(source, f)))) return t.skip('the unpacked kernel source is not in the cache');
    const pristine = join(work, 'linux');
    for (const f of targets) {
      mkdirSync(dirname(join(pristine, f)), { recursive: true });
      copyFileSync(join(source, f), join(pristine, f));
    }
    const before = targets.map((f) => readFileSync(join(pristine, f), 'utf8'));
    const runner = new StepRunner(join(work, 'logs'), { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream);
    const tree = await runner.step('kernel-source', (log) => patchedKernelSource(log, pristine, recipe.dir, patches));
    runner.finish();
    assert.notEqual(tree, pristine);
    assert.deepEqual(targets.map((f) => readFileSync(join(pristine, f), 'utf8')), before, 'the unpacked tree is unchanged');
    const vdso = readFileSync(join(tree, 'arch/riscv/include/asm/vdso/processor.h'), 'utf8');
    assert.doesNotMatch(vdso, /static_branch/);
    assert.match(vdso, /0x100000F/);
  });
});

describe('the vDSO in a kernel Image', () => {
  /** A page of padding, then a minimal RISC-V ELF64 shared object with one SHT_RELA section of `relocations` entries. */
  function imageWithVdso(relocations: number, machine = 0xf3): Uint8Array {
    const image = new Uint8Array(4096 + 64 + 2 * 64);
    const v = new DataView(image.buffer);
    const at = 4096;
    image.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], at);
    v.setUint16(at + 16, 3, true);
    v.setUint16(at + 18, machine, true);
    v.setBigUint64(at + 40, 64n, true);
    v.setUint16(at + 58, 64, true);
    v.setUint16(at + 60, 2, true);
    const rela = at + 64 + 64;
    v.setUint32(rela + 4, 4, true);
    v.setBigUint64(rela + 32, BigInt(24 * relocations), true);
    v.setBigUint64(rela + 56, 24n, true);
    return image;
  }

  it('counts its dynamic relocations; an Image without one says so', () => {
    assert.equal(vdsoRelocations(imageWithVdso(1)), 1);
    assert.equal(vdsoRelocations(imageWithVdso(0)), 0);
    assert.equal(vdsoRelocations(imageWithVdso(1, 0x3e)), undefined, 'not a RISC-V object');
    assert.equal(vdsoRelocations(new Uint8Array(8192)), undefined);
  });

  it('the built guest\'s vDSO needs no relocation', (t) => {
    const guest = findBuiltGuest();
    if (guest === undefined) return t.skip('no guest built');
    assert.equal(vdsoRelocations(readFileSync(guest.kernel)), 0);
  });
});

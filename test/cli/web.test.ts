// `mirrorball web build` and `web serve` as a user meets them (the page booting in a browser is test/e2e/web-tab.test.ts).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CLI } from '../helpers/run-process.js';
import { mirrorballEach } from '../helpers/cli-batch.js';

function mirrorball(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('mirrorball web', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-web-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // Stand-ins for the guest: the build copies them, it does not boot them.
  const kernel = join(dir, 'Image');
  const initrd = join(dir, 'initramfs.cpio');
  writeFileSync(kernel, Buffer.alloc(4096, 1));
  writeFileSync(initrd, Buffer.alloc(2048, 2));
  const out = join(dir, 'page');

  it('build bundles the page and its worker for the browser and copies the guest', () => {
    const r = mirrorball('web', 'build', '--out', out, '--kernel', kernel, '--initrd', initrd, '--append', 'console=ttyS0 quiet');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), out);
    for (const file of ['index.html', 'main.js', 'worker.js', 'xterm.css', 'tab.css', 'main.css']) assert.ok(existsSync(join(out, file)), file);
    assert.deepEqual(readFileSync(join(out, 'guest', 'Image')), readFileSync(kernel));
    assert.deepEqual(readFileSync(join(out, 'guest', 'initramfs.cpio')), readFileSync(initrd));
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'guest', 'manifest.json'), 'utf8')),
      { kernel: 'guest/Image', initrd: 'guest/initramfs.cpio', append: 'console=ttyS0 quiet' });
    const worker = readFileSync(join(out, 'worker.js'), 'utf8');
    // The worker holds the machine itself (bundled, not imported from a server) and nothing of Node.
    assert.match(worker, /var Machine = class|class Machine\b/);
    assert.match(worker, /function bootLinux\b/);
    assert.doesNotMatch(worker, /from\s*["']node:|require\(["']node:/);
    assert.match(readFileSync(join(out, 'main.js'), 'utf8'), /xterm-helper-textarea/, 'xterm is bundled into the page');
  });

  it('build again into its own folder, but not into one with other files', () => {
    assert.equal(mirrorball('web', 'build', '--out', out, '--kernel', kernel, '--initrd', initrd).status, 0);
    const other = join(dir, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'notes.txt'), 'mine');
    const r = mirrorball('web', 'build', '--out', other, '--kernel', kernel, '--initrd', initrd);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^mirrorball: --out '.*other' holds other files/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const missing = mirrorball('web', 'build', '--out', join(dir, 'x'), '--kernel', join(dir, 'nope'), '--initrd', initrd);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^mirrorball: kernel '.*nope': no such file\n$/);
  });

  it('serve listens on 127.0.0.1, sends the page cross-origin isolated, and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [CLI, 'web', 'serve', '--dir', out, '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let text = '';
        child.stdout.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          const line = /^(http:\/\/\S+)\n/.exec(text);
          if (line !== null) resolve(line[1]!);
        });
        child.once('exit', (code) => reject(new Error(`serve exited (${code})`)));
      });
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await fetch(url);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(page.headers.get('cross-origin-opener-policy'), 'same-origin');
      assert.equal(page.headers.get('cross-origin-embedder-policy'), 'require-corp');
      assert.match(await page.text(), /<script type="module" src="main.js">/);
      const worker = await fetch(new URL('worker.js', url));
      assert.equal(worker.headers.get('content-type'), 'text/javascript; charset=utf-8');
      await worker.arrayBuffer();
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    }
  });

  it('serve refuses a folder without a page and an address it cannot use: one line each', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const cases = [
      [['--dir', empty, '0'], /has no index.html/],
      [['--dir', join(dir, 'none'), '0'], /no such folder/],
      [['--dir', out, 'port'], /'port' is not \[ADDR:\]PORT/],
      [['--dir', out, '192.0.2.1:0'], /cannot listen on 192.0.2.1:0: no such address here/],
    ] as const;
    // Each through the command line's main, all in one process (its start-up once).
    const results = mirrorballEach(cases.map(([args]) => ['web', 'serve', ...args]));
    for (const [i, [, pattern]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});

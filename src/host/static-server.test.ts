import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mimeType, resolveRequestPath, serveStatic, type StaticServer } from './static-server.js';

/** A folder to serve (site/) next to a secret it must never give out. */
function fixture(): { top: string; root: string } {
  const top = realpathSync(mkdtempSync(join(tmpdir(), 'mb-static-')));
  const root = join(top, 'site');
  mkdirSync(join(root, 'guest'), { recursive: true });
  writeFileSync(join(root, 'index.html'), '<p>page</p>');
  writeFileSync(join(root, 'main.js'), 'export {};');
  writeFileSync(join(root, 'guest', 'Image'), Buffer.alloc(1000, 7));
  writeFileSync(join(top, 'secret.txt'), 'secret');
  symlinkSync(join(top, 'secret.txt'), join(root, 'link-out'));
  symlinkSync(join(root, 'main.js'), join(root, 'link-in.js'));
  return { top, root };
}

describe('resolveRequestPath', () => {
  const { top, root } = fixture();
  after(() => rmSync(top, { recursive: true, force: true }));

  it('names files in the folder, a directory by its index.html, and ignores the query', () => {
    assert.deepEqual(resolveRequestPath(root, '/'), { kind: 'file', path: join(root, 'index.html') });
    assert.deepEqual(resolveRequestPath(root, '/guest/Image?x=1'), { kind: 'file', path: join(root, 'guest', 'Image') });
    assert.deepEqual(resolveRequestPath(root, '/link-in.js'), { kind: 'file', path: join(root, 'main.js') });
    assert.deepEqual(resolveRequestPath(root, '/nothing.js'), { kind: 'missing' });
    assert.deepEqual(resolveRequestPath(root, '/guest'), { kind: 'missing' }, 'a directory without index.html');
  });

  it('refuses every way out of the folder', () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/guest/..%2f..%2fsecret.txt', '/guest/%2E%2E/%2e%2e/secret.txt',
      '/..%5csecret.txt', '/link-out', '/%00', '/%zz', 'secret.txt', '/./index.html']) {
      assert.deepEqual(resolveRequestPath(root, path), { kind: 'outside' }, path);
    }
  });
});

describe('mimeType', () => {
  it('sends the page, scripts and styles as what they are and the guest as bytes', () => {
    assert.equal(mimeType('a/index.html'), 'text/html; charset=utf-8');
    assert.equal(mimeType('main.js'), 'text/javascript; charset=utf-8');
    assert.equal(mimeType('xterm.css'), 'text/css; charset=utf-8');
    assert.equal(mimeType('guest/manifest.json'), 'application/json');
    assert.equal(mimeType('guest/Image'), 'application/octet-stream');
    assert.equal(mimeType('guest/initramfs.cpio'), 'application/octet-stream');
  });
});

/** A raw request: the path goes out exactly as written (no client normalizes it). */
function get(url: string, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = request({ host: target.hostname, port: target.port, path, method }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serveStatic', () => {
  const { top, root } = fixture();
  let server: StaticServer;
  before(async () => { server = await serveStatic(root, '127.0.0.1', 0); });
  after(async () => { await server.close(); rmSync(top, { recursive: true, force: true }); });

  it('listens on 127.0.0.1 and answers with the isolation headers, the type and the length', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    for (const [path, type, length] of [['/', 'text/html; charset=utf-8', 11], ['/main.js', 'text/javascript; charset=utf-8', 10], ['/guest/Image', 'application/octet-stream', 1000]] as const) {
      const r = await get(server.url, path);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin');
      assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp');
      assert.equal(r.headers['content-type'], type);
      assert.equal(r.headers['content-length'], String(length));
      assert.equal(r.body.length, length);
    }
  });

  it('refuses paths outside the folder with 403, and missing files with 404, never the secret', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/guest/..%2f..%2fsecret.txt', '/link-out']) {
      const r = await get(server.url, path);
      assert.equal(r.status, 403, path);
      assert.doesNotMatch(r.body, /secret$/m);
    }
    assert.equal((await get(server.url, '/nothing.js')).status, 404);
  });

  it('answers HEAD without a body and refuses other methods', async () => {
    const head = await get(server.url, '/guest/Image', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '1000');
    assert.equal(head.body, '');
    const post = await get(server.url, '/', 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });
});

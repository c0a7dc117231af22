// A static folder over HTTP for the browser build (docs/browser.md): cross-origin isolated, read-only, and
// never a file outside the folder.

import { createReadStream, realpathSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';

/** The headers that make the page cross-origin isolated, so that it may use SharedArrayBuffer. */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

/** The type a file is sent as: by its extension, else bytes (a kernel Image, an initramfs). */
export function mimeType(path: string): string {
  return MIME_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/** What a request path names: a file to send, nothing there, or a place outside the folder (refused). */
export type RequestTarget = { kind: 'file'; path: string } | { kind: 'missing' } | { kind: 'outside' };

/**
 * What a request path names under `root` (a real path, as realpathSync gives). Outside, and refused: a segment
 * that is `.` or `..` or holds a slash, backslash or NUL once decoded, bad percent-encoding, or a path that
 * leaves the folder through a symbolic link. A directory is its index.html.
 */
export function resolveRequestPath(root: string, requestPath: string): RequestTarget {
  const path = requestPath.split('?')[0]!.split('#')[0]!;
  if (!path.startsWith('/')) return { kind: 'outside' };
  const segments: string[] = [];
  for (const raw of path.split('/').slice(1)) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return { kind: 'outside' };
    }
    if (segment === '') continue;
    if (segment === '.' || segment === '..' || /[/\\\0]/.test(segment)) return { kind: 'outside' };
    segments.push(segment);
  }
  let real: string;
  try {
    real = realpathSync(join(root, ...segments));
    if (statSync(real).isDirectory()) real = realpathSync(join(real, 'index.html'));
  } catch {
    return { kind: 'missing' };
  }
  if (real !== root && !real.startsWith(root + sep)) return { kind: 'outside' };
  return statSync(real).isFile() ? { kind: 'file', path: real } : { kind: 'missing' };
}

export interface StaticServer {
  /** Where it listens, as a browser's address: http://ADDR:PORT/ */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `dir` on `host`:`port` (0: any free port) until closed. Rejects when it cannot listen. */
export async function serveStatic(dir: string, host: string, port: number): Promise<StaticServer> {
  const root = realpathSync(dir);
  const server = createServer((request, response) => answer(root, request, response));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the server has no TCP address');
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { url: `http://${shown}:${address.port}/`, close: () => closeServer(server) };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function answer(root: string, request: IncomingMessage, response: ServerResponse): void {
  const headers = { ...ISOLATION_HEADERS, 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-cache' };
  const refuse = (status: number, text: string, extra: Record<string, string> = {}): void => {
    response.writeHead(status, { ...headers, ...extra, 'Content-Type': 'text/plain; charset=utf-8' });
    response.end(`${text}\n`);
  };
  if (request.method !== 'GET' && request.method !== 'HEAD') return refuse(405, 'only GET and HEAD', { Allow: 'GET, HEAD' });
  const target = resolveRequestPath(root, request.url ?? '');
  if (target.kind === 'outside') return refuse(403, 'outside the served folder');
  if (target.kind === 'missing') return refuse(404, 'not found');
  const file = target.path;
  const size = statSync(file).size;
  response.writeHead(200, { ...headers, 'Content-Type': mimeType(file), 'Content-Length': String(size) });
  if (request.method === 'HEAD') {
    response.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on('error', () => response.destroy());
  stream.pipe(response);
}

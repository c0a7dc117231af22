// The dashboard page's files (src/web/dashboard/), bundled by esbuild in memory when a web server starts:
// the TypeScript, @xterm/xterm and uPlot into one script, their styles into one sheet.

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { WebFile } from './server.js';

/** Where the page's sources are: src/web/dashboard, from this file in src/host/web or dist/host/web. */
export function dashboardSources(): string {
  return join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'src', 'web', 'dashboard');
}

/** The page's files by URL path: '/', '/dashboard.js', '/dashboard.css'. */
export async function dashboardFiles(): Promise<Map<string, WebFile>> {
  const dir = dashboardSources();
  const result = await build({
    entryPoints: [join(dir, 'main.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    outdir: '/out',
    entryNames: 'dashboard',
    logLevel: 'silent',
  });
  const files = new Map<string, WebFile>();
  files.set('/', { type: 'text/html; charset=utf-8', body: readFileSync(join(dir, 'index.html')) });
  for (const out of result.outputFiles) {
    const name = out.path.slice(out.path.lastIndexOf('/'));
    const type = name.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8';
    files.set(name, { type, body: out.contents });
  }
  return files;
}

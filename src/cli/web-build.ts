// `mirrorball web build`: the machine layers bundled by esbuild into a static page that boots the guest in a
// browser tab (docs/browser.md).

import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Message } from 'esbuild';
import { UsageError } from './options.js';

/** The page's sources: from dist/cli or src/cli alike, the repository's src/web/tab. */
const TAB_SOURCES = fileURLToPath(new URL('../../src/web/tab/', import.meta.url));
/** Files copied as they are. */
const STATIC_FILES = ['index.html', 'tab.css'];
/** Where a build keeps the guest, and how the page learns which files are there. */
const GUEST_DIR = 'guest';
const GUEST_MANIFEST = 'manifest.json';

export interface WebBuildInput {
  out: string;
  kernel: string;
  initrd: string;
  append: string;
}

export interface WebBuildResult {
  /** Each file written, relative to `out`, and its size in bytes. */
  files: { path: string; bytes: number }[];
}

/** Is `dir` free to build into: missing, empty, or an earlier build (it has the guest's manifest)? */
function checkOutDir(dir: string): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new UsageError(`--out '${dir}' is a file, not a folder`);
  if (readdirSync(dir).length > 0 && !existsSync(join(dir, GUEST_DIR, GUEST_MANIFEST))) {
    throw new UsageError(`--out '${dir}' holds other files: give an empty or new folder, or one an earlier \`web build\` made`);
  }
}

function esbuildLine(messages: Message[]): string {
  const first = messages[0];
  if (first === undefined) return 'esbuild failed';
  const where = first.location === null ? '' : `${first.location.file}:${first.location.line}: `;
  return `${where}${first.text}`;
}

/**
 * Bundles the page's entry (main.ts, with @xterm/xterm) and the machine's worker (worker.ts, the machine layers
 * under it) for the browser, copies the page, the terminal's stylesheet and the guest's kernel and initramfs,
 * and writes the guest's manifest. A module that pulls in a Node built-in fails the bundle (platform browser).
 */
export async function buildWebTab(input: WebBuildInput): Promise<WebBuildResult> {
  checkOutDir(input.out);
  for (const [what, file] of [['kernel', input.kernel], ['initrd', input.initrd]] as const) {
    if (!existsSync(file) || !statSync(file).isFile()) throw new UsageError(`${what} '${file}': no such file`);
  }
  mkdirSync(join(input.out, GUEST_DIR), { recursive: true });
  try {
    await build({
      entryPoints: { main: join(TAB_SOURCES, 'main.ts'), worker: join(TAB_SOURCES, 'worker.ts') },
      outdir: input.out,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      sourcemap: true,
      minify: false,
      logLevel: 'silent',
    });
  } catch (error) {
    const messages = (error as { errors?: Message[] }).errors;
    if (messages !== undefined) throw new UsageError(`cannot bundle the page: ${esbuildLine(messages)}`);
    throw error;
  }
  for (const file of STATIC_FILES) copyFileSync(join(TAB_SOURCES, file), join(input.out, file));
  const require = createRequire(import.meta.url);
  copyFileSync(join(dirname(require.resolve('@xterm/xterm/package.json')), 'css', 'xterm.css'), join(input.out, 'xterm.css'));
  copyFileSync(input.kernel, join(input.out, GUEST_DIR, 'Image'));
  copyFileSync(input.initrd, join(input.out, GUEST_DIR, 'initramfs.cpio'));
  const manifest = { kernel: `${GUEST_DIR}/Image`, initrd: `${GUEST_DIR}/initramfs.cpio`, append: input.append };
  writeFileSync(join(input.out, GUEST_DIR, GUEST_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  // main.css: the styles the page's modules import (the shared views', uPlot's), bundled by esbuild.
  const written = ['index.html', 'main.js', 'main.js.map', 'main.css', 'main.css.map', 'worker.js', 'worker.js.map', 'tab.css', 'xterm.css',
    `${GUEST_DIR}/Image`, `${GUEST_DIR}/initramfs.cpio`, `${GUEST_DIR}/${GUEST_MANIFEST}`];
  return { files: written.map((path) => ({ path, bytes: statSync(join(input.out, path)).size })) };
}

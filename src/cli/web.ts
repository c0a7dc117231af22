// `mirrorball web build` and `mirrorball web serve`: Mirrorball in a browser tab (docs/browser.md).

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { findBuiltGuest } from '../guest/artifacts.js';
import { serveStatic } from '../host/static-server.js';
import { UsageError } from './options.js';
import { DEFAULT_APPEND } from './run.js';
import { buildWebTab } from './web-build.js';

const DEFAULT_OUT = 'mirrorball-web';
const LOCALHOST = '127.0.0.1';

/** `[ADDR:]PORT` (an IPv6 address in brackets): where to listen; 127.0.0.1 unless told otherwise. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):)?(\d+)$/.exec(text);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(`'${text}' is not [ADDR:]PORT (a port from 0 to 65535, e.g. 8080 or 127.0.0.1:8080)`);
  }
  const host = match[1] === undefined ? LOCALHOST : match[1].replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

export function registerWebCommands(program: Command): void {
  const web = program.command('web').description('Mirrorball in a browser tab: the machine bundled into a static page that boots the guest (docs/browser.md)');

  web
    .command('build')
    .description('bundle the machine and the built guest into a static page')
    .option('--out <dir>', 'folder to write the page into', DEFAULT_OUT)
    .option('--kernel <file>', 'Linux Image to boot (default: the built guest\'s)')
    .option('--initrd <file>', 'initramfs to boot (default: the built guest\'s)')
    .option('--append <cmdline>', `kernel command line (default: "${DEFAULT_APPEND}")`, DEFAULT_APPEND)
    .action(async (flags: { out: string; kernel?: string; initrd?: string; append: string }) => {
      let kernel = flags.kernel;
      let initrd = flags.initrd;
      if (kernel === undefined || initrd === undefined) {
        const guest = findBuiltGuest();
        if (guest === undefined) throw new UsageError('no guest built yet: run `mirrorball guest build`, or give --kernel and --initrd');
        kernel ??= guest.kernel;
        initrd ??= guest.initramfs;
      }
      const result = await buildWebTab({ out: flags.out, kernel, initrd, append: flags.append });
      const total = result.files.reduce((sum, f) => sum + f.bytes, 0);
      process.stdout.write(`${flags.out}\n`);
      process.stderr.write(`web: ${result.files.length} files, ${(total / 1024 / 1024).toFixed(1)} MiB; serve it with \`mirrorball web serve --dir ${flags.out} 8080\`\n`);
    });

  web
    .command('serve')
    .description('serve the page over HTTP, cross-origin isolated (COOP and COEP headers), until interrupted')
    .argument('<[addr:]port>', 'where to listen: a port (on 127.0.0.1), or ADDR:PORT; port 0 picks a free one')
    .option('--dir <dir>', 'the folder `web build` wrote', DEFAULT_OUT)
    .action(async (where: string, flags: { dir: string }) => {
      const { host, port } = parseListenAddress(where);
      if (!existsSync(flags.dir) || !statSync(flags.dir).isDirectory()) throw new UsageError(`--dir '${flags.dir}': no such folder (make it with \`mirrorball web build --out ${flags.dir}\`)`);
      if (!existsSync(join(flags.dir, 'index.html'))) throw new UsageError(`--dir '${flags.dir}' has no index.html (make it with \`mirrorball web build --out ${flags.dir}\`)`);
      let server;
      try {
        server = await serveStatic(flags.dir, host, port);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new UsageError(`cannot listen on ${where}: ${code === 'EADDRINUSE' ? 'address in use' : code === 'EADDRNOTAVAIL' ? 'no such address here' : String(code ?? error)}`);
      }
      process.stdout.write(`${server.url}\n`);
      process.stderr.write(`web: serving '${flags.dir}' at ${server.url} (Ctrl-C stops)\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await server.close();
    });
}

// `mirrorball guest build` and `mirrorball guest path`: the guest images (docs/guest.md).
import type { Command } from 'commander';
import { defaultCacheDir, findBuiltGuest } from '../guest/artifacts.js';
import { buildGuest } from '../guest/build.js';
import { StepError } from '../guest/steps.js';
import { UsageError } from './options.js';

/** Exit status of a failed build step (the message names the step and its log). */
const BUILD_FAILED = 1;
const NOT_BUILT = 1;

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`--jobs wants a positive integer, not ${JSON.stringify(text)}`);
  return value;
}

export function registerGuestCommands(program: Command): void {
  const guest = program.command('guest').description('the guest Linux images built from Debian packages');

  guest
    .command('build')
    .description('build the kernel, initramfs, root disk and workloads (a cache hit when already built)')
    .option('--force', 'build again even when the cache has this recipe')
    .option('--cache <dir>', 'cache directory (default: $MIRRORBALL_CACHE, $XDG_CACHE_HOME/mirrorball or ~/.cache/mirrorball)')
    .option('--jobs <n>', 'parallel jobs of each make (default: the number of CPUs)', positiveInteger)
    .action(async (opts: { force?: boolean; cache?: string; jobs?: number }) => {
      try {
        const result = await buildGuest({ cacheDir: opts.cache, force: opts.force, jobs: opts.jobs });
        if (result.cached) process.stderr.write(`guest: up to date (guest ${result.artifacts.hash})\n`);
        process.stdout.write(`${result.artifacts.dir}\n`);
      } catch (error) {
        if (!(error instanceof StepError)) throw error;
        process.stderr.write(`mirrorball: ${error.message}\n`);
        process.exitCode = BUILD_FAILED;
      }
    });

  guest
    .command('path')
    .description('print the directory of the guest built from the current recipe')
    .option('--cache <dir>', 'cache directory')
    .option('--json', 'print every artifact path as JSON')
    .action((opts: { cache?: string; json?: boolean }) => {
      const found = findBuiltGuest(opts.cache ?? defaultCacheDir());
      if (found === undefined) {
        process.stderr.write('mirrorball: no guest built from the current recipe: run `mirrorball guest build`\n');
        process.exitCode = NOT_BUILT;
        return;
      }
      process.stdout.write(opts.json ? `${JSON.stringify(found, null, 2)}\n` : `${found.dir}\n`);
    });
}

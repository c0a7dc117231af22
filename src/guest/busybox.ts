// The guest's busybox: Debian's source package, defconfig + guest/busybox.config (checked), one static binary.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyFragment, checkFragment, parseFragment } from './config-fragment.js';
import { reproducibleEnv } from './kernel.js';
import type { StepLog } from './steps.js';
import { CROSS_PREFIX, type Toolchain } from './toolchain.js';

export interface BusyboxOptions {
  source: string;
  outDir: string;
  fragment: string;
  toolchain: Toolchain;
  jobs: number;
  epoch: number;
}

export interface BusyboxBuild {
  binary: string;
  /** Absolute paths of the applets ('/bin/sh', '/usr/bin/awk'...), from the build's busybox.links. */
  links: string[];
}

/**
 * Builds busybox out of tree: `make defconfig`, the fragment written over it, `make oldconfig` to settle
 * dependencies (busybox's kconfig has no KCONFIG_ALLCONFIG), every fragment line checked, then the binary
 * and its list of applet links.
 */
export async function buildBusybox(log: StepLog, o: BusyboxOptions): Promise<BusyboxBuild> {
  mkdirSync(o.outDir, { recursive: true });
  const env = reproducibleEnv(o.toolchain.env, o.epoch);
  const make = ['-C', o.source, `O=${o.outDir}`, `CROSS_COMPILE=${CROSS_PREFIX}`];
  await log.run('make', [...make, 'defconfig'], { env });
  const settings = parseFragment(readFileSync(o.fragment, 'utf8'), 'guest/busybox.config');
  const dotConfig = join(o.outDir, '.config');
  writeFileSync(dotConfig, applyFragment(readFileSync(dotConfig, 'utf8'), settings));
  // oldconfig asks about nothing new here; with no terminal on stdin it takes every default.
  await log.run('make', [...make, 'oldconfig'], { env });
  const problems = checkFragment(settings, readFileSync(dotConfig, 'utf8'));
  if (problems.length > 0) {
    log.write(`guest/busybox.config lines that did not take:\n${problems.join('\n')}\n`);
    throw new Error(`${problems.length} line(s) of guest/busybox.config did not take, first: ${problems[0]}`);
  }
  await log.run('make', [...make, `-j${o.jobs}`, 'busybox', 'busybox.links'], { env });
  const binary = join(o.outDir, 'busybox');
  const linksFile = join(o.outDir, 'busybox.links');
  if (!existsSync(binary) || !existsSync(linksFile)) throw new Error('busybox built no binary or no busybox.links');
  const links = readFileSync(linksFile, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('/'));
  return { binary, links };
}

// End to end: Linux on 4 harts with the harts on 2 host threads (`run --threads 2`, docs/threads.md) boots
// to its shell and runs the workloads' reference checks, and the console shows exactly what QEMU's does
// with the same kernel, initramfs and command.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { consoleScript, type ConsoleRun } from '../../src/bench/console-script.js';
import { typedChecksScript } from '../helpers/reference-checks.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const QEMU = 'qemu-system-riscv64';
const guest = findBuiltGuest();
const qemu = spawnSync(QEMU, ['--version']).status === 0;
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)'
  : !qemu ? `${QEMU} is not installed (apt-get install qemu-system-misc)` : false;

/**
 * The short reference checks (threads, processes, shared counters: raytrace three ways, pmake, wshare), the
 * number of online harts, and the kernel's messages kept off the console (their timestamps differ).
 */
const COMMAND = `dmesg -n 1; ${typedChecksScript('^(cpubench|raytrace|pmake|wshare)')}; nproc`;

/** A run that did not come to the end marker: once more, since QEMU's boot rarely hangs on a loaded host. */
async function twice(run: () => Promise<ConsoleRun>): Promise<ConsoleRun> {
  try {
    return await run();
  } catch {
    return run();
  }
}

test('Linux on 4 harts over 2 threads prints exactly what QEMU prints for the reference checks', { skip, timeout: 170_000 }, async () => {
  const ours = await consoleScript(process.execPath, [CLI, 'run', '--smp', '4', '--threads', '2', '--memory', '256M'], COMMAND, 120_000);
  const theirs = await twice(() => consoleScript(QEMU, ['-machine', 'virt', '-smp', '4', '-m', '256M', '-nographic', '-bios', 'default',
    '-kernel', guest!.kernel, '-initrd', guest!.initramfs, '-append', 'console=ttyS0'], COMMAND, 40_000));
  assert.match(theirs.output, /^ok cpubench/m, `QEMU ran the checks:\n${theirs.output}`);
  assert.equal(ours.output, theirs.output, `--threads 2 against QEMU; our console:\n${ours.console.slice(-3000)}`);
  assert.match(ours.output, /^4$/m);
  assert.equal(ours.output.split('\n').filter((l) => l.startsWith('ok ')).length, 6, ours.output);
});

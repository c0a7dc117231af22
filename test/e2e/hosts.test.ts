// End to end: Linux on 2 harts spread over 2 host processes (`run --hosts 2`, docs/giantvm.md) boots to its
// shell and runs workloads' reference checks, and the console shows exactly what QEMU's does with the
// same kernel, initramfs and command. The short version runs three checks (threads, processes, shared
// counters); MIRRORBALL_LONG=1 runs the six of test/e2e/threads.test.ts, and the same on 4 harts over 4
// host processes (hosts 1-3 reaching each other through host 0).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { consoleScript, type ConsoleRun } from '../../src/bench/console-script.js';
import { typedChecksScript } from '../helpers/reference-checks.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const QEMU = 'qemu-system-riscv64';
const LONG = process.env.MIRRORBALL_LONG === '1';
const guest = findBuiltGuest();
const qemu = spawnSync(QEMU, ['--version']).status === 0;
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)'
  : !qemu ? `${QEMU} is not installed (apt-get install qemu-system-misc)` : false;

const PATTERN = LONG ? '^(cpubench|raytrace|pmake|wshare)' : '^(cpubench|pmake|wshare)';
const CHECKS = LONG ? 6 : 3;
/** The checks, the number of online harts, and the kernel's messages kept off the console (their timestamps differ). */
const COMMAND = `dmesg -n 1; ${typedChecksScript(PATTERN)}; nproc`;

/** A run that did not come to the end marker: once more, since QEMU's boot rarely hangs on a loaded host. */
async function twice(run: () => Promise<ConsoleRun>): Promise<ConsoleRun> {
  try {
    return await run();
  } catch {
    return run();
  }
}

async function againstQemu(t: TestContext, harts: number, hosts: number, extra: readonly string[] = []): Promise<void> {
  const ours = await consoleScript(process.execPath, [CLI, 'run', '--smp', String(harts), '--hosts', String(hosts), '--memory', '256M', ...extra], COMMAND, LONG ? 400_000 : 150_000);
  t.diagnostic(`--hosts ${hosts}: ${ours.seconds.toFixed(1)} s to the end, the checks ${ours.commandSeconds.toFixed(1)} s`);
  const theirs = await twice(() => consoleScript(QEMU, ['-machine', 'virt', '-smp', String(harts), '-m', '256M', '-nographic', '-bios', 'default',
    '-kernel', guest!.kernel, '-initrd', guest!.initramfs, '-append', 'console=ttyS0'], COMMAND, 40_000));
  assert.match(theirs.output, /^ok cpubench/m, `QEMU ran the checks:\n${theirs.output}`);
  assert.equal(ours.output, theirs.output, `--hosts ${hosts} against QEMU; our console:\n${ours.console.slice(-3000)}`);
  assert.match(ours.output, new RegExp(`^${harts}$`, 'm'));
  assert.equal(ours.output.split('\n').filter((l) => l.startsWith('ok ')).length, CHECKS, ours.output);
}

test('Linux on 2 harts over 2 host processes prints exactly what QEMU prints for the reference checks', { skip, timeout: 300_000 }, (t) => againstQemu(t, 2, 2));

test('Linux on 4 harts over 4 host processes prints exactly what QEMU prints for the reference checks', { skip: skip || (!LONG && 'MIRRORBALL_LONG=1 runs it'), timeout: 500_000 },
  (t) => againstQemu(t, 4, 4));

const OPENSBI_FW_JUMP = '/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin';
const noOpenSbi = existsSync(OPENSBI_FW_JUMP) ? false : `${OPENSBI_FW_JUMP} missing (apt-get install opensbi)`;

test('Linux under OpenSBI (--bios) on 2 harts over 2 host processes: both harts up, a process on host 1\'s hart, a clean power-off', { skip: skip || noOpenSbi, timeout: 200_000 }, async (t) => {
  // Every hart enters the firmware in M-mode with its id and the device tree; OpenSBI's IPIs and timers
  // are the CLINT's, on host 0, reached by MMIO and answered with interrupt lines.
  const run = await consoleScript(process.execPath, [CLI, 'run', '--smp', '2', '--hosts', '2', '--memory', '256M', '--bios', OPENSBI_FW_JUMP],
    "dmesg -n 1; nproc; taskset -c 1 sh -c 'cut -d\" \" -f39 /proc/self/stat'; grep -c '^processor' /proc/cpuinfo", 150_000, { poweroff: true });
  t.diagnostic(`${run.seconds.toFixed(1)} s to the end`);
  assert.match(run.console, /OpenSBI/, 'the firmware ran');
  assert.equal(run.output, '2\n1\n2\n', run.console.slice(-3000));
  assert.equal(run.status, 0, run.console.slice(-3000));
});

test('Linux under OpenSBI on 2 harts over 2 host processes prints exactly what QEMU prints for the reference checks', { skip: skip || noOpenSbi || (!LONG && 'MIRRORBALL_LONG=1 runs it'), timeout: 500_000 },
  (t) => againstQemu(t, 2, 2, ['--bios', OPENSBI_FW_JUMP]));

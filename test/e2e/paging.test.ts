// End to end: monitor-level paging (issue 22's bar). A Linux VM of twice the machine's free memory runs membench
// over a working set larger than the machine can hold: it finishes through paging, with the checksum the same
// run computes unconstrained, and the workloads' reference check passes in it too.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { MonitorSession } from '../../src/guest/monitor-session.js';
import type { MachineConfig } from '../../src/board/address-map.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import { FileSwapStore } from '../../src/host/swap-file.js';
import { DEFAULT_SWAP_COSTS, scaleSwapCosts } from '../../src/monitor/costs.js';
import { bootedMonitor } from '../helpers/booted.js';
import { assertChecks, checksScript } from '../helpers/reference-checks.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

/** The machine: one node of MACHINE MiB; the VM is twice that. */
const MACHINE = Number(process.env.PAGING_MACHINE_MIB ?? 64);
const VM = 2 * MACHINE;
/** membench's working set: with the booted guest's own pages, more than the machine holds. */
const WORKING_SET = process.env.PAGING_MEMBENCH ?? `${MACHINE}M`;
const COMMAND = `membench -m ${WORKING_SET} -r 1 -l 20000${process.env.PAGING_SEED === undefined ? '' : ` -S ${process.env.PAGING_SEED}`}`;

/** The swap device's assumed costs scaled (docs/monitor.md "Paging": results with them halved and doubled). */
const SWAP_SCALE = Number(process.env.PAGING_SWAP_SCALE ?? 1);

function uma(mib: number): MachineConfig {
  return { harts: 1, nodes: [{ memoryBytes: mib * MiB, harts: [0] }] };
}

/** membench's RESULT line: its checksum and the guest's seconds. */
function result(output: string): { checksum: string; seconds: number } {
  const m = /RESULT membench elapsed=([0-9.]+) checksum=([0-9a-f]{16})/.exec(output);
  assert.ok(m !== null, output);
  return { checksum: m[2]!, seconds: Number(m[1]) };
}

describe(`a VM of ${VM} MiB on a machine of ${MACHINE} MiB, paging to a swap file`, { skip }, () => {
  let dir: string;
  let store: FileSwapStore;
  const sessions: MonitorSession[] = [];
  const boot = async (machine: number, swap: boolean): Promise<MonitorSession> => {
    const session = await bootedMonitor({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: uma(machine),
      vms: [{ name: 'big', vcpus: 1, memoryBytes: VM * MiB }],
      monitor: swap ? { swap: { store, costs: scaleSwapCosts(DEFAULT_SWAP_COSTS, SWAP_SCALE) } } : {},
      timeoutMs: 600_000,
    });
    sessions.push(session);
    return session;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mirrorball-paging-'));
    store = new FileSwapStore(join(dir, 'swap'), 2 * VM * MiB);
  });

  after(async () => {
    for (const session of sessions) await session.kill();
    store?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('finishes membench over more memory than the machine has, with the checksum of an unconstrained run, through paging', async (t: TestContext) => {
    // The reference: the same VM and command on a machine with room for all of it, no paging.
    const free = await boot(4 * MACHINE, false);
    const unconstrained = await free.exec('big', COMMAND);
    assert.equal(unconstrained.status, 0, unconstrained.output);
    const reference = result(unconstrained.output);
    assert.equal(free.monitor.pager, undefined);
    await free.kill();

    const session = await boot(MACHINE, true);
    const monitor = session.monitor;
    const vm = session.vm('big');
    assert.equal(statSync(join(dir, 'swap')).mode & 0o777, 0o600);
    const r = await session.exec('big', `${COMMAND}; ${checksScript('^membench')}`);
    assert.equal(r.status, 0, r.output);
    assert.equal(vm.state, 'running');
    // The workloads' own reference check, and the big run's checksum as the unconstrained run computed it.
    assertChecks(r.output, 1);
    const run = result(r.output);
    assert.equal(run.checksum, reference.checksum, `${COMMAND} computed ${run.checksum} through paging, ${reference.checksum} without`);
    const account = monitor.swapAccount(vm)!;
    t.diagnostic(`${COMMAND}: ${run.seconds} guest s paging, ${reference.seconds} unconstrained (${(run.seconds / reference.seconds).toFixed(2)}×); pages out ${account.pagesOut}, in ${account.pagesIn}, zero dropped ${account.zeroDropped}, in the store now ${account.swapped}; ${JSON.stringify(monitor.pager!.totals)}`);
    // It paged: more than a quarter of the machine went out and came back, and the waits took simulated time.
    assert.ok(account.pagesOut * PAGE > MACHINE * MiB / 4, `only ${account.pagesOut} pages written`);
    assert.ok(account.pagesIn * PAGE > MACHINE * MiB / 4, `only ${account.pagesIn} pages read back`);
    assert.ok(run.seconds > reference.seconds, `paging took no time: ${run.seconds} s against ${reference.seconds} s`);
    // The machine never gave the VM more than it has.
    assert.ok(vm.pmap.pagesInUse * PAGE <= MACHINE * MiB);
    // Its pages in the store are in the file's slots (one slot per page: nothing shared here).
    assert.equal(store.used, account.swapped);
  });
});

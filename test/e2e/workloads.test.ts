// End to end: the guest's workloads on bare Linux (2 harts) print the checksums the build computed on the host,
// every reference check of them; an input seed changes the input and not the work; where processes or threads
// run changes no result.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { GuestSession } from '../../src/guest/session.js';
import { bootedGuest } from '../helpers/booted.js';
import { assertChecks, checksScript, referenceChecksum, referenceCommands } from '../helpers/reference-checks.js';

const MiB = 2 ** 20;
const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

/** The RESULT line's fields (checksum, work=, ...) of a workload's output. */
function result(output: string): Map<string, string> {
  const line = output.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line !== undefined, output);
  return new Map(line.split(' ').slice(2).map((field) => field.split('=') as [string, string]));
}

describe('the workloads in the guest', { skip }, () => {
  let session: GuestSession;

  before(async () => {
    session = await bootedGuest({
      kernel: readFileSync(guest!.kernel),
      initrd: readFileSync(guest!.initramfs),
      config: { harts: 2, nodes: [{ memoryBytes: 256 * MiB, harts: [0, 1] }] },
    });
  });

  after(async () => {
    await session?.kill();
  });

  /** Runs `command` in the guest and returns its RESULT fields; the command must succeed. */
  async function run(command: string): Promise<Map<string, string>> {
    const r = await session.exec(command);
    assert.equal(r.status, 0, `${command}:\n${r.output}\n--- console ---\n${session.tail()}`);
    return result(r.output);
  }

  it('every reference check prints the checksum the build host computed', async () => {
    const commands = referenceCommands(guest!);
    for (const name of ['engineering', 'wshare']) assert.ok(commands.some((c) => c.startsWith(`${name} `)), `no reference check of ${name}`);
    const r = await session.exec(checksScript('.'));
    assert.equal(r.status, 0, r.output);
    assertChecks(r.output, commands.length);
  });

  it('engineering: a seed changes the netlists and traces, not the work; pinning changes nothing', async () => {
    const command = 'engineering -p 2 -m 1M -n 20000';
    const reference = referenceChecksum(guest!, command);
    const seeded = [await run(`${command} -S 1`), await run(`${command} -S 2`)];
    const checksums = new Set([reference, ...seeded.map((r) => r.get('checksum'))]);
    assert.equal(checksums.size, 3, `seeds 0, 1 and 2 give three checksums: ${[...checksums].join(' ')}`);
    for (const r of seeded) assert.equal(r.get('work'), '20000');
    // Two processes pinned to the two CPUs, or left to the scheduler: the same results.
    const pinned = await run(`${command} -S 3 -A`);
    assert.equal(pinned.get('checksum'), referenceChecksum(guest!, `${command} -S 3`));
  });

  it('wshare: the counters end the same whatever the interleaving; a seed changes them', async () => {
    const command = 'wshare -t 2 -g 2 -n 5000';
    const reference = referenceChecksum(guest!, command);
    // Four threads on two CPUs, pinned or not, interleave differently and end with the same counters.
    const free = await run('wshare -t 4 -g 2 -n 5000');
    const pinned = await run('wshare -t 4 -g 2 -n 5000 -A');
    assert.equal(pinned.get('checksum'), free.get('checksum'));
    assert.notEqual(free.get('checksum'), reference, 'four threads add twice as much as two');
    const seeded = await run(`${command} -S 1`);
    assert.notEqual(seeded.get('checksum'), reference);
    assert.equal(seeded.get('updates'), '5000');
  });
});

// The GiantVM experiment's figures from a run (giant.ts), without running one: every host's counters summed,
// the round trips of all hosts pooled for the median and p99, faults per second over the whole run, the
// most-bounced pages by guest-physical address; and its table.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HostReport } from '../host/dsm-host.js';
import { giantTable, summarize, type SpannedRun } from './giant.js';

function report(host: number, faults: number, roundTripsUs: number[], bounces: [number, number][]): HostReport {
  return {
    host, readFaults: faults, writeFaults: 1, upgradeFaults: 2, bytesSent: 4096 * faults, held: 0, roundTripsUs, roundTripCount: roundTripsUs.length,
    pages: [0, 0, 0], bounces, instructions: 0, relay: { signalsSent: 3, fencesSent: 5, fencesServed: 0, hsmSent: 1 }, linesSent: host === 0 ? 7 : undefined,
  };
}

test('giant: a case sums every host, pools the round trips and names the bounced pages', () => {
  const run: SpannedRun = {
    bootSeconds: 8, commandSeconds: 2, output: 'RESULT raytrace elapsed=1.25s checksum=0123\n', instructions: 1, guestSeconds: 1,
    reports: [report(0, 10, [100, 300], [[2, 9]]), report(1, 20, [200, 50_000], [[0x1000, 40], [5, 1]])],
  };
  const c = summarize(2, 'raytrace', 'raytrace -t 4', run);
  assert.deepEqual(c.faultsByKind, { read: 30, write: 2, upgrade: 4 });
  assert.equal(c.faultsPerSec, 36 / 10);
  assert.equal(c.faultRttUsMedian, 200);
  assert.equal(c.faultRttUsP99, 50_000);
  assert.equal(c.bytesMoved, 4096 * 30);
  assert.deepEqual([c.signalsSent, c.fencesSent, c.linesSent], [6, 10, 7]);
  assert.deepEqual(c.bounced, [['0x81000000', 40], ['0x80002000', 9], ['0x80005000', 1]]);
  assert.equal(c.wallMs, 2000);
  assert.equal(c.guestElapsed, '1.25s');
  const table = giantTable([c, summarize(1, 'pmake', 'pmake', { ...run, output: '', reports: [] })]);
  assert.match(table, /\| +2 \| raytrace \| +2\.0 \| 1\.25s /);
  assert.match(table, /\| +1 \| pmake +\| +2\.0 \| - /);
});

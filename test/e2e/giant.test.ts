// End to end (long tier): `mirrorball experiment giant --quick --hosts 2` writes its table, its plot and
// results.json with both workloads' cases, each with the DSM's faults and round trip.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findBuiltGuest } from '../../src/guest/artifacts.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const LONG = process.env.MIRRORBALL_LONG === '1';
const skip = !LONG ? 'MIRRORBALL_LONG=1 runs it' : findBuiltGuest() === undefined ? 'no guest built: run `node bin/mirrorball.js guest build`' : false;

test('experiment giant --quick --hosts 2 writes both workloads\' cases with the DSM\'s counters', { skip, timeout: 600_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'mb-giant-e2e-'));
  const r = spawnSync(process.execPath, [CLI, 'experiment', 'giant', '--quick', '--hosts', '2', '--out', out], { encoding: 'utf8', timeout: 590_000 });
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { cases: { hosts: number; workload: string; wallMs: number; faultsPerSec: number; faultRttUsMedian: number }[] };
  assert.deepEqual(results.cases.map((c) => [c.hosts, c.workload]), [[2, 'raytrace'], [2, 'pmake']]);
  for (const c of results.cases) assert.ok(c.wallMs > 0 && c.faultsPerSec > 0 && c.faultRttUsMedian > 0, JSON.stringify(c));
  assert.ok(existsSync(join(out, 'giant.svg')) && existsSync(join(out, 'results.md')));
  assert.match(r.stdout, /\| +2 \| raytrace \|/);
});

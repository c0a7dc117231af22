// What every short fuzz test does: runs targets for a few seconds each (npm test's tier) and fails on any failure.

import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { formatReport, runFuzz } from '../../src/fuzz/harness.js';
import { findTarget } from '../../src/fuzz/targets/index.js';

/** Seconds per target in npm test (issue 28: about 5 s per surface); MIRRORBALL_LONG=1 runs a minute each. */
export const SHORT_SECONDS = process.env.MIRRORBALL_LONG === '1' ? 60 : 4;

/**
 * Runs target `name` for SHORT_SECONDS and fails on a failing case (shown shrunk) or a broken whole-run invariant.
 * RSS growth is a long-run invariant (`npm run fuzz`): a few seconds measure only the warm-up.
 */
export async function fuzzBriefly(t: TestContext, name: string): Promise<void> {
  const target = findTarget(name);
  assert.ok(target !== undefined, `no target ${name}`);
  const report = await runFuzz(target, { seconds: SHORT_SECONDS, rssLimitMiB: Infinity });
  t.diagnostic(formatReport(report));
  assert.ok(report.cases > 0, 'no case ran');
  assert.equal(report.failure, undefined, formatReport(report));
  assert.deepEqual(report.problems, []);
}

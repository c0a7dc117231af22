// End to end: the numa experiment (Disco's figure 8), quick: Engineering and the write-shared microbenchmark
// in one 8-vCPU VM on flash8 with its pages round-robin over the nodes, with no policy, with Disco's policy,
// and with uniform latency.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { caseDirectory, PLOT_SVG, QUICK_WORKLOADS, RESULTS_JSON, RESULTS_TABLE, runNuma, STATS_DIR } from '../../src/experiments/numa.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('the numa experiment', { skip }, () => {
  it('--quick: the policy closes part of Engineering\'s gap and costs the write-shared benchmark nothing', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mb-numa-'));
    try {
      // runNuma throws when a case computed another checksum for the same seed.
      const results = await runNuma({ guest: guest!, outDir: out, workloads: QUICK_WORKLOADS, repeat: 1 });
      const [engineering, wshare] = results;
      const of = (w: typeof engineering, name: string) => w!.cases.find((c) => c.name === name)!;
      // Round-robin placement over 8 nodes: about one miss in 8 is local without the policy (measured 11 %).
      assert.ok(of(engineering, 'numa').localMissPercent < 20, `numa: ${of(engineering, 'numa').localMissPercent} % local`);
      assert.ok(engineering!.numaOverUma >= 1.3, `numa / uma is ${engineering!.numaOverUma}: no gap to close`);
      // The deterministic quick run closed 0.92 of the gap and raised local misses to 65 %; a policy that moves
      // nothing, or the wrong pages, stays near 0.
      assert.ok(engineering!.gapClosed > 0.4, `Engineering's gap closed: ${engineering!.gapClosed}`);
      assert.ok(of(engineering, 'policy').localMissPercent > 40, `policy: ${of(engineering, 'policy').localMissPercent} % local`);
      assert.ok(of(engineering, 'policy').migrated > 0);
      assert.equal(of(engineering, 'numa').migrated + of(engineering, 'uma').migrated, 0, 'pages moved with no policy');
      // Write-shared pages stay: the policy must not cost wshare much. One quick run cannot hold the 2 %
      // (the full run's 3 seeds measure it: 0.9 % slower): a 26 ms run moves by ±5 % with any change to the guest
      // or the monitor (when its runs followed Engineering's in one boot, seed 1 was 6 % slower, and 2.1 % faster
      // with the guest before its vDSO patch; restored from the warm-up, as now, 4.7 %: 26.5 against 25.3 ms,
      // the policy paying for the copies Engineering's runs used to have made). So the bound is 10 %, which a
      // policy that moved write-shared pages back and forth every interval would pass too: on this run it costs
      // 4.5 % (writeSharedWrites 10^6, no move limit, no freeze). What this test guards is a gross cost.
      const [numa, policy] = [of(wshare, 'numa').timeMs, of(wshare, 'policy').timeMs];
      assert.ok(policy <= numa * 1.1, `wshare took ${policy} ms with the policy, ${numa} ms without`);

      assert.match(readFileSync(join(out, RESULTS_TABLE), 'utf8'), /^\| engineering +\| policy +\|/m);
      const json = JSON.parse(readFileSync(join(out, RESULTS_JSON), 'utf8')) as { workloads: { name: string; gapClosed: number; cases: { name: string; timeMs: number; localMissPercent: number; migrated: number; replicated: number }[] }[] };
      assert.deepEqual(json.workloads.map((w) => w.name), ['engineering', 'wshare']);
      assert.deepEqual(json.workloads[0]!.cases.map((c) => c.name), ['numa', 'policy', 'uma']);
      assert.equal(json.workloads[0]!.gapClosed, engineering!.gapClosed);
      assert.ok(existsSync(join(out, PLOT_SVG)));
      // Each case's statistics, the policy's with its local misses over time.
      const policyStats = readFileSync(join(out, STATS_DIR, caseDirectory('policy'), 'stats.txt'), 'utf8');
      assert.match(policyStats, /^monitor\.policy\.local_percent::s0 /m);
      assert.ok(existsSync(join(out, STATS_DIR, 'numa', 'stats.txt')) && existsSync(join(out, STATS_DIR, 'uma', 'stats.txt')));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

// End to end: the memory experiment, small (`--quick` sizes): one and two differing VMs with root on one
// copy-on-write disk run pmake with content sharing, and two without; the outputs agree seed by seed, and
// sharing makes the second VM cost far less than the first.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { checkOutputs, PLOT_SVG, QUICK_JOB, RESULTS_JSON, RESULTS_TABLE, runMemory } from '../../src/experiments/memory.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('experiment memory, quick', { skip }, () => {
  it('two VMs sharing content take clearly less than twice one, and compute what they compute unshared', { timeout: 15 * 60_000 }, async (t: TestContext) => {
    const out = mkdtempSync(join(tmpdir(), 'mb-memory-'));
    try {
      const shared = await runMemory({ guest: guest!, outDir: join(out, 'content'), counts: [1, 2], cases: ['content'], job: QUICK_JOB, repeat: 1 });
      const off = await runMemory({ guest: guest!, outDir: join(out, 'off'), counts: [2], cases: ['off'], job: QUICK_JOB, repeat: 1 });
      const [one, two] = shared.cases;
      const [twoOff] = off.cases;
      for (const c of [one!, two!, twoOff!]) t.diagnostic(`${c.vms} VMs ${c.sharing}: ${c.machineMiB.toFixed(1)} MiB (mapped ${c.mappedMiB.toFixed(1)}, saved ${JSON.stringify(c.savedMiB)}), pmake ${c.pmakeMs.toFixed(1)} ms`);
      // Every VM's output is the one the same seed gives without sharing, and the two VMs' seeds differ.
      checkOutputs([...two!.runs, ...twoOff!.runs, ...one!.runs]);
      const sums = two!.runs[0]!.outcomes.map((o) => o.checksum);
      assert.deepEqual(sums, twoOff!.runs[0]!.outcomes.map((o) => o.checksum));
      assert.equal(new Set(sums).size, 2, 'the two VMs computed the same: they did not differ');
      // Measured (quick sizes, the scanner at its default rate): one VM 12.9 MiB, two 16.0 MiB (1.24 ×) sharing,
      // 60.3 MiB without. Two VMs that share nothing with each other (their zero pages merged each within
      // itself) need 2 × one: a cross-VM sharing that breaks crosses 1.6, and sharing that stops crosses 0.5.
      assert.ok(two!.machineMiB < 1.6 * one!.machineMiB, `2 VMs use ${two!.machineMiB} MiB, 1 VM ${one!.machineMiB}`);
      assert.ok(two!.machineMiB < 0.5 * twoOff!.machineMiB, `2 VMs use ${two!.machineMiB} MiB sharing, ${twoOff!.machineMiB} without`);
      // Each way of sharing saved something, and the account adds up at the end of pmake.
      const saved = two!.savedMiB;
      assert.ok(saved.zero > 0 && saved.disk > 0 && saved.kernel > 0, JSON.stringify(saved));
      for (const r of [...two!.runs, ...twoOff!.runs]) {
        const e = r.end;
        const total = Object.values(e.savedBy).reduce((a, b) => a + b, 0);
        assert.equal(e.mapped - total + e.cacheOnly, e.inUse, JSON.stringify(e));
        assert.ok(r.series.length > 10 && r.series.every((s, i) => i === 0 || s.ms >= r.series[i - 1]!.ms), 'no time series');
      }
      assert.equal(twoOff!.savedMiB.disk + twoOff!.savedMiB.kernel + twoOff!.savedMiB.zero + twoOff!.savedMiB.content, 0, 'off shared pages');
      // The scanner's work and the copy-on-write breaks were charged: pmake is slower, not faster, with sharing.
      assert.ok(two!.scannerCycles > 0 && two!.cowBreaks > 0, `scanner ${two!.scannerCycles} cycles, ${two!.cowBreaks} COW breaks`);
      const json = JSON.parse(readFileSync(join(out, 'content', RESULTS_JSON), 'utf8')) as { cases: { vms: number; sharing: string; machineMiB: number; pmakeMs: number }[] };
      assert.deepEqual(json.cases.map((c) => [c.vms, c.sharing, c.machineMiB, c.pmakeMs]), shared.cases.map((c) => [c.vms, c.sharing, c.machineMiB, c.pmakeMs]));
      assert.match(readFileSync(join(out, 'content', RESULTS_TABLE), 'utf8'), /^\| +2 \| content /m);
      assert.ok(existsSync(join(out, 'content', PLOT_SVG)));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

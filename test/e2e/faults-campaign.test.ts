// End to end: the faults campaign, quick (`experiment faults --quick`): six random faults, one after another on
// one machine, each at a random moment into six Linux VMs' checksummed work, the machine repaired and the VMs
// lost made again between them. No VM that the machine's state says did not depend on what failed is lost,
// every survivor computes correctly (the VMs made again included), and some VM that depended was lost (a
// campaign that ended nothing would prove nothing).

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import { PLOT_SVG, QUICK_INJECTIONS, RESULTS_JSON, RESULTS_TABLE, runFaults } from '../../src/experiments/faults.js';

const guest = findBuiltGuest();
const skip = guest === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('experiment faults, quick', { skip }, () => {
  it('loses only VMs that depended on what failed, and every survivor computes correctly', { timeout: 10 * 60_000 }, async (t: TestContext) => {
    const out = mkdtempSync(join(tmpdir(), 'mb-faults-'));
    try {
      const r = await runFaults({ guest: guest!, outDir: out, injections: QUICK_INJECTIONS, seed: 1 });
      for (const x of r.runs) {
        t.diagnostic(`${x.fault} at +${x.offsetMs.toFixed(1)} ms: dependent ${x.vms.filter((v) => v.dependent).map((v) => v.name).join(' ') || 'none'}, ` +
          `lost ${x.vms.filter((v) => v.lost).map((v) => v.name).join(' ') || 'none'}, ${x.hostSeconds.toFixed(1)} s host`);
      }
      assert.equal(r.injections, QUICK_INJECTIONS);
      assert.equal(r.independentVmsLost, 0, JSON.stringify(r.runs.map((x) => x.vms.filter((v) => v.lost && !v.dependent))));
      assert.equal(r.survivorsCorrect, r.survivors);
      assert.ok(r.survivors > 0);
      assert.ok(r.dependentVmsLost > 0, 'no injection ended a VM: the campaign tested nothing');
      // Every VM lost, and every dependent one kept, was made again for the next injection.
      assert.equal(r.vmsReplaced, r.dependentVmsLost + r.independentVmsLost + r.keptStopped);
      assert.equal(r.keptStopped, r.dependentVmsKept);
      // Cells confine a VM's vCPUs to its cell's CPUs: a confined VM never depends on another node.
      assert.equal(r.confinedLostAway, 0);
      // Every fault read started the cells' recovery, whose time is its parts'.
      assert.ok(r.recoveryMs.count > 0);
      for (const x of r.runs) {
        if (x.recoveryMs === null) continue;
        assert.ok(Math.abs(x.recoveryMs - (x.detectMs! + x.agreementMs! + x.cleanupMs!)) < 1e-9 || x.recoveryMs > x.detectMs! + x.agreementMs! + x.cleanupMs!, x.fault);
        assert.ok(x.agreementMs! > 0, `${x.fault}: the cells agreed in no time`);
      }
      // Every VM lost was ended by the monitor for the hardware fault, not by a crash of its own.
      for (const x of r.runs) for (const v of x.vms) if (v.lost) assert.match(v.reason ?? '', /^hardware fault: /, `${x.fault}: ${v.name}`);
      const json = JSON.parse(readFileSync(join(out, RESULTS_JSON), 'utf8')) as Record<string, unknown>;
      for (const field of ['injections', 'independentVmsLost', 'dependentVmsKept', 'survivorsCorrect', 'survivors']) assert.equal(json[field], r[field as keyof typeof r], field);
      assert.deepEqual(Object.keys(json.recoveryMs as object).sort(), ['count', 'median', 'p99']);
      assert.match(readFileSync(join(out, RESULTS_TABLE), 'utf8'), /independent VMs lost \(must be 0\) +\| 0 +\|/);
      assert.match(readFileSync(join(out, PLOT_SVG), 'utf8'), /^<svg /m);
      assert.ok(existsSync(join(out, PLOT_SVG)));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

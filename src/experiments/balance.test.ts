// The balance experiment's checks and report on made-up runs: checksums agree and match the references, the
// figures are medians and ranges over the seeds, the ratio is taken seed by seed.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BALANCE_VMS, KINDS, type CaseName, type CaseResult } from './balance-case.js';
import { balanceSvg, balanceTable, checkChecksums, readReferences, summarize, utilizationRatio, type BalanceResult } from './balance.js';
import { ExperimentError } from './numa-placement.js';

const REFERENCES = readReferences('# comment\nraytrace -t 2 -w 32 -s 100 -m 1M\taaaa\npmake -j 2 -n 8 -l 100\tbbbb\n');

function run(name: CaseName, seed: number, utilization: number, sums: Partial<Record<string, string[]>> = {}, cellMoves = 0): CaseResult {
  return {
    name, seed, migrationCostScale: 1, cpus: 8, windowCycles: 1e6, utilization,
    vms: BALANCE_VMS.map((v) => ({
      name: v.name, kind: v.kind, vcpus: KINDS[v.kind].vcpus, arriveMs: v.arriveMs, homeNode: 0, cells: [0], work: (sums[v.name] ?? []).length,
      checksums: sums[v.name] ?? [], skippedBursts: 0, busyCycles: 0, readyCycles: 0, partialRounds: 1, partialInCellRounds: 0, multiRounds: 2,
    })),
    migrations: { cpu: { count: 1, cycles: 428 }, node: { count: 2, cycles: 856 }, cell: { count: cellMoves, cycles: cellMoves * 9148 } },
    borrowing: { pagesBorrowed: 0, pagesInUse: 0, requests: 0, granted: 0, refused: 0, returned: 0 },
    hostSeconds: 10,
  };
}

describe('experiment balance', () => {
  it('reads the references, and accepts runs whose every unit printed its seed\'s one checksum, seed 0 the reference\'s', () => {
    assert.equal(REFERENCES.get('pmake -j 2 -n 8 -l 100'), 'bbbb');
    assert.equal(REFERENCES.size, 2);
    const runs = [run('static', 0, 0.5, { ray0: ['aaaa', 'aaaa'], pmake1: ['bbbb'], burst0: ['cccc'] }), run('balanced', 0, 0.6, { ray1: ['aaaa'], burst1: ['cccc'] }),
      run('static', 1, 0.5, { ray0: ['dddd'] })];
    assert.deepEqual(checkChecksums(runs, REFERENCES, [0, 1]), { raytrace: ['aaaa', 'dddd'], pmake: ['bbbb', null], burst: ['cccc', null] });
  });

  it('names a VM that disagrees, a seed 0 that is not the reference, and seeds that did not differ', () => {
    assert.throws(() => checkChecksums([run('static', 0, 0.5, { ray0: ['aaaa'], ray1: ['ffff'] })], REFERENCES, [0]), /raytrace, seed 0: the VMs printed 2 different checksums/);
    assert.throws(() => checkChecksums([run('static', 0, 0.5, { pmake0: ['ffff'] })], REFERENCES, [0]), (e: Error) => e instanceof ExperimentError && /pmake: seed 0 printed ffff, and 'pmake -j 2 -n 8 -l 100' is bbbb/.test(e.message));
    assert.throws(() => checkChecksums([run('static', 0, 0.5, { burst0: ['cccc'] }), run('static', 1, 0.5, { burst0: ['cccc'] })], REFERENCES, [0, 1]), /burst: two input seeds printed the same checksum/);
  });

  it('sums up each case as medians and ranges over the seeds, and takes balanced / static seed by seed', () => {
    const statics = [run('static', 0, 0.30), run('static', 1, 0.40), run('static', 2, 0.20)];
    const balanced = [run('balanced', 0, 0.60, {}, 3), run('balanced', 1, 0.40, {}, 5), run('balanced', 2, 0.50, {}, 4)];
    const s = summarize('static', statics);
    assert.equal(s.utilization, 0.30);
    assert.deepEqual(s.utilizationRange, [0.20, 0.40]);
    const b = summarize('balanced', balanced);
    assert.deepEqual(b.migrations.cell.count, { median: 4, min: 3, max: 5 });
    assert.deepEqual(b.migrations.cell.cycles, { median: 4 * 9148, min: 3 * 9148, max: 5 * 9148 });
    assert.deepEqual(b.partialRounds, { median: 6, min: 6, max: 6 });
    // Seed by seed: 2, 1, 2.5; the median of the ratios, not the ratio of the medians (0.5 / 0.3).
    const ratio = utilizationRatio([s, b])!;
    assert.deepEqual(ratio, { median: 2, min: 1, max: 2.5 });
    assert.equal(utilizationRatio([s]), null);
    const variant = (scale: number, u: number): BalanceResult['costVariants'][number] => ({ scale, utilization: { median: u, min: u, max: u }, ratio: { median: 1, min: 1, max: 1 }, cellMoves: { median: 4, min: 4, max: 4 }, runs: [] });
    const result: BalanceResult = { cases: [s, b], costVariants: [variant(2, 0.45), variant(0.5, 0.55)], ratio, barMet: true, windowMs: 1000, seeds: [0, 1, 2], checksums: { raytrace: [], pmake: [], burst: [] } };
    const table = balanceTable(result);
    assert.match(table, /^\| static +\| 30\.0 \(20\.0–40\.0\) +\|/m);
    assert.match(table, /^\| balanced \| 50\.0 \(40\.0–60\.0\) +\| 1, 0\.4 +\| 2, 0\.9 +\| 4 \(3–5\), 36\.6 \(27\.4–45\.7\) \|/m);
    assert.match(table, /Balanced \/ static utilization: 2\.00 \(1\.00–2\.50\) \(bar: at least 1\.5; met\)/);
    // The cost of a move across cells halved and doubled, beside the run with the parameter as it is, in order.
    assert.match(table, /\| × 0\.5 \(4924 cycles\) +\| 55\.0 +\| 1\.00 +\| 4 +\|\n\| × 1 \(9148 cycles\) +\| 50\.0 \(40\.0–60\.0\) +\| 2\.00 \(1\.00–2\.50\) +\| 4 \(3–5\) +\|\n\| × 2 \(17596 cycles\) +\| 45\.0 /);
    const svg = balanceSvg(result);
    assert.ok(svg.startsWith('<?xml') && svg.includes('>balanced<') && svg.includes('50.0'));
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PLACEMENT_CASES, QUICK_WORKLOAD, placementCommand, placementSvg, placementTable, type PlacementResult } from './numa-placement.js';

function result(name: string, guestSeconds: number, localPercent: number): PlacementResult {
  const c = PLACEMENT_CASES.find((x) => x.name === name)!;
  return {
    case: c.name, description: c.description, policy: c.policy, uniformLatency: c.uniformLatency,
    simulatedCycles: guestSeconds * 1.5e8, simulatedSeconds: guestSeconds * 1.5, guestSeconds, checksum: '0123456789abcdef',
    missesLocal: localPercent, missesRemote: 100 - localPercent, localPercent, nodeBytes: [1, 2, 3, 4], instructions: 1, hostSeconds: 10,
  };
}

describe('numa-placement', () => {
  it('runs raytrace inside a region of interest with the case\'s policy, and keeps its status', () => {
    const command = placementCommand(PLACEMENT_CASES[2]!, QUICK_WORKLOAD, 8);
    assert.equal(command, 'mbctl stats reset && mbctl roi begin && raytrace -t 8 -L -P interleave -w 32 -s 200 -m 16384K -k 64; ' +
      's=$?; mbctl stats dump 1; mbctl roi end; exit $s');
  });

  it('the one-node case binds to node 0 and the ideal machine uses first touch', () => {
    assert.deepEqual(PLACEMENT_CASES.map((c) => [c.name, c.policy, c.uniformLatency]), [
      ['first-touch', 'first-touch', false], ['one-node', 'node0', false], ['interleave', 'interleave', false], ['uniform', 'first-touch', true],
    ]);
  });

  it('tabulates time against the ideal machine when it ran, and without it otherwise', () => {
    const table = placementTable([result('first-touch', 0.25, 90), result('uniform', 0.2, 91)]);
    const rows = table.trim().split('\n');
    assert.match(rows[0]!, /workload time \(ms\) \| vs ideal \| region \(ms\)/);
    assert.match(rows[2]!, /^\| first-touch \| .* \|\s+250\.000 \|\s+1\.25 \|\s+375\.000 \|\s+90\.0 % \|\s+100 \|\s+10 \|$/);
    assert.doesNotMatch(placementTable([result('one-node', 0.3, 20)]), /vs ideal/);
  });

  it('plots one bar per case in each panel', () => {
    const svg = placementSvg([result('first-touch', 0.25, 90), result('one-node', 0.3, 20)], QUICK_WORKLOAD);
    assert.equal((svg.match(/<rect x=/g) ?? []).length, 4);
    assert.ok(svg.includes('all memory on node 0'));
  });
});

// End to end: `mirrorball experiment numa-placement --quick` boots the 4-node machine once (or restores its
// boot from the boot cache), runs raytrace with its memory placed four ways, each case a restore of that boot,
// and writes the table, the plot and every case's statistics.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findBuiltGuest } from '../../src/guest/artifacts.js';
import type { PlacementResult } from '../../src/experiments/numa-placement.js';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));
const skip = findBuiltGuest() === undefined ? 'no guest built: run `node bin/mirrorball.js guest build` (npm test does)' : false;

describe('mirrorball experiment numa-placement', { skip }, () => {
  const out = mkdtempSync(join(tmpdir(), 'mirrorball-placement-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  it('places memory by first touch better than on one node or interleaved, and draws it', () => {
    const r = spawnSync(process.execPath, [CLI, 'experiment', 'numa-placement', '--quick', '--out', out],
      { encoding: 'utf8', timeout: 30 * 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const { results } = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { results: PlacementResult[] };
    const by = Object.fromEntries(results.map((x) => [x.case, x]));
    assert.deepEqual(Object.keys(by), ['first-touch', 'one-node', 'interleave', 'uniform']);
    // Same image in every case: placement changes time, never results.
    assert.equal(new Set(results.map((x) => x.checksum)).size, 1);
    // On 4 nodes with 2 CPUs each: all on node 0 is local only for node 0's CPUs (about 1/4), interleaving
    // makes about 1/4 of the misses local, first touch with local bands most of them.
    const ft = by['first-touch']!;
    assert.ok(ft.localPercent > 70, `first touch ${ft.localPercent.toFixed(1)} % local`);
    assert.ok(by['one-node']!.localPercent < 45, `one node ${by['one-node']!.localPercent.toFixed(1)} % local`);
    assert.ok(by.interleave!.localPercent < 45, `interleaved ${by.interleave!.localPercent.toFixed(1)} % local`);
    // Remote misses cost more: first touch is faster than both, and so is the ideal machine (first touch and
    // the ideal are within the noise of the guest scheduler of each other).
    assert.ok(ft.guestSeconds < by['one-node']!.guestSeconds);
    assert.ok(ft.guestSeconds < by.interleave!.guestSeconds);
    assert.ok(by.uniform!.guestSeconds < by['one-node']!.guestSeconds);
    assert.ok(by.uniform!.guestSeconds < by.interleave!.guestSeconds);
    // One node's memory serves everything when it holds everything.
    const nodeBytes = by['one-node']!.nodeBytes;
    assert.ok(nodeBytes[0]! > 2 * Math.max(...nodeBytes.slice(1)), `node traffic ${nodeBytes.join(', ')}`);

    // The table on stdout and in results.md, each with the kernel the figures are of; the plot; every case's statistics.
    for (const name of Object.keys(by)) assert.match(r.stdout, new RegExp(`\\| ${name} `));
    assert.equal(readFileSync(join(out, 'results.md'), 'utf8'), r.stdout.slice(0, r.stdout.lastIndexOf('\n\n') + 1));
    assert.match(r.stdout, /^Measured with the guest's Linux 6\.1\.\d+ from linux-source-6\.1 \S+ \(guest [0-9a-f]{16}\)\.$/m);
    const svg = readFileSync(join(out, 'numa-placement.svg'), 'utf8');
    assert.match(svg, /^<\?xml/);
    assert.equal((svg.match(/<rect x=/g) ?? []).length, 2 * 4);
    for (const name of Object.keys(by)) {
      for (const file of ['config.json', 'stats.txt', 'stats.json', 'dumps.json', 'output.txt']) {
        assert.ok(existsSync(join(out, name, file)), `${name}/${file}`);
      }
    }
  });

  it('reproduces a case exactly: the same statistics files byte for byte', (t) => {
    if (!existsSync(join(out, 'one-node', 'stats.txt'))) return t.skip('the full run above failed');
    const again = join(out, 'again');
    const r = spawnSync(process.execPath, [CLI, 'experiment', 'numa-placement', '--quick', '--cases', 'one-node', '--out', again],
      { encoding: 'utf8', timeout: 10 * 60_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const file of ['config.json', 'stats.txt', 'stats.json', 'dumps.json', 'output.txt']) {
      assert.equal(readFileSync(join(again, 'one-node', file), 'utf8'), readFileSync(join(out, 'one-node', file), 'utf8'), `${file} differs`);
    }
  });

  it('refuses an unknown case in one line', () => {
    const r = spawnSync(process.execPath, [CLI, 'experiment', 'numa-placement', '--cases', 'first-touch,nowhere', '--out', out], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "mirrorball: no case 'nowhere'; the cases are first-touch, one-node, interleave, uniform\n");
  });

  it('refuses an output directory it cannot write, in one line', () => {
    const file = join(out, 'a-file');
    writeFileSync(file, 'not a directory');
    const r = spawnSync(process.execPath, [CLI, 'experiment', 'numa-placement', '--quick', '--out', join(file, 'out')], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `mirrorball: cannot write to --out '${join(file, 'out')}': ENOTDIR\n`);
  });
});

// `mirrorball experiment fixed-work`: VM counts that do not divide the 8 CPUs are bad input (one line, exit 2), before any guest is looked for.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mirrorballEach } from '../helpers/cli-batch.js';

describe('experiment fixed-work --counts', () => {
  it('takes 1, 2, 4 or 8 VMs, and says so in one line with exit 2 otherwise', () => {
    const cases = [['3', /not 3$/], ['2,6', /not 6$/], ['0', /--counts/], ['x', /--counts/]] as const;
    // Each through the command line's main, all in one process (its start-up once).
    const results = mirrorballEach(cases.map(([counts]) => ['experiment', 'fixed-work', '--counts', counts, '--out', 'out/fixed-work-usage-test']));
    for (const [i, [counts, pattern]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.status, 2, `--counts ${counts}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, pattern);
    }
  });
});

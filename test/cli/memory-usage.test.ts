// `mirrorball experiment memory`: bad cases, factors, sizes and job counts are one line and exit 2, before any guest is looked for.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mirrorballEach } from '../helpers/cli-batch.js';

describe('experiment memory options', () => {
  it('refuses each bad value in one line with exit 2', () => {
    const cases = [
      [['--cases', 'off,shared'], /--cases takes off, disk, content/],
      [['--counts', '9'], /--counts/],
      [['--scan-cost-scales', '0.5,x'], /--scan-cost-scales/],
      [['--overcommit', 'lots'], /--overcommit/],
      [['--jobs', '0'], /--jobs/],
      [['--scan-rate', '-3'], /--scan-rate/],
      [['--idle-scan-rate', '-1'], /--idle-scan-rate/],
      [['--merge-on-first-match', 'maybe'], /--merge-on-first-match takes on or off/],
    ] as const;
    // Each through the command line's main, all in one process (its start-up once).
    const results = mirrorballEach(cases.map(([args]) => ['experiment', 'memory', ...args, '--out', 'out/memory-usage-test']));
    for (const [i, [args, pattern]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, pattern);
    }
  });
});

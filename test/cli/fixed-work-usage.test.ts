// `mirrorball experiment fixed-work`: VM counts that do not divide the 8 CPUs are bad input (one line, exit 2), before any guest is looked for.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../bin/mirrorball.js', import.meta.url));

describe('experiment fixed-work --counts', () => {
  it('takes 1, 2, 4 or 8 VMs, and says so in one line with exit 2 otherwise', () => {
    for (const [counts, pattern] of [['3', /not 3$/], ['2,6', /not 6$/], ['0', /--counts/], ['x', /--counts/]] as const) {
      const r = spawnSync(process.execPath, [CLI, 'experiment', 'fixed-work', '--counts', counts, '--out', 'out/fixed-work-usage-test'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 2, `--counts ${counts}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, pattern);
    }
  });
});

// Tests of the Kconfig fragment parser, applier and checker, including the project's own two fragments.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { applyFragment, checkFragment, ConfigFragmentError, parseDotConfig, parseFragment } from './config-fragment.js';
import { recipeDir } from './recipe.js';

describe('Kconfig fragments', () => {
  it('parses set and unset lines and skips comments', () => {
    const settings = parseFragment('# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x y"\n');
    assert.deepEqual(settings, [
      { symbol: 'CONFIG_A', value: 'y', line: 3 },
      { symbol: 'CONFIG_B', value: undefined, line: 4 },
      { symbol: 'CONFIG_C', value: '"x y"', line: 5 },
    ]);
  });

  it('rejects junk and duplicates, naming the line', () => {
    assert.throws(() => parseFragment('CONFIG_A=y\nCONFIG A=y\n', 'k'), /k:2/);
    assert.throws(() => parseFragment('CONFIG_A=y\nCONFIG_A=n\n'), ConfigFragmentError);
  });

  it('reports lines that did not take', () => {
    const settings = parseFragment('CONFIG_A=y\nCONFIG_N=32\n# CONFIG_B is not set\nCONFIG_TYPO=y\n# CONFIG_GONE is not set\n');
    const problems = checkFragment(settings, 'CONFIG_A=y\nCONFIG_N=8\nCONFIG_B=y\n');
    assert.equal(problems.length, 3);
    assert.match(problems[0]!, /CONFIG_N=32 did not take \(got 8\)/);
    assert.match(problems[1]!, /CONFIG_B should be off/);
    assert.match(problems[2]!, /CONFIG_TYPO=y did not take \(not set\)/);
  });

  it('applies a fragment over a .config, replacing and appending', () => {
    const settings = parseFragment('CONFIG_A=n\n# CONFIG_B is not set\nCONFIG_NEW=y\n');
    const out = applyFragment('CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n', settings);
    assert.equal(out, 'CONFIG_A=n\n# CONFIG_B is not set\n# CONFIG_C is not set\nCONFIG_NEW=y\n');
    assert.deepEqual(checkFragment(settings, out), []);
    assert.equal(parseDotConfig(out).get('CONFIG_NEW'), 'y');
  });

  it('the project fragments parse', () => {
    for (const name of ['kernel.config', 'busybox.config']) {
      const settings = parseFragment(readFileSync(join(recipeDir(), name), 'utf8'), name);
      assert.ok(settings.length > 10, name);
    }
  });
});

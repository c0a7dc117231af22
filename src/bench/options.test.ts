// Tests of `npm run bench` options and of the median and range of repeated runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BenchUsageError, DEFAULT_ITERATIONS, formatSpread, parseBenchArgs, spread, USAGE } from './options.js';

describe('bench options', () => {
  it('takes --only, --iterations, --repeat and --json, with defaults', () => {
    assert.deepEqual(parseBenchArgs([]), { iterations: DEFAULT_ITERATIONS, repeat: 1 });
    assert.deepEqual(parseBenchArgs(['--only', 'boot', '--iterations', '50', '--repeat', '5', '--json', 'out.json']),
      { only: 'boot', iterations: 50, repeat: 5, json: 'out.json' });
  });

  it('answers --help and -h with the usage, which says what --iterations and --repeat do', () => {
    assert.equal(parseBenchArgs(['--help']), 'help');
    assert.equal(parseBenchArgs(['--repeat', '3', '-h']), 'help');
    assert.match(USAGE, /--iterations N +rounds of the CPU-bound program/);
    assert.match(USAGE, /it does not repeat anything/);
    assert.match(USAGE, /--repeat N +run each bench N times/);
  });

  it('refuses each mistake with one line', () => {
    for (const argv of [['--bogus'], ['--only', 'gpu'], ['--repeat', '0'], ['--repeat', '2.5'], ['--iterations', 'x'], ['--repeat'], ['--repeat', '100']]) {
      assert.throws(() => parseBenchArgs(argv), (e: unknown) => e instanceof BenchUsageError && !e.message.includes('\n'), argv.join(' '));
    }
  });
});

describe('median and range', () => {
  it('is the middle run, or the mean of the middle two, with the smallest and largest', () => {
    assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3 });
    assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4 });
    assert.deepEqual(spread([7]), { median: 7, min: 7, max: 7 });
    assert.throws(() => spread([]), RangeError);
  });

  it('does not depend on the order of the runs, and lies within the range', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 15 }), (values) => {
      const s = spread(values);
      assert.deepEqual(spread([...values].reverse()), s);
      assert.ok(s.min <= s.median && s.median <= s.max);
      assert.equal(values.filter((v) => v < s.median).length <= values.length / 2, true);
      assert.equal(values.filter((v) => v > s.median).length <= values.length / 2, true);
    }));
  });

  it('prints one run as it is, several as median (min–max)', () => {
    assert.equal(formatSpread([1.234], 2), '1.23');
    assert.equal(formatSpread([1.3, 1.2, 1.25], 2), '1.25 (1.20–1.30)');
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalityHistory } from './locality-history.js';

test('a sample per interval until the history is full; then neighbours merge and a sample spans twice as many', () => {
  const h = new LocalityHistory(4);
  for (let i = 1; i <= 4; i++) h.add(i * 100, i, 10 - i);
  assert.deepEqual(h.series.map((s) => s.endCycles), [100, 200, 300, 400]);
  assert.equal(h.intervalsPerSample, 1);
  // The fifth interval merges (1,2) and (3,4) and opens a sample of its own, which the sixth completes.
  h.add(500, 5, 5);
  assert.deepEqual(h.series, [{ endCycles: 200, local: 3, remote: 17 }, { endCycles: 400, local: 7, remote: 13 }, { endCycles: 500, local: 5, remote: 5 }]);
  assert.equal(h.intervalsPerSample, 2);
  h.add(600, 1, 0);
  assert.deepEqual(h.series[2], { endCycles: 600, local: 6, remote: 5 });
  h.add(700, 0, 0);
  assert.equal(h.series.length, 4);
  assert.deepEqual(h.localPercent(), [15, 35, 600 / 11, 100]);
  // Every interval's misses are still in the series: nothing is lost by merging.
  assert.equal(h.series.reduce((n, s) => n + s.local + s.remote, 0), 5 * 10 + 1);
});

test('a saved history restores to the same series and goes on the same way; a state it could not reach is refused', () => {
  const a = new LocalityHistory(4);
  for (let i = 0; i < 7; i++) a.add(i, i, 1);
  const b = new LocalityHistory(4);
  b.restoreState(a.saveState());
  a.add(99, 3, 4);
  b.add(99, 3, 4);
  assert.deepEqual(b.saveState(), a.saveState());
  assert.throws(() => b.restoreState({ samples: [], width: 3, filled: 0 }), /not a locality history/);
  assert.throws(() => b.restoreState({ samples: [{ endCycles: 1, local: 1, remote: 1 }], width: 2, filled: 3 }), /not a locality history/);
  assert.throws(() => new LocalityHistory(3), /even number/);
});

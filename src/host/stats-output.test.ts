// Tests of the run output directory writer.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { StatsRegistry } from '../timing/stats.js';
import { sortedJson, writeStatsOutput } from './stats-output.js';

const directory = mkdtempSync(join(tmpdir(), 'mirrorball-stats-'));
after(() => rmSync(directory, { recursive: true, force: true }));

test('the output directory holds config.json, stats.txt and stats.json and nothing else', () => {
  const stats = new StatsRegistry();
  stats.counter('system.cpu0.instructions', 'Instructions retired', 'Count').value = 7;
  const out = join(directory, 'run1');
  writeStatsOutput(out, { topology: 'uma', cache: { ways: 2, sizeBytes: 1024 } }, stats);
  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'stats.json', 'stats.txt']);
  assert.equal(readFileSync(join(out, 'config.json'), 'utf8'), '{\n  "cache": {\n    "sizeBytes": 1024,\n    "ways": 2\n  },\n  "topology": "uma"\n}\n');
  assert.match(readFileSync(join(out, 'stats.txt'), 'utf8'), /^system\.cpu0\.instructions +7 +# Instructions retired \(Count\)$/m);
  assert.equal(JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'))['system.cpu0.instructions'].value, 7);
});

test('equal configurations give identical bytes whatever the key order', () => {
  assert.equal(sortedJson({ b: [{ y: 1, x: 2 }], a: null }), sortedJson({ a: null, b: [{ x: 2, y: 1 }] }));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
// @ts-expect-error: a plain JavaScript module without types (node loads the reporter without tsx)
import fileTimes from '../../scripts/file-times.mjs';

type Event = { type: string; data: { nesting: number; file?: string; details?: { duration_ms: number } } };

async function report(events: Event[]): Promise<string[]> {
  async function* source(): AsyncGenerator<Event> { yield* events; }
  const lines: string[] = [];
  for await (const chunk of (fileTimes as (s: AsyncGenerator<Event>) => AsyncGenerator<string>)(source())) lines.push(...chunk.split('\n').filter((l) => l !== ''));
  return lines;
}

test('the test run ends with each file\'s time, slowest first, counting top-level tests only', async () => {
  const file = (name: string): string => join(process.cwd(), name);
  const lines = await report([
    { type: 'test:pass', data: { nesting: 0, file: file('src/a.test.ts'), details: { duration_ms: 1500 } } },
    { type: 'test:pass', data: { nesting: 1, file: file('src/a.test.ts'), details: { duration_ms: 1400 } } },
    { type: 'test:start', data: { nesting: 0, file: file('src/b.test.ts') } },
    { type: 'test:pass', data: { nesting: 0, file: file('src/b.test.ts'), details: { duration_ms: 2000 } } },
    { type: 'test:fail', data: { nesting: 0, file: file('src/b.test.ts'), details: { duration_ms: 3000 } } },
    { type: 'test:pass', data: { nesting: 0, file: file('src/a.test.ts'), details: { duration_ms: 500 } } },
  ]);
  assert.deepEqual(lines, [
    '# time per test file, slowest first (seconds; 2 files, 7.0 s in all, run 2 at a time):',
    '#     5.0  src/b.test.ts  (1 failed)',
    '#     2.0  src/a.test.ts',
  ]);
});

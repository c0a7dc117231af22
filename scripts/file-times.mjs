// A node:test reporter that prints, once the run ends, how long each test file's tests took, slowest first, as
// TAP comments after the summary: the suite's growth shows file by file before it bites. A file's time is the
// sum of its top-level tests and suites (they run one after another within a file); the time to load the
// file is not in it. Used by `npm test` beside the TAP reporter.
import { relative } from 'node:path';

export default async function* fileTimes(source) {
  const files = new Map();
  for await (const event of source) {
    if ((event.type !== 'test:pass' && event.type !== 'test:fail') || event.data.nesting !== 0) continue;
    const file = event.data.file === undefined ? '(no file)' : relative(process.cwd(), event.data.file);
    const entry = files.get(file) ?? { ms: 0, tests: 0, failed: 0 };
    entry.ms += event.data.details?.duration_ms ?? 0;
    entry.tests += 1;
    if (event.type === 'test:fail') entry.failed += 1;
    files.set(file, entry);
  }
  const rows = [...files].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((sum, [, e]) => sum + e.ms, 0);
  yield `# time per test file, slowest first (seconds; ${rows.length} files, ${(total / 1000).toFixed(1)} s in all, run 2 at a time):\n`;
  for (const [file, e] of rows) {
    yield `# ${(e.ms / 1000).toFixed(1).padStart(7)}  ${file}${e.failed > 0 ? `  (${e.failed} failed)` : ''}\n`;
  }
}

// The benches' CPU seconds of a process, from /proc: a number for a live process, NaN for none.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { processCpuSeconds } from './measure.js';

test('processCpuSeconds reads a live process\'s user and system seconds, and is NaN for a process that is not there', (t) => {
  if (!existsSync('/proc/self/stat')) {
    t.skip('no /proc here');
    return;
  }
  // This test's process has loaded its modules through tsx, more than a clock tick of CPU, and /proc agrees with
  // Node's own count (a field read wrong, such as the children's times, would not).
  const seconds = processCpuSeconds(process.pid);
  assert.ok(Number.isFinite(seconds) && seconds > 0, `${seconds}`);
  const usage = process.cpuUsage();
  assert.ok(seconds <= (usage.user + usage.system) / 1e6 + 0.05, `${seconds} against cpuUsage`);
  // pid 0 has no /proc entry.
  assert.ok(Number.isNaN(processCpuSeconds(0)));
});

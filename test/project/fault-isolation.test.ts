// The monitor learns of hardware faults only as hardware tells them (bus errors, the failure report): its code
// never names the injector or the hardware's fault state (board/hardware.ts `injector`, `state`).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MONITOR = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/monitor');

/** What the monitor may not name: the injector, the fault state, or their classes. */
const FORBIDDEN = /\binjector\b|\bFaultInjector\b|\bMachineFaults\b|\bhardware\s*\.\s*state\b|\bfaults\.js['"]|\bfault-script\.js['"]/;

/** The source without its comments, so that prose about the injector is allowed. */
export function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

test('the forbidden pattern catches the ways the monitor could reach the injector, and comments do not count', () => {
  for (const line of ['this.hardware.injector.inject(f)', 'import { MachineFaults } from "../board/faults.js"', 'hardware.state.nodeFailed(2)']) {
    assert.match(code(line), FORBIDDEN, line);
  }
  assert.doesNotMatch(code('// the injector is not ours\nconst a = 1; /* MachineFaults */'), FORBIDDEN);
});

test('no monitor source names the fault injector or the hardware\'s fault state', () => {
  const files = readdirSync(MONITOR).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  assert.ok(files.length > 10);
  const offending = files.filter((f) => FORBIDDEN.test(code(readFileSync(join(MONITOR, f), 'utf8'))));
  assert.deepEqual(offending, []);
});

// A platform without SharedArrayBuffer (a browser page that is not cross-origin isolated, browser.md) still runs a
// machine on one thread: every piece of state that threads may share falls back to a plain ArrayBuffer. Node has
// SharedArrayBuffer, so the machine is made in a child that removes it before it loads the machine (the loader
// that compiles TypeScript needs it itself, so V8's switch, --no-harmony-sharedarraybuffer, cannot be used).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const SCRIPT = `
delete globalThis.SharedArrayBuffer;
const { Machine } = await import('./src/board/machine.ts');
const machine = new Machine({ config: { harts: 2, nodes: [{ memoryBytes: 16 << 20, harts: [0, 1] }] }, builtinSbi: true });
machine.resetAll(0x80000000, true, 0);
for (let i = 0; i < 4; i++) machine.runRound();
console.log(JSON.stringify({ shared: typeof SharedArrayBuffer, instructions: machine.instructions > 0 }));
`;

test('a machine with the built-in SBI runs where there is no SharedArrayBuffer', () => {
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(child.status, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout.trim()), { shared: 'undefined', instructions: true });
});

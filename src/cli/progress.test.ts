// Tests of an experiment's progress: lines always, and on a terminal a status line with the case, the run and the time so far.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withProgress } from './progress.js';

function screen(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns: 120, write: (text: string) => writes.push(text) > 0 } };
}

describe('experiment progress', () => {
  it('on a terminal, shows what runs now, for how long and the time in all, below the lines, and erases it at the end', async () => {
    const { writes, out } = screen(true);
    let clock = 0;
    const result = await withProgress('overhead', async (p) => {
      clock = 5_000;
      p.onStatus('vm pmake, run 2/5');
      clock = 8_000;
      p.onProgress('vm pmake: 797.491 ms simulated, 12.0 s host');
      return 42;
    }, out, { now: () => clock, intervalMs: 60_000 });
    assert.equal(result, 42);
    const text = writes.join('');
    assert.ok(text.includes('overhead: vm pmake: 797.491 ms simulated, 12.0 s host\n'));
    assert.match(text, /\r\x1b\[Koverhead: vm pmake, run 2\/5, 3 s \(8 s in all\)/);
    assert.ok(text.endsWith('\r\x1b[K'), 'the status is erased before the results are printed');
  });

  it('elsewhere, prints the lines only, and the status line is erased even when the experiment fails', async () => {
    const plain = screen(false);
    await withProgress('many-vms', async (p) => {
      p.onStatus('8 VMs (case 4/4), booting');
      p.onProgress('8 VMs: booting');
    }, plain.out);
    assert.deepEqual(plain.writes, ['many-vms: 8 VMs: booting\n']);
    const tty = screen(true);
    await assert.rejects(withProgress('numa-placement', async () => { throw new Error('guest did not boot'); }, tty.out, { intervalMs: 60_000 }), /did not boot/);
    assert.equal(tty.writes.at(-1), '\r\x1b[K');
  });
});

// Tests of the status line: redrawn on a terminal with lines printed above it, silent elsewhere.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatElapsed, StatusLine } from './status-line.js';

function screen(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns: 40, write: (text: string) => writes.push(text) > 0 } };
}

describe('status line', () => {
  it('on a terminal, draws the status on the last line, prints lines above it, and erases it when stopped', () => {
    const { writes, out } = screen(true);
    let now = 0;
    const line: StatusLine = new StatusLine(out, (): string => `work: ${line.secondsSince(0)} s`, { now: () => now, intervalMs: 60_000 });
    line.start();
    now = 3000;
    line.print('one line');
    line.stop();
    assert.deepEqual(writes, ['\r\x1b[Kwork: 0 s', '\r\x1b[K', 'one line\n', '\r\x1b[Kwork: 3 s', '\r\x1b[K']);
  });

  it('cuts the status to the terminal\'s width', () => {
    const { writes, out } = screen(true);
    new StatusLine(out, () => 'x'.repeat(100)).redraw();
    assert.equal(writes[0], `\r\x1b[K${'x'.repeat(39)}`);
  });

  it('elsewhere, writes no status and passes printed lines through unchanged', () => {
    const { writes, out } = screen(false);
    const line = new StatusLine(out, () => 'status');
    line.start();
    line.redraw();
    line.print('a line');
    line.stop();
    assert.deepEqual(writes, ['a line\n']);
  });

  it('formats elapsed time in seconds, minutes and hours', () => {
    assert.equal(formatElapsed(42.9), '42 s');
    assert.equal(formatElapsed(185), '3 min 05 s');
    assert.equal(formatElapsed(3720), '1 h 02 min');
  });
});

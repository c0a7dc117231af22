import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LastLine, RateWindow } from '../../src/web/tab/progress.js';

test('the progress line shows the last line printed, whole or in progress, without escape sequences', () => {
  const last = new LastLine();
  last.add('[    0.1] first\r\n[    0.2] sec');
  assert.equal(last.text, '[    0.2] sec');
  last.add('ond\r\n\r\n');
  assert.equal(last.text, '[    0.2] second', 'empty lines keep the last one');
  last.add('\x1b[1;32mmirrorball:/# \x1b[0m');
  assert.equal(last.text, 'mirrorball:/#');
  last.add('\r\n\x07\r\n');
  assert.equal(last.text, 'mirrorball:/#');
});

test('instructions per second over the last window of host time', () => {
  const rate = new RateWindow(1000);
  assert.equal(rate.perSecond(), 0, 'one sample is no rate');
  rate.add(0, 0);
  assert.equal(rate.perSecond(), 0);
  rate.add(500, 1_000_000);
  assert.equal(rate.perSecond(), 2_000_000);
  rate.add(1000, 2_000_000);
  rate.add(2000, 2_000_000);
  // The samples from before the last second are gone: an idle second is 0, not the boot's average.
  assert.equal(rate.perSecond(), 0);
  rate.add(2500, 3_000_000);
  // From the last sample at or before the window's start (1000 ms) to the newest.
  assert.equal(rate.perSecond(), 1_000_000 / 1.5);
});

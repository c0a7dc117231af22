// The control device driven through its registers, as the guest's mbctl does.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONTROL_ARGUMENT, CONTROL_INVALID_PARAM, CONTROL_MAGIC, CONTROL_MAGIC_VALUE, CONTROL_NOT_SUPPORTED, CONTROL_REQUEST,
  CONTROL_RESULT, CONTROL_STATS_DUMP, CONTROL_VERSION, ControlDevice, type ControlHandler,
} from './control.js';

describe('control device', () => {
  it('identifies itself, runs a request with its argument and shows the result', () => {
    const seen: [number, number][] = [];
    let handler: ControlHandler | undefined;
    const device = new ControlDevice(() => handler);
    assert.equal(device.read(CONTROL_MAGIC, 4, 0), CONTROL_MAGIC_VALUE);
    assert.equal(device.read(CONTROL_VERSION, 4, 0), 1);
    device.write(CONTROL_REQUEST, 4, 0, 0);
    assert.equal(device.read(CONTROL_RESULT, 4, 0) | 0, CONTROL_NOT_SUPPORTED, 'no handler: not supported');
    handler = (request, argument) => {
      seen.push([request, argument]);
      return 5;
    };
    device.write(CONTROL_ARGUMENT, 4, 42, 0);
    assert.equal(device.read(CONTROL_ARGUMENT, 4, 0), 42);
    device.write(CONTROL_REQUEST, 4, CONTROL_STATS_DUMP, 0);
    assert.equal(device.read(CONTROL_RESULT, 4, 0), 5);
    device.write(CONTROL_REQUEST, 4, 0xffffffff, 0);
    assert.equal(device.read(CONTROL_RESULT, 4, 0) | 0, CONTROL_INVALID_PARAM);
    assert.deepEqual(seen, [[CONTROL_STATS_DUMP, 42]]);
  });

  it('ignores accesses that are not 32-bit and reads unknown registers as 0', () => {
    let calls = 0;
    const device = new ControlDevice(() => () => { calls++; return 0; });
    device.write(CONTROL_REQUEST, 1, 0, 0);
    device.write(CONTROL_REQUEST, 2, 0, 0);
    assert.equal(calls, 0);
    assert.equal(device.read(CONTROL_MAGIC, 2, 0), 0);
    assert.equal(device.read(0x800, 4, 0), 0);
  });
});

// Tests of the SiFive test finisher.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestDevice, type FinisherKind } from './syscon.js';

function setup() {
  const events: Array<[FinisherKind, number]> = [];
  const device = new TestDevice((kind, code) => events.push([kind, code]));
  return { device, events };
}

describe('TestDevice', () => {
  it('powers off on 0x5555 and reboots on 0x7777', () => {
    const { device, events } = setup();
    device.write(0, 4, 0x5555, 0);
    device.write(0, 4, 0x7777, 0);
    assert.deepEqual(events, [['poweroff', 0], ['reboot', 0]]);
  });

  it('fails with the code in the upper 16 bits', () => {
    const { device, events } = setup();
    device.write(0, 4, (42 << 16) | 0x3333, 0);
    device.write(0, 4, 0xffff3333, 0);
    assert.deepEqual(events, [['fail', 42], ['fail', 0xffff]]);
  });

  it('ignores other values and offsets and reads zero', () => {
    const { device, events } = setup();
    device.write(0, 4, 0x1234, 0);
    device.write(4, 4, 0x5555, 0);
    device.write(0, 1, 0x55, 0);
    assert.deepEqual(events, []);
    assert.equal(device.read(0, 4, 0), 0);
  });
});

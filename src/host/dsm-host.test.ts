// One host's part of a spanned VM (dsm-host.ts), without threads or peers: a hart's fault on a page the
// host already holds (it came between the hart's look and the host's) is answered at once and leaves no
// fault waiting behind, whose timing would otherwise start from that moment.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coherentMemory } from '../board/coherent-ram.js';
import { HostNode, type HostsConfig } from './dsm-host.js';

const CONFIG: HostsConfig = { harts: 2, entry: 0x8000_0000, ramBase: 0x8000_0000, ramSize: 64 * 4096, devices: [], translate: false, holdUs: 0 };

test('dsm host: a fault on a page the host holds is answered at once and leaves nothing waiting', () => {
  const memory = coherentMemory(CONFIG.ramBase, CONFIG.ramSize, CONFIG.harts);
  // Host 0 of 2 starts with every page Modified; its hart 0 posts a write fault on page 5 all the same.
  const node = new HostNode(0, 2, CONFIG, memory, new Map());
  new Int32Array(memory.faults)[0] = 1 + 5 * 2 + 1;
  node.service();
  assert.equal(node.waitingFaults, 0);
  assert.equal(node.roundTrips.length, 0);
  assert.equal(node.dsm.counters.writeFaults, 0, 'no request went out');
});

// Short fuzz of the virtio-mmio devices, a hostile driver next to a canary VM (docs/fuzzing.md).

import { test } from 'node:test';
import { fuzzBriefly } from './short.js';

for (const name of ['blk', 'net', 'net-offload', 'console', 'rng', 'balloon']) {
  test(`fuzz ${name}: never throws, never touches the canary's memory`, { timeout: 120_000 }, (t) => fuzzBriefly(t, name));
}

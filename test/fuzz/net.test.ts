// Short fuzz of the user-mode network stack: a hostile guest's frames and a capricious host's sockets.

import { test } from 'node:test';
import { fuzzBriefly } from './short.js';

test('fuzz user-network: never throws, every frame to the guest well formed, connections and buffers bounded', { timeout: 120_000 }, (t) => fuzzBriefly(t, 'user-network'));

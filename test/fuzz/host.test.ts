// Short fuzz of the host-facing surfaces: the control socket, machine files, command-line flags.

import { test } from 'node:test';
import { fuzzBriefly } from './short.js';

for (const name of ['control-socket', 'machine-file', 'cli-flags']) {
  test(`fuzz ${name}: bad input gets an error, never a crash or a wedged server`, { timeout: 120_000 }, (t) => fuzzBriefly(t, name));
}

// Short fuzz of the board's devices, the SBI and the monitor under random page tables and pmap operations.

import { test } from 'node:test';
import { fuzzBriefly } from './short.js';

for (const name of ['uart', 'plic', 'clint', 'control', 'sbi', 'monitor']) {
  test(`fuzz ${name}: never throws, never touches the canary's memory`, { timeout: 120_000 }, (t) => fuzzBriefly(t, name));
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from './options.js';
import { parseListenAddress } from './web.js';

test('[ADDR:]PORT: 127.0.0.1 unless an address is given; IPv6 in brackets', () => {
  assert.deepEqual(parseListenAddress('8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListenAddress('0'), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListenAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseListenAddress('localhost:9000'), { host: 'localhost', port: 9000 });
  assert.deepEqual(parseListenAddress('[::1]:8080'), { host: '::1', port: 8080 });
});

test('anything else is one usage line', () => {
  for (const bad of ['', 'x', '80a', '65536', ':80', '::1:80', '127.0.0.1:', '-1']) {
    assert.throws(() => parseListenAddress(bad), (error: unknown) => error instanceof UsageError && /is not \[ADDR:\]PORT/.test(error.message), bad);
  }
});

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { UsageError } from './options.js';
import { parseWebAddress } from './web-control.js';

it('--web takes [ADDR:]PORT, on 127.0.0.1 by default', () => {
  assert.deepEqual(parseWebAddress('8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseWebAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseWebAddress('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseWebAddress('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['', 'x', '70000', ':80', '1.2.3.4:', 'a b:80']) assert.throws(() => parseWebAddress(bad), UsageError, bad);
});

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { UsageError } from './options.js';
import { QmpError } from '../control/qmp.js';
import { confineFiles, parseWebAddress } from './web-control.js';

it('--web takes [ADDR:]PORT, on 127.0.0.1 by default', () => {
  assert.deepEqual(parseWebAddress('8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseWebAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseWebAddress('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseWebAddress('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['', 'x', '70000', ':80', '1.2.3.4:', 'a b:80']) assert.throws(() => parseWebAddress(bad), UsageError, bad);
});

it('a web client may write files only inside the run directory; other commands are untouched', () => {
  const calls: unknown[] = [];
  const commands = {
    'snapshot-save': { help: '', args: ['file', 'vm'], run: (args: Record<string, unknown>) => calls.push(args.file) },
    'stats-dump': { help: '', args: ['dir'], run: (args: Record<string, unknown>) => calls.push(args.dir) },
    'query-vms': { help: '', run: () => 'vms' },
  };
  const web = confineFiles(commands);
  for (const bad of ['/etc/passwd', '../up.snap', 'stats/../../x', '..', '/tmp/s']) {
    assert.throws(() => web['snapshot-save']!.run({ file: bad }), (e: unknown) => e instanceof QmpError && /inside the run directory/.test(e.message), bad);
    assert.throws(() => web['stats-dump']!.run({ dir: bad }), QmpError, bad);
  }
  web['snapshot-save']!.run({ file: 'snaps/a.snap' });
  web['stats-dump']!.run({ dir: 'stats/../now' });
  web['stats-dump']!.run({});
  assert.deepEqual(calls, ['snaps/a.snap', 'stats/../now', undefined]);
  assert.equal(web['query-vms'], commands['query-vms']);
  // The control socket's own table is not changed.
  commands['snapshot-save'].run({ file: '/abs.snap' });
  assert.deepEqual(calls.at(-1), '/abs.snap');
});

// --net, --console and --serial specifications: what they give, and one line for each mistake.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConsoleSocket, parseNet } from './net-options.js';
import { UsageError } from './options.js';

describe('--net', () => {
  it('user: forwards default to 127.0.0.1, several allowed, restrict and mac read', () => {
    const spec = parseNet('user,hostfwd=tcp::8080-:80,hostfwd=tcp:127.0.0.1:2222-10.0.2.15:22,restrict=on,mac=52:54:00:00:00:09');
    assert.equal(spec.kind, 'user');
    if (spec.kind !== 'user') return;
    assert.deepEqual(spec.forwards, [{ address: '127.0.0.1', hostPort: 8080, guestPort: 80 }, { address: '127.0.0.1', hostPort: 2222, guestPort: 22 }]);
    assert.equal(spec.restrict, true);
    assert.deepEqual([...spec.mac], [0x52, 0x54, 0, 0, 0, 9]);
    const plain = parseNet('user');
    assert.equal(plain.kind === 'user' && plain.restrict, false);
  });

  it('socket: listen and connect, the connecting side with the next MAC by default', () => {
    const listen = parseNet('socket,listen=:5555');
    const connect = parseNet('socket,connect=127.0.0.1:5555');
    assert.deepEqual(listen.kind === 'socket' && [listen.mode, listen.host, listen.port], ['listen', '127.0.0.1', 5555]);
    assert.deepEqual(connect.kind === 'socket' && [connect.mode, connect.host, connect.port], ['connect', '127.0.0.1', 5555]);
    assert.notDeepEqual([...listen.mac], [...connect.mac]);
  });

  it('says what is wrong, in one line', () => {
    const cases: [string, RegExp][] = [
      ['tap', /'tap' is not a network/],
      ['user,hostfwd=tcp::80', /is not tcp:\[ADDRESS\]:HOSTPORT-:GUESTPORT/],
      ['user,hostfwd=udp::53-:53', /TCP only/],
      ['user,hostfwd=tcp::0-:80', /host port must be a port from 1 to 65535/],
      ['user,hostfwd=tcp::8080-:99999', /guest port/],
      ['user,hostfwd=tcp:example.com:80-:80', /IPv4 address/],
      ['user,hostfwd=tcp::80-10.0.2.16:80', /guest address is 10\.0\.2\.15/],
      ['user,hostfwd=tcp::80-:80,hostfwd=tcp:127.0.0.1:80-:81', /two hostfwd listen on 127\.0\.0\.1:80/],
      ['user,restrict=maybe', /restrict must be on or off/],
      ['user,mac=01:00:00:00:00:01', /not a unicast MAC/],
      ['user,bogus=1', /unknown key 'bogus'/],
      ['socket', /needs listen=ADDRESS:PORT or connect=ADDRESS:PORT/],
      ['socket,listen=5555', /takes ADDRESS:PORT/],
      ['socket,listen=:1,connect=:2', /one of listen= and connect=/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseNet(text), (error: Error) => error instanceof UsageError && message.test(error.message) && !error.message.includes('\n'), text);
    }
  });
});

describe('--console and --serial', () => {
  it('take socket=PATH', () => {
    assert.equal(parseConsoleSocket('socket=/tmp/x.sock', '--console'), '/tmp/x.sock');
    assert.throws(() => parseConsoleSocket('/tmp/x.sock', '--serial'), /--serial takes socket=PATH/);
    assert.throws(() => parseConsoleSocket('socket=', '--console'), UsageError);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostAllowed, originAllowed, parseHost } from './server.js';

describe('the web server\'s checks', () => {
  it('parses Host headers', () => {
    assert.deepEqual(parseHost('127.0.0.1:8080'), { name: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseHost('[::1]:80'), { name: '::1', port: 80 });
    assert.deepEqual(parseHost('LocalHost:1'), { name: 'localhost', port: 1 });
    for (const bad of [undefined, '', '127.0.0.1', 'a b:80', 'x:', 'x:123456', 'user@host:80']) assert.equal(parseHost(bad), undefined, String(bad));
  });

  it('answers to its own address and port only (DNS rebinding sends the attacker\'s name)', () => {
    const table: [string | undefined, string, number, boolean][] = [
      ['127.0.0.1:8080', '127.0.0.1', 8080, true],
      ['localhost:8080', '127.0.0.1', 8080, true],
      ['127.0.0.1:8081', '127.0.0.1', 8080, false],
      ['evil.example:8080', '127.0.0.1', 8080, false],
      ['127.0.0.2:8080', '127.0.0.1', 8080, false],
      [undefined, '127.0.0.1', 8080, false],
      ['[::1]:8080', '::1', 8080, true],
      ['192.168.1.5:80', '192.168.1.5', 80, true],
      ['localhost:80', '192.168.1.5', 80, false],
      ['myhost.lan:80', '192.168.1.5', 80, false],
      // On every address: any IP, never a name.
      ['10.0.0.7:80', '0.0.0.0', 80, true],
      ['[fe80::1]:80', '::', 80, true],
      ['localhost:80', '0.0.0.0', 80, true],
      ['evil.example:80', '0.0.0.0', 80, false],
    ];
    for (const [header, address, port, allowed] of table) assert.equal(hostAllowed(header, address, port), allowed, `${header} on ${address}:${port}`);
  });

  it('takes a WebSocket only from its own page', () => {
    assert.equal(originAllowed('http://127.0.0.1:8080', '127.0.0.1:8080'), true);
    assert.equal(originAllowed('http://evil.example', '127.0.0.1:8080'), false);
    assert.equal(originAllowed('https://127.0.0.1:8080', '127.0.0.1:8080'), false);
    assert.equal(originAllowed('http://127.0.0.1:8081', '127.0.0.1:8080'), false);
    assert.equal(originAllowed('null', '127.0.0.1:8080'), false);
    assert.equal(originAllowed(undefined, '127.0.0.1:8080'), false);
  });
});

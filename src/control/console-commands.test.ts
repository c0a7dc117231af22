import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONSOLE_BACKLOG_BYTES, ConsoleHub, MAX_CONSOLE_INPUT_BYTES } from './console-commands.js';
import { QmpConnection, QmpError } from './qmp.js';

function setup() {
  const typed: [string, string][] = [];
  const hub = new ConsoleHub({
    check: (name) => { if (name !== 'web' && name !== 'db') throw new QmpError('GenericError', `no VM named '${name}'`); },
    input: (name, bytes) => {
      if (name === 'db') throw new QmpError('GenericError', "VM 'db' is not running");
      typed.push([name, Buffer.from(bytes).toString('latin1')]);
    },
  });
  const commands = hub.commands();
  const client = () => {
    const sent: Record<string, unknown>[] = [];
    const connection = new QmpConnection(commands, (m) => sent.push(m as Record<string, unknown>), () => {}, { name: 'mirrorball', version: '0' });
    connection.receive('{"execute":"qmp_capabilities"}\n');
    sent.length = 0;
    const ask = (command: string, args: object): Record<string, unknown> => {
      const before = sent.length;
      connection.receive(`${JSON.stringify({ execute: command, arguments: args })}\n`);
      const i = sent.findIndex((m, index) => index >= before && !('event' in m));
      return sent.splice(i, 1)[0]!;
    };
    const output = (): string => sent.filter((m) => m.event === 'CONSOLE_OUTPUT').map((m) => {
      const d = m.data as { vm: string; data: string };
      return `${d.vm}:${Buffer.from(d.data, 'base64').toString('latin1')}`;
    }).join('|');
    return { connection, sent, ask, output };
  };
  return { hub, typed, client };
}

describe('ConsoleHub', () => {
  it('sends a console\'s output to its subscribers only, and the backlog to one that subscribes later', () => {
    const { hub, client } = setup();
    const a = client();
    const b = client();
    assert.deepEqual(a.ask('console-subscribe', { vm: 'web' }), { return: { vm: 'web', backlog: '' } });
    hub.output('web', new TextEncoder().encode('hello '));
    hub.output('db', new TextEncoder().encode('not for a'));
    assert.equal(a.output(), 'web:hello ');
    assert.equal(b.output(), '');
    const reply = b.ask('console-subscribe', { vm: 'web' }) as { return: { backlog: string } };
    assert.equal(Buffer.from(reply.return.backlog, 'base64').toString(), 'hello ');
    hub.output('web', new Uint8Array([0xe2, 0x82])); // half a UTF-8 character: bytes go as they are
    assert.equal(hub.subscribed('web'), 2);
    const last = b.sent.filter((m) => m.event === 'CONSOLE_OUTPUT').pop()!.data as { data: string };
    assert.deepEqual([...Buffer.from(last.data, 'base64')], [0xe2, 0x82]);
    b.ask('console-unsubscribe', { vm: 'web' });
    assert.equal(hub.subscribed('web'), 1);
    a.connection.dispose();
    assert.equal(hub.subscribed('web'), 0, 'a client that went away is no subscriber');
  });

  it('keeps the last output up to its backlog size, and forgets it when the console starts again', () => {
    const { hub, client } = setup();
    for (let i = 0; i < 40; i++) hub.output('web', new Uint8Array(1024).fill(65 + (i % 26)));
    const backlog = Buffer.from((client().ask('console-subscribe', { vm: 'web' }) as { return: { backlog: string } }).return.backlog, 'base64');
    assert.ok(backlog.length >= CONSOLE_BACKLOG_BYTES && backlog.length < CONSOLE_BACKLOG_BYTES + 1024, `${backlog.length}`);
    assert.equal(backlog[backlog.length - 1], 65 + (39 % 26), 'the newest output is kept');
    hub.reset('web');
    assert.equal((client().ask('console-subscribe', { vm: 'web' }) as { return: { backlog: string } }).return.backlog, '');
  });

  it('types base64 input into the console, and refuses what is not', () => {
    const { typed, client } = setup();
    const c = client();
    assert.deepEqual(c.ask('console-input', { vm: 'web', data: Buffer.from('ls\n').toString('base64') }), { return: { bytes: 3 } });
    assert.deepEqual(typed, [['web', 'ls\n']]);
    const error = (args: object): string => ((c.ask('console-input', args).error as { desc: string }).desc);
    assert.equal(error({ vm: 'web', data: 'ls!' }), "Parameter 'data' must be base64");
    assert.equal(error({ vm: 'web' }), "Parameter 'data' is missing");
    assert.equal(error({ vm: 'nope', data: '' }), "no VM named 'nope'");
    assert.equal(error({ vm: 'db', data: 'YQ==' }), "VM 'db' is not running");
    assert.match(error({ vm: 'web', data: Buffer.alloc(MAX_CONSOLE_INPUT_BYTES + 1).toString('base64') }), /at most 4096 at a time/);
    assert.equal(typed.length, 1, 'nothing refused was typed');
  });
});

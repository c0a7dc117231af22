import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_LINE_BYTES, QmpConnection, QmpError, enumArgument, type QmpCommands } from './qmp.js';

function client(commands: QmpCommands = {}) {
  const sent: Record<string, unknown>[] = [];
  let closed = 0;
  const connection = new QmpConnection(commands, (m) => sent.push(m as Record<string, unknown>), () => { closed++; }, { name: 'mirrorball', version: '9.9' });
  const ask = (line: string): Record<string, unknown> => {
    const before = sent.length;
    connection.receive(`${line}\n`);
    assert.equal(sent.length, before + 1, `one reply to ${line}`);
    return sent[sent.length - 1]!;
  };
  return { connection, sent, ask, closed: () => closed };
}

const ECHO: QmpCommands = {
  echo: { help: 'x', args: ['mode'], run: (args) => ({ mode: enumArgument(args, 'mode', ['a', 'b'] as const) }) },
  fail: { help: 'x', run: () => { throw new QmpError('GenericError', 'it failed'); } },
};

describe('QmpConnection', () => {
  it('greets, then accepts only qmp_capabilities until negotiated', () => {
    const c = client(ECHO);
    assert.deepEqual(c.sent[0], { QMP: { version: { mirrorball: '9.9' }, capabilities: [] } });
    assert.deepEqual(c.ask('{"execute":"echo","arguments":{"mode":"a"}}'),
      { error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } });
    assert.deepEqual(c.ask('{"execute":"qmp_capabilities","id":7}'), { return: {}, id: 7 });
    assert.deepEqual(c.ask('{"execute":"echo","arguments":{"mode":"b"},"id":"x"}'), { return: { mode: 'b' }, id: 'x' });
    assert.equal((c.ask('{"execute":"qmp_capabilities"}').error as { class: string }).class, 'CommandNotFound');
  });

  it('answers a command that returns a promise when it settles, with its id, a QmpError as the error reply', async () => {
    let answer: (value: unknown) => void = () => undefined;
    const c = client({
      later: { help: 'x', run: () => new Promise((resolve) => { answer = resolve; }) },
      refused: { help: 'x', run: () => Promise.reject(new QmpError('GenericError', 'not here')) },
    });
    c.connection.receive('{"execute":"qmp_capabilities"}\n');
    c.connection.receive('{"execute":"later","id":1}\n');
    assert.equal(c.sent.length, 2, 'no reply before it settles');
    answer({ n: 3 });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(c.sent[2], { return: { n: 3 }, id: 1 });
    c.connection.receive('{"execute":"refused","id":2}\n');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(c.sent[3], { error: { class: 'GenericError', desc: 'not here' }, id: 2 });
  });

  it('answers mistakes with errors and goes on', () => {
    const c = client(ECHO);
    c.ask('{"execute":"qmp_capabilities"}');
    const desc = (line: string): string => ((c.ask(line).error as { desc: string }).desc);
    assert.match(desc('{nope'), /^JSON parse error/);
    assert.equal(desc('[1,2]'), 'QMP input must be a JSON object');
    assert.equal(desc('{"arguments":{}}'), "QMP input lacks member 'execute'");
    assert.equal(desc('{"execute":3}'), "QMP input member 'execute' must be a string");
    assert.equal(desc('{"execute":"echo","arguments":[]}'), "QMP input member 'arguments' must be an object");
    assert.equal(desc('{"execute":"echo","extra":1}'), "QMP input member 'extra' is unexpected");
    assert.equal(desc('{"execute":"echo","arguments":{"mode":"a","x":1}}'), "Parameter 'x' is unexpected");
    assert.equal(desc('{"execute":"echo","arguments":{"mode":"c"}}'), 'Parameter \'mode\' must be one of "a", "b"');
    assert.equal(desc('{"execute":"echo"}'), "Parameter 'mode' is missing");
    assert.equal(desc('{"execute":"fail"}'), 'it failed');
    assert.equal(desc('{"execute":"__proto__"}'), 'The command __proto__ has not been found');
    assert.deepEqual(c.ask('{"execute":"query-commands"}').return,
      [{ name: 'echo' }, { name: 'fail' }, { name: 'qmp_capabilities' }, { name: 'query-commands' }]);
    assert.equal(c.closed(), 0);
  });

  it('takes input in any pieces and several commands in one piece', () => {
    const c = client(ECHO);
    const text = '{"execute":"qmp_capabilities"}\n{"execute":"echo","arguments":{"mode":"a"}}\n';
    for (const ch of text.slice(0, 20)) c.connection.receive(ch);
    c.connection.receive(text.slice(20));
    assert.deepEqual(c.sent.slice(1), [{ return: {} }, { return: { mode: 'a' } }]);
  });

  it('closes a connection whose line never ends', () => {
    const c = client(ECHO);
    c.connection.receive('x'.repeat(MAX_LINE_BYTES + 1));
    assert.equal(c.closed(), 1);
    assert.match((c.sent[1]!.error as { desc: string }).desc, /longer than/);
    c.connection.receive('{"execute":"qmp_capabilities"}\n');
    assert.equal(c.sent.length, 2, 'nothing more after the close');
  });

  it('sends events only to negotiated clients, with a timestamp', () => {
    const c = client();
    c.connection.event('STOP');
    assert.equal(c.sent.length, 1);
    c.ask('{"execute":"qmp_capabilities"}');
    c.connection.event('SHUTDOWN', { reason: 'host-quit' });
    const event = c.sent[2]!;
    assert.equal(event.event, 'SHUTDOWN');
    assert.deepEqual(event.data, { reason: 'host-quit' });
    assert.ok(Number.isInteger((event.timestamp as { seconds: number }).seconds));
  });

  it('never throws on garbage lines, and answers each with exactly one error', () => {
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 200 }).filter((s) => !s.includes('\n') && s.trim() !== ''), { maxLength: 20 }), (lines) => {
      const c = client(ECHO);
      c.ask('{"execute":"qmp_capabilities"}');
      for (const line of lines) {
        const reply = c.ask(line);
        assert.ok('error' in reply || 'return' in reply);
      }
    }));
  });
});

describe('QmpConnection with a token', () => {
  const withToken = (): { sent: Record<string, unknown>[]; connection: QmpConnection; closed: () => number } => {
    const sent: Record<string, unknown>[] = [];
    let closed = 0;
    const connection = new QmpConnection(ECHO, (m) => sent.push(m as Record<string, unknown>), () => { closed++; }, { name: 'mirrorball', version: '9.9' }, { token: 'secret-token' });
    return { sent, connection, closed: () => closed };
  };

  for (const [what, args] of [['no token', ''], ['a wrong token', ',"arguments":{"token":"secret-tokeN"}'], ['a shorter one', ',"arguments":{"token":"secret"}'], ['a number', ',"arguments":{"token":7}']] as const) {
    it(`refuses ${what} and closes the connection`, () => {
      const c = withToken();
      c.connection.receive(`{"execute":"qmp_capabilities"${args}}\n{"execute":"echo","arguments":{"mode":"a"}}\n`);
      assert.deepEqual(c.sent.slice(1), [{ error: { class: 'GenericError', desc: 'the token is missing or wrong' } }], 'nothing after the refusal');
      assert.equal(c.closed(), 1);
      assert.equal(c.connection.listening, false);
    });
  }

  it('takes the right token, and then the commands', () => {
    const c = withToken();
    c.connection.receive('{"execute":"qmp_capabilities","arguments":{"token":"secret-token"}}\n{"execute":"echo","arguments":{"mode":"a"}}\n');
    assert.deepEqual(c.sent.slice(1), [{ return: {} }, { return: { mode: 'a' } }]);
    assert.equal(c.closed(), 0);
  });

  it('without a token configured, a token argument is unexpected (the control socket)', () => {
    const c = client(ECHO);
    assert.deepEqual(c.ask('{"execute":"qmp_capabilities","arguments":{"token":"x"}}'), { error: { class: 'GenericError', desc: "Parameter 'token' is unexpected" } });
  });

  it('hands commands their connection, and runs its cleanups once it is disposed', () => {
    let seen: QmpConnection | undefined;
    const c = client({ who: { help: 'x', run: (_args, conn) => { seen = conn; return {}; } } });
    c.ask('{"execute":"qmp_capabilities"}');
    c.ask('{"execute":"who"}');
    assert.equal(seen, c.connection);
    let cleaned = 0;
    c.connection.onDispose(() => { cleaned++; });
    c.connection.dispose();
    assert.equal(cleaned, 1);
    assert.equal(c.connection.listening, false);
    c.connection.onDispose(() => { cleaned++; });
    assert.equal(cleaned, 2, 'a cleanup added after dispose runs at once');
  });
});

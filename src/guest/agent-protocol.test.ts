// Tests of the agent protocol's host side: synthesized console streams, and the real agent script run on the host.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentError, AgentProtocol, COMMAND_CHUNK, posixCksum, type AgentResult } from './agent-protocol.js';
import { recipeDir } from './recipe.js';

/** A host-side harness: the protocol plus everything it typed, as lines. */
function harness(maxResends?: number) {
  const typed: string[] = [];
  const other: string[] = [];
  const agent = new AgentProtocol({ send: (b) => typed.push(...new TextDecoder().decode(b).split('\n').filter((l) => l !== '')), onOther: (l) => other.push(l), maxResends });
  return { agent, typed, other };
}

/** The frames the guest agent prints for one result, as the script does (base64 in 76-character lines). */
function resultFrames(id: number, output: Uint8Array | string, status: number): string[] {
  const bytes = typeof output === 'string' ? new TextEncoder().encode(output) : output;
  const b64 = Buffer.from(bytes).toString('base64');
  const lines = b64.match(/.{1,76}/g) ?? [];
  return [`@@MB BEGIN ${id}@@`, ...lines.map((l, i) => `@@MB D ${id} ${i + 1} ${l}@@`), `@@MB END ${id} ${status} ${bytes.length} ${posixCksum(bytes)}@@`];
}

/** Decodes the command the host typed for `id` from its mbc lines. */
function typedCommand(typed: string[], id: number): string {
  const b64 = typed.filter((l) => l.startsWith(`mbc ${id} `)).map((l) => l.split(' ')[2]).join('');
  return Buffer.from(b64, 'base64').toString('utf8');
}

describe('AgentProtocol', () => {
  it('waits for READY, types the command, and resolves with output and status', async () => {
    const { agent, typed } = harness();
    const result = agent.exec('echo hello; exit 3');
    assert.equal(typed.length, 0, 'nothing is typed before the agent is ready');
    agent.feed('[    1.234] Run /init as init process\r\n@@MB READY 1@@\r\n');
    assert.equal(agent.ready, true);
    assert.deepEqual(typed.map((l) => l.split(' ')[0]), ['mbc', 'mbx']);
    assert.equal(typedCommand(typed, 1), 'echo hello; exit 3');
    agent.feed(resultFrames(1, 'hello\n', 3).join('\r\n') + '\r\n');
    assert.deepEqual(await result, { output: 'hello\n', status: 3 });
  });

  it('ignores echo, prompts, kernel messages and bytes fed one at a time', async () => {
    const { agent, typed, other } = harness();
    const stream = ['~ # @@MB READY 1@@', ''].join('\r\n');
    for (const byte of new TextEncoder().encode(stream)) agent.feed(new Uint8Array([byte]));
    const result = agent.exec('uname -a');
    const echo = typed.join('\r\n');
    const frames = resultFrames(1, 'Linux mirrorball\n', 0);
    const noisy = [echo, frames[0], '[   12.5] virtio_net virtio1 eth0: link up', ...frames.slice(1), ''].join('\r\n');
    for (const byte of new TextEncoder().encode(noisy)) agent.feed(new Uint8Array([byte]));
    assert.deepEqual(await result, { output: 'Linux mirrorball\n', status: 0 });
    assert.ok(other.some((l) => l.includes('eth0: link up')));
    assert.ok(other.some((l) => l.startsWith('mbc 1 ')), 'echoed input is passed on, not taken for a frame');
  });

  it('asks again when a kernel message cut a data line, and accepts the resent result', async () => {
    const { agent, typed } = harness();
    agent.feed('@@MB READY 1@@\n');
    const result = agent.exec('seq 1 100');
    const output = Array.from({ length: 100 }, (_, i) => `${i + 1}\n`).join('');
    const frames = resultFrames(1, output, 0);
    const cut = frames[2]!;
    const damaged = [...frames.slice(0, 2), `${cut.slice(0, 30)}[   3.1] random: crng init done`, `${cut.slice(30)}`, ...frames.slice(3)];
    agent.feed(damaged.join('\n') + '\n');
    assert.equal(typed.at(-1), 'mbr 1');
    agent.feed(frames.join('\n') + '\n');
    assert.deepEqual(await result, { output, status: 0 });
  });

  it('rejects a result whose CRC never matches, after the allowed resends, and goes on with the next command', async () => {
    const { agent, typed } = harness(2);
    agent.feed('@@MB READY 1@@\n');
    const bad = agent.exec('true');
    const good = agent.exec('echo ok');
    const wrong = (frames: string[]) => [...frames.slice(0, -1), frames.at(-1)!.replace(/ \d+@@$/, ' 12345@@')];
    for (let i = 0; i < 3; i++) agent.feed(wrong(resultFrames(1, 'x', 0)).join('\n') + '\n');
    await assert.rejects(bad, AgentError);
    assert.equal(typed.filter((l) => l === 'mbr 1').length, 2);
    assert.equal(typedCommand(typed, 2), 'echo ok');
    agent.feed(resultFrames(2, 'ok\n', 0).join('\n') + '\n');
    assert.deepEqual(await good, { output: 'ok\n', status: 0 });
  });

  it('fails the running command when the agent restarts, and runs the queued ones after', async () => {
    const { agent, typed } = harness();
    agent.feed('@@MB READY 1@@\n');
    const first = agent.exec('reboot-ish');
    const second = agent.exec('echo after');
    agent.feed('@@MB BEGIN 1@@\n@@MB READY 1@@\n');
    await assert.rejects(first, /restarted/);
    assert.equal(typedCommand(typed, 2), 'echo after');
    agent.feed(resultFrames(2, 'after\n', 0).join('\n') + '\n');
    assert.equal((await second).output, 'after\n');
  });

  it('fails a command whose result the agent lost', async () => {
    const { agent } = harness();
    agent.feed('@@MB READY 1@@\n');
    const result = agent.exec('x');
    agent.feed('@@MB LOST 1@@\n');
    await assert.rejects(result, /no longer has/);
  });

  it('splits a long command into lines the tty accepts and keeps its bytes exactly', () => {
    const { agent, typed } = harness();
    agent.feed('@@MB READY 1@@\n');
    const command = `printf '%s' '${'é✓'.repeat(900)}' | wc -c`;
    void agent.exec(command);
    assert.ok(typed.length > 3);
    assert.ok(typed.every((l) => l.length <= COMMAND_CHUNK + 16));
    assert.equal(typedCommand(typed, 1), command);
  });

  it('returns empty output and binary-safe output', async () => {
    const { agent } = harness();
    agent.feed('@@MB READY 1@@\n');
    const empty = agent.exec('true');
    agent.feed(resultFrames(1, '', 0).join('\n') + '\n');
    assert.deepEqual(await empty, { output: '', status: 0 });
    const utf8 = agent.exec('echo');
    agent.feed(resultFrames(2, 'naïve — ✓\n', 0).join('\n') + '\n');
    assert.equal((await utf8).output, 'naïve — ✓\n');
  });

  it('aborts pending commands', async () => {
    const { agent } = harness();
    const a = agent.exec('a');
    const b = agent.exec('b');
    agent.abort('timed out');
    await assert.rejects(a, /timed out/);
    await assert.rejects(b, /timed out/);
  });

  it('answers whenReady at once when ready, and types mbp for ping', async () => {
    const { agent, typed } = harness();
    agent.ping();
    assert.deepEqual(typed, ['mbp']);
    const waiting = agent.whenReady();
    agent.feed('@@MB READY 1@@\n');
    await waiting;
    await agent.whenReady();
  });
});

describe('posixCksum', () => {
  it('matches the values POSIX cksum prints', () => {
    assert.equal(posixCksum(new Uint8Array(0)), 4294967295);
    assert.equal(posixCksum(new TextEncoder().encode('123456789')), 930766865);
  });

  it('matches the host cksum on a long input', { skip: spawnSync('cksum', ['--version']).status === null ? 'no cksum' : false }, () => {
    const data = Uint8Array.from({ length: 70000 }, (_, i) => (i * 31 + (i >> 8)) & 0xff);
    const printed = spawnSync('cksum', { input: data }).stdout.toString().trim().split(/\s+/);
    assert.equal(posixCksum(data), Number(printed[0]));
    assert.equal(data.length, Number(printed[1]));
  });
});

const hostHasTools = ['base64', 'awk', 'cksum'].every((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0);

describe('the guest agent script, run on the host', { skip: hostHasTools ? false : 'needs sh, base64, awk and cksum' }, () => {
  it('runs commands and returns their output and status through the protocol', async () => {
    const state = mkdtempSync(join(tmpdir(), 'mb-agent-'));
    const child = spawn('sh', [join(recipeDir(), 'rootfs/sbin/mb-agent')], { env: { ...process.env, MB_AGENT_STATE: state }, stdio: ['pipe', 'pipe', 'pipe'] });
    const agent = new AgentProtocol({ send: (b) => child.stdin.write(b) });
    child.stdout.on('data', (d: Buffer) => agent.feed(d));
    child.stderr.on('data', (d: Buffer) => agent.feed(d));
    try {
      await agent.whenReady();
      const results: AgentResult[] = await Promise.all([
        agent.exec('echo hello; echo oops >&2; exit 7'),
        agent.exec('i=0; while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done'),
        agent.exec(`printf '%s' '${'x'.repeat(3000)}' | wc -c`),
        agent.exec('read x; echo "stdin gave [$x]"'),
      ]);
      assert.deepEqual(results[0], { output: 'hello\noops\n', status: 7 });
      assert.equal(results[1]!.output.split('\n').length, 501);
      assert.equal(results[1]!.output.split('\n')[499], 'line 499');
      assert.equal(results[2]!.output.trim(), '3000');
      assert.equal(results[3]!.output, 'stdin gave []\n');
    } finally {
      child.kill();
      rmSync(state, { recursive: true, force: true });
    }
  });
});

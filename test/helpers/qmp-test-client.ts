// What every test client of the control protocol shares, whatever carries it (a Unix socket's lines, a
// WebSocket's messages): the queue of what came in, waiting for a message, and commands with their replies.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

export type Message = Record<string, unknown>;

export abstract class QmpTestClient {
  readonly messages: Message[] = [];
  closed = false;

  /** Sends one command object the way the transport frames it. */
  protected abstract sendMessage(message: object): void;

  /** The next message satisfying `wanted`, taken from the queue; fails after `timeoutMs` with what did come. */
  async next(wanted: (m: Message) => boolean = () => true, timeoutMs = 60_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex(wanted);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (Date.now() > deadline) assert.fail(`no such message in ${timeoutMs / 1000} s; received ${JSON.stringify(this.messages).slice(0, 2000)}`);
      await sleep(20);
    }
  }

  event(name: string, timeoutMs?: number): Promise<Message> {
    return this.next((m) => m.event === name, timeoutMs);
  }

  /** The reply to `command` (its id removed). */
  async execute(command: string, args?: object): Promise<Message> {
    const id = `${command}-${Math.random()}`;
    this.sendMessage(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    const reply = await this.next((m) => m.id === id);
    delete reply.id;
    return reply;
  }

  /** The return value of a command that must succeed. */
  async ok<T = unknown>(command: string, args?: object): Promise<T> {
    const reply = await this.execute(command, args);
    assert.ok('return' in reply, `${command} failed: ${JSON.stringify(reply)}`);
    return reply.return as T;
  }

  /** The error text of a command that must fail. */
  async error(command: string, args?: object): Promise<string> {
    const reply = await this.execute(command, args);
    assert.ok('error' in reply, `${command} should have failed: ${JSON.stringify(reply)}`);
    return (reply.error as { desc: string }).desc;
  }
}

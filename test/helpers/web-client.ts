// A client of the dashboard's WebSocket (docs/dashboard.md) for tests: the control protocol, one JSON object
// per message.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

export type Message = Record<string, unknown>;

export class WebClient {
  readonly messages: Message[] = [];
  closed = false;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(JSON.parse(data.toString()) as Message));
    ws.on('close', () => { this.closed = true; });
  }

  /** Connects to `ws://HOST/control` with the given Origin (default: the server's own page) and Host headers. */
  static connect(host: string, options: { origin?: string | null; hostHeader?: string } = {}): Promise<WebClient> {
    const headers: Record<string, string> = {};
    if (options.hostHeader !== undefined) headers.Host = options.hostHeader;
    const origin = options.origin === undefined ? `http://${host}` : options.origin;
    const ws = new WebSocket(`ws://${host}/control`, { headers, ...(origin === null ? {} : { origin }) });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new WebClient(ws)));
      ws.once('unexpected-response', (_request, response) => reject(new Error(`refused: ${response.statusCode}`)));
      ws.once('error', reject);
    });
  }

  async next(wanted: (m: Message) => boolean = () => true, timeoutMs = 60_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex(wanted);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (Date.now() > deadline) assert.fail(`no such message in ${timeoutMs / 1000} s; received ${JSON.stringify(this.messages).slice(0, 2000)}`);
      await sleep(20);
    }
  }

  async execute(command: string, args?: object): Promise<Message> {
    const id = `${command}-${Math.random()}`;
    this.ws.send(JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }));
    const reply = await this.next((m) => m.id === id);
    delete reply.id;
    return reply;
  }

  async ok<T = unknown>(command: string, args?: object): Promise<T> {
    const reply = await this.execute(command, args);
    assert.ok('return' in reply, `${command} failed: ${JSON.stringify(reply)}`);
    return reply.return as T;
  }

  async error(command: string, args?: object): Promise<string> {
    const reply = await this.execute(command, args);
    assert.ok('error' in reply, `${command} should have failed: ${JSON.stringify(reply)}`);
    return (reply.error as { desc: string }).desc;
  }

  /** What the VM's console printed in CONSOLE_OUTPUT events so far (taken from the queue). */
  consoleText(vm: string): string {
    let text = '';
    for (let i = 0; i < this.messages.length;) {
      const m = this.messages[i]!;
      const data = m.data as { vm?: string; data?: string } | undefined;
      if (m.event === 'CONSOLE_OUTPUT' && data?.vm === vm) {
        text += Buffer.from(data.data!, 'base64').toString('latin1');
        this.messages.splice(i, 1);
      } else i++;
    }
    return text;
  }

  close(): void {
    this.ws.close();
  }
}

// A test client of the control socket (docs/control.md): one JSON object per line each way.

import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A client that reads one JSON object per line. */
export class Client {
  private readonly lines: Record<string, unknown>[] = [];
  private buffer = '';
  private wake: (() => void) | undefined;

  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
        this.lines.push(JSON.parse(this.buffer.slice(0, i)) as Record<string, unknown>);
        this.buffer = this.buffer.slice(i + 1);
      }
      this.wake?.();
    });
  }

  static async connect(path: string, child: ChildProcess): Promise<Client> {
    for (let attempt = 0; attempt < 300; attempt++) {
      if (child.exitCode !== null) throw new Error(`mirrorball exited with ${child.exitCode} before listening`);
      if (existsSync(path)) {
        const socket = createConnection(path);
        const ok = await new Promise<boolean>((resolve) => {
          socket.once('connect', () => resolve(true));
          socket.once('error', () => resolve(false));
        });
        if (ok) return new Client(socket);
      }
      await sleep(100);
    }
    throw new Error('the control socket never appeared');
  }

  /** The next message (reply or event) that satisfies `wanted`. */
  async next(wanted: (m: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
    for (;;) {
      const index = this.lines.findIndex(wanted);
      if (index >= 0) return this.lines.splice(index, 1)[0]!;
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }

  async execute(command: string, args?: object): Promise<Record<string, unknown>> {
    const id = `${command}-${Math.random()}`;
    this.socket.write(`${JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id })}\n`);
    const reply = await this.next((m) => m.id === id);
    delete reply.id;
    return reply;
  }
}

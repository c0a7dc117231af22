// The client side of the control socket, for the commands that talk to a running `mirrorball up`.

import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import type { Command } from 'commander';

/** A failure talking to the monitor (none listening, an error reply): one line, exit status 1. */
export class ControlClientError extends Error {}

/** Name of the control socket in the run directory. */
export const CONTROL_SOCKET = 'control.sock';

/** Where `up` keeps its sockets and console logs: $MIRRORBALL_RUN_DIR, else ./mirrorball-run. */
export function defaultRunDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MIRRORBALL_RUN_DIR !== undefined && env.MIRRORBALL_RUN_DIR !== '' ? env.MIRRORBALL_RUN_DIR : 'mirrorball-run';
}

/** The options every command that reaches `up` takes. */
export interface ControlFlags {
  control?: string;
  runDir?: string;
}

export function controlPath(flags: ControlFlags): string {
  return flags.control ?? join(flags.runDir ?? defaultRunDir(), CONTROL_SOCKET);
}

const CONTROL_HELP = `the monitor's control socket (default: RUN-DIR/${CONTROL_SOCKET})`;
const RUN_DIR_HELP = 'the run directory `mirrorball up` was given (default: $MIRRORBALL_RUN_DIR, else ./mirrorball-run)';

/** Adds --control and --run-dir to a command. */
export function controlOptions(command: Command): Command {
  return command.option('--control <socket>', CONTROL_HELP).option('--run-dir <dir>', RUN_DIR_HELP);
}

type Message = Record<string, unknown>;

/**
 * A QMP client: connects, reads the greeting, negotiates, then runs commands one at a time. Events are
 * passed to `onEvent`.
 */
export class ControlClient {
  private buffer = '';
  private readonly waiting = new Map<string, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private closedError: ControlClientError | undefined;
  private onClosed: (() => void) | undefined;
  /** Resolves when the connection is gone (the monitor quit, or close()). */
  readonly closed = new Promise<void>((resolve) => { this.onClosed = resolve; });
  onEvent: ((name: string, data: unknown) => void) | undefined;

  private constructor(private readonly socket: Socket, readonly path: string) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.receive(text));
    const closed = (): void => this.fail(new ControlClientError(`the monitor on '${path}' closed the connection`));
    socket.on('close', closed);
    socket.on('error', closed);
  }

  /** Connects to the monitor at `path`; one line telling the user to start it when nothing listens there. */
  static async connect(path: string): Promise<ControlClient> {
    const socket = createConnection(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') {
          reject(new ControlClientError(`no monitor is listening on '${path}': start one with \`mirrorball up machine.yaml\` (or pass --control or --run-dir)`));
        } else reject(new ControlClientError(`cannot connect to the monitor on '${path}': ${error.code ?? error.message}`));
      });
    });
    const client = new ControlClient(socket, path);
    const greeting = await client.reply('greeting');
    if (!('QMP' in greeting)) {
      client.close();
      throw new ControlClientError(`'${path}' is not a Mirrorball control socket (no QMP greeting)`);
    }
    await client.execute('qmp_capabilities');
    return client;
  }

  /** Runs `command` and returns its `return` value; an `error` reply becomes a ControlClientError with its text. */
  async execute(command: string, args?: object): Promise<unknown> {
    if (this.closedError !== undefined) throw this.closedError;
    const id = `mb-${this.nextId++}`;
    const pending = this.reply(id);
    this.socket.write(`${JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id })}\n`);
    const reply = await pending;
    if ('error' in reply) throw new ControlClientError((reply.error as { desc?: string }).desc ?? JSON.stringify(reply.error));
    return reply.return;
  }

  close(): void {
    this.socket.destroy();
  }

  private reply(id: string): Promise<Message> {
    if (this.closedError !== undefined) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => this.waiting.set(id, { resolve, reject }));
  }

  private receive(text: string): void {
    this.buffer += text;
    for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line === '') continue;
      let message: Message;
      try {
        message = JSON.parse(line) as Message;
      } catch {
        this.fail(new ControlClientError(`the monitor on '${this.path}' sent something that is not JSON`));
        this.close();
        return;
      }
      if (typeof message.event === 'string') {
        this.onEvent?.(message.event, message.data);
        continue;
      }
      const key = 'QMP' in message ? 'greeting' : String(message.id);
      const waiter = this.waiting.get(key);
      this.waiting.delete(key);
      waiter?.resolve(message);
    }
  }

  private fail(error: ControlClientError): void {
    this.closedError ??= error;
    this.onClosed?.();
    for (const waiter of this.waiting.values()) waiter.reject(this.closedError);
    this.waiting.clear();
  }
}

/** Connects, runs `body`, and closes. */
export async function withControl<T>(flags: ControlFlags, body: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(controlPath(flags));
  try {
    return await body(client);
  } finally {
    client.close();
  }
}

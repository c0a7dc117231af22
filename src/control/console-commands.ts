// The consoles on the control protocol (docs/control.md, "Consoles"): a client subscribes to a VM's console
// and gets its output as CONSOLE_OUTPUT events; what it types goes in with console-input. Bytes are base64
// both ways, so a guest's output split inside a UTF-8 character arrives exactly as it was printed.

import { QmpError, stringArgument, type QmpArguments, type QmpCommands, type QmpConnection } from './qmp.js';

/** Output kept per console for a client that subscribes later, so it sees the last lines instead of a blank screen. */
export const CONSOLE_BACKLOG_BYTES = 16 * 1024;
/** The most one console-input may carry (decoded). */
export const MAX_CONSOLE_INPUT_BYTES = 4096;

export interface ConsoleHubOptions {
  /**
   * Types `bytes` into the console called `name`; throws QmpError when there is no such console or its VM
   * does not run.
   */
  input(name: string, bytes: Uint8Array): void;
  /** Throws QmpError unless `name` is a console one may subscribe to (an unknown name gets the list). */
  check(name: string): void;
}

/** Every console's recent output and who is subscribed to it. */
export class ConsoleHub {
  private readonly backlogs = new Map<string, Uint8Array[]>();
  private readonly backlogBytes = new Map<string, number>();
  private readonly subscribers = new Map<string, Set<QmpConnection>>();

  constructor(private readonly options: ConsoleHubOptions) {}

  /** Console `name` printed `bytes`: to every subscriber, and into its backlog. */
  output(name: string, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const chunks = this.backlogs.get(name) ?? [];
    chunks.push(bytes.slice());
    let size = (this.backlogBytes.get(name) ?? 0) + bytes.length;
    while (size - chunks[0]!.length >= CONSOLE_BACKLOG_BYTES) size -= chunks.shift()!.length;
    this.backlogs.set(name, chunks);
    this.backlogBytes.set(name, size);
    const clients = this.subscribers.get(name);
    if (clients === undefined || clients.size === 0) return;
    const data = Buffer.from(bytes).toString('base64');
    for (const client of clients) client.event('CONSOLE_OUTPUT', { vm: name, data });
  }

  /** Console `name` starts again (its VM was started again): what the old one printed is gone. */
  reset(name: string): void {
    this.backlogs.delete(name);
    this.backlogBytes.delete(name);
  }

  /** How many clients follow console `name` (tests, and the cost of output when none does). */
  subscribed(name: string): number {
    return this.subscribers.get(name)?.size ?? 0;
  }

  private backlog(name: string): string {
    return Buffer.concat(this.backlogs.get(name) ?? []).toString('base64');
  }

  commands(): QmpCommands {
    const nameOf = (args: QmpArguments): string => {
      const name = stringArgument(args, 'vm');
      if (name === undefined) throw new QmpError('GenericError', "Parameter 'vm' is missing");
      this.options.check(name);
      return name;
    };
    const clientOf = (client: QmpConnection | undefined): QmpConnection => {
      if (client === undefined) throw new QmpError('GenericError', 'consoles are followed over a connection');
      return client;
    };
    return {
      'console-subscribe': {
        help: 'follow a console: {"vm": NAME} → {"vm", "backlog"} (its last output, base64); from then on its output comes as CONSOLE_OUTPUT {"vm", "data"} (base64) events',
        args: ['vm'],
        run: (args, client) => {
          const name = nameOf(args);
          const c = clientOf(client);
          let set = this.subscribers.get(name);
          if (set === undefined) this.subscribers.set(name, set = new Set());
          if (!set.has(c)) {
            set.add(c);
            c.onDispose(() => set.delete(c));
          }
          return { vm: name, backlog: this.backlog(name) };
        },
      },
      'console-unsubscribe': {
        help: 'stop following a console: {"vm": NAME} → {}',
        args: ['vm'],
        run: (args, client) => {
          const name = nameOf(args);
          this.subscribers.get(name)?.delete(clientOf(client));
          return {};
        },
      },
      'console-input': {
        help: `type into a running VM's console: {"vm": NAME, "data": BASE64} (at most ${MAX_CONSOLE_INPUT_BYTES} bytes) → {"bytes"}`,
        args: ['vm', 'data'],
        run: (args) => {
          const name = nameOf(args);
          const data = stringArgument(args, 'data');
          if (data === undefined) throw new QmpError('GenericError', "Parameter 'data' is missing");
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) throw new QmpError('GenericError', "Parameter 'data' must be base64");
          const bytes = Buffer.from(data, 'base64');
          if (bytes.length > MAX_CONSOLE_INPUT_BYTES) throw new QmpError('GenericError', `Parameter 'data' holds ${bytes.length} bytes; at most ${MAX_CONSOLE_INPUT_BYTES} at a time`);
          this.options.input(name, new Uint8Array(bytes));
          return { bytes: bytes.length };
        },
      },
    };
  }
}

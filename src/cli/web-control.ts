// `--web [ADDR:]PORT` of `up` and `run`: the dashboard's web server (host/web/server.ts) speaking the control
// protocol (control/qmp.ts) to each page, with the token every client must give (docs/dashboard.md).

import { isAbsolute, normalize, sep } from 'node:path';
import { QmpConnection, QmpError, type QmpCommands, type QmpGreeting } from '../control/qmp.js';
import { dashboardFiles } from '../host/web/page.js';
import { WebServer, WebServerError } from '../host/web/server.js';
import { UsageError } from './options.js';

export interface WebAddress {
  host: string;
  port: number;
}

/** `PORT`, `ADDR:PORT` or `[V6ADDR]:PORT`; the address defaults to 127.0.0.1 (this machine only). */
export function parseWebAddress(text: string): WebAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[0-9A-Za-z.-]+):)?(\d{1,5})$/.exec(text);
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port > 65535) throw new UsageError(`--web '${text}': give [ADDR:]PORT, such as 8080 or 127.0.0.1:8080 (port 0 picks a free one)`);
  return { host: m[1] === undefined ? '127.0.0.1' : m[1].replace(/^\[|\]$/g, ''), port };
}

/** The commands that write host files, and the argument naming the file or folder. */
const FILE_ARGUMENTS: Readonly<Record<string, string>> = { 'snapshot-save': 'file', 'stats-dump': 'dir' };

/**
 * The command table a web client gets: the same commands, except that a file or folder they write must be a
 * relative path that stays inside the run directory. The control socket is this machine's user's own (mode
 * 0600) and may name any path; a page holding the token must not turn it into a write anywhere the user can.
 */
export function confineFiles(commands: QmpCommands): QmpCommands {
  const confined: QmpCommands = { ...commands };
  for (const [name, argument] of Object.entries(FILE_ARGUMENTS)) {
    const command = commands[name];
    if (command === undefined) continue;
    confined[name] = {
      ...command,
      run: (args, client) => {
        const path = args[argument];
        if (typeof path === 'string' && path !== '') {
          const normal = normalize(path);
          if (isAbsolute(path) || normal === '..' || normal.startsWith(`..${sep}`)) {
            throw new QmpError('GenericError', `from a web client, '${argument}' must be a relative path inside the run directory: '${path}' is not`);
          }
        }
        return command.run(args, client);
      },
    };
  }
  return confined;
}

/** The web server and its clients: every negotiated client gets the events the control socket's clients get. */
export class WebControl {
  private readonly clients = new Set<QmpConnection>();

  private constructor(private server: WebServer | undefined, private readonly token: string) {}

  static async start(address: WebAddress, token: string, allCommands: QmpCommands, greeting: QmpGreeting): Promise<WebControl> {
    const files = await dashboardFiles();
    const commands = confineFiles(allCommands);
    let control: WebControl | undefined;
    let server: WebServer;
    try {
      server = await WebServer.listen({
        ...address,
        files,
        session: (send, close) => {
          const connection = new QmpConnection(commands, send, close, greeting, { token });
          control!.clients.add(connection);
          return {
            receive: (text) => connection.receive(text),
            closed: () => {
              control!.clients.delete(connection);
              connection.dispose();
            },
          };
        },
      });
    } catch (error) {
      if (error instanceof WebServerError) throw new UsageError(error.message);
      throw error;
    }
    control = new WebControl(server, token);
    return control;
  }

  /** The page's address with the token in its fragment (which browsers never send to the server). */
  get url(): string {
    return `${this.server?.url ?? ''}#token=${this.token}`;
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  event(name: string, data?: object): void {
    for (const client of this.clients) client.event(name, data);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.close();
  }
}

// The control protocol, shaped like QEMU's QMP (docs/control.md): one JSON object per line each way; a greeting,
// capabilities negotiation, `execute` answered by `return` or `error`, and asynchronous events.

/** Error classes as QMP names them. */
export type QmpErrorClass = 'GenericError' | 'CommandNotFound';

/** A command's failure, reported to the client as `{"error": {"class", "desc"}}`. */
export class QmpError extends Error {
  constructor(readonly errorClass: QmpErrorClass, message: string) {
    super(message);
  }
}

export type QmpArguments = Record<string, unknown>;

export interface QmpCommand {
  /** One line for `query-commands` and the docs. */
  help: string;
  /** Argument names it takes; anything else is refused before `run` is called. */
  args?: readonly string[];
  /**
   * `client` is the connection that sent it: for commands that keep state per client (console subscriptions).
   * A promise is answered when it settles (a QmpError as the error reply).
   */
  run(args: QmpArguments, client?: QmpConnection): unknown;
}

export type QmpCommands = Record<string, QmpCommand>;

/** A line longer than this is not a command: the connection is closed. */
export const MAX_LINE_BYTES = 64 * 1024;

export interface QmpGreeting {
  name: string;
  version: string;
}

/** What a transport may ask of a connection beyond the protocol itself. */
export interface QmpConnectionOptions {
  /**
   * The secret `qmp_capabilities` must carry as `{"token": …}` (the web server's clients, docs/dashboard.md);
   * a wrong or missing one is an error and the connection is closed. Without it, `token` is no argument.
   */
  token?: string;
}

/**
 * One client's side of the protocol, without sockets: `receive` takes the text the client sent (in any
 * pieces) and `send` gets every object to write back. Before `qmp_capabilities` only that command is
 * accepted, as in QMP. Garbage gets an error and the connection goes on; a line over MAX_LINE_BYTES gets
 * an error and `close` is called.
 */
export class QmpConnection {
  private buffer = '';
  private negotiated = false;
  private closed = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly commands: QmpCommands,
    private readonly send: (message: object) => void,
    private readonly close: () => void,
    greeting: QmpGreeting,
    private readonly options: QmpConnectionOptions = {},
  ) {
    send({ QMP: { version: { [greeting.name]: greeting.version }, capabilities: [] } });
  }

  /** Runs `cleanup` when the transport says the client has gone (`dispose`). */
  onDispose(cleanup: () => void): void {
    if (this.closed) cleanup();
    else this.cleanups.push(cleanup);
  }

  /** The transport's word that the client has gone: no more events, and what commands kept for it is dropped. */
  dispose(): void {
    this.closed = true;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }

  /** Whether this client gets events (after negotiation). */
  get listening(): boolean {
    return this.negotiated && !this.closed;
  }

  receive(text: string): void {
    if (this.closed) return;
    this.buffer += text;
    for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line !== '') this.line(line);
      if (this.closed) return;
    }
    if (this.buffer.length > MAX_LINE_BYTES) {
      this.send(errorReply(new QmpError('GenericError', `input line longer than ${MAX_LINE_BYTES} bytes`)));
      this.closed = true;
      this.close();
    }
  }

  /** Sends an event to a negotiated client. */
  event(name: string, data?: object): void {
    if (!this.listening) return;
    const now = Date.now();
    const timestamp = { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 };
    this.send(data === undefined ? { event: name, timestamp } : { event: name, data, timestamp });
  }

  private line(line: string): void {
    let input: unknown;
    try {
      input = JSON.parse(line);
    } catch (error) {
      this.send(errorReply(new QmpError('GenericError', `JSON parse error: ${(error as Error).message}`)));
      return;
    }
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      this.send(errorReply(new QmpError('GenericError', 'QMP input must be a JSON object')));
      return;
    }
    const request = input as Record<string, unknown>;
    const id = request.id;
    const reply = (message: Record<string, unknown>): void => this.send(id === undefined ? message : { ...message, id });
    try {
      const result = this.execute(request);
      // A command whose answer comes from elsewhere (another thread) returns a promise: its reply follows when it settles.
      if (result instanceof Promise) {
        result.then((value: unknown) => { if (!this.closed) reply({ return: value ?? {} }); }, (error: unknown) => {
          if (!(error instanceof QmpError)) throw error;
          if (!this.closed) reply(errorReply(error));
        });
        return;
      }
      reply({ return: result ?? {} });
    } catch (error) {
      if (error instanceof RefusedClient) {
        reply(errorReply(error));
        this.closed = true;
        this.close();
        return;
      }
      if (!(error instanceof QmpError)) throw error;
      reply(errorReply(error));
    }
  }

  private execute(request: Record<string, unknown>): unknown {
    for (const key of Object.keys(request)) {
      if (key !== 'execute' && key !== 'arguments' && key !== 'id') throw new QmpError('GenericError', `QMP input member '${key}' is unexpected`);
    }
    const name = request.execute;
    if (name === undefined) throw new QmpError('GenericError', "QMP input lacks member 'execute'");
    if (typeof name !== 'string') throw new QmpError('GenericError', "QMP input member 'execute' must be a string");
    const args = request.arguments ?? {};
    if (args === null || typeof args !== 'object' || Array.isArray(args)) throw new QmpError('GenericError', "QMP input member 'arguments' must be an object");
    if (name === 'qmp_capabilities') {
      if (this.negotiated) throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
      const token = this.options.token;
      expectArguments(args as QmpArguments, token === undefined ? ['enable'] : ['enable', 'token']);
      if (token !== undefined && !sameSecret((args as QmpArguments).token, token)) throw new RefusedClient('GenericError', 'the token is missing or wrong');
      this.negotiated = true;
      return {};
    }
    if (!this.negotiated) throw new QmpError('CommandNotFound', "Expecting capabilities negotiation with 'qmp_capabilities'");
    if (name === 'query-commands') return ['qmp_capabilities', 'query-commands', ...Object.keys(this.commands)].sort().map((n) => ({ name: n }));
    const command = Object.hasOwn(this.commands, name) ? this.commands[name] : undefined;
    if (command === undefined) throw new QmpError('CommandNotFound', `The command ${name} has not been found`);
    expectArguments(args as QmpArguments, command.args ?? []);
    return command.run(args as QmpArguments, this);
  }
}

/** A client that may not go on (a wrong token): its error is sent and the connection closed. */
class RefusedClient extends QmpError {}

/** Whether `given` is the string `secret`, in a time that does not depend on where they differ. */
function sameSecret(given: unknown, secret: string): boolean {
  if (typeof given !== 'string' || given.length !== secret.length) return false;
  let differ = 0;
  for (let i = 0; i < secret.length; i++) differ |= given.charCodeAt(i) ^ secret.charCodeAt(i);
  return differ === 0;
}

function errorReply(error: QmpError): Record<string, unknown> {
  return { error: { class: error.errorClass, desc: error.message } };
}

function expectArguments(args: QmpArguments, allowed: readonly string[]): void {
  for (const key of Object.keys(args)) {
    if (!allowed.includes(key)) throw new QmpError('GenericError', `Parameter '${key}' is unexpected`);
  }
}

/** An argument that must be one of `values`. */
export function enumArgument<T extends string>(args: QmpArguments, name: string, values: readonly T[]): T {
  const value = args[name];
  if (value === undefined) throw new QmpError('GenericError', `Parameter '${name}' is missing`);
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
    throw new QmpError('GenericError', `Parameter '${name}' must be one of ${values.map((v) => `"${v}"`).join(', ')}`);
  }
  return value as T;
}

/** An optional integer argument in [min, max]. */
export function integerArgument(args: QmpArguments, name: string, min: number, max: number, fallback: number): number {
  const value = args[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new QmpError('GenericError', `Parameter '${name}' must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** An optional string argument. */
export function stringArgument(args: QmpArguments, name: string): string | undefined {
  const value = args[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new QmpError('GenericError', `Parameter '${name}' must be a string`);
  return value;
}

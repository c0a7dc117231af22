// The host side of the guest agent's console protocol (docs/guest.md): pure, fed bytes, producing bytes.

/** What a command run in the guest gave back. */
export interface AgentResult {
  /** Its standard output and standard error, interleaved as written, decoded as UTF-8. */
  output: string;
  /** Its exit status (128 + N when killed by signal N). */
  status: number;
}

export interface AgentProtocolOptions {
  /** Called with the bytes to type on the guest console. */
  send: (bytes: Uint8Array) => void;
  /** Called with each console line that is not a protocol frame (kernel messages, echo, prompts). */
  onOther?: (line: string) => void;
  /** How many times to ask again for a result whose frames arrived damaged. */
  maxResends?: number;
}

export class AgentError extends Error {}

/** Protocol version the agent announces in READY. */
export const AGENT_PROTOCOL_VERSION = 1;
/** Base64 characters per command line typed to the guest: far below the tty's 4095-byte line limit. */
export const COMMAND_CHUNK = 512;
/** Base64 characters per output line the agent writes (busybox `base64 -w 76`). */
export const OUTPUT_LINE = 76;
const DEFAULT_RESENDS = 3;
/** A console line longer than this without a newline is not a frame; it is passed on and dropped. */
const MAX_LINE = 64 * 1024;
const NEWLINE = 0x0a;

const LATIN1 = new TextDecoder('latin1');
const FRAME = /@@MB ([A-Z]+)((?: [^ @]+)*)@@/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const UINT = /^\d+$/;

interface Pending {
  id: number;
  command: string;
  resolve: (result: AgentResult) => void;
  reject: (error: Error) => void;
}

interface InFlight extends Pending {
  chunks: Map<number, string>;
  resends: number;
}

/**
 * Runs commands through the guest agent over a console. The caller feeds everything the console prints
 * to `feed()` and types what `send` is given. Commands run one at a time, in the order of `exec()`.
 * Frames are found anywhere in a line, so echo, prompts and kernel messages around them do no harm; a
 * result whose frames were cut or garbled fails its length or CRC check and is asked for again.
 */
export class AgentProtocol {
  private readonly send: (bytes: Uint8Array) => void;
  private readonly onOther: (line: string) => void;
  private readonly maxResends: number;
  private readonly queue: Pending[] = [];
  private inFlight: InFlight | undefined;
  private nextId = 1;
  private line: number[] = [];
  private isReady = false;
  private readyWaiters: Array<() => void> = [];

  constructor(options: AgentProtocolOptions) {
    this.send = options.send;
    this.onOther = options.onOther ?? (() => {});
    this.maxResends = options.maxResends ?? DEFAULT_RESENDS;
  }

  /** True once the agent has announced itself. */
  get ready(): boolean {
    return this.isReady;
  }

  /** True while a command is running or waiting to be sent. */
  get busy(): boolean {
    return this.inFlight !== undefined || this.queue.length > 0;
  }

  /** Resolves when the agent has announced itself (at once if it has). */
  whenReady(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** The id the next command gets (a session saved with its guest carries it over, so ids are never reused). */
  get nextCommandId(): number {
    return this.nextId;
  }

  /** Continues numbering commands from `id` (a restored guest's agent has seen the ids before it). */
  continueFrom(id: number): void {
    if (this.busy) throw new Error('the agent is busy');
    this.nextId = id;
  }

  /**
   * The agent announced itself before the guest was saved, and the guest is restored: it is ready again with
   * nothing said (a ping would change what the guest has seen since its snapshot).
   */
  readyAgain(): void {
    if (this.isReady) return;
    this.isReady = true;
    for (const waiter of this.readyWaiters.splice(0)) waiter();
  }

  /** Asks the agent to announce itself, for a host that attached after the agent started. */
  ping(): void {
    this.type('mbp');
  }

  /** Runs `command` with `sh` in the guest (cwd /, stdin /dev/null); resolves with its output and status. */
  exec(command: string): Promise<AgentResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, command, resolve, reject });
      this.pump();
    });
  }

  /** Fails the running and queued commands (for a timeout or a guest that died). */
  abort(reason: string): void {
    const all = [...(this.inFlight ? [this.inFlight] : []), ...this.queue.splice(0)];
    this.inFlight = undefined;
    for (const p of all) p.reject(new AgentError(reason));
  }

  /** Everything the guest console printed, in order, in pieces of any size. */
  feed(data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    for (const byte of bytes) {
      if (byte === NEWLINE) {
        this.endLine();
      } else {
        this.line.push(byte);
        if (this.line.length > MAX_LINE) this.endLine();
      }
    }
  }

  private endLine(): void {
    const bytes = Uint8Array.from(this.line);
    this.line = [];
    // Frames are ASCII; reading the line byte per character keeps offsets exact whatever else it holds.
    const text = LATIN1.decode(bytes);
    let matched = false;
    for (const match of text.matchAll(FRAME)) {
      matched = true;
      this.frame(match[1]!, match[2]!.split(' ').slice(1));
    }
    if (!matched) this.onOther(new TextDecoder().decode(bytes).replace(/\r$/, ''));
  }

  private frame(kind: string, fields: string[]): void {
    switch (kind) {
      case 'READY':
        return this.onReady();
      case 'BEGIN':
        if (this.isCurrent(fields[0])) this.inFlight!.chunks.clear();
        return;
      case 'D':
        return this.onData(fields);
      case 'END':
        return this.onEnd(fields);
      case 'LOST':
        if (this.isCurrent(fields[0])) this.finish(new AgentError(`the guest agent no longer has the result of command ${fields[0]}`));
        return;
    }
  }

  private onReady(): void {
    if (this.inFlight !== undefined) {
      this.finish(new AgentError('the guest agent restarted while running the command'));
    }
    this.isReady = true;
    for (const waiter of this.readyWaiters.splice(0)) waiter();
    this.pump();
  }

  private onData(fields: string[]): void {
    const [id, seq, data] = fields;
    if (!this.isCurrent(id) || seq === undefined || !UINT.test(seq) || data === undefined) return;
    if (!BASE64.test(data) || data.length % 4 !== 0) return;
    this.inFlight!.chunks.set(Number(seq), data);
  }

  private onEnd(fields: string[]): void {
    const [id, status, size, crc] = fields;
    if (!this.isCurrent(id)) return;
    const current = this.inFlight!;
    const output = [status, size, crc].every((f) => f !== undefined && UINT.test(f)) ? assemble(current.chunks, Number(size), Number(crc)) : undefined;
    if (output !== undefined) {
      this.finish(undefined, { output: new TextDecoder().decode(output), status: Number(status) });
    } else if (current.resends < this.maxResends) {
      current.resends++;
      current.chunks.clear();
      this.type(`mbr ${current.id}`);
    } else {
      this.finish(new AgentError(`the result of command ${current.id} arrived damaged ${current.resends + 1} times`));
    }
  }

  private isCurrent(id: string | undefined): boolean {
    return this.inFlight !== undefined && id === String(this.inFlight.id);
  }

  private finish(error: Error | undefined, result?: AgentResult): void {
    const done = this.inFlight!;
    this.inFlight = undefined;
    if (error !== undefined) done.reject(error);
    else done.resolve(result!);
    this.pump();
  }

  private pump(): void {
    if (!this.isReady || this.inFlight !== undefined) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.inFlight = { ...next, chunks: new Map(), resends: 0 };
    const encoded = toBase64(new TextEncoder().encode(next.command));
    for (let at = 0; at < encoded.length; at += COMMAND_CHUNK) this.type(`mbc ${next.id} ${encoded.slice(at, at + COMMAND_CHUNK)}`);
    this.type(`mbx ${next.id}`);
  }

  private type(line: string): void {
    this.send(new TextEncoder().encode(`${line}\n`));
  }
}

/** The output bytes when every line 1..N arrived and length and CRC match; undefined otherwise. */
function assemble(chunks: Map<number, string>, size: number, crc: number): Uint8Array | undefined {
  const lines = Math.ceil((4 * Math.ceil(size / 3)) / OUTPUT_LINE);
  if (chunks.size !== lines) return undefined;
  let text = '';
  for (let seq = 1; seq <= lines; seq++) {
    const chunk = chunks.get(seq);
    if (chunk === undefined) return undefined;
    text += chunk;
  }
  const bytes = fromBase64(text);
  if (bytes === undefined || bytes.length !== size || posixCksum(bytes) !== crc) return undefined;
  return bytes;
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array | undefined {
  try {
    const binary = atob(text);
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

const CKSUM_POLY = 0x04c11db7;
const CKSUM_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x8000_0000 ? (c << 1) ^ CKSUM_POLY : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** The CRC printed by POSIX `cksum`: CRC-32 (MSB first) over the data and then its length, inverted. */
export function posixCksum(bytes: Uint8Array): number {
  let crc = 0;
  const step = (byte: number) => {
    crc = ((crc << 8) ^ CKSUM_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
  };
  for (const byte of bytes) step(byte);
  for (let n = bytes.length; n > 0; n = Math.floor(n / 256)) step(n & 0xff);
  return ~crc >>> 0;
}

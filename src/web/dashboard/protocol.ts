// The page's side of the control protocol (docs/control.md) over the dashboard's WebSocket: the greeting,
// `qmp_capabilities` with the token, commands answered by id, events by name. It connects again after
// the connection drops (an `up` started again keeps its token), every second until it answers.

export type Json = Record<string, unknown>;
type Waiter = { resolve(value: unknown): void; reject(error: Error): void };

export type ConnectionState = 'connecting' | 'connected' | 'refused' | 'closed';

export class ControlError extends Error {}

export class Control {
  private ws: WebSocket | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private readonly handlers = new Map<string, ((data: Json) => void)[]>();
  private negotiated = false;
  private retry: number | undefined;

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly onState: (state: ConnectionState, why?: string) => void,
    private readonly onConnected: () => void,
  ) {}

  connect(): void {
    this.onState('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.negotiated = false;
    ws.onmessage = (event) => this.message(String(event.data));
    ws.onclose = () => {
      for (const w of this.waiting.values()) w.reject(new ControlError('the connection closed'));
      this.waiting.clear();
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.onState('closed');
      this.retry = window.setTimeout(() => this.connect(), 1000);
    };
  }

  get connected(): boolean {
    return this.negotiated && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Runs `handler` on every event `name`. */
  on(name: string, handler: (data: Json) => void): void {
    const list = this.handlers.get(name) ?? [];
    list.push(handler);
    this.handlers.set(name, list);
  }

  /** A command; its `return`, or a ControlError with the monitor's words. */
  execute<T = unknown>(command: string, args?: Json): Promise<T> {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return Promise.reject(new ControlError('not connected'));
    const id = this.nextId++;
    ws.send(JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }));
    return new Promise<T>((resolve, reject) => this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }

  private message(text: string): void {
    let m: Json;
    try {
      m = JSON.parse(text) as Json;
    } catch {
      return;
    }
    if ('QMP' in m) {
      this.execute('qmp_capabilities', { token: this.token }).then(() => {
        this.negotiated = true;
        this.onState('connected');
        this.onConnected();
      }, (error: Error) => {
        // A wrong token: no point trying again with it.
        window.clearTimeout(this.retry);
        this.ws = undefined;
        this.onState('refused', error.message);
      });
      return;
    }
    if (typeof m.event === 'string') {
      for (const handler of this.handlers.get(m.event) ?? []) handler((m.data ?? {}) as Json);
      return;
    }
    const id = m.id;
    if (typeof id !== 'number') return;
    const waiter = this.waiting.get(id);
    if (waiter === undefined) return;
    this.waiting.delete(id);
    if ('error' in m) waiter.reject(new ControlError(String((m.error as Json).desc)));
    else waiter.resolve(m.return);
  }
}

/** The token from the URL's fragment (`#token=…`), kept for this tab so a reload finds it; the fragment is then taken out of the address bar. */
export function pageToken(): string {
  const match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (match !== null) {
    sessionStorage.setItem('mirrorball-token', match[1]!);
    history.replaceState(null, '', location.pathname + location.search);
    return match[1]!;
  }
  return sessionStorage.getItem('mirrorball-token') ?? '';
}

/** Bytes as base64 and back (the consoles' data). */
export function toBase64(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]!);
  return btoa(text);
}

export function fromBase64(data: string): Uint8Array {
  const text = atob(data);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

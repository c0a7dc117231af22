// A client of the dashboard's WebSocket (docs/dashboard.md) for tests: the control protocol, one JSON object
// per message.

import WebSocket from 'ws';
import { QmpTestClient, type Message } from './qmp-test-client.js';

export type { Message } from './qmp-test-client.js';

export class WebClient extends QmpTestClient {
  private constructor(readonly ws: WebSocket) {
    super();
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

  protected sendMessage(message: object): void {
    this.ws.send(JSON.stringify(message));
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

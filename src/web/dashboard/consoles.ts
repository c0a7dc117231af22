// Each VM's console in an xterm.js terminal that takes typing: output from CONSOLE_OUTPUT events (the
// backlog first, from console-subscribe), keys to console-input. A VM started again gets a fresh screen.

import { Terminal } from '@xterm/xterm';
import { fromBase64, toBase64, type Control } from './protocol.js';

export class Consoles {
  private readonly terminals = new Map<string, Terminal>();
  private readonly encoder = new TextEncoder();

  constructor(private readonly control: Control, private readonly parent: HTMLElement) {
    control.on('CONSOLE_OUTPUT', (data) => {
      const terminal = this.terminals.get(String(data.vm));
      if (terminal !== undefined && typeof data.data === 'string') terminal.write(fromBase64(data.data));
    });
  }

  /** Makes sure VM `name` has a terminal, subscribed (again, after a reconnect or a restart: `fresh`). */
  async show(name: string, fresh: boolean): Promise<void> {
    let terminal = this.terminals.get(name);
    if (terminal === undefined) {
      const box = document.createElement('div');
      box.className = 'console';
      box.dataset.vm = name;
      const title = document.createElement('h3');
      title.textContent = `vm ${name}`;
      const screen = document.createElement('div');
      screen.className = 'screen';
      box.append(title, screen);
      this.parent.append(box);
      terminal = new Terminal({ rows: 16, cols: 80, convertEol: false, fontSize: 13, scrollback: 2000 });
      terminal.open(screen);
      const t = terminal;
      terminal.onData((text) => {
        void this.control.execute('console-input', { vm: name, data: toBase64(this.encoder.encode(text)) }).catch((error: Error) => t.write(`\r\n[${error.message}]\r\n`));
      });
      this.terminals.set(name, terminal);
      fresh = true;
    }
    if (!fresh) return;
    const reply = await this.control.execute<{ backlog: string }>('console-subscribe', { vm: name });
    terminal.reset();
    terminal.write(fromBase64(reply.backlog));
  }

  /** A line in VM `name`'s terminal from the page itself (how it ended). */
  note(name: string, text: string): void {
    this.terminals.get(name)?.write(`\r\n\x1b[33m[${text}]\x1b[0m\r\n`);
  }
}

// A VM's console under `up`: its log file, its console socket and its part of the console hub (the control
// protocol's console-subscribe, docs/control.md), fed in chunks between batches (the UART gives bytes one by one).

import { closeSync, writeSync } from 'node:fs';
import type { ConsoleHub } from '../control/console-commands.js';
import type { ConsoleSocket } from '../host/console-socket.js';

export class VmConsole {
  private pending = new Uint8Array(4096);
  private length = 0;
  logFd: number | undefined;
  socket: ConsoleSocket | undefined;
  closing: Promise<void> | undefined;

  /** `hub` gets the output under `name` too. */
  constructor(private readonly name: string, private readonly hub: ConsoleHub) {}

  push(bytes: Uint8Array): void {
    if (this.length + bytes.length > this.pending.length) {
      const bigger = new Uint8Array(Math.max(this.pending.length * 2, this.length + bytes.length));
      bigger.set(this.pending.subarray(0, this.length));
      this.pending = bigger;
    }
    this.pending.set(bytes, this.length);
    this.length += bytes.length;
  }

  flush(): void {
    if (this.length === 0) return;
    const bytes = this.pending.slice(0, this.length);
    this.length = 0;
    if (this.logFd !== undefined) writeSync(this.logFd, bytes);
    this.socket?.write(bytes);
    this.hub.output(this.name, bytes);
  }

  close(): Promise<void> {
    this.flush();
    this.closing ??= this.socket?.close() ?? Promise.resolve();
    return this.closing;
  }

  /** Closes the socket and the log file too (`up` ending; `close` alone keeps the log for a restarted VM). */
  async closeWithLog(): Promise<void> {
    await this.close();
    if (this.logFd !== undefined) closeSync(this.logFd);
    this.logFd = undefined;
  }
}

// The guest console on the host terminal: raw mode, Ctrl-A x to quit, output optionally copied to a file.

import { closeSync, writeSync } from 'node:fs';
import { InputGate } from './input-gate.js';
import { openPrivateFile } from './private-files.js';

const CTRL_A = 0x01;

export interface TerminalOptions {
  /** Copy of everything the guest prints (created 0600; an existing file keeps its mode). */
  logFile?: string;
  /** Called with each chunk the user types (after Ctrl-A handling). */
  onInput(bytes: Uint8Array): void;
  /** Called when the user presses Ctrl-A x. */
  onQuit(): void;
  /** Bytes typed and not yet taken by the guest: stdin on a pipe is not read while they are many (InputGate). */
  queued?(): number;
}

export class Terminal {
  private escape = false;
  private readonly logFd: number | undefined;
  private readonly listener: (chunk: Buffer) => void;
  private readonly raw: boolean;
  private readonly gate: InputGate | undefined;

  constructor(private readonly options: TerminalOptions) {
    this.logFd = options.logFile === undefined ? undefined : openPrivateFile(options.logFile, 'w');
    this.raw = process.stdin.isTTY === true;
    // A pipe is read only as fast as the guest takes it. A terminal is always read, so that Ctrl-A x quits
    // a guest that reads nothing; what a person can paste meets the device's own limit (MAX_QUEUED_INPUT).
    const queued = options.queued;
    this.gate = queued === undefined || this.raw ? undefined : new InputGate(queued, () => process.stdin.pause(), () => process.stdin.resume());
    this.listener = (chunk) => this.input(chunk);
    if (this.raw) process.stdin.setRawMode(true);
    process.stdin.on('data', this.listener);
    process.stdin.resume();
  }

  write(bytes: Uint8Array): void {
    process.stdout.write(bytes);
    this.log(bytes);
  }

  /** Only into the log file (the guest's console is elsewhere, on a socket). */
  log(bytes: Uint8Array): void {
    if (this.logFd !== undefined) writeSync(this.logFd, bytes);
  }

  private input(chunk: Buffer): void {
    const out: number[] = [];
    for (const byte of chunk) {
      if (this.escape) {
        this.escape = false;
        if (byte === 0x78 /* x */) {
          this.options.onQuit();
          return;
        }
        if (byte === CTRL_A) out.push(CTRL_A); // Ctrl-A Ctrl-A sends one Ctrl-A
        continue;
      }
      if (byte === CTRL_A && this.raw) this.escape = true;
      else out.push(byte);
    }
    if (out.length > 0) {
      this.options.onInput(Uint8Array.from(out));
      this.gate?.afterInput();
    }
  }

  close(): void {
    this.gate?.stop();
    process.stdin.off('data', this.listener);
    if (this.raw) process.stdin.setRawMode(false);
    process.stdin.pause();
    if (this.logFd !== undefined) closeSync(this.logFd);
  }
}

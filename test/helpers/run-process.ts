// A `mirrorball run` child process driven through the guest agent on its standard input and output.

import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentProtocol, type AgentResult } from '../../src/guest/agent-protocol.js';

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/mirrorball.js');

export class RunProcess {
  readonly child: ChildProcess;
  private readonly agent: AgentProtocol;
  /** Everything the process wrote to stderr, and the console lines outside the agent protocol. */
  stderr = '';
  console = '';
  readonly exited: Promise<number | null>;

  /**
   * Starts `run` with `args` and `--append "console=ttyS0 mb.agent=1 APPEND"`; the agent is spoken over the
   * process's standard input and output, or over `agentSocket` once `attach` connected it.
   */
  constructor(args: string[], append: string) {
    this.child = spawn(process.execPath, [CLI, 'run', ...args, '--append', `console=ttyS0 mb.agent=1 ${append}`], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.agent = new AgentProtocol({
      send: (bytes) => { (this.socket ?? this.child.stdin!).write(bytes); },
      onOther: (line) => { this.console = `${this.console}${line}\n`.slice(-16_384); },
    });
    this.child.stdout!.on('data', (chunk: Buffer) => { if (this.socket === undefined) this.agent.feed(new Uint8Array(chunk)); });
    this.child.stderr!.on('data', (chunk: Buffer) => { this.stderr += chunk.toString(); });
    this.exited = new Promise((done) => this.child.once('exit', (code) => {
      this.agent.abort(`run exited (${code}); stderr: ${this.stderr}; console ends:\n${this.console.slice(-2000)}`);
      done(code);
    }));
  }

  private socket: Socket | undefined;

  /** Speaks the agent over the Unix socket at `path` (the UART's, --serial socket=) instead of stdio. */
  async attach(path: string): Promise<void> {
    const socket = createConnection(path);
    await new Promise<void>((done, fail) => { socket.once('connect', () => done()); socket.once('error', fail); });
    socket.on('data', (chunk: Buffer) => this.agent.feed(new Uint8Array(chunk)));
    this.socket = socket;
    this.exited.then(() => socket.destroy(), () => {});
  }

  /** Waits for the agent's READY (the guest booted). */
  ready(): Promise<void> {
    return Promise.race([this.agent.whenReady(), this.exited.then((code) => { throw new Error(`run exited (${code}) before the guest was ready: ${this.stderr}\n${this.console.slice(-2000)}`); })]);
  }

  exec(command: string): Promise<AgentResult> {
    return this.agent.exec(command);
  }

  /** Powers the guest off and waits for the process; kills it if it does not end. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.agent.exec('poweroff -f').catch(() => {});
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

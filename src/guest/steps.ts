// Build steps of `mirrorball guest build`: one log file per step, progress on stderr, commands run into the log.

import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** A failed step: which one, and the log that says why. Its message is the one line the user sees. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    readonly log: string | undefined,
    detail: string,
  ) {
    super(`guest build failed at step "${step}": ${detail}${log === undefined ? '' : ` (log: ${log})`}`);
  }
}

/** What a step writes to: its log file, and the commands it runs. */
export interface StepLog {
  readonly step: string;
  readonly path: string;
  write(text: string): void;
  /** Runs a command with its output going to the log; rejects with a StepError naming the step on failure. */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<void>;
  /** Runs a command and returns its standard output (standard error goes to the log). */
  capture(command: string, args: readonly string[], options?: RunOptions): Promise<string>;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** How often the terminal status line is redrawn. */
const REDRAW_MS = 1000;
const MS_PER_SECOND = 1000;
/** Width of the status line when the terminal does not say. */
const DEFAULT_COLUMNS = 80;

/**
 * Runs named steps with a log each, reports progress (a redrawn status line on a terminal, plain lines
 * otherwise, and every line also in build.log), and stops every running command when one step fails.
 */
export class StepRunner {
  private readonly active = new Map<string, number>();
  private readonly children = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private failed = false;
  readonly mainLog: string;

  constructor(
    readonly logDir: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    mkdirSync(logDir, { recursive: true });
    this.mainLog = join(logDir, 'build.log');
  }

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  /** A line for the user and build.log. */
  note(text: string): void {
    appendFileSync(this.mainLog, `${text}\n`);
    if (this.tty) this.out.write('\r\x1b[K');
    this.out.write(`${text}\n`);
    if (this.tty) this.redraw();
  }

  async step<T>(name: string, body: (log: StepLog) => Promise<T>): Promise<T> {
    if (this.failed) throw new StepError(name, undefined, 'another step failed first');
    const path = join(this.logDir, `${name}.log`);
    const started = performance.now();
    this.active.set(name, started);
    if (!this.tty) this.note(`guest: ${name} ...`);
    this.startTimer();
    const log = this.logFor(name, path);
    try {
      const result = await body(log);
      this.active.delete(name);
      this.note(`guest: ${name} done in ${((performance.now() - started) / MS_PER_SECOND).toFixed(1)} s`);
      return result;
    } catch (error) {
      this.active.delete(name);
      const stepError = error instanceof StepError ? error : new StepError(name, path, error instanceof Error ? error.message : String(error));
      if (!(error instanceof StepError)) log.write(`${stepError.message}\n`);
      this.fail();
      throw stepError;
    } finally {
      if (this.active.size === 0) this.stopTimer();
    }
  }

  /** Stops every command still running (their process groups), so a failure ends the build at once. */
  fail(): void {
    this.failed = true;
    for (const pid of this.children) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
  }

  finish(): void {
    this.stopTimer();
  }

  private logFor(step: string, path: string): StepLog {
    const write = (text: string) => appendFileSync(path, text);
    write('');
    const run = (command: string, args: readonly string[], options: RunOptions = {}, captureOut = false) =>
      new Promise<string>((resolve, reject) => {
        if (this.failed) return reject(new StepError(step, path, 'another step failed first'));
        write(`$ ${[command, ...args].join(' ')}${options.cwd ? `   (in ${options.cwd})` : ''}\n`);
        const fd = openSync(path, 'a');
        let stdout = '';
        // Its own process group, so that make's children are stopped with it.
        const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', captureOut ? 'pipe' : fd, fd], detached: true });
        if (child.pid !== undefined) this.children.add(child.pid);
        child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
        let finished = false;
        // A command that cannot start emits both 'error' and 'close'.
        const done = (error: Error | undefined, code: number | null, signal: NodeJS.Signals | null) => {
          if (finished) return;
          finished = true;
          if (child.pid !== undefined) this.children.delete(child.pid);
          closeSync(fd);
          if (error) return reject(new StepError(step, path, `cannot run ${command}: ${error.message}`));
          if (code === 0) return resolve(stdout);
          const how = signal ? `was stopped by ${signal}` : `exited with status ${code}`;
          reject(new StepError(step, path, `${command} ${how}`));
        };
        child.on('error', (error) => done(error, null, null));
        child.on('close', (code, signal) => done(undefined, code, signal));
      });
    return {
      step,
      path,
      write: (text) => write(text),
      run: async (command, args, options) => void (await run(command, args, options)),
      capture: (command, args, options) => run(command, args, options, true),
    };
  }

  private startTimer(): void {
    if (!this.tty || this.timer !== undefined) return;
    this.timer = setInterval(() => this.redraw(), REDRAW_MS);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty) this.out.write('\r\x1b[K');
  }

  private redraw(): void {
    if (!this.tty || this.active.size === 0) return;
    const now = performance.now();
    const parts = [...this.active].map(([name, started]) => `${name} ${Math.floor((now - started) / MS_PER_SECOND)}s`);
    const width = this.out.columns || DEFAULT_COLUMNS;
    this.out.write(`\r\x1b[K${`guest: ${parts.join(', ')}`.slice(0, width - 1)}`);
  }
}

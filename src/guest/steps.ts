// Build steps of `mirrorball guest build`: one log file per step, progress on stderr, commands run into the log.

import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { formatElapsed, StatusLine, type StatusOutput } from '../host/status-line.js';

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
  /** How far the step is, shown beside its name ("312/725 objects"). */
  progress(detail: string): void;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Sees each line of the command's standard output (which still goes to the log). */
  onLine?: (line: string) => void;
}

const MS_PER_SECOND = 1000;
/** Without a terminal, a step's progress is a plain line at most this often. */
const PLAIN_PROGRESS_MS = 60_000;

interface ActiveStep {
  started: number;
  detail?: string;
  /** When its progress was last printed as a plain line. */
  printed: number;
}

/**
 * Runs named steps with a log each, reports progress (a redrawn status line on a terminal, plain lines
 * otherwise, and every line also in build.log), and stops every running command when one step fails.
 */
export class StepRunner {
  private readonly active = new Map<string, ActiveStep>();
  private readonly children = new Set<number>();
  private readonly status: StatusLine;
  private failed = false;
  readonly mainLog: string;

  constructor(
    readonly logDir: string,
    out: StatusOutput = process.stderr,
  ) {
    mkdirSync(logDir, { recursive: true });
    this.mainLog = join(logDir, 'build.log');
    this.status = new StatusLine(out, () => this.render());
  }

  /** A line for the user and build.log. */
  note(text: string): void {
    appendFileSync(this.mainLog, `${text}\n`);
    this.status.print(text);
  }

  async step<T>(name: string, body: (log: StepLog) => Promise<T>): Promise<T> {
    if (this.failed) throw new StepError(name, undefined, 'another step failed first');
    const path = join(this.logDir, `${name}.log`);
    const started = this.status.now();
    this.active.set(name, { started, printed: started });
    if (!this.status.shown) this.note(`guest: ${name} ...`);
    this.status.start();
    const log = this.logFor(name, path);
    try {
      const result = await body(log);
      this.active.delete(name);
      this.note(`guest: ${name} done in ${this.status.secondsSince(started).toFixed(1)} s`);
      return result;
    } catch (error) {
      this.active.delete(name);
      const stepError = error instanceof StepError ? error : new StepError(name, path, error instanceof Error ? error.message : String(error));
      if (!(error instanceof StepError)) log.write(`${stepError.message}\n`);
      this.fail();
      throw stepError;
    } finally {
      if (this.active.size === 0) this.status.stop();
    }
  }

  private progress(name: string, detail: string): void {
    const step = this.active.get(name);
    if (step === undefined) return;
    step.detail = detail;
    // A terminal shows it on the next redraw; a log gets a line now and then.
    if (this.status.shown || this.status.now() - step.printed < PLAIN_PROGRESS_MS) return;
    step.printed = this.status.now();
    this.note(`guest: ${name} ${detail}, ${formatElapsed(this.status.secondsSince(step.started))}`);
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
    this.status.stop();
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
        let partial = '';
        const piped = captureOut || options.onLine !== undefined;
        // Its own process group, so that make's children are stopped with it.
        const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', piped ? 'pipe' : fd, fd], detached: true });
        if (child.pid !== undefined) this.children.add(child.pid);
        child.stdout?.on('data', (chunk: Buffer) => {
          if (captureOut) stdout += chunk.toString('utf8');
          if (options.onLine === undefined) return;
          writeSync(fd, chunk);
          const lines = (partial + chunk.toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) options.onLine(line);
        });
        let finished = false;
        // A command that cannot start emits both 'error' and 'close'.
        const done = (error: Error | undefined, code: number | null, signal: NodeJS.Signals | null) => {
          if (finished) return;
          finished = true;
          if (child.pid !== undefined) this.children.delete(child.pid);
          if (partial !== '') options.onLine?.(partial);
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
      progress: (detail) => this.progress(step, detail),
    };
  }

  /** The status line: every running step with its time and progress. */
  private render(): string {
    if (this.active.size === 0) return '';
    const parts = [...this.active].map(([name, step]) => `${name} ${formatElapsed(this.status.secondsSince(step.started))}${step.detail === undefined ? '' : ` ${step.detail}`}`);
    return `guest: ${parts.join(', ')}`;
  }
}

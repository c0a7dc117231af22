// A machine driven through its serial console as a person would: a child process (mirrorball run, or QEMU
// with -nographic) whose stdout is the console; once the guest's shell prompt shows, one command line is
// typed, and what it printed between two markers comes back. The threads bench and an e2e test use it.

import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { processCpuSeconds } from './measure.js';

const PROMPT = 'mirrorball:/# ';
const BEGIN = '@@BEGIN@@';
const END = '@@END@@';

export interface ConsoleRun {
  /** What the command printed, between the markers, with \r\n as \n. */
  output: string;
  /** The whole console, for a failure's message. */
  console: string;
  /** Host seconds from the start of the process to the end marker. */
  seconds: number;
  /** Host seconds from typing the command to the end marker: the command's own wall time. */
  commandSeconds: number;
  /**
   * CPU seconds (user and system, every thread of the process) from typing the command to the end marker:
   * what the command cost, which a loaded host does not stretch as it does the wall time (NaN off Linux).
   */
  commandCpuSeconds: number;
  /** With `poweroff`: the process's exit status. */
  status?: number | null;
}

export interface ConsoleScriptOptions {
  /**
   * After the end marker, type `poweroff -f` and resolve once the process has exited by itself (its status
   * in `ConsoleRun.status`), so that it writes what it writes at exit (statistics); otherwise it is killed.
   */
  poweroff?: boolean;
}

/**
 * Starts `file args`, waits for the shell's prompt, types `command` framed by markers, and returns its
 * output. Rejects with the console's tail when the prompt or the end marker (or, with `poweroff`, the
 * exit) does not come in `timeoutMs`.
 */
export function consoleScript(file: string, args: readonly string[], command: string, timeoutMs: number, options: ConsoleScriptOptions = {}): Promise<ConsoleRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let raw = '';
    let text = '';
    let typed = false;
    let typedAt = 0;
    let cpuAtTyping = Number.NaN;
    let done = false;
    let ended: ConsoleRun | undefined;
    const finish = (error: Error | undefined, result?: ConsoleRun): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      if (error !== undefined) reject(error);
      else resolve(result!);
    };
    const timer = setTimeout(() => finish(new Error(`no ${ended !== undefined ? 'exit' : typed ? 'end marker' : 'prompt'} in ${timeoutMs} ms; console:\n${text.slice(-3000)}`)), timeoutMs);
    const look = (): void => {
      if (!typed && text.includes(PROMPT)) {
        typed = true;
        typedAt = performance.now();
        cpuAtTyping = processCpuSeconds(child.pid!);
        // The markers are printed by echo, so the typed line (echoed by the terminal) does not hold them whole.
        child.stdin.write(`echo '@@BEG''IN@@'; ${command}; echo '@@E''ND@@'\n`);
      }
      const begin = text.lastIndexOf(`${BEGIN}\n`);
      const end = text.indexOf(`${END}\n`, begin);
      if (typed && ended === undefined && begin >= 0 && end > begin) {
        const now = performance.now();
        const commandCpuSeconds = processCpuSeconds(child.pid!) - cpuAtTyping;
        ended = {
          output: text.slice(begin + BEGIN.length + 1, end), console: text, seconds: (now - started) / 1000,
          commandSeconds: (now - typedAt) / 1000, commandCpuSeconds,
        };
        if (options.poweroff === true) child.stdin.write('poweroff -f\n');
        else finish(undefined, ended);
      }
    };
    // A \r\n can be split between two chunks: the whole text is normalized each time.
    child.stdout.on('data', (chunk: Buffer) => {
      raw += chunk.toString('latin1');
      text = raw.replace(/\r\n/g, '\n');
      look();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      raw += chunk.toString('latin1');
      text = raw.replace(/\r\n/g, '\n');
    });
    child.on('error', (error) => finish(error));
    child.on('exit', (code) => {
      if (ended !== undefined) finish(undefined, { ...ended, console: text, status: code });
      else finish(new Error(`${file} exited (${code}) before the end marker; console:\n${text.slice(-3000)}`));
    });
  });
}

// An experiment's progress on stderr: its lines, and on a terminal a status line of what runs now and for how long.

import { formatElapsed, StatusLine, type StatusLineOptions, type StatusOutput } from '../host/status-line.js';

export interface Progress {
  /** A line that stays: what happened. */
  onProgress: (line: string) => void;
  /** What runs now: shown with its time on a terminal's status line. */
  onStatus: (text: string) => void;
}

/**
 * Runs an experiment with its progress on stderr: its lines, and on a terminal a status line of what runs
 * now (case, run), for how long, and the time so far. The guests' consoles are never on the terminal, so
 * nothing is drawn over one. The status line is gone before the results are printed.
 */
export async function withProgress<T>(name: string, run: (progress: Progress) => Promise<T>, out: StatusOutput = process.stderr, options: StatusLineOptions = {}): Promise<T> {
  let now = 'starting';
  let since = 0;
  const status: StatusLine = new StatusLine(out, (): string =>
    `${name}: ${now}, ${formatElapsed(status.secondsSince(since))} (${formatElapsed(status.secondsSince(started))} in all)`, options);
  const started = status.now();
  since = started;
  status.start();
  try {
    return await run({
      onProgress: (line) => status.print(`${name}: ${line}`),
      onStatus: (text) => {
        now = text;
        since = status.now();
        status.redraw();
      },
    });
  } finally {
    status.stop();
  }
}


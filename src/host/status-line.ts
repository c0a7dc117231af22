// Progress of long host work: one status line at the bottom of a terminal, redrawn every second, with lines printed above it.

import { performance } from 'node:perf_hooks';

/** Where the status goes: stderr, or a stand-in in tests. */
export interface StatusOutput {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

export interface StatusLineOptions {
  /** How often the line is redrawn (default 1 s). */
  intervalMs?: number;
  /** The clock, in milliseconds (default performance.now). */
  now?: () => number;
}

const DEFAULT_INTERVAL_MS = 1000;
/** Width of the line when the terminal does not say. */
const DEFAULT_COLUMNS = 80;
const CLEAR_LINE = '\r\x1b[K';
const SECONDS_PER_MINUTE = 60;
const SECONDS_PER_HOUR = 3600;
const MS_PER_SECOND = 1000;

/** "42 s", "3 min 05 s", "1 h 02 min": how long something has run, to the second. */
export function formatElapsed(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < SECONDS_PER_MINUTE) return `${s} s`;
  if (s < SECONDS_PER_HOUR) return `${Math.floor(s / SECONDS_PER_MINUTE)} min ${String(s % SECONDS_PER_MINUTE).padStart(2, '0')} s`;
  return `${Math.floor(s / SECONDS_PER_HOUR)} h ${String(Math.floor((s % SECONDS_PER_HOUR) / SECONDS_PER_MINUTE)).padStart(2, '0')} min`;
}

/**
 * A status line on a terminal: `render()` is drawn on the last line and redrawn every second while the
 * line is started; `print` puts a permanent line above it. When the output is not a terminal, nothing of
 * the status is written (a log would fill with redraws) and printed lines pass through unchanged.
 * Only for host work whose output owns the terminal: never while a guest console is on it.
 */
export class StatusLine {
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  readonly now: () => number;

  constructor(
    private readonly out: StatusOutput,
    private readonly render: () => string,
    options: StatusLineOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.now = options.now ?? (() => performance.now());
  }

  /** True when the output is a terminal, so that the status is shown. */
  get shown(): boolean {
    return this.out.isTTY === true;
  }

  /** Seconds since `since` (a value of `now()`). */
  secondsSince(since: number): number {
    return (this.now() - since) / MS_PER_SECOND;
  }

  start(): void {
    if (!this.shown || this.timer !== undefined) return;
    this.timer = setInterval(() => this.redraw(), this.intervalMs);
    this.timer.unref();
    this.redraw();
  }

  /** A line that stays: written above the status, which is drawn again below it. */
  print(line: string): void {
    if (this.shown) this.out.write(CLEAR_LINE);
    this.out.write(`${line}\n`);
    if (this.timer !== undefined) this.redraw();
  }

  redraw(): void {
    if (!this.shown) return;
    const text = this.render();
    const width = this.out.columns || DEFAULT_COLUMNS;
    this.out.write(`${CLEAR_LINE}${text.slice(0, width - 1)}`);
  }

  /** Stops redrawing and erases the status. */
  stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.out.write(CLEAR_LINE);
  }
}

// What the progress line and the statistics view compute from the console and the worker's reports.

/** The last non-empty line the console printed, without control sequences. */
export class LastLine {
  text = '';
  private partial = '';

  add(chunk: string): void {
    const lines = (this.partial + chunk).split(/\r?\n|\r/);
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const clean = plain(line);
      if (clean !== '') this.text = clean;
    }
    const tail = plain(this.partial);
    // A line still being written (a prompt) shows at once.
    if (tail !== '') this.text = tail;
  }
}

/** `text` without ANSI escape sequences and other control characters. */
function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/[\x00-\x1f\x7f]/g, '').trim();
}

/** A rate over the last `windowMs` of host time from (time, count) samples. */
export class RateWindow {
  private readonly samples: [number, number][] = [];

  constructor(private readonly windowMs: number) {}

  add(ms: number, count: number): void {
    this.samples.push([ms, count]);
    while (this.samples.length > 2 && this.samples[1]![0] <= ms - this.windowMs) this.samples.shift();
  }

  /** Counts per second between the oldest sample in the window and the newest; 0 with fewer than two. */
  perSecond(): number {
    if (this.samples.length < 2) return 0;
    const [t0, c0] = this.samples[0]!;
    const [t1, c1] = this.samples[this.samples.length - 1]!;
    return t1 > t0 ? ((c1 - c0) * 1000) / (t1 - t0) : 0;
  }
}

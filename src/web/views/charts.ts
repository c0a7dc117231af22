// "Where time goes", live (docs/dashboard.md): one stacked chart per VM and per physical CPU of the share of
// its cycles in guest user, guest kernel, the monitor by kind of work and idle over each interval, and per VM
// its exits per second by kind. uPlot draws; the stacking is done here (each series is the sum of those below
// it). Shared by the dashboard and the browser tab (docs/browser.md): no protocol here, only numbers.

import 'uplot/dist/uPlot.min.css';
import uPlot from 'uplot';

/** How many intervals a chart keeps (at 10 a second, a minute). */
const WINDOW = 600;

const GUEST_COLORS = ['#2e7d32', '#1565c0'];
const IDLE_COLOR = '#bdbdbd';
/** The monitor's kinds in reds and oranges, its other kinds darkest. */
const MONITOR_COLORS = ['#c62828', '#ef6c00', '#f9a825', '#ad1457'];
const MONITOR_OTHER_COLOR = '#4e342e';
const EXIT_COLORS = ['#6a1b9a', '#ef6c00', '#00838f', '#ad1457', '#558b2f', '#4e342e', '#283593', '#f9a825'];
/** The monitor's kinds a time chart shows apart; the rest are one band, "monitor: other". */
export const MONITOR_KINDS_SHOWN = 4;
/** Samples between two choices of the kinds shown, so that the bands do not change at every interval. */
const CHOOSE_EVERY = 50;

/** One interval of where time went, in cycles (any unit): the monitor's by kind. */
export interface TimeParts {
  user: number;
  kernel: number;
  monitor: Record<string, number>;
  idle: number;
}

/**
 * Where time goes as stacked shares (percent): guest user, guest kernel, the monitor's `MONITOR_KINDS_SHOWN`
 * largest kinds so far, its other kinds, idle. The kinds shown are chosen again every `CHOOSE_EVERY` samples
 * (every sample while it shows fewer than it may); when they change the chart is drawn again from the
 * intervals it keeps.
 */
export class TimeChart {
  private readonly times: number[] = [];
  private readonly intervals: TimeParts[] = [];
  private readonly kindTotals = new Map<string, number>();
  private shown: string[] = [];
  private values: number[][] = [];
  private plot: uPlot | undefined;
  samples = 0;

  /** Its own box in `parent`, so that drawing it again keeps its place among the parent's charts. */
  private readonly parent: HTMLElement;

  /** `monitor` false: a machine with no monitor (the browser tab's), whose chart has no monitor bands. */
  constructor(parent: HTMLElement, private readonly title: string, private readonly monitor = true) {
    this.parent = parent.appendChild(document.createElement('div'));
  }

  /** The labels of the bands, bottom up. */
  get labels(): string[] {
    return ['guest user', 'guest kernel', ...(this.monitor ? [...this.shown.map((k) => `monitor: ${k}`), 'monitor: other'] : []), 'idle'];
  }

  push(time: number, parts: TimeParts): void {
    const total = parts.user + parts.kernel + parts.idle + Object.values(parts.monitor).reduce((a, b) => a + b, 0);
    if (total <= 0) return;
    for (const [k, n] of Object.entries(parts.monitor)) this.kindTotals.set(k, (this.kindTotals.get(k) ?? 0) + n);
    this.times.push(time);
    this.intervals.push(parts);
    const full = this.times.length > WINDOW;
    if (full) {
      this.times.shift();
      this.intervals.shift();
    }
    this.samples++;
    // Until it shows as many kinds as it may, it looks at every interval (a new chart has seen none yet).
    const chosen = !this.monitor ? [] : this.samples % CHOOSE_EVERY === 1 || this.shown.length < MONITOR_KINDS_SHOWN ? this.choose() : this.shown;
    if (chosen.join() !== this.shown.join() || this.plot === undefined) {
      this.shown = chosen;
      this.values = this.labels.map(() => []);
      for (const p of this.intervals) this.stack(p);
      this.plot?.destroy();
      const colors = [...GUEST_COLORS, ...(this.monitor ? [...chosen.map((_, i) => MONITOR_COLORS[i % MONITOR_COLORS.length]!), MONITOR_OTHER_COLOR] : []), IDLE_COLOR];
      // Drawn top-down so the lower bands paint over the upper ones' fill.
      const series: uPlot.Series[] = [{}, ...this.labels.map((label, i) => ({ label, stroke: colors[i], fill: colors[i], width: 1, points: { show: false } }))];
      this.plot = new uPlot({
        title: this.title, width: 360, height: 180, series,
        scales: { x: { time: true }, y: { range: [0, 100] } },
        axes: [{}, { size: 50, values: (_u, ticks) => ticks.map((t) => `${t}%`) }],
        legend: { live: false },
      }, [this.times, ...this.values], this.parent);
      return;
    }
    this.stack(parts);
    if (full) for (const v of this.values) v.shift();
    this.plot.setData([this.times, ...this.values]);
  }

  /** The largest kinds so far. */
  private choose(): string[] {
    return [...this.kindTotals].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, MONITOR_KINDS_SHOWN).map(([k]) => k).sort();
  }

  /** One interval's band edges: band i is the sum of bands i..n-1, so that its height is its own share. */
  private stack(p: TimeParts): void {
    const shownCycles = this.shown.map((k) => p.monitor[k] ?? 0);
    const other = Object.entries(p.monitor).reduce((sum, [k, n]) => sum + (this.shown.includes(k) ? 0 : n), 0);
    const parts = this.monitor ? [p.user, p.kernel, ...shownCycles, other, p.idle] : [p.user, p.kernel, p.idle];
    const total = parts.reduce((a, b) => a + b, 0);
    let sum = 0;
    for (let i = parts.length - 1; i >= 0; i--) {
      sum += parts[i]!;
      this.values[i]!.push((100 * sum) / total);
    }
  }
}

/** Lines of rates (per second) whose series appear as they first occur. */
export class RateChart {
  private readonly times: number[] = [];
  private readonly values = new Map<string, (number | null)[]>();
  private plot: uPlot | undefined;
  samples = 0;

  private readonly parent: HTMLElement;

  constructor(parent: HTMLElement, private readonly title: string) {
    this.parent = parent.appendChild(document.createElement('div'));
  }

  push(time: number, rates: Record<string, number>): void {
    let rebuild = false;
    for (const key of Object.keys(rates)) {
      if (!this.values.has(key)) {
        this.values.set(key, this.times.map(() => null));
        rebuild = true;
      }
    }
    this.times.push(time);
    for (const [key, list] of this.values) list.push(rates[key] ?? 0);
    if (this.times.length > WINDOW) {
      this.times.shift();
      for (const v of this.values.values()) v.shift();
    }
    this.samples++;
    const data = [this.times, ...this.values.values()] as uPlot.AlignedData;
    if (rebuild || this.plot === undefined) {
      this.plot?.destroy();
      const series: uPlot.Series[] = [{}, ...[...this.values.keys()].map((label, i) => ({ label, stroke: EXIT_COLORS[i % EXIT_COLORS.length], width: 1, points: { show: false } }))];
      this.plot = new uPlot({ title: this.title, width: 360, height: 160, series, scales: { x: { time: true } }, axes: [{}, { size: 60 }], legend: { live: false } }, data, this.parent);
    } else this.plot.setData(data);
  }
}

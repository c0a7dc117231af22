// "Where time goes", live (docs/dashboard.md): one stacked chart per VM and per physical CPU of the share of
// its cycles in guest user, guest kernel, monitor and idle mode over each interval, and per VM its exits per
// second by kind. uPlot draws; the stacking is done here (each series is the sum of those below it).

import uPlot from 'uplot';

/** How many intervals a chart keeps (at 10 a second, a minute). */
const WINDOW = 600;

export const TIME_SERIES = ['guest user', 'guest kernel', 'monitor', 'idle'] as const;
const TIME_COLORS = ['#2e7d32', '#1565c0', '#c62828', '#bdbdbd'];
const EXIT_COLORS = ['#6a1b9a', '#ef6c00', '#00838f', '#ad1457', '#558b2f', '#4e342e', '#283593', '#f9a825'];

/** A stacked share chart (percent) with a fixed set of series. */
export class StackedChart {
  private readonly times: number[] = [];
  private readonly values: number[][];
  private readonly plot: uPlot;
  samples = 0;

  constructor(parent: HTMLElement, title: string, private readonly labels: readonly string[], colors: readonly string[]) {
    this.values = labels.map(() => []);
    const series: uPlot.Series[] = [{}];
    // Drawn top-down so the lower bands paint over the upper ones' fill.
    labels.forEach((label, i) => series.push({ label, stroke: colors[i % colors.length], fill: colors[i % colors.length], width: 1, points: { show: false } }));
    this.plot = new uPlot({
      title, width: 360, height: 160, series,
      scales: { x: { time: true }, y: { range: [0, 100] } },
      axes: [{}, { size: 50, values: (_u, ticks) => ticks.map((t) => `${t}%`) }],
      legend: { live: false },
    }, [[], ...labels.map(() => [])], parent);
  }

  /** One interval: how many cycles went to each series (any unit); shown as stacked percentages. */
  push(time: number, parts: readonly number[]): void {
    const total = parts.reduce((a, b) => a + b, 0);
    if (total <= 0) return;
    this.times.push(time);
    // Series i shows the sum of parts i..n-1, so that each band's height is its own share.
    let sum = 0;
    const stacked = parts.map(() => 0);
    for (let i = parts.length - 1; i >= 0; i--) {
      sum += parts[i]!;
      stacked[i] = (100 * sum) / total;
    }
    stacked.forEach((v, i) => this.values[i]!.push(v));
    if (this.times.length > WINDOW) {
      this.times.shift();
      for (const v of this.values) v.shift();
    }
    this.samples++;
    this.plot.setData([this.times, ...this.values]);
  }

  get element(): HTMLElement {
    return this.plot.root;
  }
}

/** Lines of rates (per second) whose series appear as they first occur. */
export class RateChart {
  private readonly times: number[] = [];
  private readonly values = new Map<string, (number | null)[]>();
  private plot: uPlot | undefined;
  samples = 0;

  constructor(private readonly parent: HTMLElement, private readonly title: string) {}

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

export function timeChart(parent: HTMLElement, title: string): StackedChart {
  return new StackedChart(parent, title, TIME_SERIES, TIME_COLORS);
}

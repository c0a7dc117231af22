// The tab's statistics as the dashboard draws them (docs/browser.md): where time goes for the machine and per
// hart (views/charts.ts) and the NUMA map with what each hart does (views/machine-view.ts), made from the
// worker's statistics in the shapes the dashboard gets from the control protocol. The machine has no monitor:
// its time is guest user, guest kernel (with the built-in SBI's M-mode) and idle; one node holds every hart.

import { TimeChart, type TimeParts } from '../views/charts.js';
import { renderNuma, type NumaSample } from '../views/machine-view.js';
import type { CpusReply, MonitorReply } from '../views/replies.js';
import type { HartTime, StatsMessage } from './protocol.js';

export interface TabViewElements {
  /** Where the machine's chart and each hart's go. */
  machineCharts: HTMLElement;
  hartCharts: HTMLElement;
  map: HTMLElement;
  note: HTMLElement;
}

function chartBox(parent: HTMLElement): HTMLElement {
  const box = document.createElement('div');
  box.className = 'chart';
  parent.append(box);
  return box;
}

export class TabViews {
  private machineChart: TimeChart | undefined;
  private readonly hartCharts: TimeChart[] = [];
  private previous: StatsMessage | undefined;
  private readonly numa: NumaSample = { previous: undefined };

  constructor(private readonly elements: TabViewElements) {}

  /** One report of the worker's, at host time `now` (seconds). */
  update(stats: StatsMessage, now: number): void {
    const previous = this.previous;
    this.previous = stats;
    renderNuma(this.elements.map, this.elements.note, machineReply(stats), cpusReply(stats), [], this.numa);
    this.elements.note.textContent = 'One node with every hart, as run --smp N builds it; each hart says whether it runs, waits in WFI or is off.';
    if (previous === undefined || stats.cycles <= previous.cycles) return;
    this.machineChart ??= new TimeChart(chartBox(this.elements.machineCharts), 'machine', false);
    const parts = stats.perHart.map((h, i) => since(h, previous.perHart[i]!));
    this.machineChart.push(now, parts.reduce((a, b) => ({ user: a.user + b.user, kernel: a.kernel + b.kernel, monitor: {}, idle: a.idle + b.idle })));
    parts.forEach((p, i) => {
      this.hartCharts[i] ??= new TimeChart(chartBox(this.elements.hartCharts), `hart ${i}`, false);
      this.hartCharts[i]!.push(now, p);
    });
  }

  /** How many intervals each chart has drawn (for the tests). */
  get samples(): { machine: number; harts: number[] } {
    return { machine: this.machineChart?.samples ?? 0, harts: this.hartCharts.map((c) => c.samples) };
  }
}

function since(now: HartTime, before: HartTime): TimeParts {
  return { user: Math.max(0, now.user - before.user), kernel: Math.max(0, now.kernel - before.kernel), monitor: {}, idle: Math.max(0, now.idle - before.idle) };
}

/** The machine as `query-monitor` would describe it: one node with every hart, one cell. */
function machineReply(stats: StatsMessage): MonitorReply {
  const harts = stats.perHart.map((_, i) => i);
  return {
    cpus: harts.length,
    nodes: [{ id: 0, cpus: harts, memoryBytes: stats.memoryBytes, pagesInUse: null, pagesFree: 0, failed: false }],
    cells: [{ id: 0, nodes: [0], cpus: harts, monitorNode: 0, failure: null }],
    mode: 'fast',
    machineFailure: null,
  };
}

/** The harts as `query-cpus` would give them; no vCPU runs on them (no monitor), each says what it does. */
function cpusReply(stats: StatsMessage): CpusReply {
  return {
    cycles: stats.cycles,
    mode: 'fast',
    cpus: stats.perHart.map((h, i) => ({
      cpu: i, node: 0, cell: 0, failed: false, vm: null, vcpu: null, userCycles: h.user, kernelCycles: h.kernel, monitorCycles: 0, monitorByKind: {},
      missesLocal: 0, missesRemote: 0, state: h.state,
    })),
    nodes: [{ id: 0, linesRead: null, linesWritten: null }],
    policy: null,
  };
}

// The dashboard (docs/dashboard.md): one page that speaks the control protocol to `up` (or `run`) over a
// WebSocket and shows the VMs, their consoles, where time goes, the NUMA map, cells and faults. It asks
// for the fast-changing state ten times a second and for the rest twice a second.

import '@xterm/xterm/css/xterm.css';
import './dashboard.css';
import { Consoles } from './consoles.js';
import { RateChart, TimeChart, type TimeParts } from '../views/charts.js';
import { Control, pageToken } from './protocol.js';
import { MoveArrows, renderCells, renderNuma, type NumaSample, type PageMove } from '../views/machine-view.js';
import type { CpusReply, FailureRecord, MemoryReply, MonitorReply, VmListing, VmStats } from '../views/replies.js';

/** Host milliseconds between two polls of the fast-changing state. */
const TICK_MS = 100;
/** Every this many ticks, the slower state too (memory, the machine, the failure report). */
const SLOW_EVERY = 5;

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const status = byId('status');
const control = new Control(`ws://${location.host}/control`, pageToken(), (state, why) => {
  status.textContent = why === undefined ? state : `${state}: ${why}`;
  status.className = `status ${state}`;
}, () => { void connected(); });
const consoles = new Consoles(control, byId('console-list'));

let vms: VmListing[] = [];
let memory: MemoryReply | undefined;
let machine: MonitorReply | undefined;
let failures: FailureRecord[] = [];
let tick = 0;
let polling = false;
/** Whether the monitor has VM commands (`up`) or is one machine (`run`). */
let monitorMode = true;

interface ChartState { time: TimeChart; exits?: RateChart; last?: { time: number; parts: number[]; kinds: Record<string, number>; exits?: Record<string, number> } }
const vmCharts = new Map<string, ChartState>();
const cpuCharts = new Map<number, ChartState>();
let lastCpus: CpusReply | undefined;
const numa: NumaSample = { previous: undefined };

async function connected(): Promise<void> {
  const commands = await control.execute<{ name: string }[]>('query-commands');
  monitorMode = commands.some((c) => c.name === 'query-vms');
  byId('machine').textContent = monitorMode ? '' : ' (one machine: run)';
  if (monitorMode) await refreshVms(true);
  else await consoles.show('machine', true);
  await slowPoll();
  if (!polling) {
    polling = true;
    window.setInterval(() => { void poll(); }, TICK_MS);
  }
}

control.on('VM_STOPPED', (data) => {
  consoles.note(String(data.vm), `${String(data.state)}: ${String(data.reason)}`);
  void refreshVms(false);
});
control.on('VM_STARTED', () => { void refreshVms(false); });
// The NUMA policy's moves as they happen (docs/control.md, "Page events").
const arrows = new MoveArrows(byId('numa-map'), byId('policy-events'));
control.on('PAGE_MIGRATED', (data) => arrows.show('migrated', data as unknown as PageMove));
control.on('PAGE_REPLICATED', (data) => arrows.show('replicated', data as unknown as PageMove));
control.on('PAGE_EVENTS_DROPPED', (data) => {
  byId('policy-dropped').textContent = `and more than the events say: ${String(data.totalMigrated)} migrations and ${String(data.totalReplicated)} replications not sent (at most 50 events a second)`;
});

async function refreshVms(fresh: boolean): Promise<void> {
  const before = new Map(vms.map((v) => [v.name, v.id]));
  vms = await control.execute<VmListing[]>('query-vms');
  renderVms();
  for (const vm of latest(vms)) {
    // A VM started again is a new VM with the old name: its console starts afresh.
    await consoles.show(vm.name, fresh || (before.has(vm.name) && before.get(vm.name) !== vm.id));
  }
}

/** Each name's latest VM (one that ended and was started again appears once). */
function latest(list: VmListing[]): VmListing[] {
  const byName = new Map<string, VmListing>();
  for (const vm of list) byName.set(vm.name, vm);
  return [...byName.values()];
}

async function poll(): Promise<void> {
  if (!control.connected) return;
  tick++;
  try {
    if (tick % SLOW_EVERY === 0) await slowPoll();
    const now = Date.now() / 1000;
    // One machine (`run`): where each hart's time goes, from the same query-cpus shape.
    if (!monitorMode) {
      cpuSamples(await control.execute<CpusReply>('query-cpus'), now);
      return;
    }
    const [list, cpus] = await Promise.all([control.execute<VmListing[]>('query-vms'), control.execute<CpusReply>('query-cpus')]);
    vms = list;
    const running = latest(vms).filter((v) => v.state === 'running');
    const stats = await Promise.all(running.map((v) => control.execute<VmStats>('query-vm-stats', { vm: v.name })));
    renderVms();
    for (const s of stats) vmSample(s, now);
    cpuSamples(cpus, now);
    if (machine !== undefined) renderNuma(byId('numa-map'), byId('numa-note'), machine, cpus, vms, numa);
  } catch {
    // The connection dropped or a VM ended between two commands: the next tick asks again.
  }
}

async function slowPoll(): Promise<void> {
  if (!monitorMode) return;
  [memory, machine] = await Promise.all([control.execute<MemoryReply>('query-memory'), control.execute<MonitorReply>('query-monitor')]);
  const from = failures.length === 0 ? 0 : failures[failures.length - 1]!.seq + 1;
  failures.push(...await control.execute<FailureRecord[]>('query-failure-report', { from }));
  // With one cell, failing it is failing the machine: the inject form does that for whoever means it.
  renderCells(byId('cell-table'), byId('failure-report'), machine, latest(vms), failures, machine.cells.length > 1 ? failCell : undefined);
}

/** The cells table's **fail** button: the cell's monitor node fails, and with it the cell (docs/cells.md). */
function failCell(cell: MonitorReply['cells'][number]): void {
  const fault = `node ${cell.monitorNode}`;
  control.execute<{ fault: string; time: number }>('inject-fault', { fault })
    .then((r) => { byId('fault-result').textContent = `injected: ${r.fault} (cell ${cell.id}'s monitor node)`; return slowPoll(); })
    .catch((error: Error) => { byId('fault-result').textContent = error.message; });
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)}M`;
}

/**
 * The VM table, updated in place: a row per VM name, its cells' text changed only when it differs, so that a
 * button under the pointer stays the same element between a press and its release (ten redraws a second
 * would otherwise swallow clicks).
 */
function renderVms(): void {
  const body = byId('vm-table').querySelector('tbody')!;
  const shown = latest(vms);
  for (const row of [...body.querySelectorAll<HTMLTableRowElement>('tr')]) {
    if (!shown.some((vm) => vm.name === row.dataset.vm)) row.remove();
  }
  for (const vm of shown) {
    let row = body.querySelector<HTMLTableRowElement>(`tr[data-vm="${CSS.escape(vm.name)}"]`);
    if (row === null) {
      row = document.createElement('tr');
      row.dataset.vm = vm.name;
      for (let i = 0; i < 9; i++) row.append(document.createElement('td'));
      row.cells[1]!.className = 'state';
      const action = document.createElement('td');
      const button = document.createElement('button');
      const name = vm.name;
      button.onclick = () => {
        const stop = button.className === 'stop';
        button.disabled = true;
        control.execute(stop ? 'vm-stop' : 'vm-start', { vm: name })
          .then(() => { byId('vm-error').textContent = ''; return refreshVms(false); })
          .catch((error: Error) => { byId('vm-error').textContent = `${stop ? 'stop' : 'start'} ${name}: ${error.message}`; })
          .finally(() => { button.disabled = false; });
      };
      action.append(button);
      row.append(action);
      body.append(row);
    }
    const pages = memory?.vms.find((m) => m.name === vm.name);
    const live = pages !== undefined && vm.state === 'running';
    const texts = [vm.name, vm.state, String(vm.vcpus), mib(vm.memoryBytes),
      live ? mib(pages.private * 4096) : '–', live ? mib(pages.shared * 4096) : '–', live ? mib(pages.reserved * 4096) : '–',
      String(vm.homeNode), vm.cells.join(',')];
    texts.forEach((text, i) => { if (row!.cells[i]!.textContent !== text) row!.cells[i]!.textContent = text; });
    const state = row.cells[1]!;
    if (state.className !== `state ${vm.state}`) state.className = `state ${vm.state}`;
    state.title = vm.reason;
    const button = row.cells[9]!.firstElementChild as HTMLButtonElement;
    const kind = vm.state === 'running' ? 'stop' : 'start';
    if (button.className !== kind) {
      button.className = kind;
      button.textContent = kind;
    }
  }
}

function chartBox(parent: HTMLElement, key: string): HTMLElement {
  let box = parent.querySelector<HTMLElement>(`[data-key="${key}"]`);
  if (box === null) {
    box = document.createElement('div');
    box.className = 'chart';
    box.dataset.key = key;
    parent.append(box);
  }
  return box;
}

function vmSample(s: VmStats, now: number): void {
  let state = vmCharts.get(s.name);
  if (state === undefined) {
    const box = chartBox(byId('vm-charts'), `vm-${s.name}`);
    state = { time: new TimeChart(box, `vm ${s.name}`), exits: new RateChart(box, `vm ${s.name}: exits/s by kind`) };
    vmCharts.set(s.name, state);
  }
  const t = s.total;
  const parts = [t.guestUserCycles, t.guestKernelCycles, t.monitorCycles, t.idleCycles + t.readyCycles];
  const last = state.last;
  // A VM started again counts from zero: a fall in its counters starts a new baseline.
  if (last !== undefined && parts.every((p, i) => p >= last.parts[i]!) && now > last.time) {
    state.time.push(now, { user: parts[0]! - last.parts[0]!, kernel: parts[1]! - last.parts[1]!, monitor: kindsSince(t.monitorByKind, last.kinds), idle: parts[3]! - last.parts[3]! });
    const rates: Record<string, number> = {};
    for (const [kind, n] of Object.entries(s.exits)) rates[kind] = Math.max(0, (n - (last.exits?.[kind] ?? 0)) / (now - last.time));
    state.exits!.push(now, rates);
  }
  state.last = { time: now, parts, kinds: t.monitorByKind, exits: s.exits };
}

/** The monitor's cycles by kind in an interval: `now` less `before`. */
function kindsSince(now: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const grown: Record<string, number> = {};
  for (const [k, n] of Object.entries(now)) if (n > (before[k] ?? 0)) grown[k] = n - (before[k] ?? 0);
  return grown;
}

function cpuSamples(cpus: CpusReply, now: number): void {
  const previous = lastCpus;
  lastCpus = cpus;
  if (previous === undefined || cpus.cycles <= previous.cycles) return;
  const elapsed = cpus.cycles - previous.cycles;
  for (const c of cpus.cpus) {
    let state = cpuCharts.get(c.cpu);
    if (state === undefined) {
      state = { time: new TimeChart(chartBox(byId('cpu-charts'), `cpu-${c.cpu}`), `cpu ${c.cpu} (node ${c.node})`) };
      cpuCharts.set(c.cpu, state);
    }
    const p = previous.cpus[c.cpu]!;
    const busy = [c.userCycles - p.userCycles, c.kernelCycles - p.kernelCycles, c.monitorCycles - p.monitorCycles];
    const parts: TimeParts = { user: busy[0]!, kernel: busy[1]!, monitor: kindsSince(c.monitorByKind, p.monitorByKind), idle: Math.max(0, elapsed - busy.reduce((a, b) => a + b, 0)) };
    state.time.push(now, parts);
  }
}

/** For the tests and the curious: how many samples each chart has drawn, each chart's bands, the moves seen. */
(window as unknown as { mirrorball: object }).mirrorball = {
  samples: () => ({
    vms: Object.fromEntries([...vmCharts].map(([k, v]) => [k, v.time.samples])),
    cpus: Object.fromEntries([...cpuCharts].map(([k, v]) => [k, v.time.samples])),
  }),
  /** Each chart's bands, bottom up: the monitor's kinds among them. */
  bands: () => Object.fromEntries([...[...vmCharts].map(([k, v]) => [`vm ${k}`, v.time.labels]), ...[...cpuCharts].map(([k, v]) => [`cpu ${k}`, v.time.labels])]),
  moves: () => ({ ...arrows.seen }),
};

control.connect();

byId('fault-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const fault = byId<HTMLInputElement>('fault-input').value.trim();
  control.execute<{ fault: string; time: number }>('inject-fault', { fault })
    .then((r) => { byId('fault-result').textContent = `injected: ${r.fault}`; })
    .catch((error: Error) => { byId('fault-result').textContent = error.message; });
});
byId('repair').addEventListener('click', () => {
  control.execute<{ parts: number }>('repair-hardware')
    .then((r) => { byId('fault-result').textContent = `repaired ${r.parts} part${r.parts === 1 ? '' : 's'}`; })
    .catch((error: Error) => { byId('fault-result').textContent = error.message; });
});

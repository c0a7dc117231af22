// The machine as the topology lays it out (docs/dashboard.md): each node a box with its CPUs, each CPU the
// vCPU it runs; in timing mode each node's box colored by the misses its memory served in the last
// interval; the NUMA policy's migrations and replications as they happen (an arrow from node to node per
// event). And the cells, the VMs that depend on each, and the failure report. Shared by the dashboard and the
// browser tab (docs/browser.md).

import './views.css';
import type { CpusReply, FailureRecord, MonitorReply, VmListing } from './replies.js';

export interface NumaSample {
  previous: CpusReply | undefined;
}

const CELL_COLORS = ['#e3f2fd', '#fce4ec', '#e8f5e9', '#fff3e0', '#ede7f6', '#e0f7fa', '#f9fbe7', '#efebe9'];
/** The policy's events kept on the page. */
const EVENTS_KEPT = 20;

function el(tag: string, className?: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  if (className !== undefined) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Heat from 0 (white) to 1 (a light red that the box's text still reads on). */
function heat(x: number): string {
  const v = Math.max(0, Math.min(1, x));
  return `rgb(255, ${Math.round(255 - 150 * v)}, ${Math.round(255 - 150 * v)})`;
}

export function renderNuma(map: HTMLElement, note: HTMLElement, machine: MonitorReply, cpus: CpusReply, vms: VmListing[], sample: NumaSample): void {
  const previous = sample.previous;
  sample.previous = cpus;
  const timing = cpus.mode === 'timing';
  note.textContent = timing
    ? 'Timing mode: each node is colored by the cache misses its memory served in the last interval (the busiest node red); each CPU shows its local / remote misses.'
    : 'Fast mode: no cache model, so no misses to show (set-mode timing, on a machine with timing: true).';
  const served = cpus.nodes.map((n, i) => (previous === undefined || n.linesRead === null ? 0 : n.linesRead - (previous.nodes[i]?.linesRead ?? 0)));
  const most = Math.max(1, ...served);
  const cellOf = new Map<number, number>();
  for (const cell of machine.cells) for (const n of cell.nodes) cellOf.set(n, cell.id);
  const boxes = machine.nodes.map((node) => {
    const box = el('div', `node${node.failed ? ' failed' : ''}`);
    box.dataset.node = String(node.id);
    box.style.background = timing ? heat(served[node.id]! / most) : CELL_COLORS[(cellOf.get(node.id) ?? 0) % CELL_COLORS.length]!;
    const cell = machine.cells.length > 1 ? `, cell ${cellOf.get(node.id) ?? '?'}` : '';
    box.append(el('div', 'node-title', `node ${node.id}${cell}${node.failed ? ' (failed)' : ''}`));
    const memory = node.pagesInUse === null ? `${(node.memoryBytes / 2 ** 20).toFixed(0)} MiB` : `${(node.pagesInUse * 4096 / 2 ** 20).toFixed(0)} of ${(node.memoryBytes / 2 ** 20).toFixed(0)} MiB in use`;
    box.append(el('div', 'node-memory', `${memory}${timing ? `; ${served[node.id]} misses served` : ''}`));
    const row = el('div', 'cpus');
    for (const id of node.cpus) {
      const c = cpus.cpus[id]!;
      const p = previous?.cpus[id];
      const cpu = el('div', `cpu${c.failed ? ' failed' : ''}`);
      cpu.dataset.cpu = String(id);
      cpu.append(el('div', 'cpu-title', `cpu ${id}`));
      // The vCPU it ran last; on a machine with no monitor (the browser tab), what the hart does.
      cpu.append(el('div', 'vcpu', c.vm !== null ? `${c.vm}/${c.vcpu}` : c.state ?? 'idle'));
      if (timing && p !== undefined && c.missesLocal !== null) {
        cpu.append(el('div', 'misses', `${c.missesLocal - (p.missesLocal ?? 0)} / ${c.missesRemote! - (p.missesRemote ?? 0)}`));
      }
      row.append(cpu);
    }
    box.append(row);
    const homed = vms.filter((v) => v.state === 'running' && v.homeNode === node.id).map((v) => v.name);
    if (homed.length > 0) box.append(el('div', 'homes', `home of ${homed.join(', ')}`));
    return box;
  });
  map.replaceChildren(...boxes);
}

/** A PAGE_MIGRATED or PAGE_REPLICATED event's data (docs/control.md, "Page events"). */
export interface PageMove {
  vm: string;
  page: number;
  pages: number;
  from: number;
  to: number;
}

/** Arrows drawn at once at most: a burst beyond it is in the list and the counts, not drawn. */
const ARROWS_AT_ONCE = 24;
/** How long an arrow stays, fading (the CSS animation `numa-arrow` is as long). */
const ARROW_MS = 1500;

/**
 * The NUMA policy's moves as they come: each an arrow from its node's box to the other's on an SVG over the
 * map (migrations solid, replications dashed), the destination box flashed, and a line in the list.
 */
export class MoveArrows {
  private readonly svg: SVGSVGElement;
  private drawn = 0;
  /** Moves seen, by kind (what the list and the arrows show a part of). */
  readonly seen = { migrated: 0, replicated: 0 };

  constructor(private readonly map: HTMLElement, private readonly list: HTMLElement) {
    const wrapper = map.parentElement!;
    wrapper.style.position = 'relative';
    this.svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    this.svg.classList.add('numa-arrows');
    const marker = document.createElementNS('http://www.w3.org/2000/svg', 'marker');
    marker.id = 'numa-arrowhead';
    for (const [k, v] of Object.entries({ viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '8', markerHeight: '8', orient: 'auto-start-reverse' })) marker.setAttribute(k, v);
    const head = document.createElementNS('http://www.w3.org/2000/svg', 'path');
    head.setAttribute('d', 'M 0 0 L 10 5 L 0 10 z');
    marker.append(head);
    const defs = document.createElementNS('http://www.w3.org/2000/svg', 'defs');
    defs.append(marker);
    this.svg.append(defs);
    wrapper.append(this.svg);
  }

  show(kind: 'migrated' | 'replicated', move: PageMove): void {
    this.seen[kind]++;
    const what = move.pages === 1 ? `page 0x${move.page.toString(16)}` : `${move.pages} pages from 0x${move.page.toString(16)}`;
    this.list.prepend(el('li', kind, `${new Date().toLocaleTimeString()}: ${move.vm} ${what} ${kind === 'migrated' ? 'migrated' : 'replicated'} node ${move.from} → ${move.to}`));
    while (this.list.children.length > EVENTS_KEPT) this.list.lastElementChild!.remove();
    const from = this.map.querySelector<HTMLElement>(`.node[data-node="${move.from}"]`);
    const to = this.map.querySelector<HTMLElement>(`.node[data-node="${move.to}"]`);
    if (from === null || to === null || this.drawn >= ARROWS_AT_ONCE) return;
    const base = this.svg.getBoundingClientRect();
    const centre = (e: HTMLElement): [number, number] => {
      const r = e.getBoundingClientRect();
      return [r.left + r.width / 2 - base.left, r.top + r.height / 2 - base.top];
    };
    const [x1, y1] = centre(from);
    const [x2, y2] = centre(to);
    const line = document.createElementNS('http://www.w3.org/2000/svg', 'line');
    // A little apart per arrow, so that several at once between the same nodes are seen as several.
    const jitter = (this.drawn % 5) * 4 - 8;
    for (const [k, v] of Object.entries({ x1: x1 + jitter, y1: y1 + jitter, x2: x2 + jitter, y2: y2 + jitter })) line.setAttribute(k, String(v));
    line.setAttribute('marker-end', 'url(#numa-arrowhead)');
    line.classList.add('arrow', kind);
    this.svg.append(line);
    this.drawn++;
    to.classList.add('flash');
    window.setTimeout(() => {
      line.remove();
      this.drawn--;
      to.classList.remove('flash');
    }, ARROW_MS);
  }
}

/**
 * The cells: a row per cell with its nodes, CPUs, state and the running VMs that depend on it, and a **fail**
 * button that fails the cell (`onFail(cell)`: the dashboard injects the loss of its monitor node). Rows are
 * updated in place, so that a button under the pointer stays the same element between a press and its release.
 */
export function renderCells(table: HTMLElement, report: HTMLElement, machine: MonitorReply, vms: VmListing[], failures: FailureRecord[], onFail?: (cell: MonitorReply['cells'][number]) => void): void {
  const body = table.querySelector('tbody')!;
  for (const row of [...body.querySelectorAll<HTMLTableRowElement>('tr')]) {
    if (!machine.cells.some((c) => String(c.id) === row.dataset.cell)) row.remove();
  }
  for (const cell of machine.cells) {
    let row = body.querySelector<HTMLTableRowElement>(`tr[data-cell="${cell.id}"]`);
    if (row === null) {
      row = el('tr') as HTMLTableRowElement;
      row.dataset.cell = String(cell.id);
      for (let i = 0; i < 5; i++) row.append(el('td'));
      const action = el('td');
      if (onFail !== undefined) {
        const button = el('button', 'fail-cell', 'fail') as HTMLButtonElement;
        button.title = `inject a fault: node ${cell.monitorNode} (its monitor node) fails, so the cell does; the VMs that depend on it end`;
        button.onclick = () => onFail(cell);
        action.append(button);
      }
      row.append(action);
      body.append(row);
    }
    const dependents = vms.filter((v) => v.state === 'running' && v.cells.includes(cell.id)).map((v) => v.name);
    const texts = [String(cell.id), cell.nodes.join(','), cell.cpus.join(','), cell.failure ?? 'up', dependents.join(', ') || '–'];
    texts.forEach((text, i) => { if (row!.cells[i]!.textContent !== text) row!.cells[i]!.textContent = text; });
    const button = row.querySelector<HTMLButtonElement>('button.fail-cell');
    if (button !== null) button.disabled = cell.failure !== null;
  }
  report.replaceChildren(...failures.slice(-EVENTS_KEPT).reverse().map((f) => el('li', undefined, `#${f.seq} ${f.kind}: ${f.text}`)));
}

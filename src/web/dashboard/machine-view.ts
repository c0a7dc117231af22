// The machine as the topology lays it out (docs/dashboard.md): each node a box with its CPUs, each CPU the
// vCPU it runs; in timing mode each node's box colored by the misses its memory served in the last
// interval; the NUMA policy's migrations and replications as they happen. And the cells, the VMs that
// depend on each, and the failure report.

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

export function renderNuma(map: HTMLElement, note: HTMLElement, events: HTMLElement, machine: MonitorReply, cpus: CpusReply, vms: VmListing[], sample: NumaSample): void {
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
    box.append(el('div', 'node-memory', `${(node.pagesInUse * 4096 / 2 ** 20).toFixed(0)} of ${(node.memoryBytes / 2 ** 20).toFixed(0)} MiB in use${timing ? `; ${served[node.id]} misses served` : ''}`));
    const row = el('div', 'cpus');
    for (const id of node.cpus) {
      const c = cpus.cpus[id]!;
      const p = previous?.cpus[id];
      const cpu = el('div', `cpu${c.failed ? ' failed' : ''}`);
      cpu.dataset.cpu = String(id);
      cpu.append(el('div', 'cpu-title', `cpu ${id}`));
      cpu.append(el('div', 'vcpu', c.vm === null ? 'idle' : `${c.vm}/${c.vcpu}`));
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
  if (previous?.policy != null && cpus.policy !== null) {
    const lines: string[] = [];
    cpus.policy.migratedTo.forEach((n, node) => { const d = n - previous.policy!.migratedTo[node]!; if (d > 0) lines.push(`${d} page${d === 1 ? '' : 's'} migrated to node ${node}`); });
    cpus.policy.replicatedTo.forEach((n, node) => { const d = n - previous.policy!.replicatedTo[node]!; if (d > 0) lines.push(`${d} page${d === 1 ? '' : 's'} replicated on node ${node}`); });
    for (const line of lines) events.prepend(el('li', undefined, `${new Date().toLocaleTimeString()}: ${line}`));
    while (events.children.length > EVENTS_KEPT) events.lastElementChild!.remove();
  }
}

export function renderCells(table: HTMLElement, report: HTMLElement, machine: MonitorReply, vms: VmListing[], failures: FailureRecord[]): void {
  const rows = machine.cells.map((cell) => {
    const row = el('tr');
    const dependents = vms.filter((v) => v.state === 'running' && v.cells.includes(cell.id)).map((v) => v.name);
    for (const text of [String(cell.id), cell.nodes.join(','), cell.cpus.join(','), cell.failure ?? 'up', dependents.join(', ') || '–']) row.append(el('td', undefined, text));
    return row;
  });
  table.querySelector('tbody')!.replaceChildren(...rows);
  report.replaceChildren(...failures.slice(-EVENTS_KEPT).reverse().map((f) => el('li', undefined, `#${f.seq} ${f.kind}: ${f.text}`)));
}

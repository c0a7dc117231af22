// The balancers between cells (Cellular Disco's idle and periodic balancers; docs/cells.md): which of the cells'
// vCPUs move where. They read the cells' scheduling through a `BalancerView` (cell-scheduler.ts) and act only
// by its `move`, which is a request over the cell bus.

import type { SchedVcpu } from './scheduler.js';

/** What the balancers read of the cells' run queues, and the one thing they do, a move. */
export interface BalancerView {
  readonly gang: boolean;
  /** The live cells, in id order. */
  live(): number[];
  /** A cell's working CPUs. */
  cpus(cell: number): number;
  /** A cell's first node: the machine's distances between cells are between these. */
  nodeOf(cell: number): number;
  /** The runnable vCPUs cell `cell`'s last pick left waiting: the monitor's own objects, by VM and index. */
  waiting(cell: number): SchedVcpu[];
  /** Each VM's parts: the cells it is scheduled in, and its vCPUs' indices in each. */
  parts(): ReadonlyMap<number, readonly { readonly cell: number; readonly indices: readonly number[] }[]>;
  /** VM `vm`'s vCPUs, by index. */
  vcpus(vm: number): readonly SchedVcpu[];
  /** vCPUs `indices` of VM `vm` from cell `from` to cell `to`, all or none: whether they moved. */
  move(vm: number, indices: number[], from: number, to: number): boolean;
}

/** A move the balancers consider: some of a VM's vCPUs. */
interface Move {
  vm: number;
  indices: number[];
}

/**
 * With gangs, the CPUs of cell `cell` the VMs confined to it leave: a gang moved there must fit in them, or it
 * would wait there whenever the cell's own VMs run (in the slot of the confined VMs, gang-slots.ts), and the
 * idle balancer would move it on again at the next CPU left idle elsewhere, slot after slot.
 */
export function room(view: BalancerView, cell: number): number {
  let confined = 0;
  for (const parts of view.parts().values()) if (parts.length === 1 && parts[0]!.cell === cell) confined += parts[0]!.indices.length;
  return view.cpus(cell) - confined;
}

/**
 * The idle balancer, after a pick that left `idle` CPUs idle in each live cell: each vCPU left waiting in a cell
 * (cells in order, then by VM and index) goes to the nearest cell (`distance` between nodes; ties: the lower)
 * with a CPU idle, as many as there are idle CPUs. With gangs, a VM confined to the cell moves whole, to the
 * nearest cell with idle CPUs for all its vCPUs and room for them (`room`); a spanning gang never moves.
 */
export function balanceIdle(view: BalancerView, idle: Map<number, number>, distance: (a: number, b: number) => number): void {
  const live = view.live();
  const nearest = (donor: number, n: number): number | undefined => live.filter((c) => c !== donor && idle.get(c)! >= n && (!view.gang || room(view, c) >= n))
    .sort((a, b) => distance(view.nodeOf(donor), view.nodeOf(a)) - distance(view.nodeOf(donor), view.nodeOf(b)) || a - b)[0];
  for (const donor of live) {
    const waiting = view.waiting(donor);
    const parts = view.parts();
    const moves: Move[] = view.gang
      ? [...new Set(waiting.map((v) => v.vm))].filter((vm) => parts.get(vm)!.length === 1).map((vm) => ({ vm, indices: [...parts.get(vm)![0]!.indices] }))
      : waiting.map((v) => ({ vm: v.vm, indices: [v.index] }));
    for (const m of moves) {
      const to = nearest(donor, m.indices.length);
      if (to === undefined) continue;
      // A cell that does not give (it did not answer) is asked nothing more this round.
      if (!view.move(m.vm, m.indices, donor, to)) break;
      idle.set(to, idle.get(to)! - m.indices.length);
    }
  }
}

/**
 * The periodic balancer's walk, on each cell's average runnable vCPUs over the period (`runnable`, by cell): a
 * binary tree over the live cells (leaves in id order) from the root; at each node, where a move from the heavier
 * side's most loaded cell to the lighter side's least loaded narrows the gap between the sides' loads per CPU,
 * it makes one (`movable`).
 */
export function balancePeriodic(view: BalancerView, runnable: number[]): void {
  const cpus = (cells: readonly number[]): number => cells.reduce((n, c) => n + view.cpus(c), 0);
  const sum = (cells: readonly number[]): number => cells.reduce((n, c) => n + runnable[c]!, 0);
  const walk = (cells: readonly number[]): void => {
    if (cells.length < 2) return;
    const half = Math.ceil(cells.length / 2);
    const sides = [cells.slice(0, half), cells.slice(half)] as const;
    const load = sides.map((side) => sum(side) / Math.max(1, cpus(side)));
    const [heavy, light] = load[0]! >= load[1]! ? [sides[0], sides[1]] : [sides[1], sides[0]];
    const H = cpus(heavy);
    const L = cpus(light);
    const h = sum(heavy);
    const l = sum(light);
    // Moving n runnable vCPUs from the heavy side to the light one narrows the gap between their loads.
    const narrows = (n: number): boolean => Math.abs((h - n) / H - (l + n) / L) < Math.abs(h / H - l / L);
    if (H > 0 && L > 0 && narrows(1)) {
      const perCpu = (c: number): number => runnable[c]! / Math.max(1, cpus([c]));
      const from = [...heavy].sort((a, b) => perCpu(b) - perCpu(a) || a - b)[0]!;
      const to = [...light].filter((c) => cpus([c]) > 0).sort((a, b) => perCpu(a) - perCpu(b) || a - b)[0];
      const move = to === undefined ? undefined : movable(view, from, to, view.gang ? room(view, to) : cpus([to]), narrows);
      if (move !== undefined && view.move(move.vm, move.indices, from, to!)) {
        runnable[from]! -= move.indices.length;
        runnable[to!]! += move.indices.length;
      }
    }
    walk(sides[0]);
    walk(sides[1]);
  };
  walk(view.live());
}

/**
 * What of cell `from` the periodic balancer may move to cell `to` (`room` CPUs) without splitting a VM across
 * cells, where moving that many vCPUs `narrows` the gap. Without gangs one vCPU: of a VM already scheduled in
 * `to`, or the only vCPU of a VM. With gangs a VM confined to `from`, whole, that fits in `to`. Waiting ones
 * first, then by VM and index.
 */
function movable(view: BalancerView, from: number, to: number, room: number, narrows: (n: number) => boolean): Move | undefined {
  const parts = view.parts();
  const here = [...parts].filter(([, p]) => p.some((x) => x.cell === from)).map(([vm]) => vm).sort((a, b) => a - b);
  const waiting = new Set(view.waiting(from));
  if (view.gang) {
    const gangs = here.filter((vm) => parts.get(vm)!.length === 1 && parts.get(vm)![0]!.indices.length <= room && narrows(parts.get(vm)![0]!.indices.length));
    const vm = gangs.find((g) => view.vcpus(g).some((v) => waiting.has(v))) ?? gangs[0];
    return vm === undefined ? undefined : { vm, indices: [...parts.get(vm)![0]!.indices] };
  }
  const candidates = here.flatMap((vm) => parts.get(vm)!.find((p) => p.cell === from)!.indices.map((index) => view.vcpus(vm).find((v) => v.index === index)!));
  const fits = (v: SchedVcpu): boolean => parts.get(v.vm)!.some((p) => p.cell === to) || view.vcpus(v.vm).length === 1;
  const v = [...candidates.filter((x) => waiting.has(x)), ...candidates.filter((x) => !waiting.has(x))].find(fits);
  return v === undefined ? undefined : { vm: v.vm, indices: [v.index] };
}

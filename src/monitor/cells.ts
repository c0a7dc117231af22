// Cells (Cellular Disco, SOSP 1999): the machine's nodes in groups, each with its own monitor state, where VMs
// are placed and which fail alone (docs/cells.md).

import type { MachineLayout } from '../board/address-map.js';
import { MonitorError } from './monitor-error.js';

/** How the nodes form cells: a count that splits them evenly in id order, or the lists of nodes (`[[0,1],[2,3]]`). */
export type CellsSpec = number | readonly (readonly number[])[];

/** A cells specification that does not partition the machine's nodes: one line saying why (the monitor refuses it). */
export class CellsError extends MonitorError {}

/**
 * The nodes of each cell for a machine of `nodes` nodes: `undefined` is one cell of every node; a count must
 * divide the nodes; lists must hold every node exactly once. Each cell's nodes come sorted, cells in the order
 * given. Throws CellsError.
 */
export function cellNodes(spec: CellsSpec | undefined, nodes: number): number[][] {
  const all = Array.from({ length: nodes }, (_, n) => n);
  if (spec === undefined) return [all];
  if (typeof spec === 'number') {
    if (!Number.isInteger(spec) || spec < 1) throw new CellsError(`cells: must be a positive whole number of cells or a list of lists of nodes, not ${spec}`);
    if (nodes % spec !== 0) throw new CellsError(`cells: ${spec} cells do not divide the machine's ${nodes} node${nodes === 1 ? '' : 's'} evenly`);
    const size = nodes / spec;
    return Array.from({ length: spec }, (_, c) => all.slice(c * size, (c + 1) * size));
  }
  if (!Array.isArray(spec) || spec.length === 0) throw new CellsError('cells: must be a number of cells or a non-empty list of lists of nodes');
  const seen = new Map<number, number>();
  spec.forEach((cell, c) => {
    if (!Array.isArray(cell) || cell.length === 0) throw new CellsError(`cells[${c}]: must be a non-empty list of nodes`);
    for (const node of cell) {
      if (!Number.isInteger(node) || node < 0 || node >= nodes) throw new CellsError(`cells[${c}]: the machine has no node ${String(node)} (its nodes are 0 to ${nodes - 1})`);
      if (seen.has(node)) throw new CellsError(`cells[${c}]: node ${node} is already in cells[${seen.get(node)}]`);
      seen.set(node, c);
    }
  });
  const missing = all.filter((n) => !seen.has(n));
  if (missing.length > 0) throw new CellsError(`cells: node${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} in no cell (every node must be in exactly one)`);
  return spec.map((cell) => [...cell].sort((a, b) => a - b));
}

/**
 * One cell: its nodes and their CPUs, and its monitor node, the lowest of its nodes, where its monitor state
 * lies (its VMs' records, the pmap tables and vCPU state of the VMs confined to it, its run queue and
 * allocator lists; in this emulation the TypeScript heap, taken to lie there). It fails as a whole when that
 * node is lost, or cut off from the primary cell.
 */
export class Cell {
  readonly cpus: readonly number[];
  readonly monitorNode: number;
  /** Why it failed (every VM that depended on it has ended); undefined while it runs. */
  failure: string | undefined = undefined;

  constructor(readonly id: number, readonly nodes: readonly number[], layout: MachineLayout) {
    this.cpus = nodes.flatMap((n) => layout.nodes[n]!.harts).sort((a, b) => a - b);
    this.monitorNode = nodes[0]!;
  }

  holds(node: number): boolean {
    return this.nodes.includes(node);
  }
}

/** What placement reads of the monitor: node sizes, what running VMs at home there were promised, and what failed. */
export interface PlacementView {
  /** Bytes promised on node `node`: the memory sizes of the running VMs at home there. */
  promised(node: number): number;
  nodeLost(node: number): boolean;
  cpuLost(cpu: number): boolean;
}

/** What a VM asks for: its size, and optionally a cell or a home node. */
export interface PlacementRequest {
  name: string;
  vcpus: number;
  memoryBytes: number;
  cell?: number;
  homeNode?: number;
}

/**
 * Where a VM goes: the cells it depends on (its vCPUs run on their CPUs, cell-scheduler.ts), its home node,
 * and the nodes its memory may use (undefined: any).
 */
export interface VmPlacement {
  cells: number[];
  homeNode: number;
  nodes: readonly number[] | undefined;
}

/** A placement the cells cannot give (a cell that does not exist or failed, a home node outside the cell named). */
export class PlacementError extends MonitorError {}

/** The machine's cells, by id; the primary cell is the lowest-numbered that still runs. */
export class CellMap {
  readonly cells: readonly Cell[];
  private readonly byNode: number[];

  /** Throws CellsError for a spec that does not partition the layout's nodes. */
  constructor(private readonly layout: MachineLayout, spec?: CellsSpec) {
    this.cells = cellNodes(spec, layout.nodes.length).map((nodes, id) => new Cell(id, nodes, layout));
    this.byNode = layout.nodes.map(() => 0);
    for (const cell of this.cells) for (const n of cell.nodes) this.byNode[n] = cell.id;
  }

  /**
   * The cells of a monitor made with `options`: its `cells`, and none of the features that several cells
   * cannot have yet (`multiCellProblems`). Throws MonitorError (CellsError).
   */
  static forMonitor(layout: MachineLayout, options: { cells?: CellsSpec } & Parameters<typeof multiCellProblems>[1]): CellMap {
    const map = new CellMap(layout, options.cells);
    const refused = multiCellProblems(map.count, options);
    if (refused.length > 0) throw new MonitorError(refused.join('; '));
    return map;
  }

  /** The cells as lists of nodes, as a spec that makes the same map again (snapshots, settings). */
  get spec(): number[][] {
    return this.cells.map((c) => [...c.nodes]);
  }

  get count(): number {
    return this.cells.length;
  }

  cellOf(node: number): Cell {
    return this.cells[this.byNode[node]!]!;
  }

  /** The cells still running. */
  get live(): Cell[] {
    return this.cells.filter((c) => c.failure === undefined);
  }

  /** The cell the others' partitions are judged from: the lowest-numbered one still running. */
  get primary(): Cell | undefined {
    return this.live[0];
  }

  /**
   * Where a VM goes. A named cell confines it there; else a home node named confines it to that node's cell if
   * it fits there; else it goes to the cell it fits in (its memory within the cell's unpromised memory on live
   * nodes, its vCPUs within the cell's live CPUs) with the most memory left, ties to the lowest id. A VM that
   * fits in none spans: any live node and CPU, and it depends on every live cell. With one cell, a VM that does
   * not fit spans that one cell, which is the machine: the same as before cells. The home node is the allowed
   * live node with the most memory unpromised (ties: lowest id), unless named. Throws PlacementError.
   */
  place(request: PlacementRequest, view: PlacementView): VmPlacement {
    const { name } = request;
    const left = (n: number): number => this.layout.nodes[n]!.size - view.promised(n);
    const liveNodes = (c: Cell): number[] => c.nodes.filter((n) => !view.nodeLost(n));
    const fits = (c: Cell): boolean => {
      const memory = liveNodes(c).reduce((sum, n) => sum + left(n), 0);
      return c.failure === undefined && request.memoryBytes <= memory && request.vcpus <= c.cpus.filter((p) => !view.cpuLost(p)).length;
    };
    let cell: Cell | undefined;
    if (request.cell !== undefined) {
      cell = this.cells[request.cell];
      if (!Number.isInteger(request.cell) || cell === undefined) throw new PlacementError(`VM ${name}: the machine has no cell ${request.cell} (its cells are 0 to ${this.count - 1})`);
      if (cell.failure !== undefined) throw new PlacementError(`VM ${name}: cell ${cell.id} has failed (${cell.failure})`);
      const size = cell.nodes.reduce((sum, n) => sum + this.layout.nodes[n]!.size, 0);
      if (request.memoryBytes > size) throw new PlacementError(`VM ${name}: ${mib(request.memoryBytes)} MiB is more than cell ${cell.id}'s ${mib(size)} MiB`);
      if (request.homeNode !== undefined && !cell.holds(request.homeNode)) {
        throw new PlacementError(`VM ${name}: its home node ${request.homeNode} is not in cell ${cell.id} (nodes ${cell.nodes.join(', ')})`);
      }
    } else if (request.homeNode !== undefined) {
      const home = this.cellOf(request.homeNode);
      if (fits(home)) cell = home;
    } else {
      cell = this.live.filter(fits)
        .map((c) => ({ c, left: liveNodes(c).reduce((sum, n) => sum + left(n), 0) }))
        .sort((a, b) => b.left - a.left || a.c.id - b.c.id)[0]?.c;
    }
    if (cell !== undefined && cell.failure !== undefined) throw new PlacementError(`VM ${name}: cell ${cell.id} has failed (${cell.failure})`);
    const candidates = cell === undefined ? this.layout.nodes.map((n) => n.id).filter((n) => !view.nodeLost(n)) : liveNodes(cell);
    if (candidates.length === 0) throw new PlacementError(`VM ${name}: ${cell === undefined ? 'no node is left' : `cell ${cell.id} has no node left`}`);
    const homeNode = request.homeNode ?? [...candidates].sort((a, b) => left(b) - left(a) || a - b)[0]!;
    // Alone, the one cell is the machine: a VM there is confined to nothing (as before cells).
    if (cell !== undefined && this.count > 1) return { cells: [cell.id], homeNode, nodes: cell.nodes };
    return { cells: cell !== undefined ? [cell.id] : this.live.map((c) => c.id), homeNode, nodes: undefined };
  }
}

function mib(bytes: number): number {
  return Math.floor(bytes / 2 ** 20);
}

/**
 * Why a monitor of `cells` cells refuses `options`: the features whose state is the whole machine's and not
 * yet any cell's (the page cache, which maps one machine page into VMs of any cell, and the content scanner,
 * which merges pages across all VMs), each a clause. With several cells the page cache is off by default.
 */
export function multiCellProblems(cells: number, options: { diskCache?: boolean; shareBootImages?: boolean; scan?: unknown }): string[] {
  if (cells === 1) return [];
  const problems: string[] = [];
  const needs = `with ${cells} cells it needs issue 22's cross-cell sharing`;
  if (options.diskCache === true) problems.push(`the disk page cache (diskCache) is shared by the whole machine: ${needs}`);
  if (options.shareBootImages === true) problems.push(`boot images shared through the page cache (shareBootImages) are the whole machine's: ${needs}`);
  if (options.scan !== undefined) problems.push(`the content scanner (scan) merges pages of every VM of the machine: ${needs}`);
  return problems;
}

// The machine's interconnect: a router per node, the links between routers, and the routes that are left when some fail.

import { LOCAL_DISTANCE } from './address-map.js';

/** A link between the routers of nodes `a` < `b`. */
export interface Link {
  readonly a: number;
  readonly b: number;
}

/** The name of a link as the command line writes it: `A-B`, lower node first. */
export function linkName(link: Link): string {
  return `${link.a}-${link.b}`;
}

/**
 * The links a distance matrix implies: nodes i and j are wired directly unless some third node k lies on a
 * path as short as the direct one (d(i,k) + d(k,j) − 10 ≤ d(i,j): each distance counts the local 10 once).
 * On numa4x2's 2×2 mesh (one hop 20, two hops 30) that gives the mesh's four links; on flash8 (every pair
 * 30) a link between every pair; on a machine of two nodes, one link. A matrix that is not a mesh's gets
 * the links whose routes its distances describe; it is a model of the wiring, stated here, not measured.
 */
export function linksFromDistances(distances: readonly (readonly number[])[]): Link[] {
  const n = distances.length;
  const links: Link[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const direct = distances[i]![j]!;
      let through = false;
      for (let k = 0; k < n && !through; k++) {
        if (k !== i && k !== j && distances[i]![k]! + distances[k]![j]! - LOCAL_DISTANCE <= direct) through = true;
      }
      if (!through) links.push({ a: i, b: j });
    }
  }
  return links;
}

/**
 * What is left of the interconnect: which node's CPUs can reach which node's memory, and the groups of
 * nodes that can all reach one another. A failed link carries nothing. A failed router carries nothing
 * either: its node is cut off (its CPUs still reach its own memory, which needs no router) and routes that
 * went through it go round it or are gone. A failed *node* keeps its router (FLASH's routers are apart from
 * its node controllers): routes through it still work.
 */
export class Routes {
  /** reach[a * nodes + b]: hops from node a to node b over live links and routers (0 for a = b), or -1. */
  private readonly hopsTable: Int16Array;
  /** The groups of nodes that reach one another, each sorted, ordered by their lowest node. */
  readonly groups: number[][];
  /** distanceTable[a * nodes + b]: the route's distance (below), or -1. */
  private readonly distanceTable: Float64Array;

  /** `distances`: the machine's matrix, whose entries for linked nodes weigh the links (default 20 a link). */
  constructor(readonly nodes: number, links: readonly Link[], failedLinks: ReadonlySet<string>, failedRouters: ReadonlySet<number>,
    distances?: readonly (readonly number[])[]) {
    const neighbours: number[][] = Array.from({ length: nodes }, () => []);
    for (const link of links) {
      if (failedLinks.has(linkName(link)) || failedRouters.has(link.a) || failedRouters.has(link.b)) continue;
      neighbours[link.a]!.push(link.b);
      neighbours[link.b]!.push(link.a);
    }
    this.hopsTable = new Int16Array(nodes * nodes).fill(-1);
    for (let from = 0; from < nodes; from++) {
      // Breadth first: the shortest route in hops, as a mesh's dimension-order routing would find.
      const row = from * nodes;
      this.hopsTable[row + from] = 0;
      let frontier = [from];
      for (let hops = 1; frontier.length > 0; hops++) {
        const next: number[] = [];
        for (const at of frontier) {
          for (const to of neighbours[at]!) {
            if (this.hopsTable[row + to] !== -1) continue;
            this.hopsTable[row + to] = hops;
            next.push(to);
          }
        }
        frontier = next;
      }
    }
    // The distance of the shortest route by distance: the links' distances summed, less the local distance
    // counted once per router passed through (a distance counts the local 10 once). With no link failed it
    // is the matrix's own for every pair a mesh's matrix describes (Floyd–Warshall; nodes are few).
    const d = new Float64Array(nodes * nodes).fill(Infinity);
    for (let a = 0; a < nodes; a++) d[a * nodes + a] = 0;
    for (const link of links) {
      if (failedLinks.has(linkName(link)) || failedRouters.has(link.a) || failedRouters.has(link.b)) continue;
      const weight = distances?.[link.a]?.[link.b] ?? 2 * LOCAL_DISTANCE;
      d[link.a * nodes + link.b] = Math.min(d[link.a * nodes + link.b]!, weight);
      d[link.b * nodes + link.a] = Math.min(d[link.b * nodes + link.a]!, weight);
    }
    for (let k = 0; k < nodes; k++) {
      for (let a = 0; a < nodes; a++) {
        for (let b = 0; b < nodes; b++) {
          const through = d[a * nodes + k]! + d[k * nodes + b]! - LOCAL_DISTANCE;
          if (a !== k && b !== k && a !== b && through < d[a * nodes + b]!) d[a * nodes + b] = through;
        }
      }
    }
    this.distanceTable = d.map((v, i) => (Number.isFinite(v) ? (i % (nodes + 1) === 0 ? LOCAL_DISTANCE : v) : -1));
    const seen = new Set<number>();
    this.groups = [];
    for (let node = 0; node < nodes; node++) {
      if (seen.has(node)) continue;
      const group: number[] = [];
      for (let other = 0; other < nodes; other++) if (this.reaches(node, other)) group.push(other);
      for (const other of group) seen.add(other);
      this.groups.push(group);
    }
  }

  /** True when node `from`'s CPUs reach node `to`'s memory. */
  reaches(from: number, to: number): boolean {
    return this.hopsTable[from * this.nodes + to]! >= 0;
  }

  /** Router hops from node `from` to node `to`, or -1 if none reaches. */
  hops(from: number, to: number): number {
    return this.hopsTable[from * this.nodes + to]!;
  }

  /**
   * The distance (in the matrix's units: 10 local) of the shortest route from node `from` to node `to`, or -1
   * if none reaches. Timing mode scales a miss's latency by it when a route changes.
   */
  distance(from: number, to: number): number {
    return this.distanceTable[from * this.nodes + to]!;
  }

  /** The group holding `node`. */
  groupOf(node: number): readonly number[] {
    return this.groups.find((g) => g.includes(node))!;
  }
}

// `threads: N` under `up` (docs/threads.md, "The monitor on threads"): the machine split into N parts, one per
// worker thread, each a machine of its own with its CPUs and memory, and the VMs placed on the parts.

import type { MachineConfig } from '../board/address-map.js';

/** A part's memory is a whole number of these (the pmaps' large pages). */
const BLOCK = 2 * 2 ** 20;

/** One thread's part of the machine: a machine configuration of its own, and which of the machine's CPUs and nodes it is. */
export interface ThreadPart {
  config: MachineConfig;
  /** The machine's CPU numbers of this part's CPUs 0, 1, … */
  cpus: number[];
  /** The machine's node numbers of this part's nodes 0, 1, … */
  nodes: number[];
  memoryBytes: number;
}

/** A machine that cannot be split so: one sentence. */
export class PartitionError extends Error {}

/**
 * The machine of `config` split into `threads` parts: whole nodes when `threads` divides the nodes (their
 * distances kept), else, on a machine of one node, that node's CPUs and memory split evenly. Throws
 * PartitionError otherwise.
 */
export function splitMachine(config: MachineConfig, threads: number): ThreadPart[] {
  const nodes = config.nodes;
  if (!Number.isInteger(threads) || threads < 1) throw new PartitionError(`threads must be a whole number from 1, not ${threads}`);
  if (threads > config.harts) throw new PartitionError(`${threads} threads need ${threads} CPUs at least, and the machine has ${config.harts}`);
  const distances = config.distances;
  if (nodes.length % threads === 0) {
    const per = nodes.length / threads;
    return Array.from({ length: threads }, (_, k) => {
      const ids = Array.from({ length: per }, (_, i) => k * per + i);
      const cpus = ids.flatMap((id) => [...nodes[id]!.harts].sort((a, b) => a - b));
      if (cpus.length === 0) throw new PartitionError(`thread ${k}'s nodes (${ids.join(', ')}) have no CPU`);
      const local = new Map(cpus.map((cpu, i) => [cpu, i]));
      return {
        config: {
          harts: cpus.length,
          nodes: ids.map((id) => ({ memoryBytes: nodes[id]!.memoryBytes, harts: nodes[id]!.harts.map((h) => local.get(h)!) })),
          ...(distances === undefined ? {} : { distances: ids.map((a) => ids.map((b) => distances[a]![b]!)) }),
        },
        cpus,
        nodes: ids,
        memoryBytes: ids.reduce((sum, id) => sum + nodes[id]!.memoryBytes, 0),
      };
    });
  }
  if (nodes.length !== 1) throw new PartitionError(`${threads} threads must divide the machine's ${nodes.length} nodes, or the machine must have one node`);
  const cpus = [...nodes[0]!.harts].sort((a, b) => a - b);
  if (cpus.length % threads !== 0) throw new PartitionError(`${threads} threads must divide the machine's ${cpus.length} CPUs (each thread gets as many)`);
  const memoryBytes = Math.floor(nodes[0]!.memoryBytes / threads / BLOCK) * BLOCK;
  const per = cpus.length / threads;
  return Array.from({ length: threads }, (_, k) => ({
    config: { harts: per, nodes: [{ memoryBytes, harts: Array.from({ length: per }, (_, i) => i) }] },
    cpus: cpus.slice(k * per, (k + 1) * per),
    nodes: [0],
    memoryBytes,
  }));
}

/**
 * Which part each VM runs on, in order: each goes to the part it fits in with the most memory not yet promised to VMs
 * (the lower part on a tie), so equal VMs alternate. A VM larger than every part is a PartitionError.
 */
export function placeVms(parts: readonly ThreadPart[], vms: readonly { name: string; memoryBytes: number }[]): number[] {
  const left = parts.map((p) => p.memoryBytes);
  return vms.map((vm) => {
    const largest = Math.max(...parts.map((p) => p.memoryBytes));
    if (vm.memoryBytes > largest) {
      throw new PartitionError(`vm ${vm.name}: ${vm.memoryBytes / 2 ** 20} MiB is more than a thread's part of the machine (${largest / 2 ** 20} MiB with ${parts.length} threads)`);
    }
    let best = -1;
    for (let k = 0; k < parts.length; k++) if (parts[k]!.memoryBytes >= vm.memoryBytes && (best < 0 || left[k]! > left[best]!)) best = k;
    left[best]! -= vm.memoryBytes;
    return best;
  });
}

// `query-memory` and `query-monitor` of `up` with threads (docs/threads.md, "The monitor on threads"): each
// thread's monitor answers for its part of the machine, and the main thread adds the answers up into the
// machine's, with the parts' CPU and node numbers turned back into the machine's.

import type { MachineConfig } from '../board/address-map.js';
import type { MemoryReport } from '../control/monitor-commands.js';
import type { ThreadPart } from '../monitor/thread-partitions.js';

/** Numbers added field by field, through nested records of numbers (the parts' accounts have the same shape). */
function addUp<T>(values: readonly T[]): T {
  const [first, ...rest] = values;
  if (typeof first === 'number') return rest.reduce<number>((sum, v) => sum + (v as number), first) as T;
  if (first === null || typeof first !== 'object') return first as T;
  return Object.fromEntries(Object.keys(first).map((key) => [key, addUp(values.map((v) => (v as Record<string, unknown>)[key]))])) as T;
}

/** The machine's memory account from every thread's: pages added up, the VMs in the machine file's order. */
export function mergeMemory(reports: readonly MemoryReport[], order: readonly string[]): MemoryReport {
  const vms = reports.flatMap((r) => r.vms).sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  return {
    machine: addUp(reports.map((r) => r.machine)),
    vms,
    pageCache: addUp(reports.map((r) => r.pageCache)),
    diskReads: addUp(reports.map((r) => r.diskReads)),
    // Threads refuse the scanner and paging (machine-file-threads.ts).
    scanner: null,
  };
}

interface NodeAnswer {
  id: number;
  cpus: number[];
  memoryBytes: number;
  pagesInUse: number;
  pagesReserved: number;
  pagesMonitor: number;
  pagesFree: number;
  pagesLost: number;
  pagesLent: number;
  failed: boolean;
}

/** What `query-monitor` answers (control/monitor-commands.ts), as far as the merge reads it. */
export interface MonitorAnswer {
  cpus: number;
  nodes: NodeAnswer[];
  cpusFailed: number[];
  machineFailure: unknown;
  memoryBytes: number;
  memoryFreeBytes: number;
  pagesInUse: number;
  pagesShared: number;
  pagesReserved: number;
  pagesMonitor: number;
  cycles: number;
  instructions: number;
  worldSwitches: number;
  mode: string;
  mmu: string;
  vms: { running: number; total: number };
  recovering: boolean;
}

/**
 * The machine under the threads' monitors as one monitor's `query-monitor` gives it: each part's nodes and
 * CPUs under the machine's numbers (a node split between parts is one node again), pages and counts added
 * up, one cell of the whole machine (threads refuse cells), and `cycles` the least any thread reached (each
 * part's time moves with its own thread); `threads` says how many answered.
 */
export function mergeMonitor(answers: readonly { part: ThreadPart; answer: MonitorAnswer }[], config: MachineConfig): object {
  const nodes = new Map<number, NodeAnswer>();
  for (const { part, answer } of answers) {
    for (const n of answer.nodes) {
      const id = part.nodes[n.id]!;
      const mapped = { ...n, id, cpus: n.cpus.map((c) => part.cpus[c]!) };
      const before = nodes.get(id);
      nodes.set(id, before === undefined ? mapped : {
        ...addUp([{ ...before, cpus: 0, failed: 0 }, { ...mapped, cpus: 0, failed: 0 }]),
        id, cpus: [...before.cpus, ...mapped.cpus].sort((a, b) => a - b), failed: before.failed || mapped.failed,
      });
    }
  }
  const all = answers.map((a) => a.answer);
  const sum = (key: keyof MonitorAnswer): number => all.reduce((n, a) => n + (a[key] as number), 0);
  return {
    cpus: sum('cpus'),
    nodes: [...nodes.values()].sort((a, b) => a.id - b.id),
    cpusFailed: answers.flatMap(({ part, answer }) => answer.cpusFailed.map((c) => part.cpus[c]!)).sort((a, b) => a - b),
    machineFailure: all.find((a) => a.machineFailure !== null)?.machineFailure ?? null,
    memoryBytes: sum('memoryBytes'),
    memoryFreeBytes: sum('memoryFreeBytes'),
    pagesInUse: sum('pagesInUse'),
    pagesShared: sum('pagesShared'),
    pagesReserved: sum('pagesReserved'),
    pagesMonitor: sum('pagesMonitor'),
    cycles: Math.min(...all.map((a) => a.cycles)),
    instructions: sum('instructions'),
    worldSwitches: sum('worldSwitches'),
    mode: all[0]?.mode ?? 'fast',
    mmu: all[0]?.mmu ?? 'software',
    vms: { running: all.reduce((n, a) => n + a.vms.running, 0), total: all.reduce((n, a) => n + a.vms.total, 0) },
    cells: [{
      id: 0, nodes: config.nodes.map((_, i) => i), cpus: Array.from({ length: config.harts }, (_, i) => i), monitorNode: 0, failure: null, borrowing: null,
    }],
    recovering: all.some((a) => a.recovering),
    recoveries: [],
    threads: answers.length,
  };
}

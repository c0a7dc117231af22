// `query-memory` and `query-monitor` under `up` with threads: the threads' answers added up into the machine's,
// their parts' CPU and node numbers turned back into the machine's.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemoryReport } from '../control/monitor-commands.js';
import { splitMachine } from '../monitor/thread-partitions.js';
import { mergeMemory, mergeMonitor, type MonitorAnswer } from './up-threads-merge.js';

const MiB = 2 ** 20;

function memory(vms: string[], inUse: number): MemoryReport {
  const savedBy = { zero: 0, disk: 1, kernel: 0, content: 0, other: 0 };
  return {
    machine: { inUse, mapped: inUse, privatePages: inUse, sharedPages: 0, cacheOnly: 0, saved: 1, savedBy, reserved: 5, monitor: 7, replicas: 0, lent: 0, free: 100 - inUse, total: 112 },
    vms: vms.map((name) => ({ name, private: 3, shared: 0, sharers: {}, reserved: 1, balloon: null })),
    pageCache: { disk: { hits: 1, misses: 2, fills: 3 }, kernel: { hits: 0, misses: 0, fills: 0 } },
    diskReads: { reads: 4 } as unknown as MemoryReport['diskReads'],
    scanner: null,
  } as unknown as MemoryReport;
}

function monitor(part: { cpus: number; nodes: { id: number; cpus: number[]; free: number }[] }, cycles: number): MonitorAnswer {
  return {
    cpus: part.cpus, cpusFailed: [], machineFailure: null, memoryBytes: 10, memoryFreeBytes: 4, pagesInUse: 2, pagesShared: 0, pagesReserved: 1, pagesMonitor: 1,
    nodes: part.nodes.map((n) => ({ id: n.id, cpus: n.cpus, memoryBytes: 10, pagesInUse: 2, pagesReserved: 1, pagesMonitor: 1, pagesFree: n.free, pagesLost: 0, pagesLent: 0, failed: false })),
    cycles, instructions: 1000, worldSwitches: 3, mode: 'fast', mmu: 'software', vms: { running: 1, total: 2 }, recovering: false,
  };
}

describe('up with threads: the machine\'s answers from the threads\'', () => {
  it('adds up the memory accounts, field by field, with the VMs in the machine file\'s order', () => {
    const merged = mergeMemory([memory(['a', 'c'], 10), memory(['b'], 20)], ['a', 'b', 'c']);
    assert.deepEqual(merged.vms.map((v) => v.name), ['a', 'b', 'c']);
    assert.deepEqual(merged.machine, {
      inUse: 30, mapped: 30, privatePages: 30, sharedPages: 0, cacheOnly: 0, saved: 2, savedBy: { zero: 0, disk: 2, kernel: 0, content: 0, other: 0 },
      reserved: 10, monitor: 14, replicas: 0, lent: 0, free: 170, total: 224,
    });
    assert.deepEqual(merged.pageCache, { disk: { hits: 2, misses: 4, fills: 6 }, kernel: { hits: 0, misses: 0, fills: 0 } });
    assert.deepEqual(merged.diskReads, { reads: 8 });
  });

  it('gives a node split between threads back as one, with the machine\'s CPU numbers; cycles the least a thread reached', () => {
    const config = { harts: 4, nodes: [{ memoryBytes: 512 * MiB, harts: [0, 1, 2, 3] }] };
    const parts = splitMachine(config, 2);
    const merged = mergeMonitor([
      { part: parts[0]!, answer: monitor({ cpus: 2, nodes: [{ id: 0, cpus: [0, 1], free: 5 }] }, 900) },
      { part: parts[1]!, answer: monitor({ cpus: 2, nodes: [{ id: 0, cpus: [0, 1], free: 6 }] }, 700) },
    ], config) as Record<string, unknown>;
    assert.deepEqual(merged.nodes, [{ id: 0, cpus: [0, 1, 2, 3], memoryBytes: 20, pagesInUse: 4, pagesReserved: 2, pagesMonitor: 2, pagesFree: 11, pagesLost: 0, pagesLent: 0, failed: false }]);
    assert.equal(merged.cpus, 4);
    assert.equal(merged.cycles, 700);
    assert.equal(merged.instructions, 2000);
    assert.deepEqual(merged.vms, { running: 2, total: 4 });
    assert.deepEqual(merged.cells, [{ id: 0, nodes: [0], cpus: [0, 1, 2, 3], monitorNode: 0, failure: null, borrowing: null }]);
  });

  it('gives whole nodes their machine numbers', () => {
    const config = { harts: 4, nodes: [0, 1, 2, 3].map((n) => ({ memoryBytes: 64 * MiB, harts: [n] })) };
    const parts = splitMachine(config, 2);
    const merged = mergeMonitor([
      { part: parts[1]!, answer: monitor({ cpus: 2, nodes: [{ id: 0, cpus: [0], free: 1 }, { id: 1, cpus: [1], free: 2 }] }, 5) },
    ], config) as { nodes: { id: number; cpus: number[] }[] };
    assert.deepEqual(merged.nodes.map((n) => [n.id, n.cpus]), [[2, [2]], [3, [3]]]);
  });
});

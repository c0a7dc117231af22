// `query-cpus`: the physical CPUs as the dashboard draws them (docs/dashboard.md): where each is in the
// topology, what vCPU it ran last, where its time went, and in timing mode its misses and each node's.

import { kindRecord } from '../cpu/monitor-kinds.js';
import type { Monitor } from '../monitor/monitor.js';
import type { QmpCommands } from './qmp.js';

export interface CpuReport {
  cpu: number;
  node: number;
  cell: number;
  failed: boolean;
  /** The vCPU it ran in the last round it ran one (null: none yet, or its VM has ended). */
  vm: string | null;
  vcpu: number | null;
  userCycles: number;
  kernelCycles: number;
  monitorCycles: number;
  /** Those cycles by kind of the monitor's work (cpu/monitor-kinds.ts), the kinds with any; they add up to `monitorCycles`. */
  monitorByKind: Record<string, number>;
  /** Its caches' misses served by its own node's memory and by others', as timing mode counts them (null: the machine has no timing). */
  missesLocal: number | null;
  missesRemote: number | null;
}

export interface CpusReport {
  /** The machine's time in cycles: a CPU's idle cycles are this minus its busy ones. */
  cycles: number;
  mode: 'fast' | 'timing';
  cpus: CpuReport[];
  /** Per node: timing mode's lines its memory supplied (misses it served) and dirty lines written back to it. */
  nodes: { id: number; linesRead: number | null; linesWritten: number | null }[];
  /** What the NUMA policy did so far, pages moved and copied by destination node (null: no policy). */
  policy: { migratedTo: number[]; replicatedTo: number[] } | null;
}

export function cpusReport(monitor: Monitor): CpusReport {
  const timing = monitor.timingModel;
  const times = monitor.cpuTimes;
  const cpus: CpuReport[] = [];
  for (let p = 0; p < monitor.cpus; p++) {
    const last = monitor.scheduler.lastOn(p);
    const vm = last === undefined ? undefined : monitor.vms[last.vm];
    const running = vm !== undefined && vm.state === 'running';
    cpus.push({
      cpu: p,
      node: monitor.layout.hartNode[p]!,
      cell: monitor.scheduler.cellOfCpu(p),
      failed: monitor.recovery.lostCpus.has(p),
      vm: running ? vm.name : null,
      vcpu: running ? last!.index : null,
      userCycles: times.user[p]!,
      kernelCycles: times.kernel[p]!,
      monitorCycles: times.monitor[p]!,
      monitorByKind: kindRecord(times.kindsOf(p)),
      missesLocal: timing === undefined ? null : timing.missesLocal[p]!,
      missesRemote: timing === undefined ? null : timing.missesRemote[p]!,
    });
  }
  const policy = monitor.policy;
  return {
    cycles: monitor.cycles,
    mode: monitor.executionMode,
    cpus,
    nodes: monitor.layout.nodes.map((n) => ({ id: n.id, linesRead: timing?.linesRead[n.id] ?? null, linesWritten: timing?.linesWritten[n.id] ?? null })),
    policy: policy === undefined ? null : { migratedTo: [...policy.counts.migratedTo], replicatedTo: [...policy.counts.replicatedTo] },
  };
}

export function cpuCommands(monitor: Monitor): QmpCommands {
  return {
    'query-cpus': {
      help: 'the physical CPUs: {"cycles", "mode", "cpus": [{"cpu", "node", "cell", "failed", "vm", "vcpu" (what it ran last), "userCycles", "kernelCycles", "monitorCycles" ' +
        '(busy cycles so far by kind; idle is "cycles" minus these), "monitorByKind" (the monitor\'s cycles by kind of work: world-switch, tlb-refill.l2, sbi.time, mmio, …), "missesLocal", "missesRemote" (timing mode\'s, null on a machine without timing)}], "nodes": [{"id", "linesRead", "linesWritten"}] ' +
        '(timing mode: lines each node\'s memory supplied and took back), "policy": null or {"migratedTo", "replicatedTo"} (the NUMA policy\'s pages by destination node)}',
      run: () => cpusReport(monitor),
    },
  };
}

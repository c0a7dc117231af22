// The control commands of the monitor (`mirrorball up`): its VMs, their accounts, the machine, statistics, quit.

import { resolve } from 'node:path';
import { SnapshotError } from '../board/snapshot.js';
import { writeStatsOutput } from '../host/stats-output.js';
import { accountVm, registerMonitorStats, summarizeVm, type VmSummary } from '../monitor/accounting.js';
import { MonitorError, type Monitor } from '../monitor/monitor.js';
import { DEFAULT_POLICY, type NumaPolicyParameters } from '../monitor/numa-policy.js';
import type { VirtualMachine } from '../monitor/vm.js';
import { noReadMetrics, type BlockReadMetrics } from '../devices/virtio/blk.js';
import type { ScanCounts } from '../monitor/page-scanner.js';
import type { BalloonAccount } from '../monitor/balloon.js';
import type { MachineMemoryAccount, VmMemoryAccount } from '../monitor/sharing-ledger.js';
import { StatsRegistry } from '../timing/stats.js';
import { enumArgument, integerArgument, QmpError, stringArgument, type QmpArguments, type QmpCommands } from './qmp.js';
import { faultCommands } from './fault-commands.js';
import { cpuCommands } from './cpu-commands.js';

export interface MonitorControl {
  monitor: Monitor;
  /** The console socket of a VM that runs (undefined once it has ended). */
  consolePath(vm: VirtualMachine): string | undefined;
  /** Stops a running VM and reports it (the VM_STOPPED event, the line `up` prints). */
  stopVm(vm: VirtualMachine): void;
  /**
   * Boots the machine file's VM `name` again, whose last incarnation has ended, with the same name (the
   * VM_STARTED event); throws QmpError when the file has no such VM or it cannot be made. Absent: no `vm-start`.
   */
  startVm?(name: string): VirtualMachine;
  /** Ends the monitor after this batch; the owner stops the VMs left and sends SHUTDOWN. */
  quit(): void;
  /** `stats-dump` writes into `dir` taken from here (default `stats`). */
  runDir: string;
  /** What config.json says about this run (the machine, the VMs' ids and names). */
  statsConfig(): unknown;
  /** Saves the whole machine, or one VM, to a file (host/monitor-snapshot.ts); absent where nothing can be saved. */
  saveSnapshot?(file: string, vm: VirtualMachine | undefined): object;
}

/** One VM as `query-vms` lists it: the monitor's summary and the path of its console socket while it runs (else null). */
export interface VmListing extends VmSummary {
  console: string | null;
}

export function listVm(vm: VirtualMachine, consolePath: string | undefined): VmListing {
  return { ...summarizeVm(vm), console: consolePath ?? null };
}

const POLICY_KEYS = Object.keys(DEFAULT_POLICY) as (keyof NumaPolicyParameters)[];

/** What `query-memory` answers (and `ps` prints below its table). */
export interface MemoryReport {
  machine: MachineMemoryAccount;
  /** Each running VM's account, with its balloon's (null: it has none). */
  vms: ({ name: string; balloon: BalloonAccount | null } & VmMemoryAccount)[];
  pageCache: Monitor['pageCache']['counts'];
  /** The shape of every copy-on-write disk's reads, summed (virtio-blk's BlockReadMetrics). */
  diskReads: BlockReadMetrics;
  scanner: (ScanCounts & { pagesPerSecond: number; cpu: number }) | null;
  /** With paging (`monitor.swap`): the store's slots, those in use, and the pager's totals; each VM's pages in it by name. */
  swap?: { slots: number; used: number; totals: NonNullable<Monitor['pager']>['totals']; vms: { name: string; swapped: number; pagesOut: number; pagesIn: number; zeroDropped: number }[] };
}

export function memoryReport(monitor: Monitor): MemoryReport {
  const account = monitor.memoryAccount();
  const diskReads = noReadMetrics();
  for (const m of monitor.diskReads) for (const k of Object.keys(diskReads) as (keyof BlockReadMetrics)[]) diskReads[k] += m[k];
  const scanner = monitor.scanner;
  return {
    machine: account.machine,
    vms: monitor.vms.filter((vm) => account.vms.has(vm.id)).map((vm) => ({ name: vm.name, ...account.vms.get(vm.id)!, balloon: vm.balloon === undefined ? null : { ...vm.balloon.account } })),
    pageCache: monitor.pageCache.counts,
    diskReads,
    scanner: scanner === undefined ? null : { ...scanner.counts, pagesPerSecond: scanner.parameters.pagesPerSecond, cpu: scanner.parameters.cpu },
    ...(monitor.pager === undefined ? {} : {
      swap: {
        slots: monitor.pager.store.slots, used: monitor.pager.store.used, totals: { ...monitor.pager.totals },
        vms: monitor.vms.filter((vm) => account.vms.has(vm.id)).map((vm) => ({ name: vm.name, ...monitor.pager!.account(vm.id) })),
      },
    }),
  };
}

/** A VM's balloon as `balloon` and `query-balloon` answer. */
export function balloonReport(vm: VirtualMachine): { vm: string; target: number; actual: number; reporting: boolean; account: BalloonAccount } {
  const device = vm.balloonDevice!;
  return { vm: vm.name, target: device.target, actual: device.actual, reporting: device.reporting, account: { ...vm.balloon!.account } };
}

export function monitorCommands(c: MonitorControl): QmpCommands {
  const { monitor } = c;
  /** The VM named by the `vm` argument, or an error naming the VMs there are. */
  const vmArgument = (args: QmpArguments): VirtualMachine => {
    const name = stringArgument(args, 'vm');
    if (name === undefined) throw new QmpError('GenericError', "Parameter 'vm' is missing");
    const vm = monitor.vm(name);
    if (vm === undefined) {
      const names = monitor.vms.map((v) => v.name).join(', ');
      throw new QmpError('GenericError', `no VM named '${name}' (the VMs are: ${names === '' ? 'none' : names})`);
    }
    return vm;
  };
  return {
    // The hardware's faults: the VMs that depended on one end (monitor/fault-recovery.ts).
    ...faultCommands(monitor.hardware, () => monitor.cycles),
    ...cpuCommands(monitor),
    'query-vms': {
      help: 'every VM: [{"id", "name", "state": "running" | "off" | "crashed" | "stopped", "reason", "vcpus", "memoryBytes", "bytesInUse", "homeNode", "cells", "console"}]',
      run: () => monitor.vms.map((vm) => listVm(vm, c.consolePath(vm))),
    },
    'vm-stop': {
      help: 'stop a running VM at once: {"vm": NAME} → {"vm", "state", "reason"}; its CPUs and memory go to the others; event VM_STOPPED',
      args: ['vm'],
      run: (args) => {
        const vm = vmArgument(args);
        if (vm.state !== 'running') throw new QmpError('GenericError', `VM '${vm.name}' is not running (${vm.state}: ${vm.reason})`);
        c.stopVm(vm);
        return { vm: vm.name, state: vm.state, reason: vm.reason };
      },
    },
    'vm-start': {
      help: 'boot a VM of the machine file again after it ended, from its entry and with its name: {"vm": NAME} → the VM as query-vms lists it; event VM_STARTED',
      args: ['vm'],
      run: (args) => {
        const name = stringArgument(args, 'vm');
        if (name === undefined) throw new QmpError('GenericError', "Parameter 'vm' is missing");
        if (c.startVm === undefined) throw new QmpError('GenericError', 'this monitor cannot start VMs');
        const old = monitor.vm(name);
        if (old?.state === 'running') throw new QmpError('GenericError', `VM '${name}' is running`);
        const vm = c.startVm(name);
        return listVm(vm, c.consolePath(vm));
      },
    },
    'query-vm-stats': {
      help: 'one VM\'s account: {"vm": NAME} → cycles (guest user, guest kernel, monitor and the monitor\'s by kind of work in "monitorByKind", idle, ready), instructions, TLB misses, ' +
        'second-level TLB hits, world switches, monitor calls, exits by kind, pages in use (private, shared) and reserved; in "total" and "perVcpu"',
      args: ['vm'],
      run: (args) => accountVm(monitor, vmArgument(args)),
    },
    'query-monitor': {
      help: 'the machine under the monitor: {"cpus", "nodes": [{"id", "cpus", "memoryBytes", "pagesInUse", "pagesReserved", "pagesMonitor", "pagesFree", "pagesLost", "pagesLent", "failed"}], "cpusFailed", "machineFailure", ' +
        '"memoryBytes", "memoryFreeBytes", "pagesInUse", "pagesShared", "pagesReserved", "pagesMonitor", "cycles", "instructions", "worldSwitches", ' +
        '"mode" (fast or timing), "mmu" (software or nested), "vms": {"running", "total"}, "cells": [{"id", "nodes", "cpus", "monitorNode", "failure", "borrowing": null or {"borrowedChunks", "borrowedPages", "borrowedInUse", "lentChunks", "lentPages", "lentInUse", "requests", "granted", "refused", "returned"}}], "recovering", "recoveries": [{"start", "detection", "agreement", "cleanup", "total", "live", "failedCells", "vmsEnded", ...}] (several cells; times in cycles)}; per node, in use (by VMs) + reserved + the monitor\'s own + lent to another cell + free + lost = its pages',
      run: () => ({
        cpus: monitor.cpus,
        nodes: monitor.layout.nodes.map((n) => ({
          id: n.id, cpus: [...n.harts], memoryBytes: n.size, pagesInUse: monitor.memory.pagesInUse(n.id),
          pagesReserved: monitor.memory.pagesReserved(n.id), pagesMonitor: monitor.memory.monitorPages(n.id), pagesFree: monitor.memory.pagesFree(n.id),
          pagesLost: monitor.memory.pagesLost(n.id), pagesLent: monitor.memory.pagesLent(n.id), failed: monitor.recovery.lostNodes.has(n.id),
        })),
        cpusFailed: [...monitor.recovery.lostCpus].sort((a, b) => a - b),
        machineFailure: monitor.machineFailure ?? null,
        memoryBytes: monitor.layout.nodes.reduce((sum, n) => sum + n.size, 0),
        memoryFreeBytes: monitor.memoryFree,
        pagesInUse: monitor.memory.pagesInUse(),
        pagesShared: monitor.memory.pagesShared,
        pagesReserved: monitor.memory.pagesReserved(),
        pagesMonitor: monitor.memory.monitorPages(),
        cycles: monitor.cycles,
        instructions: monitor.instructions,
        worldSwitches: monitor.worldSwitches,
        mode: monitor.executionMode,
        mmu: monitor.mmu,
        vms: { running: monitor.vms.filter((vm) => vm.state === 'running').length, total: monitor.vms.length },
        cells: monitor.cells.cells.map((cell) => ({
          id: cell.id, nodes: [...cell.nodes], cpus: [...cell.cpus], monitorNode: cell.monitorNode, failure: cell.failure ?? null,
          borrowing: monitor.borrowing?.stats(cell.id) ?? null,
        })),
        recovering: monitor.recovery.paused,
        recoveries: monitor.recovery.cellular?.episodes ?? [],
      }),
    },
    'query-memory': {
      help: 'the machine\'s memory accounted (docs/monitor.md, "Accounting"): {"machine": {"inUse", "mapped", "privatePages", "sharedPages", "cacheOnly", ' +
        '"saved", "savedBy": {"zero", "disk", "kernel", "content", "other"}, "reserved", "monitor", "replicas", "lent", "free", "total"}, "vms": [{"name", ' +
        '"private", "shared", "sharers", "reserved", "balloon" (null, or its account as query-balloon gives it)}], "pageCache": {"disk", "kernel"}, "diskReads", "scanner"}, in pages; ' +
        'mapped − saved + cacheOnly = inUse, and inUse + reserved + monitor + replicas + lent + free = total (lent: free pages a cell lent to another\'s borrowed chunks); ' +
        'with paging also "swap": {"slots", "used", "totals", "vms": [{"name", "swapped", "pagesOut", "pagesIn", "zeroDropped"}]} (guest pages in the swap file have no machine page: not in "mapped")',
      run: () => memoryReport(monitor),
    },
    'share-pages': {
      help: 'merge the running VMs\' pages of equal contents into shared copy-on-write machine pages (content-based sharing) → ' +
        '{"scanned", "merged", "pagesBefore", "pagesAfter"}',
      run: () => monitor.sharePages(),
    },
    'balloon': {
      help: 'ask a VM with a balloon (balloon: true) to make it {"pages": N} 4 KiB pages big, giving those pages to the monitor (0 empties it): {"vm": NAME, "pages": N} ' +
        '→ the VM\'s balloon as query-balloon shows it; the guest inflates or deflates in its own time (docs/monitor.md, "The balloon")',
      args: ['vm', 'pages'],
      run: (args) => {
        const vm = vmArgument(args);
        if (args.pages === undefined) throw new QmpError('GenericError', "Parameter 'pages' is missing");
        try {
          monitor.setBalloon(vm, integerArgument(args, 'pages', 0, vm.pmap.pages, 0));
        } catch (error) {
          if (error instanceof MonitorError) throw new QmpError('GenericError', error.message);
          throw error;
        }
        return balloonReport(vm);
      },
    },
    'query-balloon': {
      help: 'a VM\'s balloon: {"vm": NAME} → {"vm", "target", "actual" (pages the guest says it holds in it), "reporting" (the guest reports free pages), ' +
        '"account": {"reports", "inflates", "deflates", "reportedPages", "inflatedPages", "deflatedPages", "unmapped", "freed", "skipped", "cycles"}}',
      args: ['vm'],
      run: (args) => {
        const vm = vmArgument(args);
        if (vm.balloonDevice === undefined) throw new QmpError('GenericError', `VM '${vm.name}' has no balloon (balloon: true in its machine file entry)`);
        return balloonReport(vm);
      },
    },
    'set-policy': {
      help: 'Disco\'s NUMA policy (docs/numa-policy.md): any of {"hotMisses", "tlbHotMisses", "sharedHotMisses", "tlbSharedHotMisses", "migrateShare", "writeSharedWrites", "intervalRounds", ' +
        '"moveLimit", "freezeIntervals", "blockPages", "coalescePages", "replicateGroupPages"} over the parameters in force (or the defaults), from the next round on; {"enabled": false} turns it off ' +
        '→ {"enabled", "parameters"} (needs timing: true in the machine file)',
      args: ['enabled', ...POLICY_KEYS],
      run: (args) => {
        if (args.enabled !== undefined && typeof args.enabled !== 'boolean') throw new QmpError('GenericError', "'enabled' must be true or false");
        if (args.enabled === false) {
          monitor.setPolicy(undefined);
        } else {
          const parameters: NumaPolicyParameters = { ...(monitor.policy?.parameters ?? DEFAULT_POLICY) };
          for (const key of POLICY_KEYS) {
            const value = args[key];
            if (value === undefined) continue;
            if (typeof value !== 'number') throw new QmpError('GenericError', `'${key}' must be a number`);
            parameters[key] = value;
          }
          try {
            monitor.setPolicy(parameters);
          } catch (error) {
            if (error instanceof MonitorError) throw new QmpError('GenericError', error.message);
            throw error;
          }
        }
        const policy = monitor.policy;
        return { enabled: policy?.enabled ?? false, parameters: policy?.parameters ?? null };
      },
    },
    'set-mode': {
      help: 'switch every VM between fast and timing mode: {"mode": "fast" | "timing"} (needs timing: true in the machine file)',
      args: ['mode'],
      run: (args) => {
        const mode = enumArgument(args, 'mode', ['fast', 'timing'] as const);
        if (monitor.timingModel === undefined) throw new QmpError('GenericError', 'this machine has no timing configuration: set timing: true in the machine file');
        monitor.setExecutionMode(mode);
        return {};
      },
    },
    'stats-dump': {
      help: 'write config.json, stats.txt and stats.json now into {"dir": DIR} (default "stats"; relative to the run directory) → {"dir"}',
      args: ['dir'],
      run: (args) => {
        const dir = resolve(c.runDir, stringArgument(args, 'dir') ?? 'stats');
        const stats = new StatsRegistry();
        registerMonitorStats(stats, monitor);
        try {
          writeStatsOutput(dir, c.statsConfig(), stats);
        } catch (error) {
          throw new QmpError('GenericError', `cannot write statistics to '${dir}': ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
        }
        return { dir };
      },
    },
    'snapshot-save': {
      help: 'save the whole machine (every VM), or with {"vm": NAME} one running VM, to {"file": F} between two rounds → {"file", "bytes", "pages", ' +
        '"milliseconds"}; a VM entry\'s `restore: F` in a machine file makes it again (docs/snapshots.md)',
      args: ['file', 'vm'],
      run: (args) => {
        const file = stringArgument(args, 'file');
        if (file === undefined || file === '') throw new QmpError('GenericError', "Parameter 'file' is missing");
        const vm = args.vm === undefined ? undefined : vmArgument(args);
        if (vm !== undefined && vm.state !== 'running') throw new QmpError('GenericError', `VM '${vm.name}' is not running (${vm.state}: ${vm.reason})`);
        if (c.saveSnapshot === undefined) throw new QmpError('GenericError', 'this monitor cannot be saved');
        // A snapshot does not hold the hardware's faults (failed nodes, poison, routes): restored, the machine would be whole again.
        if (monitor.hardware.report.count > 0) throw new QmpError('GenericError', 'this machine has had hardware faults, which snapshots do not save yet');
        try {
          return c.saveSnapshot(resolve(c.runDir, file), vm);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          const why = error instanceof SnapshotError ? error.message : code !== undefined ? `cannot write '${file}': ${code}` : String(error);
          throw new QmpError('GenericError', why);
        }
      },
    },
    quit: {
      help: 'stop every VM and end `mirrorball up` (exit status 0); events VM_STOPPED for each VM still running, then SHUTDOWN',
      run: () => {
        c.quit();
        return {};
      },
    },
  };
}

// Accounting per VM and per vCPU: where the time went, TLB refills, monitor calls, world switches, pages.

import { PRIV_M, PRIV_S, PRIV_U } from '../isa/opcodes.js';
import { kindRecord, MONITOR_KIND_COUNT } from '../cpu/monitor-kinds.js';
import type { StatsRegistry } from '../timing/stats.js';
import { PAGE } from './machine-memory.js';
import type { Monitor } from './monitor.js';
import { SHARE_SOURCES, type MemoryAccount } from './sharing-ledger.js';
import type { VirtualMachine } from './vm.js';
import { BALLOON_ACCOUNT_KEYS } from './balloon.js';

export interface VcpuAccount {
  index: number;
  /** Busy cycles in guest user and guest kernel mode, not counting the monitor's work charged there. */
  guestUserCycles: number;
  guestKernelCycles: number;
  /** Cycles of monitor work on this vCPU's behalf (refills, monitor calls, page fills, world switches). */
  monitorCycles: number;
  /**
   * Those cycles by kind of work (cpu/monitor-kinds.ts: `world-switch`, `tlb-refill.l2`, `sbi.time`, `mmio`,
   * `numa-policy`, …), the kinds with any; they add up to `monitorCycles`.
   */
  monitorByKind: Record<string, number>;
  /** Cycles with nothing to do (WFI, powered off); ready time is not in it. */
  idleCycles: number;
  /** Cycles it could have run but another vCPU had the CPU (part of its idle time on its own clock). */
  readyCycles: number;
  instructions: number;
  tlbMisses: number;
  secondLevelHits: number;
  worldSwitches: number;
  /**
   * Its moves by kind: to another CPU of the same node, to another node's CPU, and to another cell (the
   * balancers, cell-scheduler.ts); their cycles are in its monitor cycles (a world switch and, in timing mode,
   * the cold caches; a move to another cell also its handoff and copies).
   */
  cpuMoves: number;
  nodeMoves: number;
  cellMigrations: number;
  /** The cycles each kind of move cost it (the world switch, and in timing mode the caches; to a cell, the handoff and copies). */
  cpuMoveCycles: number;
  nodeMoveCycles: number;
  cellMoveCycles: number;
  /** The physical CPU it ran on last (-1: never ran). */
  lastCpu: number;
}

/** What a VM is, with no per-vCPU work: the part of the account `ps` shows. */
export interface VmSummary {
  id: number;
  name: string;
  state: string;
  reason: string;
  vcpus: number;
  memoryBytes: number;
  homeNode: number;
  /** The cells it depends on (docs/cells.md): one when it is confined to a cell, several when it spans them. */
  cells: number[];
  /** Guest pages backed by machine pages now, and those bytes. */
  pagesInUse: number;
  bytesInUse: number;
  /** Of those, the ones whose machine page is the VM's alone, and the ones it shares (copy-on-write). */
  pagesPrivate: number;
  pagesShared: number;
  /**
   * The shared pages by how many hold their machine page: guest pages of any VM that map it, and the page
   * cache if it keeps it (`{"2": 13, "3": 611}`: 611 pages are one machine page with two other holders each).
   */
  pagesSharedBy: Record<string, number>;
  /** Machine pages held for the VM's large pages and not touched yet (no one else gets them until memory runs short). */
  pagesReserved: number;
  /** With paging: guest pages in the swap file now (no machine page), and pages written out and read back since it started. */
  pagesSwapped?: number;
  pagesOut?: number;
  pagesIn?: number;
}

export interface VmAccount extends VmSummary {
  monitorCalls: Record<string, number>;
  /**
   * Exits by kind: `guest-page-fault`, `sbi`, `mmio`, `wfi`, `interrupt`, and the monitor's own events
   * `world-switch` and `tlb-refill` (first-level misses it refilled, from the second-level TLB or by a walk).
   */
  exits: Record<string, number>;
  /** The same by kind and cause: `guest-page-fault.fill`, `sbi.time`, `mmio.ns16550a`, `tlb-refill.l2`, … */
  exitCauses: Record<string, number>;
  /** `exitCauses` per vCPU (a device's DMA faults belong to no vCPU: they are in the VM's only). */
  exitCausesPerVcpu: Record<string, number>[];
  /** Sums over the vCPUs. */
  total: Omit<VcpuAccount, 'index' | 'lastCpu'>;
  perVcpu: VcpuAccount[];
}

const SUMMED = ['guestUserCycles', 'guestKernelCycles', 'monitorCycles', 'idleCycles', 'readyCycles', 'instructions', 'tlbMisses', 'secondLevelHits', 'worldSwitches', 'cpuMoves', 'nodeMoves', 'cellMigrations', 'cpuMoveCycles', 'nodeMoveCycles', 'cellMoveCycles'] as const;

export function accountVcpu(monitor: Monitor, vm: VirtualMachine, index: number): VcpuAccount {
  const h = vm.vcpus[index]!;
  const record = monitor.vcpuRecord(vm, index);
  const m = h.monitorCycles;
  return {
    index,
    guestUserCycles: h.cyclesAt(PRIV_U) - m[PRIV_U]!,
    guestKernelCycles: h.cyclesAt(PRIV_S) + h.cyclesAt(PRIV_M) - m[PRIV_S]! - m[PRIV_M]!,
    monitorCycles: m[PRIV_U]! + m[PRIV_S]! + m[PRIV_M]!,
    monitorByKind: kindRecord(h.monitorKindCycles),
    idleCycles: Math.max(0, h.idleCycles - record.readyCycles),
    readyCycles: record.readyCycles,
    instructions: h.instret,
    tlbMisses: h.tlbMisses,
    secondLevelHits: h.secondLevelHits,
    worldSwitches: record.worldSwitches,
    cpuMoves: record.cpuMoves,
    nodeMoves: record.nodeMoves,
    cellMigrations: record.cellMigrations,
    cpuMoveCycles: record.cpuMoveCycles,
    nodeMoveCycles: record.nodeMoveCycles,
    cellMoveCycles: record.cellMoveCycles,
    lastCpu: record.lastPcpu,
  };
}

export function summarizeVm(vm: VirtualMachine): VmSummary {
  const shared = vm.pmap.pagesShared;
  const by = shared > 0 ? vm.pagesSharedBy() : new Map<number, number>();
  return {
    id: vm.id,
    name: vm.name,
    state: vm.state,
    reason: vm.reason,
    vcpus: vm.vcpus.length,
    memoryBytes: vm.pmap.size,
    homeNode: vm.pmap.homeNode,
    cells: [...vm.cells],
    pagesInUse: vm.pmap.pagesInUse,
    bytesInUse: vm.pmap.pagesInUse * PAGE,
    pagesPrivate: vm.pmap.pagesInUse - shared,
    pagesShared: shared,
    pagesSharedBy: Object.fromEntries([...by].sort(([a], [b]) => a - b).map(([h, n]) => [String(h), n])),
    pagesReserved: vm.pmap.pagesReserved,
    ...(vm.pager === undefined ? {} : (({ swapped, pagesOut, pagesIn }) => ({ pagesSwapped: swapped, pagesOut, pagesIn }))(vm.pager.account(vm.id))),
  };
}


export function accountVm(monitor: Monitor, vm: VirtualMachine): VmAccount {
  const perVcpu = vm.vcpus.map((_, i) => accountVcpu(monitor, vm, i));
  const kinds = new Float64Array(MONITOR_KIND_COUNT);
  for (const h of vm.vcpus) for (let k = 0; k < MONITOR_KIND_COUNT; k++) kinds[k]! += h.monitorKindCycles[k]!;
  const total = { ...Object.fromEntries(SUMMED.map((k) => [k, perVcpu.reduce((sum, v) => sum + v[k], 0)])), monitorByKind: kindRecord(kinds) } as VmAccount['total'];
  return {
    ...summarizeVm(vm),
    monitorCalls: sortedRecord(vm.monitorCalls),
    ...exitCounts(vm, perVcpu, total),
    total,
    perVcpu,
  };
}

/** The VM's exits with the monitor's own events (world switches, TLB refills) among them. */
function exitCounts(vm: VirtualMachine, perVcpu: readonly VcpuAccount[], total: VmAccount['total']): Pick<VmAccount, 'exits' | 'exitCauses' | 'exitCausesPerVcpu'> {
  const withOwn = (causes: ReadonlyMap<string, number>, v: Pick<VcpuAccount, 'worldSwitches' | 'secondLevelHits' | 'tlbMisses' | 'cellMigrations'>): Map<string, number> => {
    const all = new Map(causes);
    const add = (key: string, n: number): void => { if (n > 0) all.set(key, n); };
    add('world-switch', v.worldSwitches);
    add('cell-migration', v.cellMigrations);
    // Only in software mode is a TLB miss an exit; under the nested walk it is the hardware's work.
    if (vm.mmu === 'software') {
      add('tlb-refill.l2', v.secondLevelHits);
      add('tlb-refill.walk', v.tlbMisses - v.secondLevelHits);
    }
    return all;
  };
  const causes = withOwn(vm.exits, total);
  return {
    exits: sortedRecord(exitsByKind(causes)),
    exitCauses: sortedRecord(causes),
    exitCausesPerVcpu: perVcpu.map((v) => sortedRecord(withOwn(vm.vcpuExits[v.index] ?? new Map(), v))),
  };
}

/** Exit counts by cause (`sbi.time`, `mmio.ns16550a`, `wfi`, …) summed by kind (`sbi`, `mmio`, `wfi`). */
export function exitsByKind(causes: Iterable<readonly [string, number]>): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const [cause, n] of causes) {
    const kind = cause.split('.')[0]!;
    kinds.set(kind, (kinds.get(kind) ?? 0) + n);
  }
  return kinds;
}

/** The kinds of exit, as `exits` and the statistics name them. */
export const EXIT_KINDS = ['guest-page-fault', 'sbi', 'mmio', 'wfi', 'interrupt', 'world-switch', 'tlb-refill'] as const;

function sortedRecord(counts: ReadonlyMap<string, number>): Record<string, number> {
  return Object.fromEntries([...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const DESCRIPTIONS: Record<(typeof SUMMED)[number], [string, string]> = {
  guestUserCycles: ['guest_user_cycles', 'busy cycles in guest user mode'],
  guestKernelCycles: ['guest_kernel_cycles', 'busy cycles in guest kernel mode'],
  monitorCycles: ['monitor_cycles', 'cycles of monitor work charged to the vCPU'],
  idleCycles: ['idle_cycles', 'cycles idle (WFI, powered off)'],
  readyCycles: ['ready_cycles', 'cycles runnable while another vCPU had the CPU'],
  instructions: ['instructions', 'instructions retired'],
  tlbMisses: ['tlb_misses', 'first-level TLB misses under paging'],
  secondLevelHits: ['l2tlb_hits', 'first-level misses the second-level TLB refilled'],
  worldSwitches: ['world_switches', 'times a CPU switched to this vCPU'],
  cpuMoves: ['cpu_moves', 'moves to another CPU of the same node'],
  nodeMoves: ['node_moves', 'moves to a CPU of another node'],
  cellMigrations: ['cell_migrations', 'moves to another cell\'s run queue (the balancers)'],
  cpuMoveCycles: ['cpu_move_cycles', 'cycles its moves within its node cost (world switches, cold caches)'],
  nodeMoveCycles: ['node_move_cycles', 'cycles its moves to another node cost (world switches, cold caches)'],
  cellMoveCycles: ['cell_move_cycles', 'cycles its moves to another cell cost (handoff, state and second-level TLB copies)'],
};

/**
 * Registers the monitor's statistics (`monitor.*`, and `monitor.vmN.*` for each VM that exists now, N its
 * id; config.json maps ids to names): machine pages in use per node, world switches, and per VM and vCPU
 * the account above.
 */
export function registerMonitorStats(stats: StatsRegistry, monitor: Monitor): void {
  const nodes = monitor.layout.nodes.map((n) => `node${n.id}`);
  stats.vector('monitor.pages_in_use', 'machine pages given to VMs, per node', 'Count', nodes, () => nodes.map((_, n) => monitor.memory.pagesInUse(n)));
  stats.vector('monitor.pages_reserved', 'machine pages reserved for VMs\' large pages and not touched yet, per node', 'Count', nodes, () => nodes.map((_, n) => monitor.memory.pagesReserved(n)));
  stats.scalar('monitor.pages_shared', 'machine pages mapped by more than one guest page', 'Count', () => monitor.memory.pagesShared);
  stats.scalar('monitor.world_switches', 'CPU switches from one vCPU to another', 'Count', () => monitor.worldSwitches);
  stats.scalar('monitor.cycles', 'machine time', 'Cycle', () => monitor.cycles);
  stats.vector('monitor.pages_monitor', 'machine pages of the monitor\'s own data (memmap, pmap tables, vCPU state, second-level TLBs), per node', 'Count', nodes,
    () => nodes.map((_, n) => monitor.memory.monitorPages(n)));
  registerLargePageStats(stats, monitor);
  const policy = monitor.policy;
  if (policy !== undefined) {
    stats.vector('monitor.policy.migrated', 'pages the NUMA policy moved, by destination node', 'Count', nodes, () => policy.counts.migratedTo);
    stats.vector('monitor.policy.replicated', 'read-only copies the NUMA policy made of read-shared pages, by the copy\'s node', 'Count', nodes, () => policy.counts.replicatedTo);
    stats.scalar('monitor.policy.collapsed', 'replicated pages whose copies went (a write, a move, sharing, or memory running short)', 'Count',
      () => monitor.vms.reduce((n, vm) => n + vm.pmap.collapses, 0));
    stats.vector('monitor.pages_replica', 'machine pages holding replicas now, per node', 'Count', nodes, () => nodes.map((_, n) => monitor.memory.replicaPages(n)));
    stats.scalar('monitor.policy.left_write_shared', 'hot pages the NUMA policy left where they were: written from several nodes', 'Count', () => policy.counts.leftWriteShared);
    stats.scalar('monitor.policy.left_frozen', 'hot pages the NUMA policy left where they were: moved too often lately', 'Count', () => policy.counts.leftFrozen);
    stats.scalar('monitor.policy.left_other', 'hot pages the NUMA policy left where they were: no one other node\'s, shared, or no memory there', 'Count', () => policy.counts.leftOther);
    stats.scalar('monitor.policy.cycles', 'cycles the NUMA policy\'s moves cost (charged to the vCPUs as monitor cycles)', 'Cycle', () => policy.counts.cycles);
    // Local misses over time: a sample per interval, or per 2^k intervals once a run outgrows LOCALITY_SAMPLES.
    const samples = (): string[] => policy.locality.series.map((_, i) => `s${i}`);
    const of = (key: 'local' | 'remote' | 'endCycles') => (): number[] => policy.locality.series.map((s) => s[key]);
    stats.vector('monitor.policy.local_percent', 'local misses in % of the policy signal\'s misses, per sample of its intervals, oldest first', 'Ratio', samples, () => policy.locality.localPercent());
    stats.vector('monitor.policy.local_misses', 'the policy signal\'s misses to a page on the missing CPU\'s node, per sample', 'Count', samples, of('local'));
    stats.vector('monitor.policy.remote_misses', 'the policy signal\'s misses to a page on another node, per sample', 'Count', samples, of('remote'));
    stats.vector('monitor.policy.sample_end', 'machine cycle at which each sample ended', 'Cycle', samples, of('endCycles'));
    stats.scalar('monitor.policy.intervals_per_sample', 'policy intervals in each sample of local_percent', 'Count', () => policy.locality.intervalsPerSample);
  }
  registerSharingStats(stats, monitor);
  // Timing mode's caches and TLB refills are the physical CPUs' (machine.cpuN), misses by machine node.
  monitor.timingModel?.registerStats(stats, 'machine');
  for (const vm of monitor.vms) {
    const prefix = `monitor.vm${vm.id}`;
    const vcpus = vm.vcpus.map((_, i) => `cpu${i}`);
    stats.scalar(`${prefix}.pages_in_use`, `VM ${vm.name}: guest pages with a machine page`, 'Count', () => vm.pmap.pagesInUse);
    stats.scalar(`${prefix}.pages_shared`, `VM ${vm.name}: guest pages whose machine page others map too`, 'Count', () => vm.pmap.pagesShared);
    stats.scalar(`${prefix}.pages_reserved`, `VM ${vm.name}: machine pages reserved for its large pages, not touched yet`, 'Count', () => vm.pmap.pagesReserved);
    const pager = monitor.pager;
    if (pager !== undefined) {
      stats.scalar(`${prefix}.pages_swapped`, `VM ${vm.name}: guest pages in the swap file now`, 'Count', () => pager.account(vm.id).swapped);
      stats.scalar(`${prefix}.pages_out`, `VM ${vm.name}: pages the pager wrote to the swap file`, 'Count', () => pager.account(vm.id).pagesOut);
      stats.scalar(`${prefix}.pages_in`, `VM ${vm.name}: pages the pager read back`, 'Count', () => pager.account(vm.id).pagesIn);
      stats.scalar(`${prefix}.pages_zero_dropped`, `VM ${vm.name}: zero pages the pager dropped instead of writing`, 'Count', () => pager.account(vm.id).zeroDropped);
    }
    stats.scalar(`${prefix}.large_groups`, `VM ${vm.name}: 2 MiB groups of guest pages that are one machine block now (one large TLB entry)`, 'Count', () => vm.pmap.largeGroups);
    stats.scalar(`${prefix}.large_groups_broken`, `VM ${vm.name}: groups that were one full block and were scattered`, 'Count', () => vm.pmap.groupsBroken);
    stats.scalar(`${prefix}.pages_private`, `VM ${vm.name}: guest pages whose machine page is theirs alone`, 'Count', () => vm.pmap.pagesInUse - vm.pmap.pagesShared);
    stats.vector(`${prefix}.pages_shared_by`, `VM ${vm.name}: shared guest pages by how many hold their machine page (guest pages of any VM, the page cache)`, 'Count',
      HOLDERS.map((h) => (h === HOLDERS_MORE ? `h${h}_more` : `h${h}`)),
      () => { const by = vm.pagesSharedBy(); return HOLDERS.map((h) => (h === HOLDERS_MORE ? [...by].filter(([k]) => k >= h).reduce((n, [, v]) => n + v, 0) : by.get(h) ?? 0)); });
    for (const key of SUMMED) {
      const [name, what] = DESCRIPTIONS[key];
      stats.vector(`${prefix}.${name}`, `VM ${vm.name}: ${what}, per vCPU`, key.endsWith('Cycles') ? 'Cycle' : 'Count', vcpus,
        () => vm.vcpus.map((_, i) => accountVcpu(monitor, vm, i)[key]));
    }
    // Statistics' labels take no '-': guest_page_fault, world_switch, tlb_refill.
    stats.vector(`${prefix}.exits`, `VM ${vm.name}: exits to the monitor by kind (docs/monitor.md)`, 'Count', EXIT_KINDS.map((k) => k.replace(/-/g, '_')),
      () => { const exits = accountVm(monitor, vm).exits; return EXIT_KINDS.map((k) => exits[k] ?? 0); });
    if (policy !== undefined) {
      stats.vector(`${prefix}.policy_migrated`, `VM ${vm.name}: pages the NUMA policy moved, by destination node`, 'Count', nodes,
        () => policy.perVm.get(vm.id)?.migratedTo ?? nodes.map(() => 0));
      stats.vector(`${prefix}.policy_replicated`, `VM ${vm.name}: copies the NUMA policy made of its pages, by the copy's node`, 'Count', nodes,
        () => policy.perVm.get(vm.id)?.replicatedTo ?? nodes.map(() => 0));
      stats.scalar(`${prefix}.policy_collapsed`, `VM ${vm.name}: replicated pages whose copies went`, 'Count', () => vm.pmap.collapses);
    }
    const balloon = vm.balloon;
    if (balloon !== undefined) {
      stats.vector(`${prefix}.balloon`, `VM ${vm.name}: its balloon (docs/monitor.md, "The balloon"): requests, pages given and taken back, pages unmapped and machine pages freed, cycles charged`, 'Count',
        [...BALLOON_ACCOUNT_KEYS], () => BALLOON_ACCOUNT_KEYS.map((k) => balloon.account[k]));
    }
    const calls = ['base', 'time', 'ipi', 'rfence', 'hsm', 'srst', 'dbcn', 'pmu', 'mirrorball', 'legacy', 'unknown'];
    stats.vector(`${prefix}.monitor_calls`, `VM ${vm.name}: monitor calls (SBI) by extension`, 'Count', calls, () => calls.map((c) => vm.monitorCalls.get(c) ?? 0));
  }
}

/**
 * Large pages (docs/numa-policy.md, "Large pages"): groups that are one large page now and were broken, free
 * aligned blocks per node, and with the NUMA policy what it did with whole groups and what breaking them cost.
 */
function registerLargePageStats(stats: StatsRegistry, monitor: Monitor): void {
  const nodes = monitor.layout.nodes.map((n) => `node${n.id}`);
  stats.scalar('monitor.large_groups', '2 MiB groups of the VMs\' guest pages that are one aligned machine block now: one entry in the machine TLB for a guest leaf of 2 MiB', 'Count',
    () => monitor.vms.reduce((n, vm) => n + (vm.state === 'running' ? vm.pmap.largeGroups : 0), 0));
  stats.scalar('monitor.large_groups_broken', 'groups that were one full block and were scattered (a page moved, replicated, shared or dropped)', 'Count',
    () => monitor.vms.reduce((n, vm) => n + vm.pmap.groupsBroken, 0));
  stats.vector('monitor.free_blocks', 'aligned 2 MiB blocks wholly free, per node', 'Count', nodes, () => nodes.map((_, n) => monitor.memory.freeBlocks(n)));
  stats.scalar('monitor.groups_replicated', 'large groups replicated whole now: a read-only 2 MiB copy on other nodes, one large TLB entry on each', 'Count',
    () => monitor.vms.reduce((n, vm) => n + (vm.state === 'running' ? vm.pmap.replicatedGroups : 0), 0));
  const large = monitor.policy?.large;
  if (large === undefined) return;
  const c = large.counts;
  stats.vector('monitor.policy.blocks_moved', 'groups the NUMA policy moved whole, as one block, by destination node', 'Count', nodes, () => c.blocksMovedTo);
  stats.vector('monitor.policy.blocks_coalesced', 'scattered groups the NUMA policy made one block again, by node', 'Count', nodes, () => c.coalescedOn);
  stats.scalar('monitor.policy.block_pages_copied', 'pages copied by block moves and re-coalescing', 'Count', () => c.pagesCopied);
  stats.scalar('monitor.policy.blocks_no_space', 'block moves, re-coalescings and group replications given up: no free aligned block on the node', 'Count', () => c.noBlock);
  stats.scalar('monitor.policy.blocks_broken', 'large groups the NUMA policy\'s 4 KiB moves and replications broke', 'Count', () => c.broken);
  stats.scalar('monitor.policy.break_cycles', 'cycles of the 4 KiB moves and replications that broke a large group', 'Cycle', () => c.breakCycles);
  stats.scalar('monitor.policy.block_move_cycles', 'cycles the block moves cost (in monitor.policy.cycles too)', 'Cycle', () => c.moveCycles);
  stats.scalar('monitor.policy.coalesce_cycles', 'cycles re-coalescing cost (in monitor.policy.cycles too)', 'Cycle', () => c.coalesceCycles);
  stats.vector('monitor.policy.groups_replicated', 'copy blocks the NUMA policy made of large groups replicated whole, by the copy\'s node', 'Count', nodes, () => c.groupsReplicatedOn);
  stats.scalar('monitor.policy.groups_collapsed', 'groups replicated whole whose copies went (a write, memory running short, a page changed)', 'Count', () => c.groupsCollapsed);
  stats.scalar('monitor.policy.groups_collapsed_by_writes', 'of those, groups a write collapsed', 'Count', () => c.groupsCollapsedByWrites);
  stats.scalar('monitor.policy.group_replicate_cycles', 'cycles the whole-group copies cost (in monitor.policy.cycles too)', 'Cycle', () => c.replicateCycles);
}

/** The holder counts `pages_shared_by` has a label for; the last counts that many holders or more. */
const HOLDERS_MORE = 9;
const HOLDERS = [2, 3, 4, 5, 6, 7, 8, HOLDERS_MORE];

/**
 * The machine's memory account (sharing-ledger.ts) as statistics, the same figures `ps` and `query-memory`
 * give: `monitor.memory.*` (mapped − saved + cache_only = pages_in_use's sum), the page cache's counts, the
 * copy-on-write disks' reads by shape, and the content scanner's work.
 */
function registerSharingStats(stats: StatsRegistry, monitor: Monitor): void {
  // One account per dump: every statistic below reads the same one.
  let cached: MemoryAccount | undefined;
  const account = (): MemoryAccount => {
    if (cached === undefined) {
      cached = monitor.memoryAccount();
      queueMicrotask(() => { cached = undefined; });
    }
    return cached;
  };
  const machine = (key: keyof Omit<MemoryAccount['machine'], 'savedBy'>) => (): number => account().machine[key];
  stats.scalar('monitor.memory.mapped', 'guest pages with a machine page, every running VM\'s summed', 'Count', machine('mapped'));
  stats.scalar('monitor.memory.saved', 'machine pages sharing saves: each shared machine page, one per guest page mapping it beyond the first', 'Count', machine('saved'));
  stats.vector('monitor.memory.saved_by', 'machine pages sharing saves, by where the shared page came from', 'Count', [...SHARE_SOURCES], () => SHARE_SOURCES.map((s) => account().machine.savedBy[s]));
  stats.scalar('monitor.memory.cache_only', 'machine pages the page cache alone holds', 'Count', machine('cacheOnly'));
  stats.scalar('monitor.memory.private_pages', 'machine pages one guest page maps, and nothing else holds', 'Count', machine('privatePages'));
  stats.scalar('monitor.memory.shared_pages', 'machine pages with more than one holder that a VM maps', 'Count', machine('sharedPages'));
  const sources = ['disk', 'kernel'] as const;
  for (const key of ['hits', 'fills', 'misses', 'dropped'] as const) {
    stats.vector(`monitor.page_cache.${key}`, `page cache ${key} by source`, 'Count', [...sources], () => sources.map((s) => monitor.pageCache.counts[s][key]));
  }
  stats.scalar('monitor.page_cache.pages', 'machine pages the page cache holds (mapped by VMs or not)', 'Count', () => monitor.pageCache.size);
  stats.vector('monitor.subnet', 'the VMs\' subnet: frames switched, of those flooded, bytes copied to the receivers (none is remapped: docs/monitor.md)', 'Count',
    ['frames', 'flooded', 'bytes_copied'], () => [monitor.subnet.frames, monitor.subnet.flooded, monitor.subnet.bytes]);
  const shapes = ['requests', 'blocks', 'wholeAligned', 'base', 'mapped'] as const;
  stats.vector('monitor.disk_reads', 'copy-on-write disks\' reads: requests, 4 KiB blocks touched, whole blocks into whole aligned guest pages, of those the base\'s, of those mapped from the page cache',
    'Count', ['requests', 'blocks', 'whole_aligned', 'base', 'mapped'], () => shapes.map((k) => monitor.diskReads.reduce((n, m) => n + m[k], 0)));
  const scanner = monitor.scanner;
  if (scanner !== undefined) {
    const keys = ['visited', 'zeroTests', 'hashed', 'compared', 'mergedZero', 'mergedContent', 'passes'] as const;
    stats.vector('monitor.scan.pages', 'the content scanner: pages visited, zero tests, hashes, comparisons, zero and content merges, full passes', 'Count',
      ['visited', 'zero_tests', 'hashed', 'compared', 'merged_zero', 'merged_content', 'passes'], () => keys.map((k) => scanner.counts[k]));
    stats.scalar('monitor.scan.cycles', `the content scanner's work on CPU ${scanner.parameters.cpu} (cost table DEFAULT_SHARING_COSTS)`, 'Cycle', () => scanner.counts.cycles);
    stats.scalar('monitor.scan.cycles_charged', 'of those, cycles charged to vCPUs running on its CPU (the rest fell in idle time)', 'Cycle', () => scanner.counts.cyclesCharged);
    stats.scalar('monitor.scan.idle_cycles', 'of its cycles, those of the work its idle rate added, done while no vCPU ran on its CPU', 'Cycle', () => scanner.counts.idleCycles);
    stats.scalar('monitor.scan.reference_cycles', 'of its cycles, those its memory references took through its CPU\'s cache (timing mode)', 'Cycle', () => scanner.counts.referenceCycles);
  }
}

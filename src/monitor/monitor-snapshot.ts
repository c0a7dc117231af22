// The monitor as plain data and back (docs/snapshots.md): the whole machine with every VM, restored exactly
// into a fresh monitor (`restoreMonitor`), or one VM, restored into a running monitor on fresh machine pages
// (`restoreVmInto`). Machine pages are saved once each, by machine page number, zero pages left out.

import type { MachineConfig } from '../board/address-map.js';
import { readMachineConfig, restoreTimingModel, saveTimingModel, type TimingSnapshot } from '../board/snapshot.js';
import type { ExecutionMode } from '../board/timing-mode.js';
import { MAX_AMOUNT, StateError, StateReader, integerItem } from '../memory/state.js';
import type { CacheGeometry } from '../timing/cache.js';
import type { MissCounters } from '../timing/miss-counters.js';
import type { TimingLatencies } from '../timing/timing-model.js';
import type { BalloonCosts, MonitorCosts } from './costs.js';
import { BLOCK_PAGES, FREE, PAGE, type MachineMemory, type MachineMemoryState } from './machine-memory.js';
import { BORROW_KEYS, borrowProblems, type BorrowParameters } from './memory-borrowing.js';
import type { Monitor, SubnetOptions } from './monitor.js';
import { MAX_MTU, MIN_MTU } from '../devices/virtio/net.js';
import type { PolicyState } from './numa-policy.js';
import type { PageCacheState } from './page-cache.js';
import type { ScannerState } from './page-scanner.js';
import { readPageCache, readScanner } from './sharing-snapshot.js';
import { readPolicy } from './policy-snapshot.js';
import { SHARE_SOURCES } from './sharing-ledger.js';
import type { Placement, PmapState } from './pmap.js';
import type { SchedVcpu } from './scheduler.js';
import type { BalancePeriod, CellSchedulerState } from './cell-scheduler.js';
import { SnapshotError } from '../board/snapshot.js';
import { pageAddress, readVm, restoreVmState, saveVm, savedPages, type ReadVm, type Relocation, type VmSnapshot } from './vm-snapshot.js';
import type { MmuMode, VirtualMachine } from './vm.js';
import { cellNodes } from './cells.js';
import { checkMemory, REPLICA_PAGE, same, VM_PAGE } from './memory-check.js';
import { DISK_PAGE_FIELDS, diskCandidates, DiskPageComparer, readDiskPageBytes, readDiskPages, type DiskPage, type SavedDiskPage } from './disk-pages.js';

export const MONITOR_SNAPSHOT_FORMAT = 'mirrorball-monitor';
export const MONITOR_SNAPSHOT_VERSION = 11;

/** How the monitor was made: a whole snapshot is restored into a monitor made alike. */
export interface MonitorSettings {
  config: MachineConfig;
  costs: MonitorCosts;
  quantumRounds: number;
  mmu: MmuMode;
  placement: Placement;
  gStageTlbEntries: number;
  timing: { latencies: TimingLatencies; cache?: Partial<CacheGeometry> } | null;
  /** The subnet's cards' offloads and MTU, when given (absent: none). */
  subnet?: SubnetOptions;
  /** The cells' nodes, with several cells (absent: one cell of every node). */
  cells?: number[][];
  /** The page cache off for disk reads (absent: on), and boot images through it (absent: not). */
  diskCache?: false;
  shareBootImages?: true;
  /** Gang scheduling, and the idle balancer between cells (absent: off). */
  gang?: true;
  idleBalance?: true;
  /** The periodic balancer's period in rounds (absent: off). */
  balancePeriodRounds?: number;
  /** Memory borrowing's thresholds in bytes (absent: off); a machine with loans is not saved. */
  borrow?: BorrowParameters;
  /** What the balloons' requests cost, when not the default (absent: DEFAULT_BALLOON_COSTS). */
  balloonCosts?: BalloonCosts;
}

/**
 * Machine pages by number, as runs of consecutive pages: run k starts at `runs[2k]` and holds `runs[2k + 1]` pages,
 * `data[k]`; and pages equal to a block of a VM's disk by reference (`blocks`: machine page, VM id, disk, block).
 */
export interface PageImage {
  runs: Uint32Array;
  data: Uint8Array[];
  blocks: Float64Array;
}

/** What only a whole snapshot holds: the machine's allocator and memmap, the scheduler, the policy, the subnet, time. */
export interface WholeMonitor {
  cycles: number;
  instructions: number;
  mode: ExecutionMode;
  memory: MachineMemoryState;
  memmap: number[][];
  /** With several cells, also each cell's virtual times, each vCPU's cell and the periodic balancer's period (cell-scheduler.ts). */
  scheduler: CellSchedulerState;
  policy: PolicyState | null;
  subnet: ReturnType<Monitor['subnet']['saveState']>;
  timing: TimingSnapshot | null;
  /** The miss counters' write counts and pages queued hot, which the NUMA policy reads (null without a timing model). */
  writes: ReturnType<MissCounters['saveWatch']> | null;
  /** Where each shared machine page came from (sharing-ledger.ts), per machine page. */
  ledger: Uint8Array;
  /** The page cache (its pages are in `pages`, its place in the memmap in `memory`). */
  pageCache: PageCacheState;
  /** The content-sharing scanner, null when it is off. */
  scanner: ScannerState | null;
  /** With several cells: per VM, the cells it depends on (one: confined there); absent with one cell. */
  vmCells?: number[][];
  /** Per VM, the cells it was placed in, when a balancer has since made one depend on more (`vmCells`). */
  vmPlaced?: number[][];
}

export interface MonitorSnapshot {
  format: typeof MONITOR_SNAPSHOT_FORMAT;
  version: typeof MONITOR_SNAPSHOT_VERSION;
  settings: MonitorSettings;
  /** The machine's RAM regions' bases, by node: where saved machine addresses pointed. */
  regions: number[];
  /** Null when the snapshot holds one VM only. */
  whole: WholeMonitor | null;
  /** The contents of the VMs' machine pages (and replicas, in a whole snapshot); pages not here are zero. */
  pages: PageImage;
  vms: VmSnapshot[];
}

/** What `monitor` is made of, as plain data. */
export function monitorSettings(monitor: Monitor): MonitorSettings {
  const s = monitor.settings;
  return { ...s, timing: s.timing ?? null, subnet: s.subnet };
}

/**
 * The non-zero pages of `mpns` (each once), as runs viewing machine memory (nothing copied: write them out before
 * the monitor runs again), but for those `candidates` says may equal a disk block and `comparer` finds equal.
 */
function pageImage(memory: MachineMemory, mpns: Iterable<number>, candidates: ReadonlyMap<number, DiskPage[]>, comparer: DiskPageComparer): PageImage {
  const sorted = [...new Set(mpns)].sort((a, b) => a - b);
  const runs: number[] = [];
  const data: Uint8Array[] = [];
  const blocks: number[] = [];
  let first = -1;
  let last = -1;
  const close = (): void => {
    if (first < 0) return;
    const region = memory.regionOf(first);
    runs.push(first, last - first + 1);
    data.push(region.u8.subarray(memory.offsetOf(first), memory.offsetOf(last) + PAGE));
    first = -1;
  };
  for (const mpn of sorted) {
    const words = memory.regionOf(mpn).i32;
    const at = memory.offsetOf(mpn) / 4;
    let zero = true;
    for (let w = at; w < at + PAGE / 4; w++) {
      if (words[w] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) continue;
    const list = candidates.get(mpn);
    if (list !== undefined) {
      const bytes = memory.regionOf(mpn).u8.subarray(memory.offsetOf(mpn), memory.offsetOf(mpn) + PAGE);
      const source = list.find((c) => comparer.equal(c, bytes));
      if (source !== undefined) {
        blocks.push(mpn, source.vm, source.disk, source.block);
        continue;
      }
    }
    if (first >= 0 && (mpn !== last + 1 || memory.nodeOf(mpn) !== memory.nodeOf(first))) close();
    if (first < 0) first = mpn;
    last = mpn;
  }
  close();
  return { runs: Uint32Array.from(runs), data, blocks: Float64Array.from(blocks) };
}

/** Pages an image holds whole. */
export function imagePages(image: PageImage): number {
  return image.data.reduce((n, d) => n + d.length / PAGE, 0);
}

/** Pages an image holds by reference to a disk block. */
export function imageDiskPages(image: PageImage): number {
  return image.blocks.length / DISK_PAGE_FIELDS;
}

/**
 * The pager's state is not in a snapshot yet (docs/snapshots.md): a machine (or VM) with pages in its swap
 * store, or a vCPU waiting for the store, is refused in one line.
 */
function refuseSwapped(monitor: Monitor, vm?: VirtualMachine): void {
  const pager = monitor.pager;
  if (pager === undefined) return;
  const swapped = pager.swapped(vm?.id);
  if (swapped > 0) throw new SnapshotError(`${vm === undefined ? 'the VMs have' : `VM ${vm.name} has`} ${swapped} pages in the swap file: a snapshot does not keep them yet; save before memory runs short`);
  if (pager.sleeping > 0) throw new SnapshotError(`${pager.sleeping} vCPUs wait for the swap file: save once they have their pages`);
}

/** The whole monitor, every VM (ended ones too), between two rounds. Throws SnapshotError (vm-snapshot.ts). */
export function saveMonitor(monitor: Monitor): MonitorSnapshot {
  if (monitor.policy !== undefined && monitor.policySignal === 'tlb-misses') {
    throw new SnapshotError('a NUMA policy on the TLB-miss signal cannot be saved yet (its counters are not in the snapshot): turn it off first');
  }
  if (monitor.recovery.paused) throw new SnapshotError('the cells are recovering from a fault: save once they have');
  refuseSwapped(monitor);
  // Loans are not in the snapshot: what each cell lent and borrowed, and which pages came from which chunk.
  const loans = monitor.borrowing?.loans ?? 0;
  if (loans > 0) throw new SnapshotError(`the cells hold borrowed memory (${loans} loan records): a whole snapshot does not keep loans yet; save once they are given back`);
  const nodes = monitor.layout.nodes.length;
  const vms = monitor.vms.map((vm) => saveVm(monitor, vm));
  const pageCache = monitor.pageCache.saveState();
  // The pages the cache holds, VMs' or its alone, are saved with the VMs'.
  const used = vms.flatMap((vm) => { const p = savedPages(vm.pmap, nodes); return [...p.pages, ...p.replicas]; }).concat(Array.from(pageCache.pages).filter((mpn) => mpn !== FREE));
  const running = monitor.vms.filter((vm) => vm.state === 'running').map((vm) => vm.pmap);
  const model = monitor.timingModel;
  return {
    format: MONITOR_SNAPSHOT_FORMAT, version: MONITOR_SNAPSHOT_VERSION, settings: monitorSettings(monitor),
    regions: monitor.memory.regions.map((r) => r.base),
    whole: {
      cycles: monitor.cycles, instructions: monitor.instructions, mode: monitor.executionMode, memory: monitor.memory.saveState(),
      memmap: monitor.memmap.savePages(), scheduler: monitor.scheduler.saveState(), policy: monitor.policy?.saveState() ?? null,
      subnet: monitor.subnet.saveState(), timing: model === undefined ? null : saveTimingModel(model, monitor.executionMode),
      writes: model === undefined ? null : model.counters.saveWatch(), ledger: monitor.ledger.saveState(),
      pageCache, scanner: monitor.scanner?.saveState(running) ?? null,
      ...(monitor.cells.count > 1 ? { vmCells: monitor.vms.map((vm) => [...vm.cells]) } : {}),
      // Where each VM was placed, when a balancer has since made one depend on more cells.
      ...(monitor.vms.some((vm) => !same(vm.cells, vm.placedCells)) ? { vmPlaced: monitor.vms.map((vm) => [...vm.placedCells]) } : {}),
    },
    pages: pageImage(monitor.memory, used, diskCandidates(monitor.vms, { state: pageCache, vms: monitor.vms }), new DiskPageComparer(monitor)),
    vms,
  };
}

/**
 * One running VM of `monitor`, to be restored into this or another monitor (`restoreVmInto`). Its replicas
 * are left out (a restored VM reads its master pages); pages it shares with other VMs are saved as its own.
 */
export function saveOneVm(monitor: Monitor, vm: VirtualMachine): MonitorSnapshot {
  refuseSwapped(monitor, vm);
  const saved = saveVm(monitor, vm);
  return {
    format: MONITOR_SNAPSHOT_FORMAT, version: MONITOR_SNAPSHOT_VERSION, settings: monitorSettings(monitor),
    regions: monitor.memory.regions.map((r) => r.base), whole: null,
    pages: pageImage(monitor.memory, savedPages(saved.pmap, monitor.layout.nodes.length).pages, diskCandidates([vm]), new DiskPageComparer(monitor)), vms: [saved],
  };
}

/** A monitor snapshot read back: checked but for what needs the monitor it goes into. */
export interface ReadMonitor {
  settings: MonitorSettings;
  regions: number[];
  whole: StateReader | null;
  pages: Map<number, Uint8Array>;
  /** Pages saved as a block of a VM's disk, read when the VMs' disks are there (`restoreMonitor`, `restoreVmInto`). */
  diskPages: SavedDiskPage[];
  vms: ReadVm[];
}

/** Reads a monitor snapshot (as `saveMonitor` or `saveOneVm` made it) and checks what it can alone. Throws StateError. */
/** A setting saved only when it is `value` (its other value is the default, saved by leaving it out). Throws StateError. */
function onlyValue<T extends boolean>(saved: unknown, value: T, path: string): T {
  if (saved !== value) throw new StateError(`${path}: ${JSON.stringify(saved)}, where only ${value} is saved`);
  return value;
}

/** Saved cells (`settings.cells`): lists of nodes that partition the machine's `nodes`. Throws StateError. */
function readCells(value: unknown, nodes: number, path: string): number[][] {
  if (!Array.isArray(value) || !value.every((c) => Array.isArray(c) && c.every((n) => Number.isInteger(n)))) throw new StateError(`${path}: not lists of nodes`);
  try {
    return cellNodes(value as number[][], nodes);
  } catch (error) {
    throw new StateError(`${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * Per saved VM, the cells it depends on (a whole snapshot of several cells), or undefined; with `key`
 * 'vmPlaced', those it was placed in (present only when a balancer made one depend on more). Throws StateError.
 */
export function savedVmCells(whole: StateReader, vms: number, cells: number, key: 'vmCells' | 'vmPlaced' = 'vmCells'): number[][] | undefined {
  if (!whole.has(key)) return undefined;
  const value = whole.value(key);
  if (!Array.isArray(value) || value.length !== vms || !value.every((c) => Array.isArray(c) && c.length > 0 && c.every((n) => Number.isInteger(n) && n >= 0 && n < cells))) {
    throw new StateError(`snapshot.whole.${key}: not a list of cells for each of the ${vms} VMs`);
  }
  return value as number[][];
}

export function readMonitorSnapshot(value: unknown): ReadMonitor {
  const r = new StateReader(value, 'snapshot');
  const format = r.string('format');
  if (format !== MONITOR_SNAPSHOT_FORMAT) throw new StateError(`not a monitor snapshot (format '${format}')`);
  const version = r.number('version', 0);
  if (version !== MONITOR_SNAPSHOT_VERSION) {
    // Version 5 and before had no page cache and no scanner in them (6), 6 no idle rate or first-match merging in the
    // scanner (7), 7 no cells' schedulers (8), 8 one NUMA policy state for the machine, not one per cell (9), 9 no
    // pages stored as disk blocks (10), 10 no copy-on-write disks nor virtio-blk's counts of reads (11); nothing
    // converts a file between versions.
    throw new StateError(`monitor snapshot version ${version}, this Mirrorball reads version ${MONITOR_SNAPSHOT_VERSION}: `
      + `${version < MONITOR_SNAPSHOT_VERSION ? 'an older' : 'a newer'} Mirrorball saved it; restore it with that one`);
  }
  const s = r.object('settings');
  const config = readMachineConfig(s.value('config'), 'snapshot.settings.config');
  const mmu = s.string('mmu');
  if (mmu !== 'software' && mmu !== 'nested') throw new StateError(`snapshot.settings.mmu: '${mmu}'`);
  const placement = s.string('placement');
  if (placement !== 'home' && placement !== 'round-robin') throw new StateError(`snapshot.settings.placement: '${placement}'`);
  const costs = s.object('costs');
  const costValues = s.value('costs') as Record<string, unknown>;
  const settings: MonitorSettings = {
    config, mmu, placement, quantumRounds: s.number('quantumRounds', 1, 2 ** 20), gStageTlbEntries: s.number('gStageTlbEntries', 0, 4096),
    costs: Object.fromEntries(Object.keys(costValues).map((k) => [k, costs.amount(k)])) as unknown as MonitorCosts,
    timing: s.value('timing') === null ? null : s.value('timing') as MonitorSettings['timing'],
    subnet: s.has('subnet') ? readSubnetOptions(s.object('subnet')) : undefined,
    ...(s.has('cells') ? { cells: readCells(s.value('cells'), config.nodes.length, 'snapshot.settings.cells') } : {}),
    ...(s.has('diskCache') ? { diskCache: onlyValue(s.value('diskCache'), false, 'snapshot.settings.diskCache') } : {}),
    ...(s.has('shareBootImages') ? { shareBootImages: onlyValue(s.value('shareBootImages'), true, 'snapshot.settings.shareBootImages') } : {}),
    ...(s.has('gang') ? { gang: onlyValue(s.value('gang'), true, 'snapshot.settings.gang') } : {}),
    ...(s.has('idleBalance') ? { idleBalance: onlyValue(s.value('idleBalance'), true, 'snapshot.settings.idleBalance') } : {}),
    ...(s.has('balancePeriodRounds') ? { balancePeriodRounds: s.number('balancePeriodRounds', 1, 2 ** 30) } : {}),
    ...(s.has('borrow') ? { borrow: readBorrow(s.object('borrow')) } : {}),
    ...(s.has('balloonCosts') ? { balloonCosts: { request: s.object('balloonCosts').amount('request'), page: s.object('balloonCosts').amount('page') } } : {}),
  };
  const nodes = config.nodes.length;
  const totalPages = config.nodes.reduce((n, node) => n + node.memoryBytes / PAGE, 0);
  if (!Number.isInteger(totalPages)) throw new StateError('snapshot.settings.config: memory of no whole pages');
  const regions = r.array('regions', integerItem(0, MAX_AMOUNT), nodes);
  const pcpus = config.harts;
  const vms = r.array('vms', (v, p) => readVm(v, p, nodes, totalPages, pcpus));
  if (vms.length === 0) throw new StateError('snapshot.vms: no VM');
  const pages = readPages(r.object('pages'), totalPages);
  const diskPages = readDiskPages(r.object('pages'), totalPages, pages);
  return { settings, regions, whole: r.value('whole') === null ? null : r.object('whole'), pages, diskPages, vms };
}

function readBorrow(r: StateReader): BorrowParameters {
  const p = Object.fromEntries(BORROW_KEYS.map((key) => [key, r.number(key, 0, MAX_AMOUNT)])) as unknown as BorrowParameters;
  const problems = borrowProblems(p);
  if (problems.length > 0) throw new StateError(`${r.path}: ${problems[0]}`);
  return p;
}

function readSubnetOptions(r: StateReader): SubnetOptions {
  const mtu = r.has('mtu') ? r.number('mtu', MIN_MTU, MAX_MTU) : undefined;
  return { ...(r.has('offload') ? { offload: r.boolean('offload') } : {}), ...(mtu === undefined ? {} : { mtu }) };
}

function readPages(p: StateReader, totalPages: number): Map<number, Uint8Array> {
  const runs = p.typed('runs', Uint32Array);
  if (runs.length % 2 !== 0) throw new StateError(`${p.path}.runs: not pairs of page and count`);
  const pages = new Map<number, Uint8Array>();
  p.array('data', (bytes, path, k) => {
    const first = runs[2 * k]!;
    const count = runs[2 * k + 1]!;
    if (!(bytes instanceof Uint8Array) || bytes.length !== count * PAGE || first + count > totalPages) throw new StateError(`${path}: pages outside the machine`);
    for (let i = 0; i < count; i++) {
      if (pages.has(first + i)) throw new StateError(`${path}: page ${first + i} twice`);
      pages.set(first + i, bytes.subarray(i * PAGE, (i + 1) * PAGE));
    }
  }, runs.length / 2);
  return pages;
}

/**
 * VM `name` of a snapshot (of one VM, or of a whole machine), put into `vm`: a VM `monitor` made for it, with
 * the saved number of vCPUs, memory, devices (a network card first when it had one, then its drives and rng,
 * as they were) and `secondLevelEntries`, that has not run. Its pages go to fresh machine pages of this
 * monitor, placed as the pmap places pages (2 MiB groups in blocks where it can); every machine address its
 * TLBs and reservations held follows its page. What the guest sees is what it saw: registers, devices, memory
 * by guest-physical page, timers. Throws StateError, or OutOfMachineMemory; `vm` is then ended (stopped),
 * so nothing half-restored runs.
 */
export function restoreVmInto(monitor: Monitor, vm: VirtualMachine, saved: ReadMonitor, name: string, otherDisks?: (ref: SavedDiskPage, into: Uint8Array) => void): void {
  try {
    const v = saved.vms.find((x) => x.name === name);
    if (v === undefined) throw new StateError(`the snapshot has no VM named '${name}' (it has ${saved.vms.map((x) => x.name).join(', ')})`);
    const path = `snapshot.vms[${saved.vms.indexOf(v)}]`;
    if (v.state !== 'running') throw new StateError(`${path}: VM ${name} had ended (${v.state}: ${v.reason})`);
    if (v.vcpus !== vm.vcpus.length || v.memoryBytes !== vm.pmap.size) throw new StateError(`${path}: saved with ${v.vcpus} vCPUs and ${v.memoryBytes} bytes`);
    const memory = monitor.memory;
    // Its pages saved as disk blocks, read from its own disks (made as they were), or another VM's through `otherDisks`.
    const own = new Set(savedPages(v.pmap, saved.settings.config.nodes.length).pages);
    const diskBytes = readDiskPageBytes(saved.diskPages.filter((ref) => own.has(ref.mpn)), new Map([[v.id, vm]]), otherDisks);
    const moved = vm.pmap.placeLike(v.pmap);
    for (const [old, mpn] of moved) {
      const bytes = saved.pages.get(old) ?? diskBytes.get(old);
      if (bytes !== undefined) memory.regionOf(mpn).u8.set(bytes, memory.offsetOf(mpn));
    }
    // A replica's TLB entries lead to its master now (replicas are not made again).
    const nodes = saved.settings.config.nodes.length;
    const pageOf = new Map<number, number>();
    for (const [old, mpn] of moved) pageOf.set(pageAddress(saved.regions, old), memory.addressOf(mpn));
    const replicas = v.pmap.replicas;
    for (let i = 0; i < replicas.length; i += 1 + nodes) {
      const master = moved.get(v.pmap.machine[replicas[i]!]!);
      for (let n = 1; n <= nodes; n++) {
        if (replicas[i + n] !== FREE && master !== undefined) pageOf.set(pageAddress(saved.regions, replicas[i + n]!), memory.addressOf(master));
      }
    }
    const blockOf = new Map<number, number>();
    v.pmap.blocks.forEach((block, group) => {
      const now = vm.pmap.largeBlock(group);
      if (block >= 0 && now >= 0) blockOf.set(pageAddress(saved.regions, block), now);
    });
    const reloc: Relocation = { from: saved.regions, page: (a) => pageOf.get(a), block: (a) => blockOf.get(a) };
    restoreVmState(monitor, vm, v, reloc, path);
    if (v.scheduler !== null) {
      // On a machine of other CPUs its vCPUs start afresh there (their cycles and shares' time stay).
      const s = v.scheduler;
      const cpus = monitor.cpus;
      const none = new Int32Array(cpus).fill(-1);
      const fits = s.holding.length === cpus;
      monitor.scheduler.restoreVm(vm.id, {
        ...s, holding: fits ? s.holding : none, lastOn: fits ? s.lastOn : none, lastPcpu: s.lastPcpu.map((p) => (fits && p < cpus ? p : -1)),
      });
    }
    vm.vcpus.forEach((_, i) => {
      const record = monitor.vcpuRecord(vm, i);
      if (v.scheduler?.holding.length !== monitor.cpus) record.lastPcpu = -1;
    });
  } catch (error) {
    monitor.stopVm(vm, 'its restore failed');
    throw error;
  }
}

/**
 * A whole snapshot put into `monitor`: made with the saved settings (`settings`), with `vms` the VMs it made
 * for the saved ones, in order (ended ones too), each as `restoreVmInto` asks and on its saved home node, none
 * of which has run. Everything comes back where it was, machine pages included, so the machine runs on
 * exactly as it would have (the caches of timing mode hold machine addresses). Every part is checked before the
 * machine's memory is written; a StateError can leave `monitor` partly restored: throw it away.
 */
export function restoreMonitor(monitor: Monitor, saved: ReadMonitor, vms: readonly VirtualMachine[]): void {
  const w = saved.whole;
  if (w === null) throw new StateError('the snapshot holds one VM, not a whole machine');
  // A machine saved without a timing configuration (so in fast mode, its model never charged) may come back
  // with one: its model starts as a fresh one would (caches cold, no miss counted), as if configured at boot.
  const current = monitorSettings(monitor);
  const addsTiming = saved.settings.timing === null && current.timing !== null;
  if (!same(saved.settings, addsTiming ? { ...current, timing: null } : current)) throw new StateError('snapshot.settings: saved by a monitor made otherwise');
  if (monitor.cycles !== 0 || vms.length !== saved.vms.length || vms.some((vm, i) => monitor.vms[i] !== vm)) throw new Error('restore into a fresh monitor with a VM made for each saved one');
  const memory = monitor.memory;
  const nodes = monitor.layout.nodes.length;
  if (!same(saved.regions, memory.regions.map((r) => r.base))) throw new StateError('snapshot.regions: another layout of machine memory');
  saved.vms.forEach((v, i) => {
    if (v.id !== i || v.name !== vms[i]!.name) throw new StateError(`snapshot.vms[${i}]: VM ${v.id} '${v.name}' out of order`);
    if (v.state !== 'running' && (v.pmap.machine.some((m) => m !== FREE) || v.tables.length > 0)) throw new StateError(`snapshot.vms[${i}]: an ended VM with memory`);
  });
  const cycles = w.amount('cycles');
  const instructions = w.amount('instructions');
  const mode = w.string('mode');
  if (mode !== 'fast' && mode !== 'timing') throw new StateError(`snapshot.whole.mode: '${mode}'`);
  const memoryState = readMemoryState(w.object('memory'), memory);
  const memmap = readLists(w, 'memmap', monitor.memmap.savePages());
  const ledger = w.typed('ledger', Uint8Array, memory.totalPages);
  if (ledger.some((v) => v > SHARE_SOURCES.length)) throw new StateError('snapshot.whole.ledger: not a sharing source');
  const tables = saved.vms.map((v, i) => (v.state === 'running' ? readLists(new StateReader({ tables: v.tables }, `snapshot.vms[${i}]`), 'tables', vms[i]!.tables.savePages()) : []));
  const pageCache = readPageCache(w.object('pageCache'), memory.totalPages);
  const vmCells = savedVmCells(w, saved.vms.length, monitor.cells.count);
  if ((vmCells !== undefined) !== (monitor.cells.count > 1)) throw new StateError('snapshot.whole.vmCells: saved with other cells');
  vmCells?.forEach((cells, i) => {
    if (!same(cells, vms[i]!.cells)) throw new StateError(`snapshot.whole.vmCells[${i}]: VM ${vms[i]!.name} was in cells ${cells.join(', ')}, and is placed in ${vms[i]!.cells.join(', ')} here`);
  });
  const scanner = w.value('scanner') === null ? null
    : readScanner(w.object('scanner'), saved.vms.map((v) => ({ pages: v.memoryBytes / PAGE, running: v.state === 'running' })), monitor.cpus);
  const kinds = checkMemory(memory, memoryState, saved.vms, [...memmap, ...tables.flat()], pageCache);
  for (const mpn of [...saved.pages.keys(), ...saved.diskPages.map((ref) => ref.mpn)]) if (kinds[mpn] !== VM_PAGE && kinds[mpn] !== REPLICA_PAGE) throw new StateError(`snapshot.pages: page ${mpn} is no VM's`);
  // The pages saved as disk blocks, read from the VMs' disks (made as they were saved) before anything is written.
  const diskBytes = readDiskPageBytes(saved.diskPages, new Map(vms.map((vm, i) => [saved.vms[i]!.id, vm])));
  const scheduler = readScheduler(w.object('scheduler'), saved.vms, monitor.cpus, monitor.cells.count);
  const policy = w.value('policy') === null ? null : readPolicy(w.object('policy'), nodes, monitor.cells.count, (vm) => vms[vm]?.cells);
  if (policy !== null && (monitor.timingModel === undefined || addsTiming)) throw new StateError('snapshot.whole.policy: the NUMA policy without a timing configuration');
  const subnet = readSubnet(w.object('subnet'), monitor);
  const model = addsTiming ? undefined : monitor.timingModel;
  if ((w.value('timing') === null) !== (model === undefined)) throw new StateError('snapshot.whole.timing: saved with another timing configuration');
  if (model === undefined && mode !== 'fast') throw new StateError('snapshot.whole.mode: timing mode without a timing model saved');
  let writes: ReturnType<MissCounters['saveWatch']> | null = null;
  if (model !== undefined) {
    const x = w.object('writes');
    const pages = model.counters.pages;
    writes = {
      writes: x.typed('writes', Uint32Array, pages), writers: x.typed('writers', Uint32Array, pages), writersBefore: x.typed('writersBefore', Uint32Array, pages),
      lastWrite: x.typed('lastWrite', Uint32Array, pages), interval: x.number('interval', 1, 2 ** 32 - 1), hot: x.typed('hot', Uint32Array),
    };
    if (writes.hot.some((p) => p >= pages) || new Set(writes.hot).size !== writes.hot.length) throw new StateError('snapshot.whole.writes.hot: not pages, each once');
    const interval = writes.interval;
    if (writes.lastWrite.some((i) => i > interval)) throw new StateError('snapshot.whole.writes.lastWrite: a write after the current interval');
  }

  // Each VM's machine, its TLB entries kept to its own pages (a running VM's) and blocks.
  saved.vms.forEach((v, i) => {
    const vm = vms[i]!;
    const own = new Set(savedPages(v.pmap, nodes).pages.concat(savedPages(v.pmap, nodes).replicas).map((mpn) => pageAddress(saved.regions, mpn)));
    const blocks = new Set(fullBlocks(v.pmap).map((mpn) => pageAddress(saved.regions, mpn)));
    const ended = v.state !== 'running';
    const reloc: Relocation = {
      from: saved.regions,
      page: (a) => (ended || own.has(a) ? a : undefined),
      block: (a) => (ended || blocks.has(a) ? a : undefined),
    };
    restoreVmState(monitor, vm, v, reloc, `snapshot.vms[${i}]`);
  });
  // The ended ones end again (giving back what they were made with), as they ended.
  saved.vms.forEach((v, i) => {
    if (v.state === 'running') return;
    const vm = vms[i]!;
    if (v.exit !== null) vm.machine.stopWith(v.exit);
    monitor.stopVm(vm, v.reason);
    vm.state = v.state;
  });
  // The machine's memory, exactly as it was.
  memory.restoreState(memoryState);
  monitor.memmap.restorePages(memmap);
  monitor.ledger.restoreState(ledger);
  monitor.pageCache.restoreState(pageCache);
  saved.vms.forEach((v, i) => {
    vms[i]!.pmap.restoreState(v.pmap);
    if (v.state === 'running') vms[i]!.tables.restorePages(tables[i]!);
  });
  for (const [mpn, bytes] of saved.pages) memory.regionOf(mpn).u8.set(bytes, memory.offsetOf(mpn));
  for (const [mpn, bytes] of diskBytes) memory.regionOf(mpn).u8.set(bytes, memory.offsetOf(mpn));
  monitor.scheduler.restoreState(scheduler, (vm, index) => monitor.vcpuRecord(monitor.vms[vm]!, index) as unknown as SchedVcpu);
  if (policy !== null) {
    monitor.setPolicy(policy.parameters);
    monitor.policy!.restoreState(policy);
  }
  monitor.subnet.restoreState(subnet);
  monitor.setScan(scanner?.parameters);
  if (scanner !== null) monitor.scanner!.restoreState(scanner, (vm) => monitor.vms[vm]!.pmap);
  if (model !== undefined) {
    restoreTimingModel(model, w.object('timing'));
    model.counters.restoreWatch(writes!);
    monitor.setExecutionMode(mode);
  }
  // The pager (a machine saved with none in its store) starts its FIFO from the pages VMs hold now.
  monitor.pager?.adopt();
  monitor.cycles = cycles;
  monitor.instructions = instructions;
}

/** The first machine pages of the saved pmap's groups that are one large page (every page in its block, all allowing everything). */
function fullBlocks(p: PmapState): number[] {
  const out: number[] = [];
  p.blocks.forEach((block, group) => {
    if (block < 0) return;
    for (let k = 0; k < BLOCK_PAGES; k++) {
      const gppn = group * BLOCK_PAGES + k;
      if (p.machine[gppn] !== block + k || p.perm[gppn] !== 7) return;
    }
    out.push(block);
  });
  return out;
}

function readLists(r: StateReader, key: string, shape: readonly (readonly number[])[]): number[][] {
  return r.array(key, (v, p, i) => new StateReader({ list: v }, p).array('list', integerItem(0, 2 ** 31), shape[i]!.length), shape.length);
}

function readMemoryState(m: StateReader, memory: MachineMemory): MachineMemoryState {
  const total = memory.totalPages;
  const nodes = memory.layout.nodes.length;
  const perNode = (key: string): Float64Array => m.amounts(key, Float64Array, nodes);
  return {
    owner: m.typed('owner', Int32Array, total), guestPage: m.typed('guestPage', Int32Array, total), users: m.typed('users', Uint16Array, total),
    moreUsers: m.typed('moreUsers', Int32Array), fresh: perNode('fresh'),
    freed: m.array('freed', (v, p) => { if (!(v instanceof Int32Array)) throw new StateError(`${p}: not an Int32Array`); return v; }, nodes),
    used: perNode('used'), monitorUsed: perNode('monitorUsed'), replicaUsed: perNode('replicaUsed'), reserved: perNode('reserved'),
  };
}

function readPeriod(p: StateReader, cells: number): BalancePeriod {
  return { rounds: p.number('rounds', 0, 2 ** 30), loads: p.amounts('loads', Float64Array, cells) };
}

function readScheduler(r: StateReader, vms: readonly ReadVm[], pcpus: number, cells: number): CellSchedulerState {
  const pairs = (key: string): Int32Array => {
    const a = r.typed(key, Int32Array, 2 * pcpus);
    for (let p = 0; p < pcpus; p++) {
      const vm = a[2 * p]!;
      const index = a[2 * p + 1]!;
      if (vm === -1 && index === -1) continue;
      if (!(vm >= 0 && vm < vms.length && index >= 0 && index < vms[vm]!.vcpus)) throw new StateError(`${r.path}.${key}: no such vCPU`);
    }
    return a;
  };
  const scheduled = vms.filter((v) => v.state === 'running');
  const list = r.array('vms', (v, p) => {
    const id = new StateReader(v, p).number('id', 0, vms.length - 1);
    const s = vms[id]?.scheduler;
    if (s === null || s === undefined) throw new StateError(`${p}: VM ${id} is not scheduled`);
    return s;
  }, scheduled.length);
  // Each cell's virtual times, with several cells: for VMs scheduled there.
  const cellTimes = cells === 1 ? undefined : r.array('cellTimes', (v, p) => {
    const c = new StateReader(v, p);
    return {
      virtualTimeFloor: c.amount('virtualTimeFloor'),
      vms: c.array('vms', (x, q) => {
        const t = new StateReader(x, q);
        const id = t.number('id', 0, vms.length - 1);
        if (vms[id]?.scheduler === null) throw new StateError(`${q}: VM ${id} is not scheduled`);
        return { id, virtualTime: t.amount('virtualTime'), runnableLastRound: t.boolean('runnableLastRound') };
      }),
    };
  }, cells);
  // And the cell each vCPU of each scheduled VM is in.
  const vcpuCells = cells === 1 ? undefined : r.array('vcpuCells', (v, p) => {
    const c = new StateReader(v, p);
    const id = c.number('id', 0, vms.length - 1);
    if (vms[id]?.scheduler === null) throw new StateError(`${p}: VM ${id} is not scheduled`);
    const where = c.typed('cells', Int32Array, vms[id]!.vcpus);
    if (where.some((cell) => cell < 0 || cell >= cells)) throw new StateError(`${p}.cells: no such cell`);
    return { id, cells: where };
  }, scheduled.length);
  return {
    vms: list, holders: pairs('holders'), lastRun: pairs('lastRun'), switchCounts: r.amounts('switchCounts', Float64Array, pcpus),
    virtualTimeFloor: r.amount('virtualTimeFloor'), ...(cellTimes === undefined ? {} : { cellTimes }), ...(vcpuCells === undefined ? {} : { vcpuCells }),
    ...(cells === 1 ? {} : { period: readPeriod(r.object('period'), cells) }),
  };
}

function readSubnet(r: StateReader, monitor: Monitor): ReturnType<Monitor['subnet']['saveState']> {
  const ports = monitor.subnet.portCount;
  return {
    learned: r.array('learned', (v, p) => {
      const pair = new StateReader({ pair: v }, p).array('pair', (x) => x, 2);
      if (typeof pair[0] !== 'string' || !/^[0-9a-f]{12}$/.test(pair[0]) || !Number.isInteger(pair[1]) || (pair[1] as number) < 0 || (pair[1] as number) >= ports) {
        throw new StateError(`${p}: not a MAC address and a port`);
      }
      return [pair[0], pair[1] as number] as [string, number];
    }),
    frames: r.amount('frames'), flooded: r.amount('flooded'), bytes: r.amount('bytes'),
  };
}

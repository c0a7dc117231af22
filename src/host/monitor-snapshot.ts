// Saving the monitor's VMs (`mirrorball up`, MonitorSession) to a file, and making them again from one: the
// monitor's part (monitor/monitor-snapshot.ts), and per VM how the host built it: its drives by path and
// content hash (never copied), its rng's seed.

import { savedVmCells } from '../monitor/monitor-snapshot.js';
import { same } from '../monitor/memory-check.js';
import { performance } from 'node:perf_hooks';
import { StateError, StateReader, integerItem } from '../memory/state.js';
import {
  imageDiskPages, imagePages, monitorSettings, readMonitorSnapshot, restoreMonitor, restoreVmInto, saveMonitor, saveOneVm, type MonitorSettings, type MonitorSnapshot, type ReadMonitor,
} from '../monitor/monitor-snapshot.js';
import { Monitor, MonitorError, type MonitorOptions } from '../monitor/monitor.js';
import { OutOfMachineMemory } from '../monitor/machine-memory.js';
import type { ReadVm } from '../monitor/vm-snapshot.js';
import type { SavedDiskPage } from '../monitor/disk-pages.js';
import { BLOCK_PAGE } from '../devices/virtio/blk.js';
import type { VirtualMachine } from '../monitor/vm.js';
import { SeededEntropy, VirtioRng } from '../devices/virtio/rng.js';
import { attachDrives, DriveError, openForReading, type DriveSpec, type OpenDrive } from './drives.js';
import { diskProblem, diskReference, readDiskReference, savedDrive, type DiskReference } from './machine-spec.js';
import { machineDisks } from '../board/disk-pages.js';
import type { SaveReport } from './run-snapshot.js';
import { decodeSnapshot, encodeSnapshot, readSnapshotFile, SnapshotFileError, writeSnapshotFile } from './snapshot-file.js';

/** How the host built a VM beyond what the monitor knows: its drives (after a network card), then an rng. */
export interface VmBuild {
  drives: DriveSpec[];
  rngSeed: number | null;
}

/** A VM's build as a snapshot records it: each drive with its size and hash. */
export interface SavedBuild {
  drives: DiskReference[];
  rngSeed: number | null;
}

/**
 * The plain data of a snapshot of `monitor`: the whole machine, or only `vm`; `build` says how the host built
 * each VM, `extra` is the caller's (a session's agents). Call it between rounds; throws SnapshotError.
 */
export function monitorSnapshot(monitor: Monitor, build: (vm: VirtualMachine) => VmBuild, vm?: VirtualMachine, extra: object = {}): { value: object; pages: number; diskPages: number } {
  const saved: MonitorSnapshot = vm === undefined ? saveMonitor(monitor) : saveOneVm(monitor, vm);
  const builds = saved.vms.map((v) => {
    const vm = monitor.vms[v.id]!;
    const b = build(vm);
    const devices = machineDisks(vm.machine);
    return { name: v.name, drives: b.drives.map((drive, k) => diskReference(drive, devices[k])), rngSeed: b.rngSeed };
  });
  return { value: { monitor: saved, host: { vms: builds }, extra }, pages: imagePages(saved.pages), diskPages: imageDiskPages(saved.pages) };
}

/** `monitorSnapshot` written to `file` (under a temporary name renamed into place). */
export function saveMonitorSnapshot(file: string, monitor: Monitor, build: (vm: VirtualMachine) => VmBuild, vm?: VirtualMachine, extra?: object): SaveReport {
  const started = performance.now();
  const { value, pages, diskPages } = monitorSnapshot(monitor, build, vm, extra);
  const bytes = writeSnapshotFile(file, value);
  return { file, bytes, pages, diskPages, milliseconds: Math.round(performance.now() - started) };
}

/** `monitorSnapshot` as the bytes of a file, in memory (sessions). */
export function encodeMonitorSnapshot(monitor: Monitor, build: (vm: VirtualMachine) => VmBuild, extra?: object): Uint8Array {
  return encodeSnapshot(monitorSnapshot(monitor, build, undefined, extra).value);
}

/** A monitor snapshot read and checked, ready to make its VMs again. */
export interface LoadedMonitorSnapshot {
  saved: ReadMonitor;
  builds: Map<string, SavedBuild>;
  extra: unknown;
  /** What errors say the snapshot is ("snapshot 'F'"). */
  what: string;
}

/** Reads a snapshot file of the monitor (`saveMonitorSnapshot`): every problem is one SnapshotFileError line. */
export function loadMonitorSnapshot(file: string): LoadedMonitorSnapshot {
  return readLoaded(readSnapshotFile(file), `snapshot '${file}'`);
}

/** The same from bytes in memory (sessions). */
export function decodeMonitorSnapshot(bytes: Uint8Array): LoadedMonitorSnapshot {
  return readLoaded(decodeSnapshot(bytes), 'snapshot');
}

function readLoaded(value: unknown, what: string): LoadedMonitorSnapshot {
  try {
    const r = new StateReader(value, 'snapshot');
    const saved = readMonitorSnapshot(r.value('monitor'));
    const builds = new Map<string, SavedBuild>();
    r.object('host').array('vms', (v, path) => {
      const b = new StateReader(v, path);
      const drives = b.array('drives', readDiskReference);
      const rng = b.value('rngSeed');
      builds.set(b.string('name'), { drives, rngSeed: rng === null ? null : integerItem(0, 2 ** 32 - 1)(rng, `${path}.rngSeed`) });
    }, saved.vms.length);
    for (const v of saved.vms) if (!builds.has(v.name)) throw new StateError(`snapshot.host.vms: nothing on how VM '${v.name}' was built`);
    return { saved, builds, extra: r.value('extra'), what };
  } catch (error) {
    if (error instanceof StateError) throw new SnapshotFileError(`${what} cannot be restored: ${error.message}`);
    throw error;
  }
}

/** How a VM made again talks to the host. */
export interface VmIo {
  console: (bytes: Uint8Array) => void;
  log?: (message: string) => void;
}

/** The saved VM named `name`, or a SnapshotFileError naming the ones there are. */
export function savedVm(loaded: LoadedMonitorSnapshot, name: string): ReadVm {
  const v = loaded.saved.vms.find((x) => x.name === name);
  if (v === undefined) throw new SnapshotFileError(`${loaded.what} has no VM named '${name}' (it has ${loaded.saved.vms.map((x) => x.name).join(', ')})`);
  return v;
}

/**
 * A VM of `monitor` made like the saved `v` (named `name` here), with its drives (each checked to be there and
 * unchanged) and rng, not yet restored: `homeNode` for a whole restore. Throws SnapshotFileError.
 */
function makeVm(monitor: Monitor, loaded: LoadedMonitorSnapshot, v: ReadVm, name: string, io: VmIo, disks: OpenDrive[], homeNode?: number, cell?: number): VirtualMachine {
  const fail = (why: string): SnapshotFileError => new SnapshotFileError(`${loaded.what} cannot be restored: VM ${v.name}: ${why}`);
  const build = loaded.builds.get(v.name)!;
  for (const disk of build.drives) {
    const problem = diskProblem(disk);
    if (problem !== undefined) throw fail(problem);
  }
  let vm: VirtualMachine;
  try {
    vm = monitor.createVm({
      name, vcpus: v.vcpus, memoryBytes: v.memoryBytes, net: v.net, share: v.scheduler?.share, homeNode, cell, sharing: v.sharing, balloon: v.balloon !== null,
      secondLevelEntries: v.secondLevelEntries, console: io.console, log: io.log,
    });
  } catch (error) {
    if (error instanceof MonitorError) throw fail(error.message);
    throw error;
  }
  try {
    // Through the monitor's page cache, as when the VM was made (a copy-on-write disk's base blocks).
    disks.push(...attachDrives(vm.machine, build.drives.map((d) => savedDrive(d)), `vm ${name}`, (baseId, metrics) => monitor.diskHook(vm, baseId, metrics)));
  } catch (error) {
    if (error instanceof DriveError) throw fail(error.message);
    throw error;
  }
  if (build.rngSeed !== null) vm.machine.attachVirtio(new VirtioRng(new SeededEntropy(build.rngSeed)));
  return vm;
}

/**
 * VM `name` of a loaded snapshot, made again in the running `monitor` under the name `as` on fresh machine
 * pages (`restoreVmInto`), with its drives; placed by the monitor, or at home on `place.homeNode` (and in
 * `place.cell`) when given. Throws SnapshotFileError; a VM that could not be restored is ended (stopped), and
 * its drives closed.
 */
export function restoreVm(
  monitor: Monitor, loaded: LoadedMonitorSnapshot, name: string, as: string, io: VmIo, place: { homeNode?: number; cell?: number } = {},
): { vm: VirtualMachine; disks: OpenDrive[] } {
  const v = savedVm(loaded, name);
  if (v.state !== 'running') throw new SnapshotFileError(`${loaded.what} cannot be restored: VM ${name} had ended (${v.state}: ${v.reason})`);
  const disks: OpenDrive[] = [];
  try {
    const vm = makeVm(monitor, loaded, v, as, io, disks, place.homeNode, place.cell);
    try {
      const others = otherVmsDisks(loaded);
      try {
        restoreVmInto(monitor, vm, loaded.saved, name, others.read);
      } finally {
        others.close();
      }
    } catch (error) {
      if (error instanceof StateError) throw new SnapshotFileError(`${loaded.what} cannot be restored: ${error.message}`);
      if (error instanceof OutOfMachineMemory) throw new SnapshotFileError(`${loaded.what} cannot be restored: VM ${name}: ${error.message}`);
      throw error;
    }
    return { vm, disks };
  } catch (error) {
    for (const d of disks) d.close();
    throw error;
  }
}

/**
 * Reads the pages a VM restored alone shares with another saved VM and that were saved as a block of that VM's
 * disk: from its image by path, checked to be there and unchanged first (once per image), opened read-only
 * until `close`. `read` throws StateError.
 */
function otherVmsDisks(loaded: LoadedMonitorSnapshot): { read: (ref: SavedDiskPage, into: Uint8Array) => void; close: () => void } {
  const open = new Map<DiskReference, OpenDrive>();
  const read = (ref: SavedDiskPage, into: Uint8Array): void => {
    const v = loaded.saved.vms.find((x) => x.id === ref.vm);
    const disk = v === undefined ? undefined : loaded.builds.get(v.name)?.drives[ref.disk];
    if (v === undefined || disk === undefined) throw new StateError(`snapshot.pages.blocks: page ${ref.mpn} is a block of disk ${ref.disk} of VM ${ref.vm}, which the snapshot does not have`);
    try {
      let image = open.get(disk);
      if (image === undefined) {
        const problem = diskProblem(disk);
        if (problem !== undefined) throw new StateError(`VM ${v.name}'s ${problem}, and it holds pages of this VM`);
        open.set(disk, image = openForReading(savedDrive(disk)));
      }
      image.read(ref.block * BLOCK_PAGE, into);
    } catch (error) {
      if (error instanceof StateError) throw error;
      throw new StateError(`snapshot.pages.blocks: cannot read block ${ref.block} of '${disk.file}': ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  return { read, close: () => { for (const image of open.values()) image.close(); } };
}

/** How the host makes a whole machine again (`restoreWhole`). */
export interface WholeRestoreHost {
  translate?: boolean;
  log?: (message: string) => void;
  timing?: MonitorOptions['timing'];
  policy?: MonitorOptions['policy'];
  scan?: MonitorOptions['scan'];
  /** Paging (the swap store is the host's, not the snapshot's: a machine is saved with none in it). */
  swap?: MonitorOptions['swap'];
  /**
   * What a machine file makes the monitor with (`up --restore`): the monitor is made with these options, and a
   * snapshot of a monitor made otherwise is refused, naming what differs. Its NUMA policy and scanner are the
   * snapshot's, as they were when saved (commands change them while the machine runs), not these.
   */
  made?: MonitorOptions;
}

/** Which of a monitor's settings differ between `saved` and `current`, by name. */
function differentSettings(saved: MonitorSettings, current: MonitorSettings): string[] {
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])] as (keyof MonitorSettings)[];
  return keys.filter((key) => !same(saved[key] ?? null, current[key] ?? null)).map((key) => (key === 'config' ? 'machine (CPUs, nodes, memory, distances)' : key));
}

/**
 * A new monitor exactly as the loaded whole snapshot saved it, every VM made again (ended ones too) with its
 * drives; `io` for each VM by name. A machine saved without a timing configuration gets `host.timing` (and
 * `host.policy`) if given: a fresh model, as if configured when it booted in fast mode. The content scanner
 * goes on where it was if the machine had one; one saved without gets `host.scan` if given, starting afresh.
 * With `host.made`, the monitor is made as those options say and must be the one saved. Throws
 * SnapshotFileError, having closed what it opened.
 */
export function restoreWhole(loaded: LoadedMonitorSnapshot, host: WholeRestoreHost, io: (name: string) => VmIo): { monitor: Monitor; disks: OpenDrive[] } {
  const { saved } = loaded;
  if (saved.whole === null) throw new SnapshotFileError(`${loaded.what} holds one VM, not a whole machine`);
  const s = saved.settings;
  const disks: OpenDrive[] = [];
  try {
    let monitor: Monitor;
    try {
      monitor = new Monitor(host.made !== undefined ? { ...host.made, policy: undefined, scan: undefined, translate: host.translate, log: host.log } : {
        config: s.config, costs: s.costs, quantumRounds: s.quantumRounds, mmu: s.mmu, placement: s.placement, gStageTlbEntries: s.gStageTlbEntries, subnet: s.subnet, cells: s.cells,
        diskCache: s.diskCache, shareBootImages: s.shareBootImages, gang: s.gang, idleBalance: s.idleBalance, balancePeriodRounds: s.balancePeriodRounds, borrow: s.borrow, balloonCosts: s.balloonCosts,
        // A machine saved without a timing configuration may be given one (restoreMonitor), and then a policy.
        timing: s.timing ?? host.timing, policy: s.timing === null ? host.policy : undefined, translate: host.translate, log: host.log, swap: host.swap,
      });
    } catch (error) {
      throw new SnapshotFileError(`${loaded.what} cannot be restored: its machine: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (host.made !== undefined) {
      const differ = differentSettings(s, monitorSettings(monitor));
      if (differ.length > 0) throw new SnapshotFileError(`${loaded.what} holds a machine made otherwise: its ${differ.join(', ')} differ${differ.length === 1 ? 's' : ''}`);
    }
    // With several cells, each VM confined to one goes back into it (a spanning one spans again from its home).
    let vmCells: number[][] | undefined;
    let placed: number[][] | undefined;
    try {
      vmCells = savedVmCells(saved.whole, saved.vms.length, monitor.cells.count);
      placed = savedVmCells(saved.whole, saved.vms.length, monitor.cells.count, 'vmPlaced') ?? vmCells;
    } catch (error) {
      if (error instanceof StateError) throw new SnapshotFileError(`${loaded.what} cannot be restored: ${error.message}`);
      throw error;
    }
    const vms = saved.vms.map((v, i) => makeVm(monitor, loaded, v, v.name, io(v.name), disks, v.pmap.homeNode, placed?.[i]?.length === 1 ? placed[i]![0] : undefined));
    // The cells a balancer made a VM depend on since it was placed (its vCPUs' cells come with the scheduler).
    vms.forEach((vm, i) => {
      if (!same(vm.cells, placed?.[i] ?? vm.cells)) return; // placed elsewhere: the restore's own check says so
      for (const cell of vmCells?.[i] ?? []) if (!vm.cells.includes(cell)) monitor.vmDependsOn(vm, cell);
    });
    try {
      restoreMonitor(monitor, saved, vms);
      if (monitor.scanner === undefined && host.scan !== undefined) monitor.setScan(host.scan);
    } catch (error) {
      if (error instanceof StateError || error instanceof MonitorError) throw new SnapshotFileError(`${loaded.what} cannot be restored: ${error.message}`);
      throw error;
    }
    return { monitor, disks };
  } catch (error) {
    for (const d of disks) d.close();
    throw error;
  }
}

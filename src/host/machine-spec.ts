// The machine `run` builds, as plain data: what a snapshot records so that a restore builds the same one.

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { layoutMachine, type MachineConfig } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { Machine } from '../board/machine.js';
import { readMachineConfig, SnapshotError } from '../board/snapshot.js';
import { Simulation } from '../board/simulation.js';
import { configureTiming, enableTiming } from '../board/timing-mode.js';
import { SeededEntropy, VirtioRng } from '../devices/virtio/rng.js';
import type { VirtioBlk } from '../devices/virtio/blk.js';
import { readSavedClusters } from '../devices/virtio/cow-block.js';
import { StateError, StateReader } from '../memory/state.js';
import type { CacheGeometry } from '../timing/cache.js';
import type { TimingLatencies, TimingModel } from '../timing/timing-model.js';
import { attachDrives, type DriveSpec, type OpenDrive } from './drives.js';
import { baseIdentity, hashImage } from './image-hash.js';

/** Everything that decides which machine is built (not what runs on it: that is loaded, or restored). */
export interface MachineSpec {
  config: MachineConfig;
  time: 'instructions' | 'host';
  /** The built-in SBI in TypeScript (false: M-mode firmware or a bare-metal ELF). */
  builtinSbi: boolean;
  /** Timing mode from the first instruction ('start') or only in regions of interest ('roi'), or none. */
  timing: { from: 'start' | 'roi'; latencies: TimingLatencies; cache?: Partial<CacheGeometry> } | null;
  drives: DriveSpec[];
  /** A virtio-rng with this seed, after the drives. */
  rngSeed: number | null;
}

/** How the machine talks to the host. */
export interface MachineIo {
  console: (bytes: Uint8Array) => void;
  log: (message: string) => void;
  hostMilliseconds: () => number;
  translate: boolean;
}

export interface BuiltMachine {
  machine: Machine;
  model: TimingModel | undefined;
  simulation: Simulation;
  /** The drives' backends, to close when the machine stops. */
  disks: OpenDrive[];
}

/**
 * Builds the machine of `spec`: RAM, harts, devices, the timing configuration, statistics, drives (which
 * may throw DriveError) and the rng, in that order, which is the order of the virtio slots.
 */
export function buildMachine(spec: MachineSpec, io: MachineIo): BuiltMachine {
  const machine = new Machine({
    config: spec.config,
    time: spec.time,
    hostMilliseconds: io.hostMilliseconds,
    console: io.console,
    builtinSbi: spec.builtinSbi,
    log: io.log,
    translate: io.translate,
    // The hardware, so that faults can be injected (the control socket's inject-fault, docs/faults.md).
    hardware: new MachineHardware(layoutMachine(spec.config)),
  });
  let model: TimingModel | undefined;
  if (spec.timing?.from === 'start') model = enableTiming(machine, spec.timing.latencies, spec.timing.cache);
  else if (spec.timing?.from === 'roi') model = configureTiming(machine, spec.timing.latencies, spec.timing.cache);
  if (model !== undefined) machine.hardware!.attachTiming(model);
  // Statistics, and the answers to the guest's requests (mbctl): from the first instruction.
  const simulation = new Simulation(machine, model);
  const disks = attachDrives(machine, spec.drives);
  if (spec.rngSeed !== null) machine.attachVirtio(new VirtioRng(new SeededEntropy(spec.rngSeed)));
  return { machine, model, simulation, disks };
}

/**
 * A disk as a snapshot refers to it: the image by where it is and what it held (never a copy of it). A
 * copy-on-write disk's image is its base, which it never writes; with `snapshot`, its changed clusters are in
 * the snapshot (`clusters`: they lived in the process's memory); with `overlay`, the overlay file is referenced
 * as an image is, by path and SHA-256 (docs/snapshots.md, "Copy-on-write disks").
 */
export interface DiskReference extends DriveSpec {
  size: number;
  sha256: string;
  overlaySha256?: string;
}

/** Is `drive` a copy-on-write disk (its image a base that is only read)? */
function copyOnWrite(drive: DriveSpec): boolean {
  return drive.snapshot === true || drive.overlay !== undefined;
}

/**
 * `drive` as a snapshot refers to it. A plain image is read whole to hash it (the guest's writes go straight to
 * the file, so it is current); a copy-on-write base is hashed once per file version in this process (it is never
 * written); an overlay file is hashed whole; a snapshot=on disk's changed clusters are taken from `device`, its
 * virtio-blk. Throws SnapshotError when they are not at hand, and the file system's errors.
 */
export function diskReference(drive: DriveSpec, device?: VirtioBlk): DiskReference {
  if (!copyOnWrite(drive)) {
    const { size, sha256 } = hashImage(drive.file);
    return { file: resolve(drive.file), readOnly: drive.readOnly, size, sha256: sha256.toString('hex') };
  }
  const base = { file: resolve(drive.file), readOnly: false, size: statSync(drive.file).size, sha256: baseIdentity(drive.file) };
  if (drive.overlay !== undefined) return { ...base, overlay: resolve(drive.overlay), overlaySha256: hashImage(drive.overlay).sha256.toString('hex') };
  const clusters = device?.savedClusters();
  if (clusters === undefined) throw new SnapshotError(`disk '${drive.file}' (snapshot=on): its changed clusters are not at hand to save`);
  return { ...base, snapshot: true, clusters };
}

/**
 * The drive to open for a saved reference: a snapshot=on disk starts with the clusters the snapshot holds (or,
 * `clusters` false, as the drive is described: what a later snapshot saves of it is read from its device).
 */
export function savedDrive(disk: DiskReference, clusters = true): DriveSpec {
  if (disk.overlay !== undefined) return { file: disk.file, readOnly: false, overlay: disk.overlay };
  if (disk.snapshot === true) return { file: disk.file, readOnly: false, snapshot: true, ...(clusters ? { clusters: disk.clusters } : {}) };
  return { file: disk.file, readOnly: disk.readOnly };
}

/**
 * Why `disk` cannot be used for a restore (an image or overlay missing, or not what it was when saved), in one
 * line, or undefined when it is the same.
 */
export function diskProblem(disk: DiskReference): string | undefined {
  const gone = (what: string, error: unknown): string => {
    const code = (error as NodeJS.ErrnoException).code;
    return `${what} is gone: ${code === 'ENOENT' ? 'no such file' : String(code ?? error)}`;
  };
  let now: { size: number; sha256: string };
  try {
    now = copyOnWrite(disk) ? { size: statSync(disk.file).size, sha256: baseIdentity(disk.file) } : diskReference(disk);
  } catch (error) {
    return gone(`disk image '${disk.file}'`, error);
  }
  if (now.size !== disk.size || now.sha256 !== disk.sha256) return `disk image '${disk.file}' changed since the snapshot was taken (its SHA-256 differs)`;
  if (disk.overlay === undefined) return undefined;
  let overlay: string;
  try {
    overlay = hashImage(disk.overlay).sha256.toString('hex');
  } catch (error) {
    return gone(`overlay '${disk.overlay}'`, error);
  }
  if (overlay !== disk.overlaySha256) {
    return `overlay '${disk.overlay}' changed since the snapshot was taken (its SHA-256 differs): a snapshot refers to an overlay file, it does not copy it`;
  }
  return undefined;
}

/** A DiskReference written into a snapshot, checked (StateError naming `path`). */
export function readDiskReference(value: unknown, path: string): DiskReference {
  const d = new StateReader(value, path);
  const hex = (key: string): string => {
    const v = d.string(key);
    if (!/^[0-9a-f]{64}$/.test(v)) throw new StateError(`${path}.${key}: not a SHA-256`);
    return v;
  };
  const ref: DiskReference = { file: d.string('file'), readOnly: d.boolean('readOnly'), size: d.number('size', 0), sha256: hex('sha256') };
  const snapshot = d.has('snapshot') && d.boolean('snapshot');
  const overlay = d.has('overlay') ? d.string('overlay') : undefined;
  if (snapshot && overlay !== undefined) throw new StateError(`${path}: both snapshot=on and an overlay file`);
  if ((snapshot || overlay !== undefined) && ref.readOnly) throw new StateError(`${path}: a copy-on-write disk saved read-only`);
  if (snapshot) return { ...ref, snapshot: true, clusters: readSavedClusters(d.value('clusters'), ref.size, `${path}.clusters`) };
  if (overlay !== undefined) return { ...ref, overlay, overlaySha256: hex('overlaySha256') };
  if (d.has('clusters') || d.has('overlaySha256')) throw new StateError(`${path}: a plain image saved with a copy-on-write disk's fields`);
  return ref;
}

/** Reads a MachineSpec written into a snapshot, checked (StateError). */
export function readMachineSpec(value: unknown): { spec: MachineSpec; disks: DiskReference[] } {
  const r = new StateReader(value, 'snapshot.run.spec');
  const time = r.string('time');
  if (time !== 'instructions') throw new StateError(`snapshot.run.spec.time: '${time}'`);
  const disks = r.array('drives', readDiskReference);
  let timing: MachineSpec['timing'] = null;
  if (r.value('timing') !== null) {
    const t = r.object('timing');
    const from = t.string('from');
    if (from !== 'start' && from !== 'roi') throw new StateError(`snapshot.run.spec.timing.from: '${from}'`);
    // The latencies and cache are checked against the model they build when the machine is restored.
    timing = { from, latencies: t.value('latencies') as TimingLatencies, cache: t.has('cache') ? t.value('cache') as Partial<CacheGeometry> : undefined };
  }
  const spec: MachineSpec = {
    config: readMachineConfig(r.value('config'), 'snapshot.run.spec.config'),
    time,
    builtinSbi: r.boolean('builtinSbi'),
    timing,
    drives: disks.map((d) => savedDrive(d)),
    rngSeed: r.value('rngSeed') === null ? null : r.number('rngSeed', 0, 2 ** 32 - 1),
  };
  return { spec, disks };
}

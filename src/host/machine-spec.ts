// The machine `run` builds, as plain data: what a snapshot records so that a restore builds the same one.

import { resolve } from 'node:path';
import { layoutMachine, type MachineConfig } from '../board/address-map.js';
import { MachineHardware } from '../board/hardware.js';
import { Machine } from '../board/machine.js';
import { readMachineConfig, SnapshotError } from '../board/snapshot.js';
import { Simulation } from '../board/simulation.js';
import { configureTiming, enableTiming } from '../board/timing-mode.js';
import { SeededEntropy, VirtioRng } from '../devices/virtio/rng.js';
import { StateError, StateReader } from '../memory/state.js';
import type { CacheGeometry } from '../timing/cache.js';
import type { TimingLatencies, TimingModel } from '../timing/timing-model.js';
import { attachDrives, type DriveSpec, type OpenDrive } from './drives.js';
import { hashImage } from './image-hash.js';

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

/** A disk image as a snapshot refers to it: where, and what it held (never a copy of it). */
export interface DiskReference extends DriveSpec {
  size: number;
  sha256: string;
}

/**
 * Reads the whole image once to hash it (the guest's writes go straight to the file, so it is current).
 * A copy-on-write disk is refused: its overlay is part of the VM's state, which a snapshot does not hold yet.
 */
export function diskReference(drive: DriveSpec): DiskReference {
  if (drive.snapshot === true || drive.overlay !== undefined) {
    throw new SnapshotError(`disk '${drive.file}' is copy-on-write (${drive.overlay === undefined ? 'snapshot=on' : `overlay=${drive.overlay}`}): snapshots of copy-on-write disks are not supported yet`);
  }
  const { size, sha256 } = hashImage(drive.file);
  return { file: resolve(drive.file), readOnly: drive.readOnly, size, sha256: sha256.toString('hex') };
}

/**
 * Why `disk` cannot be used for a restore (missing, or not what it was when saved), in one line, or
 * undefined when it is the same image.
 */
export function diskProblem(disk: DiskReference): string | undefined {
  let now: DiskReference;
  try {
    now = diskReference(disk);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return `disk image '${disk.file}' is gone: ${code === 'ENOENT' ? 'no such file' : String(code ?? error)}`;
  }
  if (now.size !== disk.size || now.sha256 !== disk.sha256) return `disk image '${disk.file}' changed since the snapshot was taken (its SHA-256 differs)`;
  return undefined;
}

/** Reads a MachineSpec written into a snapshot, checked (StateError). */
export function readMachineSpec(value: unknown): { spec: MachineSpec; disks: DiskReference[] } {
  const r = new StateReader(value, 'snapshot.run.spec');
  const time = r.string('time');
  if (time !== 'instructions') throw new StateError(`snapshot.run.spec.time: '${time}'`);
  const disks = r.array('drives', (v, path) => {
    const d = new StateReader(v, path);
    const sha256 = d.string('sha256');
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new StateError(`${path}.sha256: not a SHA-256`);
    return { file: d.string('file'), readOnly: d.boolean('readOnly'), size: d.number('size', 0), sha256 };
  });
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
    drives: disks.map((d) => ({ file: d.file, readOnly: d.readOnly })),
    rngSeed: r.value('rngSeed') === null ? null : r.number('rngSeed', 0, 2 ** 32 - 1),
  };
  return { spec, disks };
}

// Saving a running `mirrorball run` machine to a file and reading one back: the machine, how it was built, and its disks.

import { performance } from 'node:perf_hooks';
import { machineDisks } from '../board/disk-pages.js';
import { restoreMachine, saveMachine, type MachineSnapshot } from '../board/snapshot.js';
import { StateError, StateReader } from '../memory/state.js';
import { diskProblem, diskReference, readMachineSpec, type BuiltMachine, type DiskReference, type MachineSpec } from './machine-spec.js';
import { readSnapshotFile, SnapshotFileError, writeSnapshotFile } from './snapshot-file.js';

/** What was saved and how long it took (the control socket's answer to `snapshot-save`). */
export interface SaveReport {
  file: string;
  bytes: number;
  /** Non-zero memory pages written (zero pages are left out). */
  pages: number;
  /** Pages stored by reference to a block of a disk the file references (not written). */
  diskPages: number;
  milliseconds: number;
}

/**
 * Saves `built` (made from `spec`) to `file`: the machine, the spec with each disk's path and content hash,
 * and `extra`, plain data the caller wants back on restore (what `run` prints in config.json). Call it
 * between rounds. Throws SnapshotError (board/snapshot.ts) for a machine that cannot be saved.
 */
export function saveRunSnapshot(file: string, built: BuiltMachine, spec: MachineSpec, extra: object): SaveReport {
  const started = performance.now();
  const machine: MachineSnapshot = saveMachine(built.machine, spec.config, built.simulation);
  const devices = machineDisks(built.machine);
  const drives: DiskReference[] = spec.drives.map((drive, k) => diskReference(drive, devices[k]));
  const bytes = writeSnapshotFile(file, { machine, run: { spec: { ...spec, drives }, extra } });
  const pages = machine.memory.reduce((sum, m) => sum + m.data.reduce((n, d) => n + d.length / 4096, 0), 0);
  const diskPages = machine.memory.reduce((sum, m) => sum + m.blocks.length / 3, 0);
  return { file, bytes, pages, diskPages, milliseconds: Math.round(performance.now() - started) };
}

/** A snapshot file read and checked, ready to build its machine and restore it. */
export interface LoadedSnapshot {
  spec: MachineSpec;
  disks: DiskReference[];
  extra: unknown;
  /** Puts the saved machine into `built`, made by buildMachine(spec): throws SnapshotFileError. */
  restoreInto(built: BuiltMachine): void;
}

/**
 * Reads `file` and checks what can be checked before a machine is built: the file's integrity and version,
 * the spec, and that every disk is still there and unchanged. Every problem is one SnapshotFileError line.
 */
export function loadRunSnapshot(file: string): LoadedSnapshot {
  const state = readSnapshotFile(file);
  const fail = (why: string): SnapshotFileError => new SnapshotFileError(`snapshot '${file}' cannot be restored: ${why}`);
  try {
    const r = new StateReader(state, 'snapshot');
    const run = r.object('run');
    const { spec, disks } = readMachineSpec(run.value('spec'));
    for (const disk of disks) {
      const problem = diskProblem(disk);
      if (problem !== undefined) throw fail(problem);
    }
    const machineState = r.value('machine');
    return {
      spec,
      disks,
      extra: run.value('extra'),
      restoreInto: (built) => {
        try {
          restoreMachine(built.machine, machineState, built.simulation);
        } catch (error) {
          if (error instanceof StateError) throw fail(error.message);
          throw error;
        }
      },
    };
  } catch (error) {
    if (error instanceof StateError) throw fail(error.message);
    throw error;
  }
}

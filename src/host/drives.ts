// Attaching the user's raw disk images to the machine as virtio-blk devices.

import type { Machine } from '../board/machine.js';
import { VirtioBlk } from '../devices/virtio/blk.js';
import { FileBlockBackend } from './file-block.js';

/** One `--drive`: a raw image file, optionally read-only. */
export interface DriveSpec {
  file: string;
  readOnly: boolean;
}

/** Why a disk image could not be opened, in one line. */
export class DriveError extends Error {}

/**
 * Opens each image and plugs it into the next free virtio-mmio slot, so the first drive is /dev/vda.
 * Returns the backends so the caller can close them when the machine stops.
 */
export function attachDrives(machine: Machine, drives: readonly DriveSpec[]): FileBlockBackend[] {
  const opened: FileBlockBackend[] = [];
  for (const [index, drive] of drives.entries()) {
    let backend: FileBlockBackend;
    try {
      backend = FileBlockBackend.open(drive.file, { readOnly: drive.readOnly });
    } catch (error) {
      for (const b of opened) b.close();
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied'
        : code === 'EISDIR' ? 'is a directory' : code === 'EROFS' ? 'read-only file system (use readonly=on)' : String(code ?? error);
      throw new DriveError(`cannot open disk image '${drive.file}': ${why}`);
    }
    opened.push(backend);
    machine.attachVirtio(new VirtioBlk(backend, { id: `mirrorball-disk${index}`, log: machine.log }));
  }
  return opened;
}

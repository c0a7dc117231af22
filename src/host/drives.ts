// Attaching the user's raw disk images to the machine as virtio-blk devices: plain, read-only or copy-on-write.

import { existsSync, openSync } from 'node:fs';
import type { Machine } from '../board/machine.js';
import { noReadMetrics, VirtioBlk, type BlockBackend, type BlockPageHook, type BlockReadMetrics } from '../devices/virtio/blk.js';
import { CowBlockBackend, MemoryClusterStore, type ClusterStore, type SavedClusters } from '../devices/virtio/cow-block.js';
import { acquire, DiskInUseError, type Release } from './disk-lock.js';
import { FileBlockBackend } from './file-block.js';
import { baseIdentity, hashImage } from './image-hash.js';
import { createOverlayFile, FileClusterStore, fileIo, OverlayError } from './overlay-file.js';

/** One `--drive`: a raw image file, read-only, writable, or the base of a copy-on-write disk. */
export interface DriveSpec {
  file: string;
  readOnly: boolean;
  /**
   * Copy-on-write with the changed clusters in this process's memory, gone when the VM ends (QEMU's
   * snapshot=on): `file` is only read.
   */
  snapshot?: boolean;
  /** Copy-on-write with the changed clusters kept in this overlay file (made when it does not exist). */
  overlay?: string;
  /**
   * With `snapshot`: the changed clusters the disk starts with (a restore: the snapshot held them, checked by
   * readSavedClusters against the base's size), instead of none.
   */
  clusters?: SavedClusters;
}

/** A drive's backend as the machine uses it, and what to call when the machine stops. */
export interface OpenDrive extends BlockBackend {
  close(): void;
  /** A copy-on-write disk's base, by content (`baseIdentity`): what a disk cache keys its blocks by. */
  readonly baseId?: string;
}

/**
 * Gives a copy-on-write disk over base `baseId` a page hook (a monitor's disk cache), or undefined for none;
 * `metrics` is where the device counts the shape of its reads.
 */
export type PageHookFactory = (baseId: string, metrics: BlockReadMetrics) => BlockPageHook | undefined;

/** Why a disk image could not be opened, in one line. */
export class DriveError extends Error {}

/**
 * Opens each image and plugs it into the next free virtio-mmio slot, so the first drive is /dev/vda.
 * `owner` names the VM in the message when a disk is already in use. Returns the backends so the caller can
 * close them when the machine stops; closing releases the disk.
 */
export function attachDrives(machine: Machine, drives: readonly DriveSpec[], owner = 'a machine of this process', pageHook?: PageHookFactory): OpenDrive[] {
  const opened: OpenDrive[] = [];
  for (const [index, drive] of drives.entries()) {
    let backend: OpenDrive;
    try {
      backend = openDrive(drive, owner);
    } catch (error) {
      for (const b of opened) b.close();
      throw error;
    }
    opened.push(backend);
    const metrics = noReadMetrics();
    const pages = backend.baseId === undefined ? undefined : pageHook?.(backend.baseId, metrics);
    machine.attachVirtio(new VirtioBlk(backend, { id: `mirrorball-disk${index}`, log: machine.log, pages, metrics, baseId: backend.baseId }));
  }
  return opened;
}

/**
 * One drive's backend. A plain image is taken exclusively when writable, shared when read-only; a
 * copy-on-write disk takes its base shared (opened read-only: the base is never written) and its overlay
 * file exclusively. Throws DriveError, having released what it took.
 */
export function openDrive(drive: DriveSpec, owner: string): OpenDrive {
  const cow = drive.snapshot === true || drive.overlay !== undefined;
  const releases: Release[] = [];
  const undo = () => { for (const release of releases.splice(0).reverse()) release(); };
  try {
    releases.push(acquire(drive.file, drive.readOnly || cow ? 'shared' : 'exclusive', owner));
    const baseId = cow ? identify(drive.file) : undefined;
    const base = openImage(drive.file, drive.readOnly || cow);
    if (!cow) return closing(base, () => base.close(), undo);
    let store: ClusterStore;
    try {
      store = drive.overlay !== undefined ? openOverlay(drive.overlay, drive.file, owner, releases)
        : drive.clusters !== undefined ? MemoryClusterStore.from(drive.clusters, base.size) : new MemoryClusterStore();
    } catch (error) {
      base.close();
      throw error;
    }
    const disk = new CowBlockBackend(base, store);
    return { ...closing(disk, () => { disk.close(); base.close(); }, undo), baseId };
  } catch (error) {
    undo();
    if (error instanceof DiskInUseError || error instanceof OverlayError) throw new DriveError(error.message);
    throw error;
  }
}

/**
 * A disk opened only to read it, taking no lock and changing nothing: a plain image read-only, or a copy-on-write
 * disk over its base read-only with the clusters `drive.clusters` gives (snapshot=on) or its overlay file opened
 * read-only. A snapshot's restore reads pages saved as another VM's disk blocks through it. Throws DriveError.
 */
export function openForReading(drive: DriveSpec): OpenDrive {
  const base = openImage(drive.file, true);
  if (drive.overlay === undefined && drive.snapshot !== true) return closing(base, () => base.close(), () => {});
  let store: ClusterStore;
  try {
    if (drive.overlay === undefined) store = MemoryClusterStore.from(drive.clusters ?? { clusters: new Uint32Array(0), data: new Uint8Array(0) }, base.size);
    else {
      const io = fileIo(openSync(drive.overlay, 'r'));
      try {
        store = new FileClusterStore(io, { size: base.size, sha256: Buffer.from(identify(drive.file), 'hex') }, drive.overlay);
      } catch (error) {
        io.close();
        throw error;
      }
    }
  } catch (error) {
    base.close();
    if (error instanceof OverlayError) throw new DriveError(error.message);
    if (error instanceof DriveError) throw error;
    throw new DriveError(`cannot open overlay '${drive.overlay}': ${why(error)}`);
  }
  const disk = new CowBlockBackend(base, store);
  return closing(disk, () => { disk.close(); base.close(); }, () => {});
}

/** `backend` with a close that runs `close` and then releases the disk, once. */
function closing(backend: BlockBackend, close: () => void, release: () => void): OpenDrive {
  let closed = false;
  return {
    size: backend.size,
    readOnly: backend.readOnly,
    read: (offset, into) => backend.read(offset, into),
    write: (offset, data) => backend.write(offset, data),
    flush: () => backend.flush(),
    ...(backend.baseBlock === undefined ? {} : { baseBlock: (index: number) => backend.baseBlock!(index) }),
    ...(backend.savedClusters === undefined ? {} : { savedClusters: () => backend.savedClusters!() }),
    close: () => {
      if (closed) return;
      closed = true;
      try {
        close();
      } finally {
        release();
      }
    },
  };
}

/** The base's identity for the disk cache (its SHA-256), or a DriveError in one line. */
function identify(file: string): string {
  try {
    return baseIdentity(file);
  } catch (error) {
    throw new DriveError(`cannot read disk image '${file}': ${why(error)}`);
  }
}

function openImage(file: string, readOnly: boolean): FileBlockBackend {
  try {
    return FileBlockBackend.open(file, { readOnly });
  } catch (error) {
    throw new DriveError(`cannot open disk image '${file}': ${why(error)}`);
  }
}

/** The overlay file of `base`, made empty when it does not exist, taken exclusively. */
function openOverlay(path: string, base: string, owner: string, releases: Release[]): ClusterStore {
  releases.push(acquire(path, 'exclusive', owner));
  let identity: { size: number; sha256: Buffer };
  try {
    identity = hashImage(base);
  } catch (error) {
    throw new DriveError(`cannot read disk image '${base}': ${why(error)}`);
  }
  let fd: number;
  try {
    if (!existsSync(path)) createOverlayFile(path, identity);
    fd = openSync(path, 'r+');
  } catch (error) {
    throw new DriveError(`cannot open overlay '${path}': ${why(error)}`);
  }
  const io = fileIo(fd);
  try {
    return new FileClusterStore(io, identity, path);
  } catch (error) {
    io.close();
    throw error;
  }
}

function why(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied'
    : code === 'EISDIR' ? 'is a directory' : code === 'EROFS' ? 'read-only file system (use readonly=on or snapshot=on)' : String(code ?? error);
}

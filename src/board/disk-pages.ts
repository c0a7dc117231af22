// Memory pages equal to a block of an attached disk, which snapshots store by reference (docs/snapshots.md).

import { BLOCK_PAGE, VirtioBlk } from '../devices/virtio/blk.js';
import { StateError } from '../memory/state.js';
import type { Machine } from './machine.js';

/**
 * A machine's disks as a snapshot numbers them: its virtio-blk devices in slot order, so disk k is the k-th
 * drive the host attached (host/drives.ts attaches every drive, in order, before any other block device).
 */
export function machineDisks(machine: Machine): VirtioBlk[] {
  return machine.virtioTransports().flatMap((t) => (t?.device instanceof VirtioBlk ? [t.device] : []));
}

/** A page's bytes are those of `block` of disk `disk` (its index in `machineDisks`). */
export interface BlockSource {
  disk: number;
  block: number;
}

/**
 * Compares pages with disk blocks read now from the disks' backends: the only test a page must pass to be
 * stored by reference, whatever record named it a candidate (a page filled from the disk may have been
 * written since by the CPU or another device's DMA, or the disk's block written).
 */
export class BlockComparer {
  private readonly scratch = new Uint8Array(BLOCK_PAGE);
  private readonly words = new Int32Array(this.scratch.buffer);
  /** Blocks read to compare (what a save spent on it). */
  reads = 0;

  constructor(private readonly disks: readonly VirtioBlk[]) {}

  /** True if the 4 KiB `page` (4-byte aligned) holds exactly block `source.block` of disk `source.disk`; false too when the block cannot be read. */
  equal(source: BlockSource, page: Uint8Array): boolean {
    const disk = this.disks[source.disk];
    if (disk === undefined || source.block >= disk.blocks) return false;
    try {
      this.reads++;
      disk.readBlock(source.block, this.scratch);
    } catch {
      return false;
    }
    const words = new Int32Array(page.buffer, page.byteOffset, BLOCK_PAGE / 4);
    for (let i = 0; i < words.length; i++) if (words[i] !== this.words[i]) return false;
    return true;
  }
}

/**
 * Block `block` of disk `disk` of `disks`, read into `into` (a page being restored). `path` names the reference
 * in errors. Throws StateError for a disk or block that is not there, or a block the host cannot read.
 */
export function readDiskPage(disks: readonly VirtioBlk[], disk: number, block: number, into: Uint8Array, path: string): void {
  const device = disks[disk];
  if (device === undefined) throw new StateError(`${path}: a page of disk ${disk}, and the machine has ${disks.length}`);
  if (!(Number.isInteger(block) && block >= 0 && block < device.blocks)) throw new StateError(`${path}: block ${block} of disk ${disk}, which has ${device.blocks}`);
  try {
    device.readBlock(block, into);
  } catch (error) {
    throw new StateError(`${path}: cannot read block ${block} of disk ${disk}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

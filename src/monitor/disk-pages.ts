// Machine pages equal to a block of a VM's disk, which monitor snapshots store by reference (docs/snapshots.md):
// found through each disk's record of the pages it filled and the page cache's slots, compared before saved.

import { BlockComparer, machineDisks, readDiskPage } from '../board/disk-pages.js';
import { MAX_AMOUNT, StateError, StateReader } from '../memory/state.js';
import { FREE, PAGE } from './machine-memory.js';
import type { Monitor } from './monitor.js';
import type { PageCacheState } from './page-cache.js';
import type { VirtualMachine } from './vm.js';

/** Numbers per reference in `PageImage.blocks`: machine page, VM id, disk (its index among the VM's disks), block. */
export const DISK_PAGE_FIELDS = 4;

/** A machine page stored as block `block` of disk `disk` of VM `vm` (by id). */
export interface DiskPage {
  vm: number;
  disk: number;
  block: number;
}

/**
 * Per machine page, the disk blocks it may equal: each running VM's disks' record of the guest pages they filled
 * with a block and have not written since, through its pmap (of `vms` only); and with `cache`, the page cache's
 * disk blocks, each through a disk of any VM over the same base whose overlay does not hold the block.
 */
export function diskCandidates(vms: readonly VirtualMachine[], cache?: { state: PageCacheState; vms: readonly VirtualMachine[] }): Map<number, DiskPage[]> {
  const out = new Map<number, DiskPage[]>();
  const add = (mpn: number, source: DiskPage): void => {
    const list = out.get(mpn);
    if (list === undefined) out.set(mpn, [source]);
    else list.push(source);
  };
  for (const vm of vms) {
    if (vm.state !== 'running') continue;
    const pmap = vm.pmap;
    machineDisks(vm.machine).forEach((device, disk) => {
      for (const [address, block] of device.filledPages()) {
        const offset = address - pmap.base;
        if (offset < 0 || offset >= pmap.size) continue;
        const mpn = pmap.lookup(offset / PAGE);
        if (mpn !== FREE) add(mpn, { vm: vm.id, disk, block });
      }
    });
  }
  if (cache !== undefined) {
    const bases = new Map<string, { vm: VirtualMachine; disk: number }[]>();
    for (const vm of cache.vms) {
      machineDisks(vm.machine).forEach((device, disk) => {
        if (device.baseId === undefined) return;
        const list = bases.get(device.baseId) ?? [];
        list.push({ vm, disk });
        bases.set(device.baseId, list);
      });
    }
    cache.state.keys.forEach((key, slot) => {
      const mpn = cache.state.pages[slot]!;
      if (key === null || mpn === FREE || !key.startsWith('disk:')) return;
      const at = key.lastIndexOf(':');
      const block = Number(key.slice(at + 1));
      const over = bases.get(key.slice('disk:'.length, at));
      const source = over?.find((d) => machineDisks(d.vm.machine)[d.disk]!.baseBlock(block));
      if (source !== undefined) add(mpn, { vm: source.vm.id, disk: source.disk, block });
    });
  }
  return out;
}

/** Compares machine pages with the VMs' disk blocks as they are now (board/disk-pages.ts's BlockComparer per VM). */
export class DiskPageComparer {
  private readonly comparers = new Map<number, BlockComparer>();

  constructor(private readonly monitor: Monitor) {}

  equal(source: DiskPage, page: Uint8Array): boolean {
    let comparer = this.comparers.get(source.vm);
    if (comparer === undefined) {
      const vm = this.monitor.vms[source.vm];
      if (vm === undefined) return false;
      this.comparers.set(source.vm, comparer = new BlockComparer(machineDisks(vm.machine)));
    }
    return comparer.equal({ disk: source.disk, block: source.block }, page);
  }
}

/** A saved reference: machine page `mpn` is `source`'s block. */
export interface SavedDiskPage extends DiskPage {
  mpn: number;
}

/**
 * The references of a saved page image (`blocks`), checked against the machine (`totalPages`) and the pages
 * saved whole (`pages`): each page once. Throws StateError.
 */
export function readDiskPages(p: StateReader, totalPages: number, pages: ReadonlyMap<number, Uint8Array>): SavedDiskPage[] {
  const blocks = p.typed('blocks', Float64Array);
  if (blocks.length % DISK_PAGE_FIELDS !== 0) throw new StateError(`${p.path}.blocks: not quadruples of page, VM, disk and block`);
  const out: SavedDiskPage[] = [];
  const seen = new Set<number>();
  for (let k = 0; k < blocks.length; k += DISK_PAGE_FIELDS) {
    const [mpn, vm, disk, block] = [blocks[k]!, blocks[k + 1]!, blocks[k + 2]!, blocks[k + 3]!];
    if (![mpn, vm, disk, block].every((v) => Number.isInteger(v) && v >= 0 && v <= MAX_AMOUNT) || mpn >= totalPages) {
      throw new StateError(`${p.path}.blocks[${k}]: not a machine page, VM, disk and block`);
    }
    if (seen.has(mpn) || pages.has(mpn)) throw new StateError(`${p.path}.blocks[${k}]: page ${mpn} twice`);
    seen.add(mpn);
    out.push({ mpn, vm, disk, block });
  }
  return out;
}

/**
 * The bytes of each saved reference, read from the disks of `vms` (by id; a VM not there is `other`'s to
 * read, when given). Every block is read before anything is written. Throws StateError.
 */
export function readDiskPageBytes(refs: readonly SavedDiskPage[], vms: ReadonlyMap<number, VirtualMachine>, other?: (ref: SavedDiskPage, into: Uint8Array) => void): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  refs.forEach((ref, i) => {
    const into = new Uint8Array(PAGE);
    const vm = vms.get(ref.vm);
    const path = `snapshot.pages.blocks[${i * DISK_PAGE_FIELDS}]`;
    if (vm !== undefined) readDiskPage(machineDisks(vm.machine), ref.disk, ref.block, into, path);
    else if (other !== undefined) other(ref, into);
    else throw new StateError(`${path}: page ${ref.mpn} is a block of a disk of VM ${ref.vm}, which this restore does not make`);
    out.set(ref.mpn, into);
  });
  return out;
}

// Snapshots of a bare machine store a page equal to a block of one of its disks by reference (disk, block):
// pages virtio-blk filled whole from the disk and nobody wrote since, and no other page. A save, a restore
// and more reads and writes give the machine (memory, the disk's record of pages) of the run straight on.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RAM_BASE } from '../../src/board/address-map.js';
import { Machine } from '../../src/board/machine.js';
import { restoreMachine, saveMachine, type MachineSnapshot } from '../../src/board/snapshot.js';
import { BLOCK_PAGE, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VirtioBlk } from '../../src/devices/virtio/blk.js';
import { MemoryBlockBackend } from '../../src/devices/virtio/memory-block.js';
import { CowBlockBackend, MemoryClusterStore, readSavedClusters, type SavedClusters } from '../../src/devices/virtio/cow-block.js';
import { machineDisks } from '../../src/board/disk-pages.js';
import type { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { blkRequest, startBlk, type BlkQueue } from '../helpers/blk-driver.js';
import { StateError } from '../../src/memory/state.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/host/snapshot-file.js';
import { comparableState } from '../helpers/snapshot-state.js';

const MiB = 2 ** 20;
const CONFIG = { harts: 1, nodes: [{ memoryBytes: 16 * MiB, harts: [0] }] };
const DISK_BLOCKS = 64;
/** The pages reads land in: 4 MiB into RAM, one page per slot. */
const DATA = RAM_BASE + 4 * MiB;
const SLOTS = 32;

/** The disk's contents: every block different and non-zero. */
function diskBytes(seed: number): Uint8Array {
  return Uint8Array.from({ length: DISK_BLOCKS * BLOCK_PAGE }, (_, i) => ((i * 31 + seed * 7 + (i >> 12) * 13) % 251) + 1);
}

interface Rig {
  machine: Machine;
  disk: MemoryBlockBackend;
  transport: VirtioMmio;
  queue: BlkQueue;
  memory: GuestMemory;
}

/** A machine with one disk whose driver (the mock's, from the host, as the guest's would) has set up its queue. */
function rig(contents = diskBytes(1)): Rig {
  const machine = new Machine({ config: CONFIG, builtinSbi: true });
  const disk = new MemoryBlockBackend(contents.slice());
  const transport = machine.attachVirtio(new VirtioBlk(disk));
  const memory = machine.bus.guestMemory();
  return { machine, disk, transport, queue: startBlk(transport, memory, RAM_BASE + MiB), memory };
}

/** What a step needs of a rig: its machine and its driver. */
type Driven = Pick<Rig, 'machine' | 'transport' | 'queue' | 'memory'>;

/** A rig as `from` saved it, restored into a fresh machine over a disk of the same contents. */
function restored(from: Rig): Rig {
  const bytes = encodeSnapshot(saveMachine(from.machine, CONFIG));
  const again = rig(from.disk.data);
  // The fresh rig's driver start wrote its own rings: the restore puts the saved memory over them.
  again.machine.bus.ram[0]!.u8.fill(0);
  restoreMachine(again.machine, decodeSnapshot(bytes));
  return again;
}

function request(r: Driven, type: number, sector: number, address: number, length: number): void {
  blkRequest(r.transport, r.memory, r.queue, type, sector, address, length);
}

/** What one step does: read block `block` into slot `slot` (whole, or `partial` bytes only), write a byte there as the CPU would, or write the disk's block. */
type Action = { kind: 'read'; slot: number; block: number; partial: boolean } | { kind: 'store'; slot: number; at: number } | { kind: 'write-disk'; slot: number; block: number };

function act(r: Driven, a: Action): void {
  const page = DATA + a.slot * BLOCK_PAGE;
  if (a.kind === 'read') request(r, VIRTIO_BLK_T_IN, a.block * 8, a.partial ? page + 512 : page, a.partial ? 1024 : BLOCK_PAGE);
  else if (a.kind === 'store') r.machine.bus.ram[0]!.u8[page - RAM_BASE + a.at] ^= 0x5a;
  else request(r, VIRTIO_BLK_T_OUT, a.block * 8, page, BLOCK_PAGE);
}

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('read' as const), slot: fc.nat(SLOTS - 1), block: fc.nat(DISK_BLOCKS - 1), partial: fc.boolean() }) },
  fc.record({ kind: fc.constant('store' as const), slot: fc.nat(SLOTS - 1), at: fc.nat(BLOCK_PAGE - 1) }),
  fc.record({ kind: fc.constant('write-disk' as const), slot: fc.nat(SLOTS - 1), block: fc.nat(DISK_BLOCKS - 1) }),
);

/** The pages the snapshot stores by reference, as slot → block. */
function references(snapshot: MachineSnapshot): Map<number, number> {
  const blocks = snapshot.memory[0]!.blocks;
  const out = new Map<number, number>();
  for (let k = 0; k < blocks.length; k += 3) {
    assert.equal(blocks[k + 1], 0, 'the one disk');
    out.set((RAM_BASE + blocks[k]! * BLOCK_PAGE - DATA) / BLOCK_PAGE, blocks[k + 2]!);
  }
  return out;
}

/** What each slot holds as the test sees it: the block it equals, by its bytes, unless zero (the oracle the snapshot must agree with). */
function equalBlocks(r: Rig, filled: ReadonlyMap<number, number>): Map<number, number> {
  const out = new Map<number, number>();
  const ram = r.machine.bus.ram[0]!.u8;
  for (const [slot, block] of filled) {
    const page = ram.subarray(DATA - RAM_BASE + slot * BLOCK_PAGE, DATA - RAM_BASE + (slot + 1) * BLOCK_PAGE);
    if (page.some((b) => b !== 0) && Buffer.from(page).equals(Buffer.from(r.disk.data.subarray(block * BLOCK_PAGE, (block + 1) * BLOCK_PAGE)))) out.set(slot, block);
  }
  return out;
}

describe('a bare machine\'s pages equal to a disk block are saved by reference', () => {
  it('exactly the pages filled whole from the disk and still equal to their block, and they come back', () => {
    fc.assert(fc.property(fc.array(action, { minLength: 1, maxLength: 40 }), (actions) => {
      const r = rig();
      // The test's own record: the block each slot was last filled with, whole.
      const filled = new Map<number, number>();
      for (const a of actions) {
        act(r, a);
        // A disk write reads the page: the page stays what it was (the bytes say whether it still equals its block).
        if (a.kind === 'read' && !a.partial) filled.set(a.slot, a.block);
        else if (a.kind !== 'write-disk') filled.delete(a.slot);
      }
      const snapshot = saveMachine(r.machine, CONFIG);
      assert.deepEqual([...references(snapshot)].sort(), [...equalBlocks(r, filled)].sort());
      const again = restored(r);
      assert.ok(Buffer.from(again.machine.bus.ram[0]!.u8).equals(Buffer.from(r.machine.bus.ram[0]!.u8)), 'RAM as saved');
    }), { numRuns: 60 });
  });

  it('a save, a restore and more steps give the machine of the run straight on (N + M)', () => {
    fc.assert(fc.property(fc.array(action, { maxLength: 30 }), fc.array(action, { maxLength: 30 }), (first, then) => {
      const straight = rig();
      for (const a of first) act(straight, a);
      const seam = restored(straight);
      for (const a of then) {
        act(straight, a);
        act(seam, a);
      }
      assert.ok(comparableState(saveMachine(seam.machine, CONFIG)).equals(comparableState(saveMachine(straight.machine, CONFIG))), 'state across the seam');
    }), { numRuns: 40 });
  });

  it('makes the file smaller by the pages it references', () => {
    const r = rig();
    for (let slot = 0; slot < SLOTS; slot++) act(r, { kind: 'read', slot, block: slot, partial: false });
    const snapshot = saveMachine(r.machine, CONFIG);
    assert.equal(snapshot.memory[0]!.blocks.length / 3, SLOTS);
    const withBlocks = encodeSnapshot(snapshot).length;
    r.machine.bus.ram[0]!.u8[DATA - RAM_BASE] ^= 1; // one page no longer equal
    assert.equal(saveMachine(r.machine, CONFIG).memory[0]!.blocks.length / 3, SLOTS - 1);
    const without = encodeSnapshot(saveMachine(r.machine, CONFIG)).length;
    // The page's bytes, less its reference and what the header says of it.
    assert.ok(without - withBlocks > BLOCK_PAGE - 64, `${without} bytes with the page, ${withBlocks} by reference`);
  });

  it('refuses references to a disk or block the machine does not have, and a page twice', () => {
    const r = rig();
    act(r, { kind: 'read', slot: 0, block: 5, partial: false });
    act(r, { kind: 'read', slot: 1, block: 6, partial: false });
    const bad = (change: (blocks: Uint32Array, runs: Uint32Array) => void): void => {
      const state = decodeSnapshot(encodeSnapshot(saveMachine(r.machine, CONFIG))) as MachineSnapshot;
      const image = state.memory[0]!;
      image.blocks = image.blocks.slice();
      image.runs = image.runs.slice();
      change(image.blocks, image.runs);
      assert.throws(() => restoreMachine(rig().machine, state), StateError);
    };
    bad((b) => { b[1] = 1; }); // disk 1
    bad((b) => { b[2] = DISK_BLOCKS; }); // past the disk's end
    bad((b) => { b[3] = b[0]!; }); // the same page twice
    bad((b, runs) => { b[0] = runs[0]!; }); // a page also in a run
  });
});

describe('a bare machine with a snapshot=on disk the guest writes', () => {
  const base = diskBytes(4);
  interface CowRig extends Omit<Rig, 'disk'> { disk: CowBlockBackend }

  /** A machine whose one disk is copy-on-write over `base` in memory, starting with `clusters` (a restore), its driver started. */
  function cowRig(clusters?: SavedClusters): CowRig {
    const machine = new Machine({ config: CONFIG, builtinSbi: true });
    const disk = new CowBlockBackend(new MemoryBlockBackend(base, true), clusters === undefined ? new MemoryClusterStore() : MemoryClusterStore.from(clusters, base.length));
    const transport = machine.attachVirtio(new VirtioBlk(disk));
    const memory = machine.bus.guestMemory();
    return { machine, disk, transport, queue: startBlk(transport, memory, RAM_BASE + MiB), memory };
  }

  /** Saved as the host saves it (the machine, and the disk's clusters beside it), restored into a fresh machine over the same base. */
  function cowRestored(from: CowRig): CowRig {
    const bytes = encodeSnapshot({ machine: saveMachine(from.machine, CONFIG), clusters: machineDisks(from.machine)[0]!.savedClusters()! });
    const state = decodeSnapshot(bytes) as { machine: unknown; clusters: unknown };
    const again = cowRig(readSavedClusters(state.clusters, base.length, 'clusters'));
    again.machine.bus.ram[0]!.u8.fill(0);
    restoreMachine(again.machine, state.machine);
    return again;
  }

  function contents(r: CowRig): Buffer {
    const bytes = new Uint8Array(base.length);
    r.disk.read(0, bytes);
    return Buffer.concat([bytes, Buffer.from(r.disk.savedClusters()!.clusters.buffer)]);
  }

  it('a save, a restore and more steps give the machine and the disk of the run straight on (N + M)', () => {
    fc.assert(fc.property(fc.array(action, { maxLength: 30 }), fc.array(action, { maxLength: 30 }), (first, then) => {
      const straight = cowRig();
      for (const a of first) act(straight, a);
      const seam = cowRestored(straight);
      assert.ok(contents(seam).equals(contents(straight)), 'the disk as saved');
      for (const a of then) {
        act(straight, a);
        act(seam, a);
      }
      assert.ok(comparableState(saveMachine(seam.machine, CONFIG)).equals(comparableState(saveMachine(straight.machine, CONFIG))), 'state across the seam');
      assert.ok(contents(seam).equals(contents(straight)), 'the disk across the seam');
    }), { numRuns: 40 });
  });

  it('a page equal to a cluster the guest wrote is saved by reference and read back from the saved clusters', () => {
    const r = cowRig();
    act(r, { kind: 'store', slot: 0, at: 9 });
    act(r, { kind: 'write-disk', slot: 0, block: 7 });
    act(r, { kind: 'read', slot: 1, block: 7, partial: false });
    const snapshot = saveMachine(r.machine, CONFIG);
    assert.deepEqual([...references(snapshot)], [[1, 7]]);
    const again = cowRestored(r);
    const page = (x: CowRig, slot: number) => Buffer.from(x.machine.bus.ram[0]!.u8.subarray(DATA - RAM_BASE + slot * BLOCK_PAGE, DATA - RAM_BASE + (slot + 1) * BLOCK_PAGE));
    assert.ok(page(again, 1).equals(page(r, 0)), 'the page holds what the guest wrote, not the base\'s block');
    assert.ok(!page(again, 1).equals(Buffer.from(base.subarray(7 * BLOCK_PAGE, 8 * BLOCK_PAGE))));
  });
});

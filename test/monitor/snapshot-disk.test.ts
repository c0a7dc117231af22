// Monitor snapshots store a machine page equal to a block of a VM's disk by reference (VM, disk, block): pages
// the VMs' disks filled and nobody wrote since, and the page cache's blocks, those it holds alone too. The
// whole machine and one VM come back with those pages read from the disks; a changed disk is refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BLOCK_PAGE, VIRTIO_BLK_T_IN, VirtioBlk } from '../../src/devices/virtio/blk.js';
import { CowBlockBackend, MemoryClusterStore } from '../../src/devices/virtio/cow-block.js';
import { MemoryBlockBackend } from '../../src/devices/virtio/memory-block.js';
import type { VirtioMmio } from '../../src/devices/virtio/mmio.js';
import { attachDrives } from '../../src/host/drives.js';
import { decodeMonitorSnapshot, encodeMonitorSnapshot, monitorSnapshot, restoreVm, restoreWhole, type VmBuild } from '../../src/host/monitor-snapshot.js';
import { decodeSnapshot, encodeSnapshot, SnapshotFileError } from '../../src/host/snapshot-file.js';
import { PAGE } from '../../src/monitor/machine-memory.js';
import { imageDiskPages, readMonitorSnapshot, restoreMonitor, saveMonitor } from '../../src/monitor/monitor-snapshot.js';
import { Monitor } from '../../src/monitor/monitor.js';
import type { VirtualMachine } from '../../src/monitor/vm.js';
import { blkRequest, startBlk, type BlkQueue } from '../helpers/blk-driver.js';
import { comparableMonitorState, SEAM_MACHINE } from '../helpers/monitor-program.js';

const MiB = 2 ** 20;
const BLOCKS = 64;
/** Guest-physical: the driver's queue, and the pages reads land in. */
const QUEUE_AT = MiB;
const DATA_AT = 4 * MiB;

const directory = mkdtempSync(join(tmpdir(), 'mirrorball-disk-pages-'));
after(() => rmSync(directory, { recursive: true, force: true }));

/** Every block different and non-zero. */
function contents(seed: number): Uint8Array {
  return Uint8Array.from({ length: BLOCKS * BLOCK_PAGE }, (_, i) => ((i * 29 + seed * 11 + (i >> 12) * 17) % 251) + 1);
}

interface Disk {
  vm: VirtualMachine;
  transport: VirtioMmio;
  queue: BlkQueue;
}

function startDisk(vm: VirtualMachine): Disk {
  const transport = vm.machine.virtioTransports().find((t) => t?.device instanceof VirtioBlk)!;
  return { vm, transport, queue: startBlk(transport, vm.machine.bus.guestMemory(), vm.pmap.base + QUEUE_AT) };
}

/** `d`'s VM reads block `block` into its data page `slot`. */
function read(d: Disk, slot: number, block: number): void {
  blkRequest(d.transport, d.vm.machine.bus.guestMemory(), d.queue, VIRTIO_BLK_T_IN, block * 8, d.vm.pmap.base + DATA_AT + slot * PAGE, PAGE);
}

/** A byte of `vm`'s data page `slot` changed, as its CPU would. */
function store(vm: VirtualMachine, slot: number): void {
  const memory = vm.machine.bus.guestMemory();
  const at = vm.pmap.base + DATA_AT + slot * PAGE + 100;
  memory.write(at, Uint8Array.of(memory.read(at, 1)[0]! ^ 0xff));
}

function dataPages(vm: VirtualMachine, slots: number): Buffer {
  return Buffer.from(vm.machine.bus.guestMemory().read(vm.pmap.base + DATA_AT, slots * PAGE));
}

describe('machine pages equal to a VM\'s disk block are saved by reference', () => {
  const files = { a: join(directory, 'a.img'), b: join(directory, 'b.img') };
  const builds = new Map<string, VmBuild>();
  const make = (): Monitor => new Monitor({ config: SEAM_MACHINE, quantumRounds: 8 });
  const io = () => ({ console: () => {} });

  /** VMs a and b over disks of equal contents: a reads eight blocks and writes one page; b reads a block a read too, and one of its own. */
  function setUp(): { monitor: Monitor; a: Disk; b: Disk } {
    writeFileSync(files.a, contents(1));
    writeFileSync(files.b, contents(1));
    const monitor = make();
    const disks: Disk[] = [];
    for (const name of ['a', 'b'] as const) {
      const vm = monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: () => {} });
      const drives = [{ file: files[name], readOnly: true }];
      attachDrives(vm.machine, drives, `vm ${name}`);
      builds.set(name, { drives, rngSeed: null });
      disks.push(startDisk(vm));
    }
    const [a, b] = disks as [Disk, Disk];
    for (let k = 0; k < 8; k++) read(a, k, k);
    store(a.vm, 3);
    read(b, 0, 2);
    read(b, 1, 9);
    // b's page of block 2 and a's merge: one machine page, saved once (through a's disk, the first that names it).
    assert.ok(monitor.sharePages().merged > 0);
    return { monitor, a, b };
  }
  const build = (vm: VirtualMachine): VmBuild => builds.get(vm.name)!;

  it('the whole machine: its pages come back from the disks, and it goes on as the machine saved', () => {
    const { monitor, a, b } = setUp();
    const saved = monitorSnapshot(monitor, build);
    // a's seven pages still equal to their blocks (block 2's shared with b), and b's block 9.
    assert.equal(saved.diskPages, 8);
    const bytes = encodeSnapshot(saved.value);
    const again = restoreWhole(decodeMonitorSnapshot(bytes), {}, io).monitor;
    assert.ok(comparableMonitorState(saveMonitor(again)).equals(comparableMonitorState(saveMonitor(monitor))), 'the restored machine');
    // And more reads and writes, in both: the disks' records of their pages came back too.
    const [a2, b2] = [startDiskAgain(again.vm('a')!, a), startDiskAgain(again.vm('b')!, b)];
    for (const [x, y] of [[a, a2], [b, b2]] as const) {
      read(x, 5, 20);
      read(y, 5, 20);
      store(x.vm, 6);
      store(y.vm, 6);
    }
    assert.ok(comparableMonitorState(saveMonitor(again)).equals(comparableMonitorState(saveMonitor(monitor))), 'the machines, on');
  });

  it('one VM restored alone reads its pages from its disk, and those saved through another VM\'s from that one\'s', () => {
    const { monitor, b } = setUp();
    const bytes = encodeMonitorSnapshot(monitor, build);
    const fresh = make();
    const { vm } = restoreVm(fresh, decodeMonitorSnapshot(bytes), 'b', 'b', io());
    assert.ok(dataPages(vm, 2).equals(dataPages(b.vm, 2)), 'b\'s pages');
    // a's disk changed: b's page saved through it is not there to read, in one line.
    writeFileSync(files.a, contents(2));
    assert.throws(() => restoreVm(make(), decodeMonitorSnapshot(bytes), 'b', 'b', io()), (error: Error) =>
      error instanceof SnapshotFileError && /VM a's disk image '.*a\.img' changed/.test(error.message) && !error.message.includes('\n'));
  });

  it('a whole restore over a changed disk is refused in one line', () => {
    const { monitor } = setUp();
    const bytes = encodeMonitorSnapshot(monitor, build);
    writeFileSync(files.b, contents(3));
    assert.throws(() => restoreWhole(decodeMonitorSnapshot(bytes), {}, io), /VM b: disk image '.*b\.img' changed since the snapshot was taken/);
  });
});

/** The same disk's driver in a restored VM: its queue where the saved one had it. */
function startDiskAgain(vm: VirtualMachine, saved: Disk): Disk {
  const transport = vm.machine.virtioTransports().find((t) => t?.device instanceof VirtioBlk)!;
  return { vm, transport, queue: saved.queue };
}

describe('the page cache\'s blocks are saved by reference', () => {
  const base = contents(5);
  /** A monitor whose VMs a and b have copy-on-write disks over one base, through the page cache. */
  function machine(): { monitor: Monitor; a: Disk; b: Disk } {
    const monitor = new Monitor({ config: SEAM_MACHINE, quantumRounds: 8 });
    const disks = ['a', 'b'].map((name) => {
      const vm = monitor.createVm({ name, vcpus: 1, memoryBytes: 16 * MiB, console: () => {} });
      const backend = new CowBlockBackend(new MemoryBlockBackend(base, true), new MemoryClusterStore());
      vm.machine.attachVirtio(new VirtioBlk(backend, { baseId: 'base', pages: monitor.diskHook(vm, 'base') }));
      return startDisk(vm);
    });
    return { monitor, a: disks[0]!, b: disks[1]! };
  }

  it('mapped into VMs or held by the cache alone, and they come back', () => {
    const { monitor, a, b } = machine();
    for (let k = 0; k < 4; k++) read(a, k, k); // copied, then the cache takes them
    read(b, 0, 0); // mapped from the cache
    store(a.vm, 1); // a's own copy now: the cache holds block 1's page alone
    assert.equal(monitor.pageCache.size, 4);
    const saved = saveMonitor(monitor);
    // The cache's four pages (block 1's through the cache's own slot, no VM's disk naming it any more); a's changed copy is saved whole.
    assert.equal(imageDiskPages(saved.pages), 4);
    const loaded = readMonitorSnapshot(decodeSnapshot(encodeSnapshot(saved)));
    const again = machine();
    restoreMonitor(again.monitor, loaded, again.monitor.vms);
    assert.ok(comparableMonitorState(saveMonitor(again.monitor)).equals(comparableMonitorState(saveMonitor(monitor))), 'the restored machine');
  });
});
